"""capacity and redistribute logic on a generated cluster in memory (the 2,000 x 30 CPU figure is in
benchmarks/bench_scale.py; here a smaller one, for what the answers are)."""

from __future__ import annotations

from kubeops.capacity import simulate
from kubeops.metrics.balance import Thresholds, plan_moves
from tests.cluster_gen import make_cluster


def by_node(pods: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for pod in pods:
        out.setdefault(pod["spec"]["nodeName"], []).append(pod)
    return out


def test_capacity_places_every_pod_of_a_node_on_the_others() -> None:
    nodes, pods, _ = make_cluster(300, 30)
    bound = by_node(pods)
    report = simulate("node-00007", bound["node-00007"], nodes, bound)
    assert report.fits and len(report.placed) == 30
    assert "node-00007" not in set(report.placed.values())
    # first fit: 16 CPU - 30 x 100m already bound leaves room for 130 more 100m pods on the first other node
    assert set(report.placed.values()) == {"node-00000"}


def test_capacity_says_why_when_nothing_has_room() -> None:
    nodes, pods, _ = make_cluster(3, 30)
    for node in nodes[1:]:
        node["spec"]["unschedulable"] = True
    bound = by_node(pods)
    report = simulate("node-00000", bound["node-00000"], nodes, bound)
    assert not report.fits and len(report.unplaced) == 30
    assert all("0/2 nodes are available: 2 node(s) were unschedulable" in why for why in report.unplaced.values())


def test_redistribute_moves_pods_off_the_hot_nodes_only_within_the_cap() -> None:
    nodes, pods, usage = make_cluster(300, 30, hot=2)
    plan = plan_moves(nodes, by_node(pods), usage, Thresholds(), max_evictions=8)
    assert plan.bands["node-00000"] == plan.bands["node-00001"] == "over"
    assert sum(1 for b in plan.bands.values() if b == "under") == 298
    assert len(plan.moves) == 8
    assert {m.node for m in plan.moves} <= {"node-00000", "node-00001"}
    assert not {m.target for m in plan.moves} & {"node-00000", "node-00001"}
