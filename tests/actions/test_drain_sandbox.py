"""`k8s.drain`, `k8s.cordon`/`uncordon` and `k8s.capacity_check` against the sandbox over HTTP, through the actions."""

from __future__ import annotations

import itertools
import re
import threading
import time
from typing import Any

import pytest
import structlog
import structlog.testing

from kubeops.actions import k8s
from kubeops.actions.context import StepContext
from kubeops.clients.factory import Clients
from kubeops.errors import ActionError, InputError
from tests.k8s_sandbox import Sandbox, sandbox_maker  # noqa: F401 (fixture make_sandbox)

WORKERS = [{"name_prefix": "worker-", "count": 2, "role": "worker",
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}]




def ctx_for(sb: Sandbox, *, dry_run: bool = False, intent: dict[str, Any] | None = None,
            timeout_s: float | None = None) -> StepContext:
    settings = sb.settings()
    return StepContext(
        run_id="r1", step="s", action="k8s.test", settings=settings, clients=Clients(settings, dry_run=dry_run),
        log=structlog.get_logger(), dry_run=dry_run, intent=intent,
        deadline=None if timeout_s is None else time.monotonic() + timeout_s,
    )


def mutations(sb: Sandbox, since: int) -> list[dict[str, Any]]:
    return [r for r in sb.requests()[since:] if r["method"] != "GET"]


def evictions(sb: Sandbox, since: int = 0) -> list[dict[str, Any]]:
    return [r for r in sb.requests()[since:] if r.get("subresource") == "eviction"]


def names(pods: list[dict[str, Any]]) -> set[str]:
    return {p["metadata"]["name"] for p in pods}


def settle(sb: Sandbox, node: str, count: int) -> None:
    sb.wait_for(lambda: len(sb.pods_on(node)) == count, what=f"{count} pods on {node}")


MIXED = {
    "nodes": WORKERS,
    "workloads": [
        {"kind": "DaemonSet", "name": "agent", "namespace": "kube-system", "tolerations": [{"operator": "Exists"}]},
        {"kind": "MirrorPod", "name": "static-web", "namespace": "kube-system", "node": "worker-0"},
        {"kind": "Pod", "name": "bare", "node": "worker-0"},
        {"kind": "Deployment", "name": "cache", "replicas": 1, "empty_dir": True, "node_selector":
            {"kubernetes.io/hostname": "worker-0"}},
    ],
}


class TestFilters:
    def test_refuses_daemonset_emptydir_and_unmanaged_pods_without_flags_and_changes_nothing(self, make_sandbox):
        sb = make_sandbox(MIXED)
        settle(sb, "worker-0", 4)
        mark = sb.mark()
        with pytest.raises(ActionError) as err:
            k8s.drain(ctx_for(sb), k8s.DrainParams(node="worker-0"))
        text = str(err.value)
        assert "DaemonSet" in text and "kube-system/agent-" in text
        assert "local storage" in text and "default/cache-" in text
        assert "no controller" in text and "default/bare" in text
        assert "static-web" not in text  # mirror pods are skipped, never an error
        assert mutations(sb, mark) == []

    def test_with_flags_removes_emptydir_and_unmanaged_pods_and_leaves_daemonset_and_mirror_pods(self, make_sandbox):
        sb = make_sandbox(MIXED)
        settle(sb, "worker-0", 4)
        on_node = names(sb.pods_on("worker-0"))
        out = k8s.drain(ctx_for(sb), k8s.DrainParams(
            node="worker-0", ignore_daemonsets=True, delete_emptydir_data=True, force=True, grace_period_s=0,
            timeout_s=30))
        left = names(sb.pods_on("worker-0"))
        assert "static-web-worker-0" in left or any(n.startswith("static-web") for n in left)
        assert any(n.startswith("agent-") for n in left)
        assert "bare" not in left and not any(n.startswith("cache-") for n in left)
        assert "default/bare" in out["evicted"] and any(k.startswith("default/cache-") for k in out["evicted"])
        assert out["skipped"]["DaemonSet-managed"] and out["skipped"]["mirror pod"]
        assert sb.get("/api/v1/nodes/worker-0")["spec"]["unschedulable"] is True
        assert on_node >= left


class TestBudgets:
    SCENARIO = {
        # worker-b is held by a taint (not a cordon: the sandbox keeps node.kubernetes.io/unschedulable after an
        # uncordon) so both replicas start on worker-a; the test lifts it before draining
        "nodes": [{"name": "worker-a", "role": "worker"},
                  {"name": "worker-b", "role": "worker", "taints": [{"key": "hold", "effect": "NoSchedule"}]}],
        "namespaces": ["apps"],
        "workloads": [{"kind": "Deployment", "name": "web", "namespace": "apps", "replicas": 2,
                       "readiness_delay_s": 1.5, "termination_delay_s": 0.2, "pdb": {"min_available": 1}}],
    }

    def test_an_eviction_refused_by_a_budget_is_retried_until_a_replacement_is_ready(self, make_sandbox):
        # replacements take 2.5 s to be Ready: the budget holds the second pod back for that long
        slow = {**self.SCENARIO["workloads"][0], "readiness_delay_s": 2.5}
        sb = make_sandbox({**self.SCENARIO, "workloads": [slow]})
        settle(sb, "worker-a", 2)
        sb.wait_for(lambda: sb.get("/apis/policy/v1/namespaces/apps/poddisruptionbudgets/web")
                    .get("status", {}).get("disruptionsAllowed") == 1, what="budget allows 1")
        k8s.untaint(ctx_for(sb), k8s.UntaintParams(node="worker-b", key="hold"))
        with structlog.testing.capture_logs() as events:
            out = k8s.drain(ctx_for(sb), k8s.DrainParams(node="worker-a", timeout_s=60))
        assert len(out["evicted"]) == 2 and out["blocked"] == {}
        refused = [r for r in evictions(sb) if r["status"] == 429]
        assert refused, "the budget should have refused the second eviction at least once"
        assert sb.pods_on("worker-a") == []
        assert len(sb.pods_on("worker-b")) == 2
        # a person at a terminal saw what held the drain up, on one line redrawn at most once a second
        ticks = [e for e in events if e["event"] == "drain.progress"]
        assert len(ticks) >= 2, events
        assert ticks[0]["message"] == "2 pods left"
        assert any(re.fullmatch(r"[12] pods? left, 1 blocked by budget web", e["message"]) for e in ticks), ticks
        assert all(e["timeout_s"] == pytest.approx(60, abs=1) for e in ticks)
        elapsed = [e["elapsed_s"] for e in ticks]
        assert all(b - a >= 0.9 for a, b in itertools.pairwise(elapsed)), elapsed

    def test_a_budget_that_never_gives_way_fails_the_drain_naming_it_and_the_node_stays_cordoned(self, make_sandbox):
        scenario = {**self.SCENARIO, "workloads": [{**self.SCENARIO["workloads"][0], "pdb": {"min_available": 2}}]}
        sb = make_sandbox(scenario)
        settle(sb, "worker-a", 2)
        k8s.untaint(ctx_for(sb), k8s.UntaintParams(node="worker-b", key="hold"))
        started = time.monotonic()
        with pytest.raises(ActionError) as err:
            k8s.drain(ctx_for(sb), k8s.DrainParams(node="worker-a", timeout_s=3))
        assert time.monotonic() - started < 15
        text = str(err.value)
        assert "PodDisruptionBudget apps/web" in text and "within 3s" in text
        assert "needs 2 healthy pods" in text
        assert sb.get("/api/v1/nodes/worker-a")["spec"]["unschedulable"] is True
        assert len(sb.pods_on("worker-a")) == 2

    def test_dry_run_drain_reports_the_blocking_budget_and_sends_only_dry_run_requests(self, make_sandbox):
        scenario = {**self.SCENARIO, "workloads": [{**self.SCENARIO["workloads"][0], "pdb": {"min_available": 2}}]}
        sb = make_sandbox(scenario)
        settle(sb, "worker-a", 2)
        mark = sb.mark()
        plan = k8s._plan_drain(ctx_for(sb, dry_run=True), k8s.DrainParams(node="worker-a"))
        assert any("BLOCKED" in d and "web" in d for d in plan.details)
        sent = mutations(sb, mark)
        assert sent and all(r.get("dry_run") for r in sent)
        assert len(sb.pods_on("worker-a")) == 2
        assert not sb.get("/api/v1/nodes/worker-a")["spec"].get("unschedulable")


class TestCordon:
    def test_cordon_remembers_a_node_someone_else_cordoned_and_uncordon_leaves_it(self, make_sandbox):
        sb = make_sandbox({"nodes": [{"name": "n1", "unschedulable": True}, {"name": "n2"}]})
        out = k8s.cordon(ctx_for(sb), k8s.NodeParams(node="n1"))
        assert out == {"node": "n1", "was_cordoned": True, "changed": False}
        kept = k8s.uncordon(ctx_for(sb), k8s.UncordonParams(node="n1", unless_was_cordoned=out["was_cordoned"]))
        assert kept["skipped"] and sb.get("/api/v1/nodes/n1")["spec"]["unschedulable"] is True
        ours = k8s.cordon(ctx_for(sb), k8s.NodeParams(node="n2"))
        assert ours == {"node": "n2", "was_cordoned": False, "changed": True}
        k8s.uncordon(ctx_for(sb), k8s.UncordonParams(node="n2", unless_was_cordoned=ours["was_cordoned"]))
        assert not sb.get("/api/v1/nodes/n2")["spec"].get("unschedulable")

    def test_a_resumed_cordon_trusts_the_state_recorded_before_the_crash(self, make_sandbox):
        sb = make_sandbox({"nodes": [{"name": "n1", "unschedulable": True}]})
        # the first attempt saw the node schedulable, cordoned it and crashed before finishing
        out = k8s.cordon(ctx_for(sb, intent={"was_cordoned": False}), k8s.NodeParams(node="n1"))
        assert out["was_cordoned"] is False

    def test_waiting_for_a_node_to_be_ready_reports_progress_until_it_is(self, make_sandbox):
        sb = make_sandbox({"nodes": [{"name": "n1", "ready": False}]})
        kube = sb.kube()

        def become_ready() -> None:
            time.sleep(2.5)
            node = kube.request("GET", "/api/v1/nodes/n1", what="test")
            conditions = [c for c in node["status"]["conditions"] if c["type"] != "Ready"]
            conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady"})
            kube.request("PATCH", "/api/v1/nodes/n1/status", body={"status": {"conditions": conditions}},
                         content_type="application/merge-patch+json", what="test: ready")

        threading.Thread(target=become_ready, daemon=True).start()
        with structlog.testing.capture_logs() as events:
            out = k8s.wait_node_ready(ctx_for(sb), k8s.WaitReadyParams(node="n1", timeout_s=30))
        assert out["ready"] is True
        ticks = [e for e in events if e["event"] == "k8s.wait_node_ready.progress"]
        assert 1 <= len(ticks) <= 4, ticks
        assert ticks[0]["message"] == "waiting for node n1 to be Ready (Ready=False (KubeletNotReady))"
        assert all(e["timeout_s"] == 30 for e in ticks)
        time.sleep(1.5)
        assert [e for e in events if e["event"] == "k8s.wait_node_ready.progress"] == ticks  # the ticker stopped

    def test_unknown_node_is_an_input_error(self, make_sandbox):
        sb = make_sandbox({"nodes": [{"name": "n1"}]})
        with pytest.raises(InputError, match="node 'ghost' not found"):
            k8s.cordon(ctx_for(sb), k8s.NodeParams(node="ghost"))

    def test_labels_annotations_and_taints_are_applied_idempotently(self, make_sandbox):
        sb = make_sandbox({"nodes": [{"name": "n1"}]})
        ctx = ctx_for(sb)
        assert k8s.label(ctx, k8s.LabelParams(node="n1", labels={"pool": "a"}))["changed"]
        assert not k8s.label(ctx, k8s.LabelParams(node="n1", labels={"pool": "a"}))["changed"]
        assert k8s.annotate(ctx, k8s.AnnotateParams(node="n1", annotations={"why": "maintenance"}))["changed"]
        assert k8s.taint(ctx, k8s.TaintParams(node="n1", key="maint", value="1", effect="NoExecute"))["changed"]
        assert not k8s.taint(ctx, k8s.TaintParams(node="n1", key="maint", value="1", effect="NoExecute"))["changed"]
        node = sb.get("/api/v1/nodes/n1")
        assert node["metadata"]["labels"]["pool"] == "a"
        assert node["metadata"]["annotations"]["why"] == "maintenance"
        assert {"key": "maint", "value": "1", "effect": "NoExecute"} in node["spec"]["taints"]
        assert k8s.untaint(ctx, k8s.UntaintParams(node="n1", key="maint"))["changed"]
        assert k8s.label(ctx, k8s.LabelParams(node="n1", remove=["pool"]))["changed"]
        node = sb.get("/api/v1/nodes/n1")
        assert "pool" not in node["metadata"]["labels"]
        assert not any(t["key"] == "maint" for t in node["spec"].get("taints") or [])
        with pytest.raises(InputError, match="effect"):
            k8s.taint(ctx, k8s.TaintParams(node="n1", key="x", effect="Sometimes"))


class TestCapacity:
    def test_refuses_a_node_whose_pods_cannot_fit_elsewhere_and_names_them(self, make_sandbox):
        sb = make_sandbox({
            "nodes": [{"name_prefix": "worker-", "count": 2, "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"}}],
            "workloads": [{"kind": "Deployment", "name": "big", "replicas": 2,
                           "resources": {"requests": {"cpu": "1500m", "memory": "1Gi"}}}],
        })
        sb.wait_for(lambda: len(sb.pods_on("worker-0")) + len(sb.pods_on("worker-1")) == 2, what="2 pods bound")
        node = "worker-0" if sb.pods_on("worker-0") else "worker-1"
        mark = sb.mark()
        with pytest.raises(ActionError) as err:
            k8s.capacity_check(ctx_for(sb), k8s.CapacityParams(node=node))
        assert "default/big-" in str(err.value) and "Insufficient cpu" in str(err.value)
        assert mutations(sb, mark) == []

    def test_accepts_when_pods_fit_and_flags_a_budget_that_can_never_allow_the_drain(self, make_sandbox):
        sb = make_sandbox({
            "nodes": [{"name": "a"}, {"name": "b"}],
            "workloads": [{"kind": "Deployment", "name": "web", "replicas": 2, "pdb": {"min_available": 2}}],
        })
        sb.wait_for(lambda: len(sb.pods_on("a")) + len(sb.pods_on("b")) == 2, what="2 pods bound")
        node = "a" if sb.pods_on("a") else "b"
        sb.wait_for(lambda: sb.get("/apis/policy/v1/namespaces/default/poddisruptionbudgets/web")
                    .get("status", {}).get("expectedPods") == 2, what="budget status")
        with pytest.raises(ActionError, match="PodDisruptionBudget default/web"):
            k8s.capacity_check(ctx_for(sb), k8s.CapacityParams(node=node))
        out = k8s.capacity_check(ctx_for(sb), k8s.CapacityParams(node=node, fail_on_blocking_budgets=False))
        assert out["fits"] and out["budgets"]


class TestOldServer:
    """A server older than 1.22 (scenario `eviction_versions: [v1beta1]`) answers policy/v1 evictions with 404."""

    SCENARIO = {
        "settings": {"tick_ms": 50, "eviction_versions": ["v1beta1"]},
        "nodes": [{"name": "worker-a"},
                  {"name": "worker-b", "taints": [{"key": "hold", "effect": "NoSchedule"}]}],
        "namespaces": ["apps"],
        "workloads": [{"kind": "Deployment", "name": "web", "namespace": "apps", "replicas": 3,
                       "pdb": {"max_unavailable": 1}}],
    }

    def test_the_drain_falls_back_to_policy_v1beta1_and_still_honours_the_budget(self, make_sandbox):
        sb = make_sandbox(self.SCENARIO)
        settle(sb, "worker-a", 3)
        k8s.untaint(ctx_for(sb), k8s.UntaintParams(node="worker-b", key="hold"))
        ctx = ctx_for(sb)
        out = k8s.drain(ctx, k8s.DrainParams(node="worker-a", grace_period_s=0, timeout_s=60))
        assert len(out["evicted"]) == 3 and out["blocked"] == {}
        assert sb.pods_on("worker-a") == []
        sent = evictions(sb)
        not_served = [r for r in sent if r["status"] == 404]
        # the first answer(s) to policy/v1 are 404 (as many as were in flight at once), then only v1beta1
        assert 1 <= len(not_served) <= 3 and sent[0]["status"] == 404
        assert len([r for r in sent if r["status"] == 201]) == 3
        assert [r for r in sent if r["status"] == 429], "max_unavailable 1 should refuse an eviction at least once"
        assert ctx.kube.eviction_version == "v1beta1"
        # the client remembers: a second drain sends no policy/v1 eviction
        sb.wait_for(lambda: len([p for p in sb.pods_on("worker-b") if p["status"].get("phase") == "Running"]) == 3,
                    what="replacements running on worker-b")
        mark = sb.mark()
        k8s.drain(ctx, k8s.DrainParams(node="worker-b", grace_period_s=0, timeout_s=30, cordon=False))
        assert [r["status"] for r in evictions(sb, mark)] and all(r["status"] != 404 for r in evictions(sb, mark))


class TestWaitForReplacements:
    """`wait_for_replacements`: the step ends only once the evicted pods' controllers are fully Ready elsewhere."""

    def scenario(self, **workload: Any) -> dict[str, Any]:
        return {
            "nodes": [{"name": "worker-a"},
                      {"name": "worker-b", "taints": [{"key": "hold", "effect": "NoSchedule"}]}],
            "namespaces": ["apps"],
            "workloads": [{"kind": "Deployment", "name": "web", "namespace": "apps", "replicas": 2, **workload}],
        }

    @staticmethod
    def ready(pod: dict[str, Any]) -> bool:
        return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or ())

    def test_the_drain_returns_only_when_the_replacements_are_ready_on_another_node(self, make_sandbox):
        sb = make_sandbox(self.scenario(readiness_delay_s=3))
        sb.wait_for(lambda: len([p for p in sb.pods_on("worker-a") if self.ready(p)]) == 2, what="2 ready pods")
        k8s.untaint(ctx_for(sb), k8s.UntaintParams(node="worker-b", key="hold"))
        # without waiting, the drain is over as soon as the old pods are gone: the new ones are still starting
        plain = k8s.drain(ctx_for(sb), k8s.DrainParams(node="worker-a", grace_period_s=0, timeout_s=60))
        assert len(plain["evicted"]) == 2
        assert len([p for p in sb.pods_on("worker-b") if self.ready(p)]) < 2
        sb.wait_for(lambda: len([p for p in sb.pods_on("worker-b") if self.ready(p)]) == 2, what="replacements")
        # now the other way round, waiting: drain worker-b back onto worker-a
        k8s.uncordon(ctx_for(sb), k8s.UncordonParams(node="worker-a"))
        with structlog.testing.capture_logs() as events:
            out = k8s.drain(ctx_for(sb), k8s.DrainParams(
                node="worker-b", grace_period_s=0, timeout_s=60, wait_for_replacements=True))
        assert len(out["evicted"]) == 2
        moved = sb.pods_on("worker-a")
        assert len(moved) == 2 and all(self.ready(p) for p in moved), [p["status"] for p in moved]
        assert sb.pods_on("worker-b") == []
        # the wait follows the pods by watch, so it may end a controller tick before the ReplicaSet's status agrees
        sb.wait_for(lambda: sb.get("/apis/apps/v1/namespaces/apps/replicasets")["items"][0]["status"].get(
            "readyReplicas") == 2, timeout_s=2, what="the ReplicaSet's status to count the replacements")
        waits = [e["message"] for e in events if e["event"] == "drain.progress"]
        assert any(m.startswith("waiting for 1 controller(s) to be Ready again: ReplicaSet apps/web-") for m in waits)

    def test_replacements_that_never_become_ready_fail_the_step_naming_their_controller(self, make_sandbox):
        sb = make_sandbox(self.scenario(never_ready=True))
        settle(sb, "worker-a", 2)
        k8s.untaint(ctx_for(sb), k8s.UntaintParams(node="worker-b", key="hold"))
        started = time.monotonic()
        with pytest.raises(ActionError) as err:
            k8s.drain(ctx_for(sb), k8s.DrainParams(
                node="worker-a", grace_period_s=0, timeout_s=3, wait_for_replacements=True))
        assert time.monotonic() - started < 15
        assert "node worker-a is drained, but these controllers are not fully Ready again: ReplicaSet apps/web-" \
            in str(err.value)
        assert sb.pods_on("worker-a") == [] and len(sb.pods_on("worker-b")) == 2


def test_a_transient_5xx_or_dropped_eviction_is_retried_not_a_failed_drain(make_sandbox):
    """Found by the soak: one 503 on an eviction used to fail the whole drain (and with it a replace-group batch)."""
    sb = make_sandbox({
        "nodes": WORKERS,
        "workloads": [{"kind": "Deployment", "name": "web", "replicas": 4}],
        "faults": {"error_503_rate": 0.5, "drop_rate": 0.3, "methods": ["POST"], "path_regex": "/eviction$",
                   "max_faults": 4, "seed": 1},
    })
    sb.wait_for(lambda: len(sb.pods_on("worker-0")) + len(sb.pods_on("worker-1")) == 4, what="4 pods placed")
    on_node = names(sb.pods_on("worker-0"))
    assert on_node
    out = k8s.drain(ctx_for(sb), k8s.DrainParams(node="worker-0", grace_period_s=0, timeout_s=60))
    assert set(out["evicted"]) == {f"default/{n}" for n in on_node}
    faulted = [r for r in sb.requests() if r["path"].endswith("/eviction") and r.get("fault")]
    assert faulted, "no eviction was faulted: the test would prove nothing"
