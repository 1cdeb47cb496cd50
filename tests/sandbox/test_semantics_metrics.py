"""The cAdvisor text and metrics.k8s.io objects the sandbox kubelet serves (rendering, and over the wire)."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubeops.metrics.cadvisor import compute_usage, parse_cadvisor
from kubeops.sandbox import metrics
from kubeops.sandbox.store import WatchEvent
from kubeops.sandbox.testing import SandboxProcess

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

    def test_parent_counters_sum_their_children_plus_what_departed_pods_used(self):
        guaranteed = running_pod("db-1", cpu="1")
        for c in guaranteed["spec"]["containers"]:
            c["resources"] = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
        pods = [running_pod("web-1", cpu="500m"), guaranteed]
        fams = families(metrics.render_cadvisor(NODE, pods, now=NOW, departed={"burstable": 40.0, "guaranteed": 2}))

        def cpu(cgroup_id):
            return series(fams, "container_cpu_usage_seconds_total", id=cgroup_id)[0].value

        web = series(fams, "container_cpu_usage_seconds_total", pod="web-1", container="")[0].value
        db = series(fams, "container_cpu_usage_seconds_total", pod="db-1", container="")[0].value
        assert cpu("/kubepods.slice/kubepods-burstable.slice") == pytest.approx(web + 40.0)
        assert cpu("/kubepods.slice/kubepods-besteffort.slice") == 0
        assert cpu("/kubepods.slice") == pytest.approx(web + 40.0 + db + 2)
        assert cpu("/") == pytest.approx(cpu("/kubepods.slice") + cpu("/system.slice"))

    def test_departed_cpu_keeps_a_pod_that_stopped_running_once(self):
        gone = metrics.DepartedCpu(lambda: NOW)
        pod = running_pod("job-1", cpu="500m")
        pod["spec"]["nodeName"] = "n1"
        done = copy.deepcopy(pod)
        done["status"]["phase"] = "Succeeded"
        gone.pod_event(WatchEvent(2, "MODIFIED", "pods", "shop", "job-1", done, pod))
        gone.pod_event(WatchEvent(3, "DELETED", "pods", "shop", "job-1", done, done))
        assert gone.on_node("n1") == {"burstable": pytest.approx(300.0 + 0.0001 * 600)}
        gone.node_event(WatchEvent(4, "DELETED", "nodes", "", "n1", NODE, NODE))
        assert gone.on_node("n1") == {}

    def test_pending_pods_have_no_series(self):
        pod = running_pod("web-1")
        pod["status"]["phase"] = "Pending"
        assert 'pod="web-1"' not in metrics.render_cadvisor(NODE, [pod], now=NOW)


def test_cached_pod_layouts_give_the_same_text_and_follow_pod_changes():
    layouts = metrics.PodLayouts()
    pod = running_pod("web-1")
    pod["metadata"]["resourceVersion"] = "7"
    for now in (NOW, NOW + 10.5):  # a cached pod's counters still grow with the clock
        assert metrics.render_cadvisor(NODE, [pod], now=now, layouts=layouts) == metrics.render_cadvisor(
            NODE, [pod], now=now)
    assert len(layouts) == 1
    busier = copy.deepcopy(pod)
    busier["metadata"]["annotations"][metrics.ANN_CPU_USAGE] = "2"
    busier["metadata"]["resourceVersion"] = "8"
    before = parse_cadvisor(metrics.render_cadvisor(NODE, [busier], now=NOW, layouts=layouts))
    after = parse_cadvisor(metrics.render_cadvisor(NODE, [busier], now=NOW + 10, layouts=layouts))
    (usage,) = compute_usage(before, after, interval_s=10).pods
    assert usage.cpu_cores == pytest.approx(2.0001)  # the new rate plus the pause container, not the cached 0.25
    layouts.pod_event(WatchEvent(9, "DELETED", "pods", "shop", "web-1", busier, busier))
    assert len(layouts) == 0


def test_resource_endpoint_is_the_kubelets_short_form_of_the_same_numbers():
    pods = [running_pod("web-1", containers=("app", "log")), running_pod("web-2", cpu="1", mem="1Gi")]
    text = metrics.render_resource(NODE, pods, now=NOW)
    fams = families(text)
    assert sorted(fams) == ["container_cpu_usage_seconds", "container_memory_working_set_bytes",
                            "container_start_time_seconds", "node_cpu_usage_seconds", "node_memory_working_set_bytes",
                            "pod_cpu_usage_seconds", "pod_memory_working_set_bytes", "resource_scrape_error"]
    assert all(f.documentation.startswith("[STABLE] ") for f in fams.values())
    containers = {(s.labels["pod"], s.labels["container"]) for s in fams["container_cpu_usage_seconds"].samples}
    assert containers == {("web-1", "app"), ("web-1", "log"), ("web-2", "app")}  # no pause container here
    assert all(set(s.labels) == {"container", "namespace", "pod"} for s in fams["container_cpu_usage_seconds"].samples)
    assert all(s.timestamp is not None for s in fams["pod_memory_working_set_bytes"].samples)
    # the same usage as cAdvisor's text gives for the same pods and instants
    from kubeops.metrics.resource import parse_resource, resource_usage

    later = NOW + 10
    by_cadvisor = compute_usage(parse_cadvisor(metrics.render_cadvisor(NODE, pods, now=NOW)),
                                parse_cadvisor(metrics.render_cadvisor(NODE, pods, now=later)), interval_s=10)
    by_resource = resource_usage(parse_resource(text), parse_resource(metrics.render_resource(NODE, pods, now=later)),
                                 interval_s=10)
    assert by_resource.cpu_cores == pytest.approx(by_cadvisor.cpu_cores)
    assert by_resource.memory_bytes == by_cadvisor.memory_bytes
    for a, b in zip(by_resource.pods, by_cadvisor.pods, strict=True):
        assert (a.pod, a.memory_bytes) == (b.pod, b.memory_bytes)
        assert a.cpu_cores == pytest.approx(b.cpu_cores)
        assert [c.container for c in a.containers] == [c.container for c in b.containers]


def test_go_float_matches_prometheus_text_encoding():
    assert [metrics.go_float(v) for v in (1395066363.0, 2e-09, 928708, 1e6, 0.25, 0, -1234567.5, 12.0, 1e16)] == [
        "1.395066363e+09", "2e-09", "928708", "1e+06", "0.25", "0", "-1.2345675e+06", "12", "1e+16"]


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


# -- over the wire: counters across a pod leaving the node ------------------------------------------------------

def _pod(name, cpu, mem, resources=None):
    return {"kind": "Pod", "name": name, "namespace": "shop", "node": "worker-1", "usage": {"cpu": cpu, "memory": mem},
            **({"resources": resources} if resources else {})}


LEAVING_SCENARIO = {
    "name": "metrics-leaving",
    "nodes": [{"name": "worker-1", "capacity": {"cpu": "4", "memory": "8Gi", "pods": "20"}}],
    "workloads": [
        _pod("idle", "200m", "100Mi"),  # BestEffort
        _pod("busy", "500m", "300Mi", {"requests": {"cpu": "500m"}}),  # Burstable: the one that leaves
        _pod("calm", "100m", "50Mi", {"requests": {"cpu": "100m"}}),  # Burstable: keeps the slice busy
        _pod("steady", "300m", "100Mi", {"requests": {"cpu": "300m", "memory": "128Mi"},
                                          "limits": {"cpu": "300m", "memory": "128Mi"}}),  # Guaranteed
    ],
}
CADVISOR = "/api/v1/nodes/worker-1/proxy/metrics/cadvisor"


@pytest.fixture(scope="module")
def leaving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """Scrape, delete ``busy`` with grace 0, scrape 10 sandbox seconds later."""
    with SandboxProcess(LEAVING_SCENARIO, state_dir=tmp_path_factory.mktemp("metrics") / "sandbox") as sb:
        code, pods = sb.request("GET", "/api/v1/namespaces/shop/pods")
        assert code == 200, pods
        busy = next(p["metadata"]["name"] for p in pods["items"] if p["metadata"]["name"].startswith("busy"))
        sb.advance_clock(600)  # the pods have run a while: big counters, a big drop if they were not kept
        code, before = sb.request("GET", CADVISOR)
        assert code == 200, before
        code, body = sb.request("DELETE", f"/api/v1/namespaces/shop/pods/{busy}", {"gracePeriodSeconds": 0})
        assert code == 200, body
        sb.tick()
        assert sb.request("GET", f"/api/v1/namespaces/shop/pods/{busy}")[0] == 404
        sb.advance_clock(10)
        code, after = sb.request("GET", CADVISOR)
        assert code == 200, after
        yield {"busy": busy, "before": before, "after": after}


def _parent_cpu(text):
    """``container_cpu_usage_seconds_total`` of the root, kubepods and QoS cgroups, by cgroup id."""
    return {s.labels["id"]: s.value for s in series(families(text), "container_cpu_usage_seconds_total")
            if s.labels["pod"] == "" and (s.labels["id"] == "/" or s.labels["id"].startswith("/kubepods"))}


class TestPodLeavingTheNode:
    def test_parent_cgroup_cpu_counters_do_not_go_down(self, leaving):
        before, after = _parent_cpu(leaving["before"]), _parent_cpu(leaving["after"])
        assert set(before) == {"/", "/kubepods.slice", "/kubepods.slice/kubepods-burstable.slice",
                               "/kubepods.slice/kubepods-besteffort.slice"}
        assert set(after) == set(before)
        assert {cid: after[cid] - before[cid] for cid in before if after[cid] < before[cid]} == {}

    def test_the_departed_pods_own_series_are_gone(self, leaving):
        busy = leaving["busy"]
        assert f'pod="{busy}"' in leaving["before"]
        assert f'pod="{busy}"' not in leaving["after"]

    def test_parent_memory_drops_by_the_departed_pods_working_set(self, leaving):
        def mem(text, cgroup_id):
            return series(families(text), "container_memory_working_set_bytes", id=cgroup_id)[0].value

        for cgroup_id in ("/", "/kubepods.slice", "/kubepods.slice/kubepods-burstable.slice"):
            dropped = mem(leaving["before"], cgroup_id) - mem(leaving["after"], cgroup_id)
            assert dropped == pytest.approx(300 * 1024 * 1024 + 450_000), cgroup_id

    def test_kubeops_reads_the_node_cpu_of_the_pods_left_across_the_eviction(self, leaving):
        usage = compute_usage(parse_cadvisor(leaving["before"]), parse_cadvisor(leaving["after"]), interval_s=10)
        left = 0.2 + 0.1 + 0.3 + 3 * 0.0001 + 0.05  # remaining pods, their pause containers, system slices
        # the busy pod ran for the instant between the first scrape and its deletion: a few ms of 0.5 cores
        assert left - 0.001 < usage.cpu_cores < left + 0.02
        assert leaving["busy"] not in {p.pod for p in usage.pods}
