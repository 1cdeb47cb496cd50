"""Per-pod usage counts every cgroup once: pod cgroup when present, else app containers without pause."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kubeops.metrics.cadvisor import PodUsage, compute_usage, cpu_baseline, parse_cadvisor

GKE = Path(__file__).resolve().parents[1] / "fixtures" / "kubelet" / "cadvisor_metrics.txt"
POD_CGROUP = re.compile(r'^container_\w+\{container_name="",[^\n]*id="/kubepods/burstable/pod[0-9a-f-]+",.*\n', re.M)


def bump_cpu(text: str, seconds: float) -> str:
    """The same capture `seconds` of CPU later on every per-CPU counter."""

    def add(match: re.Match[str]) -> str:
        return f"{match.group(1)} {float(match.group(2)) + seconds!r}"

    return re.sub(r"^(container_cpu_usage_seconds_total\{.*\}) (\S+)$", add, text, flags=re.M)


def pods_by_name(pods: tuple[PodUsage, ...]) -> dict[str, PodUsage]:
    return {p.pod: p for p in pods}


class TestGkeMemory:
    def test_pod_memory_is_the_pod_cgroup_not_cgroup_plus_containers(self) -> None:
        scrape = parse_cadvisor(GKE.read_text())
        pods = pods_by_name(compute_usage(scrape, scrape, interval_s=10).pods)
        demo = pods["demo-app-success-c485bc67b-klj45"]
        # pod cgroup 3063808 = demo-app 2707456 + pause 356352: the pause is in it, counted once
        assert demo.memory_bytes == 3063808 == 2707456 + 356352
        assert demo.memory_source == "pod-cgroup"
        assert demo.namespace == "default"
        assert demo.uid == "24d6daa3-10d8-11e8-bd5a-42010af00137"
        assert [c.container for c in demo.containers] == ["demo-app"]  # no POD entry
        assert pods["fluentd-gcp-v2.0.10-9q9t4"].memory_bytes == 135221248
        assert pods["dd-agent-q6hpw"].memory_bytes == 214343680
        assert pods["kube-proxy-gke-haissam-default-pool-be5066f1-wnvn"].memory_bytes == 15949824
        assert pods["datadog-agent-jbm2k"].memory_bytes == 36519936

    def test_all_five_pods_found_and_their_sum_fits_in_the_qos_cgroup(self) -> None:
        scrape = parse_cadvisor(GKE.read_text())
        usage = compute_usage(scrape, scrape, interval_s=10)
        assert [(p.namespace, p.pod) for p in usage.pods] == [
            ("default", "datadog-agent-jbm2k"),
            ("default", "dd-agent-q6hpw"),
            ("default", "demo-app-success-c485bc67b-klj45"),
            ("kube-system", "fluentd-gcp-v2.0.10-9q9t4"),
            ("kube-system", "kube-proxy-gke-haissam-default-pool-be5066f1-wnvn"),
        ]
        total = sum(p.memory_bytes or 0 for p in usage.pods)
        burstable = scrape.cgroups["/kubepods/burstable"].memory_working_set_bytes
        assert burstable is not None
        # Counting pod cgroups *and* containers would give ~2x the QoS cgroup; once gives within 0.1 %.
        assert total == pytest.approx(burstable, rel=1e-3)
        assert usage.memory_bytes == 964743168  # node root cgroup

    def test_without_pod_cgroups_the_app_containers_are_summed_without_pause(self) -> None:
        text = POD_CGROUP.sub("", GKE.read_text())
        scrape = parse_cadvisor(text)
        assert not any(cg.kind == "pod" for cg in scrape.cgroups.values())
        pods = pods_by_name(compute_usage(scrape, scrape, interval_s=10).pods)
        demo = pods["demo-app-success-c485bc67b-klj45"]
        assert demo.memory_bytes == 2707456
        assert demo.memory_source == "containers"
        assert pods["fluentd-gcp-v2.0.10-9q9t4"].memory_bytes == 129007616 + 5857280


class TestGkeCpu:
    def test_rates_over_the_interval_with_per_cpu_counters_summed(self) -> None:
        before = parse_cadvisor(GKE.read_text())
        after = parse_cadvisor(bump_cpu(GKE.read_text(), 5.0))
        usage = compute_usage(before, after, interval_s=10)
        pods = pods_by_name(usage.pods)
        fluentd = pods["fluentd-gcp-v2.0.10-9q9t4"]
        by_container = {c.container: c.cpu_cores for c in fluentd.containers}
        assert by_container["fluentd-gcp"] == pytest.approx(1.0)  # cpu00 + cpu01, 5 s each over 10 s
        assert by_container["prometheus-to-sd-exporter"] == pytest.approx(0.5)
        assert fluentd.cpu_cores == pytest.approx(0.5)  # the pod cgroup's own counter wins
        assert fluentd.cpu_source == "pod-cgroup"
        assert usage.cpu_cores == pytest.approx(0.5)

    def test_no_change_means_zero_cpu(self) -> None:
        scrape = parse_cadvisor(GKE.read_text())
        usage = compute_usage(scrape, scrape, interval_s=10)
        assert all(p.cpu_cores == 0 for p in usage.pods)


def kubelet_text(app_cpu: float, pod_cpu: float | None, *, app_id: str = "c1", ts: int | None = None) -> str:
    stamp = f" {ts}" if ts is not None else ""
    lines = [
        f'container_cpu_usage_seconds_total{{container="app",cpu="total",id="/kubepods/burstable/podaaaaaaaa-'
        f'bbbb-cccc-dddd-eeeeeeeeeeee/{app_id}",image="nginx",namespace="web",pod="front-1"}} {app_cpu}{stamp}',
        'container_cpu_usage_seconds_total{container="POD",cpu="total",id="/kubepods/burstable/podaaaaaaaa-'
        'bbbb-cccc-dddd-eeeeeeeeeeee/pause",image="registry.k8s.io/pause:3.9",namespace="web",pod="front-1"} 50',
        'container_memory_working_set_bytes{container="app",id="/kubepods/burstable/podaaaaaaaa-'
        f'bbbb-cccc-dddd-eeeeeeeeeeee/{app_id}",image="nginx",namespace="web",pod="front-1"}} 1000',
        'container_memory_working_set_bytes{container="",id="/kubepods/burstable/podaaaaaaaa-'
        'bbbb-cccc-dddd-eeeeeeeeeeee/sandbox",image="registry.k8s.io/pause:3.9",namespace="web",pod="front-1"} 7',
        'container_memory_working_set_bytes{container="",id="/kubepods.slice",image="",namespace="",pod=""} 9999',
    ]
    if pod_cpu is not None:
        lines.append(
            'container_cpu_usage_seconds_total{container="",cpu="total",id="/kubepods/burstable/podaaaaaaaa-'
            f'bbbb-cccc-dddd-eeeeeeeeeeee",image="",namespace="web",pod="front-1"}} {pod_cpu}{stamp}'
        )
    return "\n".join(lines) + "\n"


class TestModernKubelet:
    def test_pod_cgroup_with_labels_is_preferred_and_pause_ignored(self) -> None:
        usage = compute_usage(
            parse_cadvisor(kubelet_text(10, 12)), parse_cadvisor(kubelet_text(12, 15)), interval_s=4
        )
        [pod] = usage.pods
        assert (pod.namespace, pod.pod, pod.uid) == ("web", "front-1", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
        assert pod.cpu_cores == pytest.approx(0.75)
        assert pod.cpu_source == "pod-cgroup"
        assert pod.containers[0].cpu_cores == pytest.approx(0.5)
        assert pod.memory_bytes == 1000  # no pod-cgroup memory: app only, sandbox's 7 left out
        assert pod.memory_source == "containers"
        assert usage.cpu_cores is None  # no root cgroup in this text

    def test_counter_reset_counts_from_zero(self) -> None:
        usage = compute_usage(
            parse_cadvisor(kubelet_text(100, None)), parse_cadvisor(kubelet_text(2, None)), interval_s=4
        )
        assert usage.pods[0].cpu_cores == pytest.approx(0.5)

    def test_restarted_container_under_a_new_id_counts_from_zero(self) -> None:
        usage = compute_usage(
            parse_cadvisor(kubelet_text(100, None)),
            parse_cadvisor(kubelet_text(1, None, app_id="c2")),
            interval_s=4,
        )
        assert usage.pods[0].cpu_cores == pytest.approx(0.25)

    def test_sample_timestamps_beat_the_nominal_interval(self) -> None:
        usage = compute_usage(
            parse_cadvisor(kubelet_text(10, None, ts=1_000_000)),
            parse_cadvisor(kubelet_text(13, None, ts=1_006_000)),
            interval_s=4,
        )
        assert usage.pods[0].cpu_cores == pytest.approx(0.5)  # 3 s over 6 s, not over 4 s

    def test_a_pod_new_in_the_second_scrape_has_no_cpu_rate_yet(self) -> None:
        usage = compute_usage(parse_cadvisor(""), parse_cadvisor(kubelet_text(10, None)), interval_s=4)
        assert usage.pods[0].cpu_cores is None
        assert usage.pods[0].cpu_source == "none"
        assert usage.pods[0].memory_bytes == 1000

    def test_systemd_slice_pod_cgroups_are_recognised(self) -> None:
        text = (
            'container_memory_working_set_bytes{id="/kubepods.slice/kubepods-besteffort.slice/'
            'kubepods-besteffort-pod1234abcd_0000_1111_2222_333344445555.slice"} 500\n'
            'container_memory_working_set_bytes{container="c",id="/kubepods.slice/kubepods-besteffort.slice/'
            'kubepods-besteffort-pod1234abcd_0000_1111_2222_333344445555.slice/cri-containerd-1.scope",'
            'namespace="n",pod="p"} 400\n'
        )
        scrape = parse_cadvisor(text)
        [pod] = compute_usage(scrape, scrape, interval_s=1).pods
        assert (pod.uid, pod.memory_bytes, pod.memory_source) == (
            "1234abcd-0000-1111-2222-333344445555",
            500,
            "pod-cgroup",
        )

    def test_nan_memory_is_missing_not_usage(self) -> None:
        text = 'container_memory_working_set_bytes{container="c",id="/x",namespace="n",pod="p"} NaN\n'
        scrape = parse_cadvisor(text)
        assert compute_usage(scrape, scrape, interval_s=1).pods[0].memory_bytes is None

    def test_interval_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="interval_s must be positive"):
            compute_usage(parse_cadvisor(""), parse_cadvisor(""), interval_s=0)


class TestCpuBaseline:
    """A first scrape kept as its `cpu_baseline` (what the stats sampler holds for a whole interval) gives the very
    usage the full scrape gives, and holds none of the system cgroups."""

    @pytest.mark.parametrize(("first", "second"), [
        (kubelet_text(100, None), kubelet_text(102, None)),
        (kubelet_text(100, None), kubelet_text(2, None)),  # counter reset
        (kubelet_text(100, None), kubelet_text(1, None, app_id="c2")),  # restarted under a new cgroup id
        (kubelet_text(10, None, ts=1_000_000), kubelet_text(13, None, ts=1_006_000)),
        ("", kubelet_text(10, None)),
    ], ids=["steady", "reset", "new-id", "timestamps", "new-pod"])
    def test_the_same_usage_as_the_whole_first_scrape(self, first: str, second: str) -> None:
        before, after = parse_cadvisor(first, memory=False), parse_cadvisor(second)
        assert compute_usage(cpu_baseline(before), after, interval_s=4) == compute_usage(before, after, interval_s=4)

    def test_gke_capture_keeps_only_root_pod_and_container_counters(self) -> None:
        text = GKE.read_text()
        before, after = parse_cadvisor(text, memory=False), parse_cadvisor(bump_cpu(text, 0.5))
        base = cpu_baseline(before)
        assert compute_usage(base, after, interval_s=2) == compute_usage(before, after, interval_s=2)
        kinds = {key: cg.kind for key, cg in before.cgroups.items()}
        assert set(base.counters) == {k for k, kind in kinds.items() if kind != "other"}
        assert sum(1 for kind in kinds.values() if kind == "other") >= 20  # system slices: not kept
