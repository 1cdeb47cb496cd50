"""`wait_for_replacements` against a sandbox over HTTP: it follows the pods by watch (no polling), keeps its
contract (the controllers still short at the deadline are returned), and a role that may list pods but not watch
them fails the wait at once with the 403, as every other wait does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from kubeops.clients.drain import wait_for_replacements
from kubeops.clients.factory import Clients
from kubeops.errors import Forbidden
from tests.k8s_sandbox import Sandbox, clients_as, sandbox_maker  # noqa: F401  (provides `make_sandbox`)

NS = "apps"


def scenario(**web: Any) -> dict[str, Any]:
    return {
        "namespaces": [NS],
        "nodes": [{"name": "worker-a"}, {"name": "worker-b", "taints": [{"key": "hold", "effect": "NoSchedule"}]}],
        "workloads": [{"kind": "Deployment", "name": "web", "namespace": NS, "replicas": 2, **web}],
    }


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or ())


def remove_web_pods(sb: Sandbox, *, ready_first: bool = True) -> list[dict[str, Any]]:
    """Delete web's two pods on worker-a (as a drain would: Ready ones unless `ready_first` is False, for pods
    that never become Ready) and open worker-b for their replacements."""
    if ready_first:
        sb.wait_for(lambda: len([p for p in sb.pods_on("worker-a") if ready(p)]) == 2, what="2 ready pods")
    pods = sb.pods_on("worker-a")
    kube = sb.kube()
    kube.request("PATCH", "/api/v1/nodes/worker-a", body={"spec": {"unschedulable": True}},
                 content_type="application/merge-patch+json", what="test: cordon worker-a")
    kube.request("PATCH", "/api/v1/nodes/worker-b", body={"spec": {"taints": None}},
                 content_type="application/merge-patch+json", what="test: open worker-b")
    for pod in pods:
        kube.request("DELETE", f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}", what="test: remove")
    return pods


def test_the_wait_follows_a_watch_and_ends_when_the_replacements_are_ready(make_sandbox) -> None:
    sb = make_sandbox(scenario(readiness_delay_s=1.5))
    removed = remove_web_pods(sb)
    mark = sb.mark()
    started = time.monotonic()
    late = wait_for_replacements(sb.kube(), removed, deadline=started + 30)
    took = time.monotonic() - started
    during = sb.requests()[mark:]
    assert late == []
    assert 1.0 < took < 10, took  # it waited for the readiness delay, and not much longer
    fresh = [p for p in sb.pods_on("worker-b") if ready(p)]
    assert len(fresh) == 2 and not {p["metadata"]["uid"] for p in fresh} & {p["metadata"]["uid"] for p in removed}
    pod_lists = [r for r in during if r.get("resource") == "pods" and r["verb"] == "list"]
    assert len(pod_lists) == 1, pod_lists  # one list, then the watch: no polling
    gets = [r for r in during if r.get("resource") == "replicasets" and r["verb"] == "get"]
    assert 1 <= len(gets) <= 12, len(gets)  # read again only when its pods changed, never on a timer


def test_controllers_still_short_at_the_deadline_are_returned_at_the_deadline(make_sandbox) -> None:
    sb = make_sandbox(scenario(never_ready=True))
    sb.wait_for(lambda: len(sb.pods_on("worker-a")) == 2, what="2 pods")
    removed = remove_web_pods(sb, ready_first=False)
    started = time.monotonic()
    late = wait_for_replacements(sb.kube(), removed, deadline=started + 2)
    took = time.monotonic() - started
    rs = sb.get(f"/apis/apps/v1/namespaces/{NS}/replicasets")["items"][0]["metadata"]["name"]
    assert late == [f"ReplicaSet {NS}/{rs}"]
    assert 1.9 < took < 15, took  # at the deadline, not after a further timeout (generous: CI machines are busy)


def test_a_controller_deleted_meanwhile_is_not_waited_for(make_sandbox) -> None:
    sb = make_sandbox(scenario(never_ready=True))
    sb.wait_for(lambda: len(sb.pods_on("worker-a")) == 2, what="2 pods")
    removed = remove_web_pods(sb, ready_first=False)
    sb.kube().request("DELETE", f"/apis/apps/v1/namespaces/{NS}/deployments/web",
                      body={"propagationPolicy": "Foreground"}, what="test: delete the app")
    started = time.monotonic()
    assert wait_for_replacements(sb.kube(), removed, deadline=started + 20) == []
    assert time.monotonic() - started < 10


def restricted_client(sb: Sandbox, tmp_path: Path, verbs: list[str]) -> Clients:
    """Clients acting as a ServiceAccount whose Role grants `verbs` on pods (and get on ReplicaSets) in `NS`."""
    admin = sb.kube()  # the sandbox's own token: an administrator
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}"
    rules = [{"apiGroups": [""], "resources": ["pods"], "verbs": verbs},
             {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get"]}]
    for path, doc in (
        (f"/api/v1/namespaces/{NS}/serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                                      "metadata": {"name": "drainer"}}),
        (f"{rbac}/roles", {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                           "metadata": {"name": "drainer"}, "rules": rules}),
        (f"{rbac}/rolebindings", {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                                  "metadata": {"name": "drainer"},
                                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                              "name": "drainer"},
                                  "subjects": [{"kind": "ServiceAccount", "name": "drainer", "namespace": NS}]}),
        (f"/api/v1/namespaces/{NS}/serviceaccounts/drainer/token",
         {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}),
    ):
        answer = admin.request("POST", path, body=doc, what="test: set up RBAC")
    return clients_as(sb.kubeconfig, answer["status"]["token"], "drainer", tmp_path / "drainer")


@pytest.mark.parametrize("verbs", [["list", "watch"], ["list"]], ids=["with-watch", "without-watch"])
def test_rbac_with_watch_on_pods_suffices_and_without_it_the_wait_fails_at_once_naming_it(
    make_sandbox, tmp_path: Path, verbs: list[str]
) -> None:
    sb = make_sandbox({**scenario(readiness_delay_s=2), "settings": {"tick_ms": 50, "rbac": True}})
    clients = restricted_client(sb, tmp_path, verbs)
    removed = remove_web_pods(sb)  # the replacements take 2 s to be Ready: the wait has to watch for them
    try:
        started = time.monotonic()
        if "watch" in verbs:  # what the shipped least-privilege role grants on pods is enough
            assert wait_for_replacements(clients.kube, removed, deadline=started + 30) == []
            return
        with pytest.raises(Forbidden) as refused:
            wait_for_replacements(clients.kube, removed, deadline=started + 30)
        assert time.monotonic() - started < 5  # not after the failures that would lead a mirror to poll
        assert 'cannot watch resource "pods"' in str(refused.value)
    finally:
        clients.close()


def test_above_eight_namespaces_one_cluster_wide_watch_follows_only_the_controllers_pods(make_sandbox) -> None:
    spaces = [f"team-{i}" for i in range(9)]
    sb = make_sandbox({
        "namespaces": [*spaces, "bystanders"],
        "nodes": [{"name": "worker-a"}, {"name": "worker-b", "taints": [{"key": "hold", "effect": "NoSchedule"}]}],
        "workloads": [*({"kind": "Deployment", "name": "app", "namespace": ns, "replicas": 1,
                         "readiness_delay_s": 1} for ns in spaces),
                      {"kind": "Deployment", "name": "noise", "namespace": "bystanders", "replicas": 6}],
    })
    sb.wait_for(lambda: len([p for p in sb.pods_on("worker-a") if ready(p)]) == 15, what="15 ready pods")
    kube = sb.kube()
    removed = [p for p in sb.pods_on("worker-a") if p["metadata"]["namespace"] != "bystanders"]
    kube.request("PATCH", "/api/v1/nodes/worker-a", body={"spec": {"unschedulable": True}},
                 content_type="application/merge-patch+json", what="test: cordon")
    kube.request("PATCH", "/api/v1/nodes/worker-b", body={"spec": {"taints": None}},
                 content_type="application/merge-patch+json", what="test: open worker-b")
    for pod in removed:
        meta = pod["metadata"]
        kube.request("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", what="test: remove")
    mark = sb.mark()
    assert wait_for_replacements(kube, removed, deadline=time.monotonic() + 60) == []
    pod_reads = [r for r in sb.requests()[mark:] if r.get("resource") == "pods" and r["verb"] in ("list", "watch")]
    assert {r["path"] for r in pod_reads} == {"/api/v1/pods"}  # one cluster-wide collection, not nine
    assert len([r for r in pod_reads if r["verb"] == "list"]) == 1
    fresh = [p for p in sb.pods_on("worker-b") if ready(p) and p["metadata"]["namespace"] != "bystanders"]
    assert len(fresh) == 9
