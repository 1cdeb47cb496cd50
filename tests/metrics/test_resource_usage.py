"""The kubelet's `/metrics/resource` text -> usage: the same maths as cAdvisor's, from the short endpoint."""

from __future__ import annotations

import pytest

from kubeops.metrics.cadvisor import CadvisorParseError
from kubeops.metrics.resource import parse_resource, resource_usage

HEAD = ("# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in "
        "core-seconds\n# TYPE container_cpu_usage_seconds_total counter\n")


def body(t_ms: int, app_cpu: float, *, pod_level: bool = True, extra: str = "") -> str:
    lines = [
        HEAD.rstrip("\n"),
        f'container_cpu_usage_seconds_total{{container="app",namespace="shop",pod="web-1"}} {app_cpu} {t_ms}',
        f'container_cpu_usage_seconds_total{{container="log",namespace="shop",pod="web-1"}} 1 {t_ms}',
        f'container_memory_working_set_bytes{{container="app",namespace="shop",pod="web-1"}} 3e+08 {t_ms}',
        f'container_memory_working_set_bytes{{container="log",namespace="shop",pod="web-1"}} 1e+07 {t_ms}',
        f'container_start_time_seconds{{container="app",namespace="shop",pod="web-1"}} 1.7e+09 {t_ms}',
        f"node_cpu_usage_seconds_total {100 + app_cpu} {t_ms}",
        f"node_memory_working_set_bytes 4e+09 {t_ms}",
    ]
    if pod_level:
        lines += [f'pod_cpu_usage_seconds_total{{namespace="shop",pod="web-1"}} {app_cpu + 1.5} {t_ms}',
                  f'pod_memory_working_set_bytes{{namespace="shop",pod="web-1"}} 3.2e+08 {t_ms}']
    lines += ["resource_scrape_error 0", extra]
    return "\n".join(lines) + "\n"


def test_rates_come_from_the_counters_and_the_sample_timestamps() -> None:
    before = parse_resource(body(1_000_000, 10.0), memory=False)
    after = parse_resource(body(1_004_000, 12.0))  # 4 s later by the samples' own clock
    usage = resource_usage(before, after, interval_s=10)  # the nominal interval loses to the timestamps
    (pod,) = usage.pods
    assert (pod.namespace, pod.pod, pod.uid) == ("shop", "web-1", None)
    assert pod.cpu_cores == pytest.approx(0.5) and pod.cpu_source == "pod-cgroup"
    assert pod.memory_bytes == 3.2e8 and pod.memory_source == "pod-cgroup"
    assert [(c.container, c.cpu_cores, c.memory_bytes) for c in pod.containers] == [
        ("app", pytest.approx(0.5), 3e8), ("log", 0.0, 1e7)]
    assert usage.cpu_cores == pytest.approx(0.5) and usage.memory_bytes == 4e9


def test_a_first_scrape_keeps_only_cpu_and_a_pod_without_pod_series_sums_its_containers() -> None:
    before = parse_resource(body(0, 10.0, pod_level=False), memory=False)
    assert before.memory == {} and len(before.cpu) == 3
    after = parse_resource(body(2000, 11.0, pod_level=False))
    (pod,) = resource_usage(before, after, interval_s=2).pods
    assert pod.cpu_cores == pytest.approx(0.5) and pod.cpu_source == "containers"
    assert pod.memory_bytes == pytest.approx(3.1e8) and pod.memory_source == "containers"


def test_a_restarted_counter_counts_from_zero_and_a_new_container_has_no_rate_yet() -> None:
    before = parse_resource(body(0, 10.0))
    late = 'container_cpu_usage_seconds_total{container="new",namespace="shop",pod="web-1"} 0.2 1000'
    after = parse_resource(body(1000, 0.25, extra=late))
    (pod,) = resource_usage(before, after, interval_s=1).pods
    app = next(c for c in pod.containers if c.container == "app")
    new = next(c for c in pod.containers if c.container == "new")
    assert app.cpu_cores == pytest.approx(0.25) and new.cpu_cores is None


def test_a_malformed_line_is_named_with_its_endpoint_and_line() -> None:
    text = body(0, 1.0).replace('node_cpu_usage_seconds_total 101.0 0', "node_cpu_usage_seconds_total lots")
    with pytest.raises(CadvisorParseError, match=r"^kubelet resource metrics line 8: .*not a number"):
        parse_resource(text)
