"""The cAdvisor text and metrics.k8s.io objects the sandbox kubelet serves (pure rendering)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from kubeops.sandbox import metrics

NODE = {
    "metadata": {"name": "ip-10-0-1-5.ec2.internal", "creationTimestamp": "2024-01-01T00:00:00Z"},
    "status": {"capacity": {"cpu": "4", "memory": "16Gi"}},
}


def running_pod(name, *, cpu="250m", mem="300Mi", containers=("app",)):
    return {
        "metadata": {
            "name": name, "namespace": "shop", "uid": f"0000-{name}",
            "annotations": {metrics.ANN_CPU_USAGE: cpu, metrics.ANN_MEMORY_USAGE: mem},
        },
        "spec": {"containers": [{"name": c, "image": f"example/{c}:1",
                                 "resources": {"requests": {"cpu": "100m"}}} for c in containers]},
        "status": {"phase": "Running", "startTime": "2024-01-01T00:10:00Z"},
    }


def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def series(fams, family, **labels):
    # prometheus_client strips the _total suffix from counter family names
    fam = fams.get(family) or fams[family.removesuffix("_total")]
    return [s for s in fam.samples if all(s.labels.get(k) == v for k, v in labels.items())]


NOW = 1704068400.0  # 2024-01-01T00:20:00Z: the pods have run for 600 s


class TestCadvisorText:
    def test_parses_as_prometheus_text_with_help_and_type(self):
        text = metrics.render_cadvisor(NODE, [running_pod("web-1")], now=NOW)
        fams = families(text)
        assert {"container_cpu_usage_seconds", "container_memory_working_set_bytes", "machine_cpu_cores"} <= set(fams)
        assert "# TYPE container_cpu_usage_seconds_total counter" in text
        assert "# HELP container_memory_working_set_bytes Current working set in bytes." in text

    def test_every_container_series_carries_the_kubelet_label_set(self):
        fams = families(metrics.render_cadvisor(NODE, [running_pod("web-1")], now=NOW))
        for sample in series(fams, "container_memory_working_set_bytes"):
            assert set(sample.labels) == {"container", "id", "image", "name", "namespace", "pod"}
        cpu = series(fams, "container_cpu_usage_seconds_total")
        assert {s.labels["cpu"] for s in cpu} == {"total"}

    def test_pod_has_pod_cgroup_pause_and_app_containers(self):
        fams = families(metrics.render_cadvisor(NODE, [running_pod("web-1", containers=("app", "sidecar"))], now=NOW))
        pod_series = series(fams, "container_memory_working_set_bytes", pod="web-1", namespace="shop")
        assert sorted(s.labels["container"] for s in pod_series) == ["", "POD", "app", "sidecar"]
        pod_level = next(s for s in pod_series if s.labels["container"] == "")
        assert pod_level.labels["image"] == ""
        assert pod_level.labels["id"].startswith("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod")
        apps = [s for s in pod_series if s.labels["container"] in ("app", "sidecar")]
        assert sum(s.value for s in apps) == 300 * 1024 * 1024
        assert all(s.labels["id"].startswith(pod_level.labels["id"] + "/cri-containerd-") for s in apps)

    def test_cpu_counter_grows_at_the_annotated_rate(self):
        pods = [running_pod("web-1", cpu="500m")]
        first = series(families(metrics.render_cadvisor(NODE, pods, now=NOW)),
                       "container_cpu_usage_seconds_total", container="app")[0].value
        later = series(families(metrics.render_cadvisor(NODE, pods, now=NOW + 10)),
                       "container_cpu_usage_seconds_total", container="app")[0].value
        assert abs(first - 300.0) < 1e-6  # 0.5 cores x 600 s
        assert abs((later - first) / 10 - 0.5) < 1e-6

    def test_root_and_system_cgroups_are_present_with_empty_labels(self):
        fams = families(metrics.render_cadvisor(NODE, [], now=NOW))
        ids = {s.labels["id"] for s in series(fams, "container_memory_working_set_bytes")}
        assert {"/", "/kubepods.slice", "/system.slice"} <= ids
        root = series(fams, "container_memory_working_set_bytes", id="/")[0]
        assert root.labels["pod"] == root.labels["namespace"] == root.labels["container"] == ""

    def test_usage_samples_carry_millisecond_timestamps_and_spec_samples_do_not(self):
        text = metrics.render_cadvisor(NODE, [running_pod("web-1")], now=NOW)
        usage = next(line for line in text.splitlines() if line.startswith("container_memory_working_set_bytes{"))
        spec = next(line for line in text.splitlines() if line.startswith("container_spec_cpu_shares{"))
        assert usage.split()[-1] == "1704068400000"
        assert len(spec.split()) == 2

    def test_pending_pods_have_no_series(self):
        pod = running_pod("web-1")
        pod["status"]["phase"] = "Pending"
        assert 'pod="web-1"' not in metrics.render_cadvisor(NODE, [pod], now=NOW)


def test_go_float_matches_prometheus_text_encoding():
    assert [metrics.go_float(v) for v in (1395066363.0, 2e-09, 928708, 1e6, 0.25, 0)] == [
        "1.395066363e+09", "2e-09", "928708", "1e+06", "0.25", "0"]


class TestMetricsApi:
    def test_pod_metrics_split_usage_between_containers(self):
        pm = metrics.pod_metrics(running_pod("web-1", cpu="1", mem="2Gi", containers=("a", "b")), now=NOW)
        assert pm["kind"] == "PodMetrics"
        assert pm["containers"] == [
            {"name": "a", "usage": {"cpu": "500000000n", "memory": "1048576Ki"}},
            {"name": "b", "usage": {"cpu": "500000000n", "memory": "1048576Ki"}},
        ]

    def test_node_metrics_sum_running_pods_and_overhead(self):
        nm = metrics.node_metrics(NODE, [running_pod("a", cpu="1"), running_pod("b", cpu="1")], now=NOW)
        cores = int(nm["usage"]["cpu"].removesuffix("n")) / 1e9
        assert 2.0 < cores < 2.2
        assert nm["metadata"]["name"] == NODE["metadata"]["name"]
