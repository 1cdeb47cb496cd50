"""Fidelity: namespaces live and die as on a real cluster, seen through the real kubectl (1.33 and 1.27).

A new namespace gets ``serviceaccount/default`` and ``configmap/kube-root-ca.crt``; deleting one leaves it
``Terminating`` while its pods shut down, refuses new content with the NamespaceLifecycle 403, waits for objects
with finalizers, and ``PUT .../finalize`` force-removes a stuck one (see kubeops/sandbox/namespaces.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeops.sandbox.testing import SandboxProcess, kubectl_binary

for _version in ("1.33", "1.27"):
    try:
        kubectl_binary(_version)
    except FileNotFoundError:  # .ci/run checks kubectl is installed; a dev box without it skips loudly
        pytest.skip(f"kubectl {_version} is not installed", allow_module_level=True)

SCENARIO: dict[str, Any] = {
    "name": "namespace-life",
    "settings": {"tick_ms": 50},
    "nodes": [{"name_prefix": "worker-", "count": 2, "role": "worker", "zone": ["us-east-1a", "us-east-1b"]}],
}


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    with SandboxProcess(SCENARIO, state_dir=tmp_path_factory.mktemp("nslife") / "sandbox") as proc:
        yield proc


def ok(sb: SandboxProcess, *args: str, version: str = "1.33") -> str:
    r = sb.kubectl(*args, version=version)
    assert r.returncode == 0, f"kubectl {' '.join(args)} failed: {r.stderr}"
    return r.stdout


def wait_for(predicate: Any, what: str, timeout_s: float = 30.0) -> Any:
    """Poll until predicate() is truthy (returns it); generous for a busy 2-core machine."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def namespace(sb: SandboxProcess, name: str) -> dict[str, Any] | None:
    code, body = sb.request("GET", f"/api/v1/namespaces/{name}")
    if code == 404:
        return None
    assert code == 200, body
    return body


def condition(ns: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next(c for c in ns["status"].get("conditions") or [] if c["type"] == ctype)


def names(sb: SandboxProcess, what: str, ns: str) -> list[str]:
    out = ok(sb, "get", what, "-n", ns, "-o", "json")
    return [f"{o['kind']}/{o['metadata']['name']}" for o in json.loads(out)["items"]]


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_a_new_namespace_gets_the_default_service_account_and_the_root_ca(sb: SandboxProcess,
                                                                            version: str) -> None:
    from cryptography import x509

    ns = f"fresh-{version.replace('.', '-')}"
    ok(sb, "create", "namespace", ns, version=version)
    wait_for(lambda: len(names(sb, "sa,cm", ns)) == 2, "the default ServiceAccount and kube-root-ca.crt")
    table = ok(sb, "get", "sa,cm", "-n", ns, version=version)
    assert "serviceaccount/default" in table and "configmap/kube-root-ca.crt" in table, table
    cm = json.loads(ok(sb, "get", "configmap", "kube-root-ca.crt", "-n", ns, "-o", "json", version=version))
    cert = x509.load_pem_x509_certificate(cm["data"]["ca.crt"].encode())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.subject == cert.issuer  # self-signed: the sandbox's own CA
    # one CA per sandbox: every namespace publishes the same certificate
    other = json.loads(ok(sb, "get", "configmap", "kube-root-ca.crt", "-n", "default", "-o", "json"))
    assert other["data"]["ca.crt"] == cm["data"]["ca.crt"]


def test_deleted_default_service_account_and_root_ca_come_back(sb: SandboxProcess) -> None:
    ok(sb, "create", "namespace", "recreate")
    wait_for(lambda: len(names(sb, "sa,cm", "recreate")) == 2, "the namespace's defaults")
    before = json.loads(ok(sb, "get", "sa", "default", "-n", "recreate", "-o", "json"))["metadata"]["uid"]
    ok(sb, "delete", "serviceaccount", "default", "-n", "recreate")
    ok(sb, "delete", "configmap", "kube-root-ca.crt", "-n", "recreate")

    def recreated() -> bool:
        items = json.loads(ok(sb, "get", "sa,cm", "-n", "recreate", "-o", "json"))["items"]
        return len(items) == 2 and before not in {o["metadata"]["uid"] for o in items}

    wait_for(recreated, "a new default ServiceAccount and kube-root-ca.crt")


def test_deleting_a_namespace_terminates_its_pods_then_removes_it(sb: SandboxProcess, tmp_path: Path) -> None:
    ok(sb, "create", "namespace", "doomed")
    manifest = tmp_path / "slow.json"
    manifest.write_text(json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "slow", "namespace": "doomed"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "slow"}}, "template": {
            "metadata": {"labels": {"app": "slow"},
                         "annotations": {"sandbox.kubeops.io/termination-delay-s": "3"}},
            "spec": {"terminationGracePeriodSeconds": 30, "containers": [{"name": "c", "image": "nginx"}]}}},
    }))
    ok(sb, "apply", "-f", str(manifest))
    wait_for(lambda: "Running" in ok(sb, "get", "pods", "-n", "doomed") and
             ok(sb, "get", "pods", "-n", "doomed").count("Running") == 2, "two Running pods")

    out = ok(sb, "delete", "namespace", "doomed", "--wait=false")
    assert out.strip() == 'namespace "doomed" deleted'
    for version in ("1.33", "1.27"):
        table = ok(sb, "get", "namespace", "doomed", version=version)
        assert table.split("\n")[1].split()[:2] == ["doomed", "Terminating"], table
    pods = json.loads(ok(sb, "get", "pods", "-n", "doomed", "-o", "json"))["items"]
    assert len(pods) == 2 and all(p["metadata"].get("deletionTimestamp") for p in pods), pods
    ns = namespace(sb, "doomed")
    assert ns is not None and ns["spec"]["finalizers"] == ["kubernetes"]
    assert condition(ns, "NamespaceContentRemaining")["message"] == \
        "Some resources are remaining: pods. has 2 resource instances"

    # new content is refused, with the NamespaceLifecycle admission plug-in's words, by both kubectls
    for version in ("1.33", "1.27"):
        r = sb.kubectl("run", "late", "--image=nginx", "-n", "doomed", version=version)
        assert r.returncode != 0
        assert r.stderr.strip() == ('Error from server (Forbidden): pods "late" is forbidden: unable to create new '
                                    'content in namespace doomed because it is being terminated'), r.stderr
    code, body = sb.request("POST", "/api/v1/namespaces/doomed/configmaps", {"metadata": {"generateName": "x-"}})
    assert code == 403 and body["reason"] == "Forbidden"
    assert body["message"] == ('configmaps "x-" is forbidden: unable to create new content in namespace doomed '
                               'because it is being terminated')
    assert body["details"]["causes"] == [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                          "message": "namespace doomed is being terminated"}]
    # the Deployment's controllers must not bring replacements either
    time.sleep(0.5)
    assert len(json.loads(ok(sb, "get", "pods", "-n", "doomed", "-o", "json"))["items"]) <= 2

    ok(sb, "wait", "--for=delete", "namespace/doomed", "--timeout=60s")
    assert namespace(sb, "doomed") is None
    leftovers = json.loads(ok(sb, "get", "pods,deployments,replicasets,sa,cm", "-A", "-o", "json"))["items"]
    assert [o["metadata"]["name"] for o in leftovers if o["metadata"]["namespace"] == "doomed"] == []


def test_an_object_with_a_finalizer_keeps_its_namespace_terminating(sb: SandboxProcess) -> None:
    ok(sb, "create", "namespace", "held")
    ok(sb, "create", "configmap", "keep", "-n", "held")
    ok(sb, "patch", "configmap", "keep", "-n", "held", "--type=merge",
       "-p", '{"metadata":{"finalizers":["example.com/hold"]}}')
    ok(sb, "delete", "namespace", "held", "--wait=false")

    def stuck() -> dict[str, Any] | None:
        ns = namespace(sb, "held")
        return ns if ns and condition_or_none(ns, "NamespaceFinalizersRemaining", "True") else None

    ns = wait_for(stuck, "NamespaceFinalizersRemaining=True")
    assert condition(ns, "NamespaceFinalizersRemaining") | {"lastTransitionTime": ""} == {
        "type": "NamespaceFinalizersRemaining", "status": "True", "reason": "SomeFinalizersRemain",
        "message": "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances",
        "lastTransitionTime": ""}
    assert condition(ns, "NamespaceContentRemaining")["message"] == \
        "Some resources are remaining: configmaps. has 1 resource instances"
    assert names(sb, "cm", "held") == ["ConfigMap/keep"]  # the others went; this one waits for its finalizer
    time.sleep(1.5)  # longer than the controller's sweep: still there
    assert ok(sb, "get", "namespace", "held").split("\n")[1].split()[1] == "Terminating"

    ok(sb, "patch", "configmap", "keep", "-n", "held", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    ok(sb, "wait", "--for=delete", "namespace/held", "--timeout=30s")


def condition_or_none(ns: dict[str, Any], ctype: str, status: str) -> bool:
    return any(c["type"] == ctype and c["status"] == status for c in ns["status"].get("conditions") or [])


def test_put_finalize_force_removes_a_stuck_namespace(sb: SandboxProcess, tmp_path: Path) -> None:
    ok(sb, "create", "namespace", "stuck")
    ok(sb, "create", "configmap", "keep", "-n", "stuck")
    ok(sb, "patch", "configmap", "keep", "-n", "stuck", "--type=merge",
       "-p", '{"metadata":{"finalizers":["example.com/hold"]}}')
    # a PATCH of the namespace itself cannot drop spec.finalizers (only the finalize subresource can)
    ok(sb, "patch", "namespace", "stuck", "-p", '{"spec":{"finalizers":[]}}')
    assert namespace(sb, "stuck")["spec"]["finalizers"] == ["kubernetes"]  # type: ignore[index]
    ok(sb, "delete", "namespace", "stuck", "--wait=false")
    wait_for(lambda: condition_or_none(namespace(sb, "stuck") or {"status": {}}, "NamespaceFinalizersRemaining",
                                       "True"), "the namespace to be stuck")
    body = namespace(sb, "stuck")
    assert body is not None
    body["spec"]["finalizers"] = []
    (tmp_path / "ns.json").write_text(json.dumps(body))
    out = json.loads(ok(sb, "replace", "--raw", "/api/v1/namespaces/stuck/finalize", "-f", str(tmp_path / "ns.json")))
    assert out["kind"] == "Namespace" and not out["spec"].get("finalizers")
    assert namespace(sb, "stuck") is None
    # as with etcd, the object that held it is left behind, and shows up again with a namespace of that name
    leftovers = json.loads(ok(sb, "get", "configmaps", "-A", "-o", "json"))["items"]
    assert [o["metadata"]["name"] for o in leftovers if o["metadata"]["namespace"] == "stuck"] == ["keep"]
    code, _ = sb.request("GET", "/api/v1/namespaces/stuck/finalize")
    assert code == 405


def test_system_namespaces_may_not_be_deleted(sb: SandboxProcess) -> None:
    r = sb.kubectl("delete", "namespace", "kube-system")
    assert r.returncode != 0
    assert r.stderr.strip() == ('Error from server (Forbidden): namespaces "kube-system" is forbidden: this '
                                'namespace may not be deleted')
    assert ok(sb, "get", "namespace", "kube-system").split("\n")[1].split()[1] == "Active"


def test_deletion_conditions_keep_their_transition_time_until_the_status_flips() -> None:
    from kubeops.sandbox.namespaces import deletion_conditions

    first = deletion_conditions([], [], {"pods.": 2}, {}, now=1_000_000.0)
    assert [c["type"] for c in first] == [
        "NamespaceDeletionDiscoveryFailure", "NamespaceDeletionGroupVersionParsingFailure",
        "NamespaceDeletionContentFailure", "NamespaceContentRemaining", "NamespaceFinalizersRemaining"]
    fewer = deletion_conditions(first, [], {"pods.": 1}, {}, now=1_000_060.0)
    remaining = next(c for c in fewer if c["type"] == "NamespaceContentRemaining")
    assert remaining["message"] == "Some resources are remaining: pods. has 1 resource instances"
    assert remaining["lastTransitionTime"] == "1970-01-12T13:46:40Z"  # still True: the time stays
    done = deletion_conditions(fewer, [], {}, {}, now=1_000_120.0)
    remaining = next(c for c in done if c["type"] == "NamespaceContentRemaining")
    assert (remaining["status"], remaining["reason"], remaining["lastTransitionTime"]) == (
        "False", "ContentRemoved", "1970-01-12T13:48:40Z")


def test_controllers_create_nothing_in_a_terminating_namespace() -> None:
    """Without a namespace controller the namespace stays Terminating with its ReplicaSet in it (as on a cluster
    whose controller-manager is down); the ReplicaSet controller must not replace the pods deleted there."""
    from kubeops.sandbox import scenario as scenarios
    from kubeops.sandbox.cluster import PLUGIN_MODULES, build_cluster

    loaded = scenarios.load({**SCENARIO, "namespaces": ["apps"], "workloads": [
        {"kind": "ReplicaSet", "name": "rs", "namespace": "apps", "replicas": 2, "labels": {"app": "rs"},
         "image": "nginx"}]})
    cluster = build_cluster(scenario=loaded, plugins=tuple(p for p in PLUGIN_MODULES if p != "namespaces"))
    scenarios.apply(cluster, loaded)
    store = cluster.store
    for _ in range(6):
        cluster.tick()
    assert len(list(store.iter("pods", "apps"))) == 2
    store.delete("namespaces", None, "apps")
    assert store.get("namespaces", None, "apps")["status"]["phase"] == "Terminating"
    for pod in list(store.iter("pods", "apps")):
        store.delete("pods", "apps", pod["metadata"]["name"], grace_period_s=0)
    for _ in range(6):
        cluster.tick()
    assert store.try_get("replicasets.apps", "apps", "rs") is not None
    assert list(store.iter("pods", "apps")) == []


def test_pods_stuck_on_a_dead_node_show_as_a_content_failure_until_force_deleted() -> None:
    """A kubelet that stopped answering never finishes its pods' deletion: once their grace period is over the
    namespace says so, in upstream's words, and stays Terminating until the pod is force-deleted."""
    from kubeops.sandbox import scenario as scenarios
    from kubeops.sandbox.cluster import build_cluster

    loaded = scenarios.load({**SCENARIO, "namespaces": ["apps"], "workloads": [
        {"kind": "Deployment", "name": "web", "namespace": "apps", "replicas": 1, "labels": {"app": "web"},
         "image": "nginx"}]})
    cluster = build_cluster(scenario=loaded)
    scenarios.apply(cluster, loaded)
    store = cluster.store

    def settle(advance_s: float = 0) -> None:
        cluster.clock.advance(advance_s)
        for _ in range(6):
            cluster.tick()

    settle()
    (pod,) = store.iter("pods", "apps")
    cluster.sandbox_endpoints["node-faults"](cluster, "POST", "", {"node": pod["spec"]["nodeName"],
                                                                   "heartbeats": False})
    settle(60)  # the node is NotReady
    store.delete("namespaces", None, "apps")
    settle()
    ns = store.get("namespaces", None, "apps")
    assert condition(ns, "NamespaceDeletionContentFailure")["status"] == "False"  # within the pod's 30 s grace
    settle(31)
    ns = store.get("namespaces", None, "apps")
    assert condition(ns, "NamespaceDeletionContentFailure") | {"lastTransitionTime": ""} == {
        "type": "NamespaceDeletionContentFailure", "status": "True", "reason": "ContentDeletionFailed",
        "lastTransitionTime": "", "message": "Failed to delete all resource types, 1 remaining: unexpected items "
                                             "still remain in namespace: apps for gvr: /v1, Resource=pods"}
    assert condition(ns, "NamespaceContentRemaining")["message"] == \
        "Some resources are remaining: pods. has 1 resource instances"
    (stuck,) = store.iter("pods", "apps")
    store.delete("pods", "apps", stuck["metadata"]["name"], grace_period_s=0)  # kubectl delete --force
    settle()
    assert store.try_get("namespaces", None, "apps") is None
