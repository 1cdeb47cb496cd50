"""Redistribution picks movable pods off busy nodes onto idle ones; report rows put usage beside requests."""

from __future__ import annotations

from typing import Any

import pytest

from kubeops.metrics.balance import Thresholds, plan_moves
from kubeops.metrics.cadvisor import NodeUsage, PodUsage
from kubeops.metrics.report import node_row, pod_rows, pod_tally, render_pod_table, sort_pod_rows


def node(name: str, *, cpu: str = "4", memory: str = "8Gi", unschedulable: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {}},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod(name: str, node_name: str, *, owner: str | None = "ReplicaSet", cpu_req: str = "100m",
        priority: int = 0, limits: dict[str, str] | None = None) -> dict[str, Any]:
    refs = [{"kind": owner, "name": "rs", "controller": True}] if owner else []
    return {
        "metadata": {"name": name, "namespace": "web", "ownerReferences": refs},
        "spec": {
            "nodeName": node_name,
            "priority": priority,
            "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu_req, "memory": "64Mi"},
                                                        "limits": limits or {}}}],
        },
        "status": {"phase": "Running"},
    }


def usage(pods: dict[str, tuple[float, float]]) -> NodeUsage:
    return NodeUsage(
        cpu_cores=None,
        memory_bytes=None,
        pods=tuple(
            PodUsage("web", n, None, c, m, "pod-cgroup", "pod-cgroup", ()) for n, (c, m) in pods.items()
        ),
        interval_s=1,
    )


GI = 2**30


def scenario() -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]], dict[str, NodeUsage]]:
    nodes = [node("busy"), node("idle"), node("middle")]
    pods = {
        "busy": [pod("a", "busy"), pod("b", "busy", priority=100), pod("ds", "busy", owner="DaemonSet"),
                 pod("bare", "busy", owner=None)],
        "idle": [],
        "middle": [pod("m", "middle")],
    }
    use = {
        "busy": usage({"a": (1.0, GI), "b": (1.5, GI), "ds": (0.5, 0), "bare": (0.5, 0)}),  # 3.5/4 cores
        "idle": usage({}),
        "middle": usage({"m": (1.2, GI)}),  # 30 %: inside the band
    }
    return nodes, pods, use


def test_moves_the_lowest_priority_pods_off_the_busy_node_until_it_is_within_the_band() -> None:
    nodes, pods, use = scenario()
    plan = plan_moves(nodes, pods, use, Thresholds(), max_evictions=5)
    assert plan.bands == {"busy": "over", "idle": "under", "middle": "ok"}
    assert plan.shares["busy"]["cpu"] == 87.5
    # a (priority 0) then b (priority 100); after both, busy is at 1/4 = 25 % <= 50 %
    assert [(m.key, m.target) for m in plan.moves] == [("web/a", "idle")]
    assert plan.skipped["web/ds"].startswith("DaemonSet pod")
    assert plan.skipped["web/bare"] == "no controller would recreate it"


def test_stops_at_the_high_band_of_the_target_and_at_the_cap() -> None:
    nodes, pods, use = scenario()
    use["busy"] = usage({"a": (1.8, GI), "b": (1.9, GI), "ds": (0.3, 0)})  # 100 %; 55 % once a moved
    plan = plan_moves(nodes, pods, use, Thresholds(), max_evictions=5)
    assert [m.key for m in plan.moves] == ["web/a"]  # b would push idle past 50 % too
    assert "would pass the high band" in plan.skipped["web/b"]
    capped = plan_moves(nodes, pods, use, Thresholds(), max_evictions=1, already_evicted=1)
    assert capped.moves == []
    assert "cap of 1" in capped.reason


def test_nothing_moves_without_an_under_utilised_node() -> None:
    nodes, pods, use = scenario()
    use["idle"] = usage({"x": (1.0, 0)})
    pods["idle"] = [pod("x", "idle")]
    plan = plan_moves(nodes, pods, use, Thresholds(), max_evictions=5)
    assert plan.moves == []
    assert plan.reason == "no node is below the low band to take pods"


def test_a_cordoned_idle_node_is_no_target_and_requests_must_fit() -> None:
    nodes, pods, use = scenario()
    nodes[1] = node("idle", unschedulable=True)
    assert plan_moves(nodes, pods, use, Thresholds(), max_evictions=5).moves == []
    nodes[1] = node("idle", cpu="4")
    pods["busy"][0] = pod("a", "busy", cpu_req="5")
    plan = plan_moves(nodes, pods, use, Thresholds(), max_evictions=5)
    assert "Insufficient cpu" in plan.skipped["web/a"]
    assert [m.key for m in plan.moves] == ["web/b"]


def test_thresholds_are_validated() -> None:
    with pytest.raises(ValueError, match="low band must not be above"):
        Thresholds(low_cpu_pct=60)
    with pytest.raises(ValueError, match="between 0 and 100"):
        Thresholds(high_memory_pct=120)


def test_pod_rows_show_share_requests_and_limits() -> None:
    n = node("n1", cpu="2", memory="1Gi")
    pods = [pod("a", "n1", cpu_req="250m", limits={"cpu": "1", "memory": "512Mi"}), pod("b", "n1")]
    rows = pod_rows(n, pods, usage({"a": (0.5, 256 * 2**20)}), source="cadvisor")
    a, b = rows
    assert (a.cpu_share, a.memory_share) == (0.25, 0.25)
    assert (a.cpu_request, a.cpu_limit, a.memory_limit) == (0.25, 1.0, 512 * 2**20)
    assert b.cpu_cores is None and b.cpu_limit is None
    table = render_pod_table(sort_pod_rows(rows, "cpu"))
    assert table.splitlines()[1].split() == ["web", "a", "500m", "25.0%", "250m/1", "256Mi", "25.0%", "64Mi/512Mi"]
    assert table.splitlines()[2].split()[2:4] == ["-", "-"]
    with pytest.raises(ValueError, match="cannot sort by 'size'"):
        sort_pod_rows(rows, "size")


def test_node_row_falls_back_to_the_pod_sum_without_a_root_cgroup() -> None:
    row = node_row(node("n1"), [pod("a", "n1")], usage({"a": (1.0, GI)}), source="metrics.k8s.io")
    assert (row.cpu_cores, row.cpu_share, row.memory_share, row.pods) == (1.0, 0.25, 0.125, 1)


def test_a_node_row_from_pod_tallies_equals_one_from_the_whole_pods() -> None:
    """A table of nodes keeps only a `PodTally` per listed pod: the row must not change."""
    done = pod("old-job", "n1", cpu_req="2")
    done["status"]["phase"] = "Succeeded"  # holds nothing: neither counted nor requested
    heavy = pod("init", "n1", cpu_req="100m")
    heavy["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "1500m", "memory": "1Gi"}}}]
    heavy["spec"]["overhead"] = {"cpu": "50m", "memory": "10Mi"}
    pods = [pod("a", "n1", cpu_req="250m"), done, heavy]
    whole = node_row(node("n1"), pods, usage({"a": (1.0, GI)}), source="cadvisor")
    tallied = node_row(node("n1"), [pod_tally(p) for p in pods], usage({"a": (1.0, GI)}), source="cadvisor")
    assert tallied == whole
    assert (whole.pods, whole.cpu_requests, whole.memory_requests) == (2, 0.25 + 1.55, 64 * 2**20 + GI + 10 * 2**20)
    assert pod_tally(done) == ("n1", False, 2000, 64 * 2**20)
