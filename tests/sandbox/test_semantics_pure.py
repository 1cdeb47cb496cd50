"""Pure semantics of the sandbox: scheduler filters, PDB arithmetic (no server needed)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from kubeops.sandbox import pdb, scheduler


def node(name, *, cpu="4", mem="8Gi", pods=110, unschedulable=False, taints=(), labels=None, ready=True):
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"unschedulable": unschedulable, "taints": list(taints)},
        "status": {
            "allocatable": {"cpu": cpu, "memory": mem, "pods": str(pods)},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def pod(name, *, cpu="100m", mem="128Mi", node_name=None, ns="default", labels=None, ready=True, **spec):
    return {
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": labels or {}},
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}],
            **spec,
        },
        "status": {
            "phase": "Running" if node_name else "Pending",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


class TestSchedulerFilters:
    def test_cordoned_node_refuses_pods_unless_tolerated(self):
        n = node("a", unschedulable=True)
        assert scheduler.unfit_reason(pod("p"), n, []) == "node(s) were unschedulable"
        tolerant = pod("p", tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}])
        assert scheduler.pod_fits(tolerant, n, [])

    def test_noschedule_taint_needs_matching_toleration(self):
        n = node("a", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
        assert "untolerated taint {dedicated: gpu}" in scheduler.unfit_reason(pod("p"), n, [])
        wrong = pod("p", tolerations=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
        right = pod("p", tolerations=[{"key": "dedicated", "value": "gpu", "operator": "Equal"}])
        assert not scheduler.pod_fits(wrong, n, [])
        assert scheduler.pod_fits(right, n, [])

    def test_prefer_noschedule_taint_does_not_block(self):
        n = node("a", taints=[{"key": "x", "effect": "PreferNoSchedule"}])
        assert scheduler.pod_fits(pod("p"), n, [])

    def test_not_ready_node_is_treated_as_tainted(self):
        assert "node.kubernetes.io/not-ready" in scheduler.unfit_reason(pod("p"), node("a", ready=False), [])

    def test_node_selector_and_required_affinity(self):
        n = node("a", labels={"zone": "b"})
        assert not scheduler.pod_fits(pod("p", nodeSelector={"zone": "a"}), n, [])
        aff = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}]}}}
        assert scheduler.pod_fits(pod("p", affinity=aff), n, [])
        assert not scheduler.pod_fits(pod("p", affinity=aff), node("b"), [])

    def test_requests_of_bound_pods_reduce_room(self):
        n = node("a", cpu="1", mem="1Gi", pods=3)
        bound = [pod("x", cpu="600m", node_name="a")]
        assert scheduler.unfit_reason(pod("p", cpu="500m"), n, bound) == "Insufficient cpu"
        assert scheduler.pod_fits(pod("p", cpu="400m"), n, bound)
        finished = pod("y", cpu="900m", node_name="a")
        finished["status"]["phase"] = "Succeeded"
        assert scheduler.pod_fits(pod("p", cpu="400m"), n, [*bound, finished])
        assert scheduler.unfit_reason(pod("p", mem="2Gi"), n, []) == "Insufficient memory"
        full = [pod(f"z{i}", cpu="1m", node_name="a") for i in range(3)]
        assert scheduler.unfit_reason(pod("p", cpu="1m"), n, full) == "Too many pods"

    def test_unschedulable_message_reads_like_kube_scheduler(self):
        msg = scheduler.unschedulable_message(3, Counter({"Insufficient cpu": 2, "node(s) were unschedulable": 1}))
        assert msg.startswith("0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu.")


class TestSchedulingIndex:
    def test_spreads_pods_and_stops_when_full(self):
        idx = scheduler.SchedulingIndex()
        for name in "abc":
            idx.set_node(node(name, cpu="1"))
        placed = []
        for i in range(6):
            p = pod(f"p{i}", cpu="500m")
            chosen, _ = idx.choose(p)
            p["spec"]["nodeName"] = chosen
            idx.set_pod(p)
            placed.append(chosen)
        assert Counter(placed) == {"a": 2, "b": 2, "c": 2}
        chosen, message = idx.choose(pod("late", cpu="500m"))
        assert chosen is None
        assert message.startswith("0/3 nodes are available: 3 Insufficient cpu.")

    def test_deleting_a_pod_frees_its_room(self):
        idx = scheduler.SchedulingIndex()
        idx.set_node(node("a", cpu="1"))
        p = pod("p", cpu="1", node_name="a")
        idx.set_pod(p)
        assert idx.choose(pod("q", cpu="1"))[0] is None
        idx.remove_pod("uid-p")
        assert idx.choose(pod("q", cpu="1"))[0] == "a"

    def test_cordon_update_is_respected(self):
        idx = scheduler.SchedulingIndex()
        idx.set_node(node("a"))
        idx.set_node(node("b"))
        idx.set_node(node("a", unschedulable=True))
        assert {idx.choose(pod(f"p{i}"))[0] for i in range(4)} == {"b"}


def owned(p, kind, name):
    p["metadata"]["ownerReferences"] = [{"kind": kind, "name": name, "controller": True}]
    return p


def budget(**spec):
    return {"metadata": {"name": "b", "namespace": "default", "generation": 2},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}, "status": {}}


class TestPdbStatus:
    def pods(self, ready=3, unready=0):
        ps = [owned(pod(f"r{i}", node_name="n", labels={"app": "web"}), "ReplicaSet", "rs") for i in range(ready)]
        ps += [owned(pod(f"u{i}", node_name="n", labels={"app": "web"}, ready=False), "ReplicaSet", "rs")
               for i in range(unready)]
        return ps

    def test_min_available_int_counts_matching_pods(self):
        st = pdb.compute_status(budget(minAvailable=2), self.pods(3), lambda *k: ("rs", 3))
        got = (st["currentHealthy"], st["desiredHealthy"], st["expectedPods"], st["disruptionsAllowed"])
        assert got == (3, 2, 3, 1)
        assert st["observedGeneration"] == 2
        assert st["conditions"][0]["reason"] == "SufficientPods"

    def test_max_unavailable_percent_rounds_up_against_controller_scale(self):
        # 25% of 5 -> 2 (rounded up): desired 3
        st = pdb.compute_status(budget(maxUnavailable="25%"), self.pods(5), lambda *k: ("rs", 5))
        assert (st["desiredHealthy"], st["expectedPods"], st["disruptionsAllowed"]) == (3, 5, 2)

    def test_min_available_percent_rounds_up(self):
        st = pdb.compute_status(budget(minAvailable="50%"), self.pods(3), lambda *k: ("rs", 3))
        assert st["desiredHealthy"] == 2

    def test_unready_and_terminating_pods_are_not_healthy(self):
        ps = self.pods(2, unready=1)
        ps[0]["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
        st = pdb.compute_status(budget(minAvailable=1), ps, lambda *k: ("rs", 3))
        assert st["currentHealthy"] == 1
        assert st["disruptionsAllowed"] == 0
        assert st["conditions"][0] == {**st["conditions"][0], "status": "False", "reason": "InsufficientPods"}

    def test_recently_evicted_pods_do_not_count_for_two_minutes(self):
        now = datetime(2024, 1, 1, tzinfo=UTC)
        b = budget(minAvailable=1)
        b["status"] = {"disruptedPods": {"r0": "2024-01-01T00:00:00Z"}}
        st = pdb.compute_status(b, self.pods(3), lambda *k: 3, now=now + timedelta(seconds=30))
        assert (st["currentHealthy"], st["disruptedPods"]) == (2, {"r0": "2024-01-01T00:00:00Z"})
        st = pdb.compute_status(b, self.pods(3), lambda *k: 3, now=now + timedelta(minutes=3))
        assert st["currentHealthy"] == 3
        assert "disruptedPods" not in st

    def test_bare_pods_with_max_unavailable_fail_safe(self):
        bare = [pod("x", node_name="n", labels={"app": "web"})]
        st = pdb.compute_status(budget(maxUnavailable=1), bare, lambda *k: None)
        assert st["disruptionsAllowed"] == 0
        assert st["conditions"][0]["reason"] == "SyncFailed"

    def test_matching_pods_respects_namespace_and_selector(self):
        ps = [pod("a", labels={"app": "web"}), pod("b", labels={"app": "db"}), pod("c", ns="x", labels={"app": "web"})]
        assert [p["metadata"]["name"] for p in pdb.matching_pods(budget(), ps)] == ["a"]

    @pytest.mark.parametrize(("value", "total", "up", "want"), [(1, 10, True, 1), ("10%", 15, True, 2),
                                                               ("10%", 15, False, 1), ("100%", 3, True, 3)])
    def test_scaled_value(self, value, total, up, want):
        assert pdb.scaled_value(value, total, round_up=up) == want
