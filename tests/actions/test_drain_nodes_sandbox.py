"""`k8s.drain_nodes` (and the batches of `aws.replace_group`): several nodes drained together over HTTP.

What a user cares about: a budget that holds one node's pods does not hold the other nodes; every node is
selected before anything is touched; all evictions stay under one bound (`kube.qps_concurrency`).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
import structlog

from kubeops.actions import k8s
from kubeops.actions.context import StepContext
from kubeops.clients.factory import Clients
from kubeops.errors import ActionError, InputError
from tests.k8s_sandbox import Sandbox, sandbox_maker  # noqa: F401 (fixture make_sandbox)

NODE = {"cpu": "8", "memory": "16Gi", "pods": "110"}


def ctx_for(sb: Sandbox, *, dry_run: bool = False, **kube: Any) -> StepContext:
    settings = sb.settings()
    settings = replace(settings, kube=replace(settings.kube, **kube))
    return StepContext(
        run_id="r1", step="s", action="k8s.test", settings=settings, clients=Clients(settings, dry_run=dry_run),
        log=structlog.get_logger(), dry_run=dry_run, intent=None, deadline=None,
    )


def pinned(name: str, node: str, replicas: int, **extra: Any) -> dict[str, Any]:
    return {"kind": "Deployment", "name": name, "replicas": replicas, "termination_delay_s": 0.3,
            "node_selector": {"kubernetes.io/hostname": node}, **extra}


SCENARIO = {
    "nodes": [{"name": n, "role": "worker", "capacity": NODE} for n in ("held", "free-a", "free-b", "spare")],
    "workloads": [
        # `held`'s pods can never be evicted: the budget allows no disruption
        pinned("stuck", "held", 2, pdb={"min_available": 2}),
        # pods of free-a and free-b may land on `spare` once evicted (spread by a soft rule: no selector)
        {"kind": "Deployment", "name": "web", "replicas": 12, "termination_delay_s": 0.3,
         "node_selector": {"pool": "web"}},
    ],
}


def label(sb: Sandbox, node: str, pool: str) -> None:
    sb.kube().request("PATCH", f"/api/v1/nodes/{node}", body={"metadata": {"labels": {"pool": pool}}},
                      content_type="application/merge-patch+json", what="label node")


def test_a_held_node_does_not_hold_the_others(make_sandbox):
    sb = make_sandbox(SCENARIO)
    for node in ("free-a", "free-b"):
        label(sb, node, "web")
    sb.wait_for(lambda: len(sb.pods_on("held")) == 2, what="stuck pods on held")
    sb.wait_for(lambda: len(sb.pods_on("free-a")) + len(sb.pods_on("free-b")) == 12, what="web pods placed")
    label(sb, "spare", "web")  # where the evicted web pods go
    mark = sb.mark()
    ctx = ctx_for(sb, qps_concurrency=3)
    with pytest.raises(ActionError) as err:
        # `held` first: drained one after another, it would hold free-a and free-b for the whole timeout
        k8s.drain_nodes(ctx, k8s.DrainNodesParams(nodes=["held", "free-a", "free-b"], timeout_s=4))
    text = str(err.value)
    assert "drain of node held did not finish" in text and "PodDisruptionBudget default/stuck" in text
    assert "free-a" not in text and "free-b" not in text
    assert sb.pods_on("free-a") == [] and sb.pods_on("free-b") == []  # drained meanwhile, not after
    assert len(sb.pods_on("held")) == 2
    requests = sb.requests()[mark:]
    evicted = [r for r in requests if r.get("subresource") == "eviction" and r["status"] in (200, 201)]
    assert len(evicted) == 12
    # never more than 3 evictions in flight across all three nodes: the server handled each one from its arrival
    # (`ts`) for `duration_ms`, inside the client's own time in flight, so more than 3 overlapping is a real breach
    spans = sorted((r["ts"], r["ts"] + r["duration_ms"] / 1000) for r in requests
                   if r.get("subresource") == "eviction")
    for start, _ in spans:
        assert sum(1 for s, e in spans if s <= start < e) <= 3
    nodes = {n["metadata"]["name"]: n for n in sb.kube().request("GET", "/api/v1/nodes", what="t")["items"]}
    assert all(nodes[n]["spec"].get("unschedulable") for n in ("held", "free-a", "free-b"))


def test_a_refused_node_stops_all_before_any_change(make_sandbox):
    sb = make_sandbox({"nodes": SCENARIO["nodes"][:2], "workloads": [
        {"kind": "Pod", "name": "bare", "node": "held"},  # no controller: refused without force
        pinned("web", "free-a", 2)]})
    sb.wait_for(lambda: len(sb.pods_on("free-a")) == 2, what="web pods")
    mark = sb.mark()
    with pytest.raises(ActionError, match=r"node held: .*no controller"):
        k8s.drain_nodes(ctx_for(sb), k8s.DrainNodesParams(nodes=["free-a", "held"], timeout_s=5))
    assert [r for r in sb.requests()[mark:] if r["method"] != "GET"] == []
    with pytest.raises(InputError, match="non-empty list"):
        k8s.drain_nodes(ctx_for(sb), k8s.DrainNodesParams(nodes=[]))


def test_dry_run_plans_every_node_and_changes_nothing(make_sandbox):
    sb = make_sandbox({"nodes": SCENARIO["nodes"][1:3], "workloads": [
        pinned("a", "free-a", 2), pinned("b", "free-b", 3)]})
    sb.wait_for(lambda: len(sb.pods_on("free-a")) + len(sb.pods_on("free-b")) == 5, what="pods")
    mark = sb.mark()
    plan = k8s._plan_drain_nodes(ctx_for(sb, dry_run=True), k8s.DrainNodesParams(nodes=["free-a", "free-b"]))
    assert "2 node(s) together: 5 eviction(s)" in plan.summary
    time.sleep(0.3)
    assert len(sb.pods_on("free-a")) + len(sb.pods_on("free-b")) == 5
    assert all(r.get("dry_run") for r in sb.requests()[mark:] if r["method"] != "GET")


def test_cordon_nodes_remembers_who_was_cordoned_before_and_a_resumed_attempt_keeps_that(make_sandbox):
    sb = make_sandbox({"nodes": [{"name": "free-a"}, {"name": "free-b", "unschedulable": True}, {"name": "spare"}]})
    ctx = ctx_for(sb)
    out = k8s.cordon_nodes(ctx, k8s.NodesParams(nodes=["free-a", "free-b", "free-a"]))
    assert out == {"nodes": ["free-a", "free-b"], "was_cordoned": {"free-a": False, "free-b": True},
                   "changed": ["free-a"]}
    # killed after the patch, before the checkpoint: the re-entered step reads its intent, not the nodes as now
    resumed = replace(ctx, intent={"was_cordoned": {"free-a": False, "free-b": True}})
    again = k8s.cordon_nodes(resumed, k8s.NodesParams(nodes=["free-a", "free-b"]))
    assert again["was_cordoned"] == {"free-a": False, "free-b": True} and again["changed"] == []
    assert not sb.get("/api/v1/nodes/spare")["spec"].get("unschedulable")


def test_several_nodes_one_unknown_or_a_bad_selector_is_bad_input_and_nothing_changes(make_sandbox):
    sb = make_sandbox({"nodes": [{"name": "free-a"}, {"name": "free-b"}]})
    mark = sb.mark()
    for call in (
        lambda: k8s.cordon_nodes(ctx_for(sb), k8s.NodesParams(nodes=["free-a", "ghost", "gone"])),
        lambda: k8s.uncordon_nodes(ctx_for(sb), k8s.NodesParams(nodes=["free-a", "ghost", "gone"])),
        lambda: k8s.get_nodes(ctx_for(sb), k8s.NodesQuery(nodes=["free-b", "ghost", "gone"])),
    ):
        with pytest.raises(InputError, match="nodes 'ghost', 'gone' not found"):
            call()
    with pytest.raises(InputError, match="label selector 'pool in \\(' is not valid"):
        k8s.get_nodes(ctx_for(sb), k8s.NodesQuery(selector="pool in ("))
    with pytest.raises(InputError, match="give either nodes or selector"):
        k8s.get_nodes(ctx_for(sb), k8s.NodesQuery(nodes=["free-a"], selector="pool=x"))
    assert [r for r in sb.requests()[mark:] if r["method"] != "GET"] == []
    label(sb, "free-b", "web")
    assert k8s.get_nodes(ctx_for(sb), k8s.NodesQuery(selector="pool=web")) == {"nodes": ["free-b"], "count": 1}


def test_a_faster_paced_cluster_retries_a_refused_eviction_that_much_sooner(make_sandbox):
    """A rehearsal at --speed=N paces its client N times faster: a budget's backoff shrinks with it, so the
    rehearsal predicts the drain's duration instead of N times its budget waits (`KubeClient.pace`)."""
    sb = make_sandbox({"nodes": SCENARIO["nodes"][:1], "workloads": [pinned("stuck", "held", 1,
                                                                             pdb={"min_available": 1})]})
    sb.wait_for(lambda: len(sb.pods_on("held")) == 1, what="the held pod")
    attempts = {}
    for pace in (1.0, 20.0):
        ctx = ctx_for(sb)
        ctx.kube.pace = pace
        mark = sb.mark()
        with pytest.raises(ActionError, match="PodDisruptionBudget default/stuck"):
            k8s.drain(ctx, k8s.DrainParams(node="held", timeout_s=3, cordon=False))
        attempts[pace] = sum(1 for r in sb.requests()[mark:] if r.get("subresource") == "eviction")
    # real pace: tries at 0, 0.5 and 1.5 s; twenty times faster: a dozen in the same 3 s
    assert attempts[1.0] <= 4 and attempts[20.0] >= 2 * attempts[1.0] + 2, attempts
