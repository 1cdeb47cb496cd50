"""The drain's pod filters, budget reading and capacity simulation, as pure functions (no server)."""

from __future__ import annotations

from typing import Any

from kubeops.capacity import pod_requests, simulate
from kubeops.drain import DrainFilters, blocking_budget_names, budget_verdicts, select_pods


def pod(name: str, *, owner: str | None = "ReplicaSet", ns: str = "default", phase: str = "Running",
        cpu: str | None = None, mem: str | None = None, labels: dict[str, str] | None = None,
        **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"kind": owner, "name": f"{name}-owner", "uid": f"u-{name}", "controller": True}]
    requests = {k: v for k, v in (("cpu", cpu), ("memory", mem)) if v}
    body = {"containers": [{"name": "c", "resources": {"requests": requests}}], **spec}
    return {"metadata": meta, "spec": body, "status": {"phase": phase}}


def node(name: str, *, cpu: str = "4", mem: str = "8Gi", pods: str = "110", ready: bool = True,
         unschedulable: bool = False, labels: dict[str, str] | None = None,
         taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"unschedulable": unschedulable, "taints": taints or []},
        "status": {
            "allocatable": {"cpu": cpu, "memory": mem, "pods": pods},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


class TestSelectPods:
    def test_daemonset_pods_forbid_the_drain_unless_ignored(self) -> None:
        pods = [pod("ds-1", owner="DaemonSet"), pod("web-1")]
        refused = select_pods(pods, DrainFilters())
        assert refused.error_message() is not None
        assert "default/ds-1" in refused.error_message()
        ignored = select_pods(pods, DrainFilters(ignore_daemonsets=True))
        assert ignored.error_message() is None
        assert [p["metadata"]["name"] for p in ignored.evict] == ["web-1"]
        assert ignored.skipped == {"DaemonSet-managed": ["default/ds-1"]}

    def test_finished_daemonset_pods_are_still_left_alone(self) -> None:
        sel = select_pods([pod("ds-done", owner="DaemonSet", phase="Succeeded")], DrainFilters(ignore_daemonsets=True))
        assert sel.removable == []

    def test_mirror_pods_are_skipped_without_error(self) -> None:
        static = pod("etcd-n1", owner="Node")
        static["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "abc"}
        sel = select_pods([static], DrainFilters())
        assert sel.error_message() is None
        assert sel.removable == [] and sel.skipped == {"mirror pod": ["default/etcd-n1"]}

    def test_emptydir_pods_need_delete_emptydir_data(self) -> None:
        cache = pod("cache-1", volumes=[{"name": "scratch", "emptyDir": {}}])
        assert "local storage" in (select_pods([cache], DrainFilters()).error_message() or "")
        allowed = select_pods([cache], DrainFilters(delete_emptydir_data=True))
        assert allowed.evict == [cache]
        assert allowed.warnings == {"deleting Pods with local storage": ["default/cache-1"]}

    def test_unmanaged_pods_need_force(self) -> None:
        bare = pod("bare", owner=None)
        assert "no controller" in (select_pods([bare], DrainFilters()).error_message() or "")
        assert select_pods([bare], DrainFilters(force=True)).evict == [bare]

    def test_unmanaged_emptydir_pod_names_both_reasons(self) -> None:
        bare = pod("bare", owner=None, volumes=[{"name": "v", "emptyDir": {}}])
        message = select_pods([bare], DrainFilters()).error_message() or ""
        assert "local storage" in message and "no controller" in message

    def test_finished_pods_are_deleted_even_without_a_controller_or_flags(self) -> None:
        done = pod("job-x", owner=None, phase="Failed", volumes=[{"name": "v", "emptyDir": {}}])
        sel = select_pods([done], DrainFilters())
        assert sel.error_message() is None and sel.delete == [done] and sel.evict == []

    def test_terminating_pods_are_waited_for_not_evicted_again(self) -> None:
        going = pod("web-2")
        going["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
        sel = select_pods([going], DrainFilters())
        assert sel.terminating == [going] and sel.removable == []


class TestBudgets:
    def test_reads_budget_names_from_the_eviction_status_causes(self) -> None:
        details = {"causes": [{"reason": "DisruptionBudget",
                               "message": "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}]}
        message = "Cannot evict pod as it would violate the pod's disruption budget."
        assert blocking_budget_names(message, details) == ["web-pdb"]

    def test_reads_budget_names_from_the_message_when_there_are_no_causes(self) -> None:
        assert blocking_budget_names("The disruption budget db.main is still being processed by the server.") == [
            "db.main"
        ]
        assert blocking_budget_names("Too many requests") == []

    def test_budget_that_can_never_allow_a_disruption_is_flagged(self) -> None:
        pods = [pod("web-1", labels={"app": "web"}), pod("other", labels={"app": "db"})]
        strict = {"metadata": {"name": "web", "namespace": "default"},
                  "spec": {"selector": {"matchLabels": {"app": "web"}}},
                  "status": {"expectedPods": 2, "desiredHealthy": 2, "currentHealthy": 2, "disruptionsAllowed": 0}}
        slow = {"metadata": {"name": "db", "namespace": "default"},
                "spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]}},
                "status": {"expectedPods": 3, "desiredHealthy": 2, "currentHealthy": 2, "disruptionsAllowed": 0}}
        elsewhere = {"metadata": {"name": "x", "namespace": "other"}, "spec": {"selector": {}}, "status": {}}
        verdicts = {v.budget: v for v in budget_verdicts([strict, slow, elsewhere], pods)}
        assert set(verdicts) == {"default/web", "default/db"}
        assert verdicts["default/web"].never and verdicts["default/web"].pods_on_node == ["default/web-1"]
        assert not verdicts["default/db"].never
        assert "default/web" in verdicts["default/web"].describe()


class TestCapacity:
    def test_requests_sum_containers_and_respect_init_containers(self) -> None:
        p = pod("a", cpu="250m", mem="1Gi")
        p["spec"]["containers"].append({"name": "side", "resources": {"requests": {"cpu": "0.25"}}})
        p["spec"]["initContainers"] = [{"name": "init", "resources": {"requests": {"cpu": "2"}}}]
        assert pod_requests(p) == (2000, 1 << 30)

    def test_pods_fit_on_the_free_room_of_other_nodes(self) -> None:
        draining = [pod("a", cpu="1", mem="1Gi"), pod("b", cpu="1", mem="1Gi")]
        report = simulate("n1", draining, [node("n1"), node("n2", cpu="2")], {"n2": []})
        assert report.fits and set(report.placed.values()) == {"n2"}

    def test_already_requested_resources_count_against_allocatable(self) -> None:
        draining = [pod("big", cpu="3")]
        report = simulate("n1", draining, [node("n1"), node("n2", cpu="4")], {"n2": [pod("busy", cpu="2")]})
        assert not report.fits
        assert "Insufficient cpu" in report.unplaced["default/big"]
        assert "0/1 nodes are available" in report.unplaced["default/big"]

    def test_finished_pods_on_other_nodes_hold_nothing(self) -> None:
        report = simulate("n1", [pod("big", cpu="3")], [node("n1"), node("n2", cpu="4")],
                          {"n2": [pod("done", cpu="2", phase="Succeeded")]})
        assert report.fits

    def test_unschedulable_not_ready_and_tainted_nodes_are_excluded(self) -> None:
        nodes = [node("n1"), node("cordoned", unschedulable=True), node("down", ready=False),
                 node("gpu", taints=[{"key": "gpu", "value": "true", "effect": "NoSchedule"}])]
        report = simulate("n1", [pod("web", cpu="100m")], nodes, {})
        why = report.unplaced["default/web"]
        assert "unschedulable" in why and "not ready" in why and "untolerated taint {gpu: true}" in why

    def test_tolerations_and_node_selectors_are_honoured(self) -> None:
        nodes = [node("n1"), node("gpu", labels={"pool": "gpu"},
                                  taints=[{"key": "gpu", "value": "true", "effect": "NoSchedule"}]),
                 node("plain")]
        tolerant = pod("train", nodeSelector={"pool": "gpu"},
                       tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}])
        picky = pod("picky", nodeSelector={"pool": "missing"})
        report = simulate("n1", [tolerant, picky], nodes, {})
        assert report.placed == {"default/train": "gpu"}
        assert "didn't match Pod's node affinity/selector" in report.unplaced["default/picky"]

    def test_pod_count_limit_counts(self) -> None:
        report = simulate("n1", [pod("a"), pod("b")], [node("n1"), node("n2", pods="2")], {"n2": [pod("x")]})
        assert len(report.placed) == 1 and len(report.unplaced) == 1
        assert "Too many pods" in next(iter(report.unplaced.values()))

    def test_biggest_pods_are_placed_first(self) -> None:
        # first-fit in list order would put the small pod on n2 and leave the big one without room
        nodes = [node("n1"), node("n2", cpu="1"), node("n3", cpu="3")]
        report = simulate("n1", [pod("small", cpu="1"), pod("big", cpu="3")], nodes, {})
        assert report.fits and report.placed == {"default/big": "n3", "default/small": "n2"}

    def test_daemonset_mirror_and_unmanaged_pods_need_no_room(self) -> None:
        bare = pod("bare", owner=None, cpu="100")
        report = simulate("n1", [pod("ds", owner="DaemonSet", cpu="100"), bare], [node("n1")], {})
        assert report.fits and report.not_replaced == ["default/bare"]
