"""A drain under a role that may list pods and evict them but not watch them: it stops at once with the API
server's refusal, before any eviction (the drain follows its pods by watch; without one it could not tell
when they are gone, and used to retry the refused watch twenty times while evicting blind)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import structlog

from kubeops.actions import k8s
from kubeops.actions.context import StepContext
from kubeops.errors import Forbidden
from tests.k8s_sandbox import Sandbox, clients_as, sandbox_maker  # noqa: F401 (fixture make_sandbox)

RBAC = "/apis/rbac.authorization.k8s.io/v1"


def drainer(sb: Sandbox, tmp_path: Path, pod_verbs: list[str]) -> Any:
    """Clients acting as a ServiceAccount allowed what a drain needs, with `pod_verbs` on pods."""
    admin = sb.kube()
    rules = [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": pod_verbs},
        {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
        {"apiGroups": ["apps"], "resources": ["replicasets", "daemonsets", "statefulsets"], "verbs": ["get"]},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": ["list"]},
    ]
    for path, doc in (
        ("/api/v1/namespaces/default/serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                                        "metadata": {"name": "drainer"}}),
        (f"{RBAC}/clusterroles", {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                                  "metadata": {"name": "drainer"}, "rules": rules}),
        (f"{RBAC}/clusterrolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "drainer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "drainer"},
            "subjects": [{"kind": "ServiceAccount", "name": "drainer", "namespace": "default"}]}),
        ("/api/v1/namespaces/default/serviceaccounts/drainer/token",
         {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}),
    ):
        answer = admin.request("POST", path, body=doc, what="test: set up RBAC")
    return clients_as(sb.kubeconfig, answer["status"]["token"], "drainer", tmp_path / "drainer")


@pytest.mark.parametrize("nodes", [["worker-a"], ["worker-a", "worker-b"]], ids=["one-node", "two-nodes"])
@pytest.mark.parametrize("pod_verbs", [["get", "list", "watch"], ["get", "list"]], ids=["with-watch", "no-watch"])
def test_a_drain_without_watch_on_pods_stops_before_any_eviction_naming_the_refusal(
    make_sandbox, tmp_path: Path, pod_verbs: list[str], nodes: list[str]
) -> None:
    sb = make_sandbox({
        "nodes": [{"name": "worker-a"}, {"name": "worker-b"}, {"name": "spare"}],
        "workloads": [{"kind": "Deployment", "name": "web", "replicas": 4, "termination_delay_s": 0.2,
                       "node_selector": {"pool": "web"}}],
        "settings": {"tick_ms": 50, "rbac": True},
    })
    admin = sb.kube()
    for name in ("worker-a", "worker-b"):
        admin.request("PATCH", f"/api/v1/nodes/{name}", body={"metadata": {"labels": {"pool": "web"}}},
                      content_type="application/merge-patch+json", what="test: label")
    sb.wait_for(lambda: all(sb.pods_on(n) for n in ("worker-a", "worker-b")), what="web pods on both nodes")
    before = {n: {p["metadata"]["uid"] for p in sb.pods_on(n)} for n in nodes}
    clients = drainer(sb, tmp_path, pod_verbs)
    settings = clients.settings
    ctx = StepContext(run_id="r1", step="drain", action="k8s.drain_nodes", settings=settings, clients=clients,
                      log=structlog.get_logger(), dry_run=False, intent=None, deadline=None)
    mark = sb.mark()
    started = time.monotonic()
    try:
        if "watch" in pod_verbs:  # what the shipped role grants is enough for the whole drain
            out = k8s.drain_nodes(ctx, k8s.DrainNodesParams(nodes=nodes, timeout_s=30))
            assert sorted(out["nodes"]) == sorted(nodes)
            assert all(sb.pods_on(n) == [] for n in nodes)
            return
        with pytest.raises(Forbidden) as refused:
            k8s.drain_nodes(ctx, k8s.DrainNodesParams(nodes=nodes, timeout_s=30))
    finally:
        clients.close()
    assert time.monotonic() - started < 10  # at once, not after twenty retries of the refused watch
    assert 'cannot watch resource "pods"' in str(refused.value)
    evictions = [r for r in sb.requests()[mark:] if r.get("subresource") == "eviction"]
    assert evictions == []
    assert {n: {p["metadata"]["uid"] for p in sb.pods_on(n)} for n in nodes} == before  # every pod still there
