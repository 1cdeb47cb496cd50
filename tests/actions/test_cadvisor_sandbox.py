"""`cadvisor.*` and `k8s.redistribute` against a real sandbox process, over the wire only."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from kubeops.actions import cadvisor, redistribute
from kubeops.actions.context import StepContext
from kubeops.clients.factory import Clients
from kubeops.errors import ActionError
from kubeops.sandbox.testing import SandboxProcess
from kubeops.settings import Settings, load_settings

NODE = {"cpu": "4", "memory": "8Gi", "pods": "110"}


def scenario(*, pdb: dict[str, Any] | None = None, replicas: int = 6) -> dict[str, Any]:
    """worker-0 runs every `hot` pod (the others start cordoned); each pod uses 500m and 256Mi."""
    hot: dict[str, Any] = {
        "kind": "Deployment",
        "name": "hot",
        "namespace": "web",
        "replicas": replicas,
        "image": "nginx:1.27",
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
        "usage": {"cpu": "500m", "memory": "256Mi"},
    }
    if pdb:
        hot["pdb"] = pdb
    return {
        "name": "cadvisor-test",
        "settings": {"tick_ms": 50},
        "namespaces": ["web"],
        "nodes": [
            {"name": "worker-0", "capacity": NODE},
            {"name": "worker-1", "capacity": NODE, "unschedulable": True},
            {"name": "worker-2", "capacity": NODE, "unschedulable": True},
        ],
        "workloads": [
            hot,
            {"kind": "Pod", "name": "bare", "namespace": "web", "node": "worker-0",
             "usage": {"cpu": "250m", "memory": "128Mi"}},
        ],
    }


def settings_for(sb: SandboxProcess, folder: Path) -> Settings:
    inventory = folder / "inventory"
    inventory.mkdir(parents=True, exist_ok=True)
    (inventory / "sandbox.yaml").write_text(
        yaml.safe_dump({"name": "sandbox", "kube": {"kubeconfig": str(sb.kubeconfig), "context": "sandbox"}})
    )
    return load_settings("sandbox", inventory=inventory, state_dir=folder / "state")


def ctx_for(settings: Settings, *, dry_run: bool = False, intent: dict[str, Any] | None = None) -> StepContext:
    return StepContext(
        run_id="r1", step="s", action="cadvisor.test", settings=settings,
        clients=Clients(settings, dry_run=dry_run), log=structlog.get_logger(), dry_run=dry_run, intent=intent,
    )


def running_on(ctx: StepContext, node: str) -> list[dict[str, Any]]:
    items = ctx.kube.request("GET", "/api/v1/pods", query={"fieldSelector": f"spec.nodeName={node}"},
                             what="test").get("items") or []
    return [p for p in items if (p.get("status") or {}).get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")]


def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def hot_cluster(sandbox_factory: Callable[..., SandboxProcess], tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(**kw: Any) -> tuple[SandboxProcess, Settings]:
        sb = sandbox_factory(scenario(**kw))
        settings = settings_for(sb, tmp_path)
        ctx = ctx_for(settings)
        replicas = kw.get("replicas", 6)
        wait_for(lambda: len(running_on(ctx, "worker-0")) == replicas + 1, "pods running on worker-0")
        for node in ("worker-1", "worker-2"):  # now open the idle nodes
            # the taint goes too: on a real cluster the node lifecycle controller drops it after an uncordon
            body = {"spec": {"unschedulable": False, "taints": None}}
            ctx.kube.request("PATCH", f"/api/v1/nodes/{node}", body=body,
                             content_type="application/merge-patch+json", what="uncordon")

        def untainted() -> bool:
            nodes = [ctx.kube.request("GET", f"/api/v1/nodes/{n}", what="test") for n in ("worker-1", "worker-2")]
            return not any((n.get("spec") or {}).get("taints") for n in nodes)

        wait_for(untainted, "the unschedulable taint to go")
        return sb, settings

    return make


def test_pod_stats_measure_the_configured_usage_beside_requests(hot_cluster) -> None:  # type: ignore[no-untyped-def]
    _, settings = hot_cluster()
    out = cadvisor.pod_stats(ctx_for(settings), cadvisor.PodStatsParams(node="worker-0", interval_s=1.0))
    assert out["source"] == "cadvisor"
    pods = {p["pod"]: p for p in out["pods"]}
    assert len(pods) == 7
    hot = [p for name, p in pods.items() if name.startswith("hot-")]
    for p in hot:
        assert p["cpu_cores"] == pytest.approx(0.5, rel=0.05)
        # pod cgroup: the app's 256Mi plus the pause container's working set, nothing counted twice
        assert 256 * 2**20 <= p["memory_bytes"] < 257 * 2**20
        assert p["cpu_share"] == pytest.approx(0.125, rel=0.05)
        assert (p["cpu_request"], p["memory_limit"], p["cpu_limit"]) == (0.1, 512 * 2**20, None)
    assert pods["bare"]["cpu_cores"] == pytest.approx(0.25, rel=0.05)
    assert out["pods"][-1]["pod"] == "bare"  # sorted by CPU, busiest first
    assert out["cpu_cores"] == pytest.approx(6 * 0.5 + 0.25 + 0.05, rel=0.05)  # plus system slices


def test_node_stats_and_check(hot_cluster) -> None:  # type: ignore[no-untyped-def]
    _, settings = hot_cluster()
    out = cadvisor.node_stats(ctx_for(settings), cadvisor.NodeStatsParams(interval_s=1.0))
    assert out["busiest"] == "worker-0"
    assert out["by_node"]["worker-0"]["cpu_share"] == pytest.approx(3.3 / 4, rel=0.05)
    assert out["by_node"]["worker-1"]["pods"] == 0
    flagged = cadvisor.check(ctx_for(settings), cadvisor.CheckParams(max_cpu_pct=70, on_exceed="skip", interval_s=1))
    assert flagged["ok"] is False
    assert flagged["exceeded"] == [f"worker-0: CPU {flagged['nodes']['worker-0']['cpu_pct']:.1f}% > 70%"]
    with pytest.raises(ActionError, match=r"worker-0: CPU .*% > 70%"):
        cadvisor.check(ctx_for(settings), cadvisor.CheckParams(max_cpu_pct=70, interval_s=1))
    calm = cadvisor.check(ctx_for(settings), cadvisor.CheckParams(nodes=["worker-1"], max_cpu_pct=70, interval_s=1))
    assert calm == {"ok": True, "exceeded": [], "nodes": {"worker-1": calm["nodes"]["worker-1"]}}


def test_falls_back_to_metrics_server_when_the_proxy_is_unavailable(hot_cluster) -> None:  # type: ignore[no-untyped-def]
    sb, settings = hot_cluster()
    sb.set_faults(error_503_rate=1.0, path_regex="/proxy/metrics/cadvisor")
    out = cadvisor.pod_stats(ctx_for(settings), cadvisor.PodStatsParams(node="worker-0", interval_s=1.0))
    assert out["source"] == "metrics.k8s.io"
    assert "503" in out["fallback_reason"]
    hot = [p for p in out["pods"] if p["pod"].startswith("hot-")]
    assert len(hot) == 6
    assert all(p["cpu_cores"] == pytest.approx(0.5) for p in hot)
    assert all(p["memory_bytes"] == 256 * 2**20 for p in hot)


def settled(ctx: StepContext, *, gone: set[str], total: int = 7) -> None:
    """Wait until the evicted pods are gone and their replacements run, so no pod starts or stops mid-sample.

    The sandbox's node counters are the sum over the pods running at scrape time: a pod leaving between the
    two scrapes of a measurement would make the node look idle.
    """

    def steady() -> bool:
        running = [p["metadata"]["name"] for n in ("worker-0", "worker-1", "worker-2") for p in running_on(ctx, n)]
        listed = ctx.kube.request("GET", "/api/v1/namespaces/web/pods", what="test").get("items") or []
        return len(running) == total and not gone & set(running) and len(listed) == total

    wait_for(steady, f"evicted pods {sorted(gone)} replaced")


def evictions(sb: SandboxProcess) -> list[dict[str, Any]]:
    return [r for r in sb.requests() if r.get("subresource") == "eviction"]


def params(**kw: Any) -> redistribute.RedistributeParams:
    return redistribute.RedistributeParams(interval_s=1.0, **kw)


def test_redistribute_dry_run_evicts_nothing(hot_cluster) -> None:  # type: ignore[no-untyped-def]
    sb, settings = hot_cluster()
    before = {p["metadata"]["name"] for p in running_on(ctx_for(settings), "worker-0")}
    plan = redistribute.plan_redistribute(ctx_for(settings, dry_run=True), params())
    assert plan.summary == "evict 3 pod(s)", plan.details
    assert len(plan.outputs["evicted"]) == 3
    assert all(e["pod"].startswith("web/hot-") for e in plan.outputs["evicted"])
    assert plan.outputs["skipped"]["web/bare"] == "no controller would recreate it"
    sent = evictions(sb)
    assert len(sent) == 3 and all(r["dry_run"] for r in sent)
    assert not [r for r in sb.requests() if r["method"] in ("POST", "PUT", "PATCH", "DELETE")
                and not r.get("dry_run") and r.get("resource") == "pods"]
    time.sleep(0.5)
    assert {p["metadata"]["name"] for p in running_on(ctx_for(settings), "worker-0")} == before


def test_redistribute_moves_load_until_the_node_is_within_the_band(hot_cluster) -> None:  # type: ignore[no-untyped-def]
    sb, settings = hot_cluster()
    ctx = ctx_for(settings)
    out = redistribute.redistribute(ctx, params())
    assert len(out["evicted"]) == 3
    assert out["bands"]["worker-0"] == "over"
    assert {out["bands"]["worker-1"], out["bands"]["worker-2"]} == {"under"}
    assert ctx.intent == {"evicted": [e["pod"] for e in out["evicted"]]}
    assert [r["dry_run"] for r in evictions(sb)] == [False, False, False]
    gone = {e["pod"].split("/")[1] for e in out["evicted"]}

    def replaced() -> bool:
        running = [p["metadata"]["name"] for n in ("worker-0", "worker-1", "worker-2") for p in running_on(ctx, n)]
        return len(running) == 7 and not gone & set(running)

    # the evicted pods are gone and their Deployment replaced them (where is the scheduler's choice)
    wait_for(replaced, "three evicted pods replaced")


def test_redistribute_respects_the_cap_and_a_resumed_step_counts_what_it_already_did(hot_cluster) -> None:  # type: ignore[no-untyped-def]
    sb, settings = hot_cluster()
    ctx = ctx_for(settings)
    out = redistribute.redistribute(ctx, params(max_evictions=1))
    assert len(out["evicted"]) == 1
    assert "cap of 1 evictions per run reached" in out["skipped"].values()
    settled(ctx, gone={out["evicted"][0]["pod"].split("/")[1]})
    resumed = redistribute.redistribute(ctx_for(settings, intent={"evicted": ["web/x"]}), params(max_evictions=1))
    # worker-0 is still over the band (2.8 of 4 cores) and the others under it: only the cap stops the step
    assert resumed["bands"] == {"worker-0": "over", "worker-1": "under", "worker-2": "under"}, resumed["shares"]
    assert resumed["evicted"] == []
    assert "cap of 1" in resumed["reason"]
    assert len(evictions(sb)) == 1


def test_redistribute_skips_pods_whose_budget_refuses(hot_cluster) -> None:  # type: ignore[no-untyped-def]
    sb, settings = hot_cluster(pdb={"min_available": 6})
    out = redistribute.redistribute(ctx_for(settings), params())
    assert out["evicted"] == []
    assert len(out["blocked"]) == 3
    assert [r["status"] for r in evictions(sb)] == [429, 429, 429]
    assert len(running_on(ctx_for(settings), "worker-0")) == 7
