"""The least-privilege RBAC that `kubeops schedule --kubernetes` ships, measured on a sandbox that enforces it.

Runs go through `kubeops run-scheduled` (what the CronJob's container runs) with the shipped ServiceAccount's token:
the scheduled playbooks (decommission-node, replace-node, rolling-deploy, redistribute, maintain-node) succeed under
exactly the shipped rules (and a rolling-deploy that fails rolls back under them), every permission granted is used
by some run, and removing any one rule makes a run fail with 403 -- after which putting the rule back and running
the schedule again resumes the run and finishes it. (Events are the one exception: without ``events create`` a run still
succeeds, logging each Event it could not record.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kubeops.engine import cronjob
from tests.engine.rbac_harness import APP, RbacSandbox, granted

pytestmark = pytest.mark.timeout(300)

PROXY = "/api/v1/nodes/*/proxy"
METRICS = "/apis/metrics.k8s.io"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RbacSandbox]:
    sandbox = RbacSandbox(tmp_path_factory.mktemp("rbac")).start()
    try:
        wait_for(lambda: len(sandbox.workers()) == 4, "four Ready workers")
        wait_for(lambda: all(len(sandbox.pods_on(n)) >= 6 for n in sandbox.workers()), "pods on every worker")
        yield sandbox
    finally:
        sandbox.stop()


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def busiest_worker(env: RbacSandbox) -> str:
    return max(env.workers(), key=lambda n: (len(env.pods_on(n)), n))


def uncordon_all(env: RbacSandbox) -> None:
    for node in env.get("/api/v1/nodes")["items"]:
        if node["spec"].get("unschedulable"):
            code, body = env.sb.request("PATCH", f"/api/v1/nodes/{node['metadata']['name']}",
                                        {"spec": {"unschedulable": None}},
                                        content_type="application/merge-patch+json",
                                        headers={"Authorization": "Bearer kubeops-sandbox-token"})
            assert code == 200, body


def ok(result: Any) -> None:
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])


def test_shipped_role_runs_the_scheduled_playbooks_and_every_permission_it_grants_is_used(env: RbacSandbox):
    mark = len(env.sb.requests())
    ok(env.run("decommission-node", node=busiest_worker(env), terminate_instance=True))
    for app in ("shop", "oldshop"):  # a Deployment app and a ReplicationController app, first deploy then a roll
        ok(env.run("rolling-deploy", app=app, version="1"))
        ok(env.run("rolling-deploy", app=app, version="2"))
    rolled_back_a_version_that_never_becomes_ready(env)
    ok(env.run("replace-node", node=busiest_worker(env)))
    ok(env.run("redistribute", interval_s=0.2))
    env.sb.set_faults(error_503_rate=1.0, path_prefix=PROXY)  # kubelets unreachable: metrics-server instead
    try:
        ok(env.run("redistribute", interval_s=0.2, max_evictions=4))
    finally:
        env.sb.set_faults()
    ok(maintain_a_node_that_comes_back(env))
    assert env.denied(mark) == []
    used = {(g, r, v) for g, r, v, _ in env.used(mark)}
    cluster_rules = env.by_kind("ClusterRole")["rules"]
    assert granted(cluster_rules) - used == set(), "granted but never used: superfluous"
    local = env.by_kind("Role")
    namespaces = {ns for g, r, _, ns in env.used(mark) if (g, r.split("/")[0]) in {
        (g2, r2) for g2, r2, _ in granted(local["rules"])}}
    assert namespaces == {local["metadata"]["namespace"]}, "the lock and checkpoints live in the lock namespace"
    # the resume path reads its checkpoint ConfigMap (get): measured by the rule-removal test below


def rolled_back_a_version_that_never_becomes_ready(env: RbacSandbox) -> None:
    """rolling-deploy of a shop version whose pods never become ready: the step times out and the cleanup rolls
    back under the same role (it reads the new Deployment, finds the previous version still serving -- its
    Endpoints read once, no watch -- and removes the new one)."""
    never_ready = env.root / "shop-never-ready.yaml"
    never_ready.write_text(APP.format(name="shop", controller="Deployment").replace("step_timeout_s: 30",
                                                                                   "step_timeout_s: 2")
                           + "pod_annotations: {sandbox.kubeops.io/never-ready: 'true'}\n")
    failed = env.run("rolling-deploy", app=str(never_ready), version="3")
    assert failed.returncode == 1, (failed.stdout[-2000:], failed.stderr[-3000:])
    assert "shop-v3 not ready in time" in failed.stdout + failed.stderr, failed.stdout[-2000:]
    assert "cleanup rollback [apps.rollback]: done" in failed.stdout, failed.stdout[-2000:]
    shop = env.get("/apis/apps/v1/namespaces/default/deployments?labelSelector=app%3Dshop")["items"]
    assert [(d["metadata"]["name"], d["spec"]["replicas"]) for d in shop] == [("shop-v2", 2)]


def maintain_a_node_that_comes_back(env: RbacSandbox) -> Any:
    """maintain-node of a node that is NotReady when the run reaches its wait for Ready (watching the node), and
    comes back a moment later (the sandbox's node-faults endpoint stops and restarts its heartbeats)."""
    env.sb.set_node_heartbeats("spare", False)
    env.sb.advance_clock(60)
    wait_for(lambda: not any(c["type"] == "Ready" and c["status"] == "True"
                             for c in env.get("/api/v1/nodes/spare")["status"]["conditions"]), "spare NotReady")
    import threading

    revive = threading.Timer(2.0, env.sb.set_node_heartbeats, args=("spare", True))
    revive.start()
    try:
        return env.run("maintain-node", node="spare", ready_timeout_s=60)
    finally:
        revive.join()


def _decommission(env: RbacSandbox) -> dict[str, Any]:
    return {"playbook": "decommission-node", "node": busiest_worker(env)}


def _deploy(env: RbacSandbox) -> dict[str, Any]:
    return {"playbook": "rolling-deploy", "app": "shop", "version": f"r{time.monotonic_ns() % 100000}"}


def _redistribute(env: RbacSandbox) -> dict[str, Any]:
    return {"playbook": "redistribute", "interval_s": 0.2}


# The cheapest scheduled run that needs each rule, and the faults that take away a rule's alternative
# (nodes/proxy and metrics.k8s.io stand in for each other when one fails).
CASES: dict[tuple[str, str], tuple[Callable[[RbacSandbox], dict[str, Any]], dict[str, Any]]] = {
    ("", "nodes"): (_decommission, {}),
    ("", "nodes/proxy"): (_redistribute, {"error_503_rate": 1.0, "path_prefix": METRICS}),
    ("", "pods"): (_decommission, {}),
    ("", "pods/eviction"): (_decommission, {}),
    ("", "replicationcontrollers"): (_deploy, {}),
    ("apps", "deployments"): (_deploy, {}),
    ("apps", "replicasets"): (_decommission, {}),
    ("", "services"): (_deploy, {}),
    ("", "endpoints"): (_deploy, {}),
    ("policy", "poddisruptionbudgets"): (_decommission, {}),
    ("", "events"): (_decommission, {}),
    ("metrics.k8s.io", "nodes"): (_redistribute, {"error_503_rate": 1.0, "path_prefix": PROXY}),
    ("metrics.k8s.io", "pods"): (_redistribute, {"error_503_rate": 1.0, "path_prefix": PROXY}),
    ("coordination.k8s.io", "leases"): (_decommission, {}),
    ("", "configmaps"): (_decommission, {}),
}
RULES = [("ClusterRole", i, r) for i, r in enumerate(cronjob.CLUSTER_RULES)] + [
    ("Role", i, r) for i, r in enumerate(cronjob.LOCK_NAMESPACE_RULES)]


def test_every_shipped_rule_has_a_measuring_run():
    assert {(r["apiGroups"][0], r["resources"][0]) for _, _, r in RULES} == set(CASES)


@pytest.mark.parametrize(("kind", "index", "rule"), RULES,
                         ids=[f"{k}:{r['apiGroups'][0] or 'core'}/{r['resources'][0]}" for k, _, r in RULES])
def test_removing_any_rule_makes_a_run_fail_with_403_and_restoring_it_resumes(
    env: RbacSandbox, kind: str, index: int, rule: dict[str, Any]
):
    shipped = list(cronjob.CLUSTER_RULES if kind == "ClusterRole" else cronjob.LOCK_NAMESPACE_RULES)
    make, faults = CASES[(rule["apiGroups"][0], rule["resources"][0])]
    case = make(env)
    playbook = case.pop("playbook")
    mark = len(env.sb.requests())
    env.set_rules(kind, shipped[:index] + shipped[index + 1:])
    if faults:
        env.sb.set_faults(**faults)
    try:
        failed = env.run(playbook, **case)
    finally:
        env.set_rules(kind, shipped)
    try:
        if rule["resources"] == ["events"]:  # best effort: the run goes on and says what it could not note
            ok(failed)
            assert '"event": "k8s.event_not_recorded"' in failed.stderr
            assert {(d["resource"], d["verb"]) for d in env.denied(mark)} == {("events", "create")}
            return
        assert failed.returncode != 0, failed.stdout[-2000:]
        denied = env.denied(mark)
        assert denied, "the run failed, but not on a 403"
        wanted = {(g, r) for g in rule["apiGroups"] for r in rule["resources"]}
        assert {(d["group"], f"{d['resource']}/{d['subresource']}" if d["subresource"] else d["resource"])
                for d in denied} <= wanted
        again = env.run(playbook, **case)
        ok(again)
        # One human line names the permission, whatever failed: a step, the lock or the checkpoint store.
        error = next(line for line in failed.stderr.splitlines() if line.startswith("error: "))
        assert f'User "{env.user}" cannot ' in error and "is forbidden" in error, error
        first_line = (failed.stdout.splitlines() or ["(no summary: the lock or the checkpoints were refused)"])[0]
        if first_line.endswith(": failed"):  # something had changed: the schedule's next invocation resumes it
            assert "resuming run" in again.stdout, again.stdout[-1500:]
        elif first_line.endswith(": rejected"):  # refused before any change (exit 2): the next one starts afresh
            assert failed.returncode == 2, failed.stdout[-1500:]
    finally:
        env.sb.set_faults()
        uncordon_all(env)


def test_the_forbidden_run_names_the_permission_it_lacked(env: RbacSandbox):
    shipped = list(cronjob.CLUSTER_RULES)
    without_eviction = [r for r in shipped if r["resources"] != ["pods/eviction"]]
    node = busiest_worker(env)
    env.set_rules("ClusterRole", without_eviction)
    try:
        failed = env.run("decommission-node", node=node)
    finally:
        env.set_rules("ClusterRole", shipped)
    try:
        assert failed.returncode == 1
        assert (f'User "{env.user}" cannot create resource "pods/eviction" in API group ""'
                in failed.stdout + failed.stderr)
    finally:
        ok(env.run("decommission-node", node=node))
        uncordon_all(env)


def _deploy_old(env: RbacSandbox) -> dict[str, Any]:
    return {"playbook": "rolling-deploy", "app": "oldshop", "version": f"r{time.monotonic_ns() % 100000}"}


WATCHED = [(("apps", "deployments"), _deploy), (("", "replicationcontrollers"), _deploy_old),
           (("", "endpoints"), _deploy), (("", "pods"), _deploy)]


@pytest.mark.parametrize(("resource", "make"), WATCHED, ids=[f"{g or 'core'}/{r}" for (g, r), _ in WATCHED])
def test_a_role_without_watch_fails_the_rollout_with_403_instead_of_polling_around_it(
    env: RbacSandbox, resource: tuple[str, str], make: Callable[[RbacSandbox], dict[str, Any]]
):
    """Rollouts wait on watches; a role that lists but cannot watch must fail the run on that 403 (naming the
    verb), not quietly fall back to slow polling that would hide the missing permission forever."""
    shipped = list(cronjob.CLUSTER_RULES)
    index = next(i for i, r in enumerate(shipped) if (r["apiGroups"][0], r["resources"][0]) == resource)
    assert "watch" in shipped[index]["verbs"]
    without = [*shipped[:index], {**shipped[index], "verbs": [v for v in shipped[index]["verbs"] if v != "watch"]},
               *shipped[index + 1:]]
    case = make(env)
    playbook = case.pop("playbook")
    mark = len(env.sb.requests())
    env.set_rules("ClusterRole", without)
    try:
        failed = env.run(playbook, **case)
    finally:
        env.set_rules("ClusterRole", shipped)
    assert failed.returncode == 1, failed.stdout[-2000:]
    denied = {(d["group"], d["resource"], d["verb"]) for d in env.denied(mark)}
    assert denied == {(*resource, "watch")}, denied
    error = next(line for line in failed.stderr.splitlines() if line.startswith("error: "))
    assert f'User "{env.user}" cannot watch resource "{resource[1]}"' in error, error
    again = env.run(playbook, **case)
    ok(again)
    assert "resuming run" in again.stdout, again.stdout[-1500:]
