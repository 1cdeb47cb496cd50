"""A paginated list is a snapshot, as with kube-apiserver: the continue token pins the first page's
resourceVersion, so later pages show the collection as it was then; a token older than the kept history answers
410 Expired with the API server's message."""

from __future__ import annotations

from typing import Any

from kubeops.sandbox.cluster import build_cluster
from tests.k8s_sandbox import Sandbox, sandbox_maker  # noqa: F401  (provides `make_sandbox`)

EXPIRED = ("The provided continue parameter is too old to display a consistent list result. You can start a new "
           "list without the continue parameter, or use the continue token in this response to retrieve the "
           "remainder of the results. Continuing with the provided token results in an inconsistent list - objects "
           "that were created, modified, or deleted between the time the first chunk was returned and now may show "
           "up in the list.")


def cm(name: str, value: str = "0") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
            "data": {"v": value}}


def test_later_pages_show_the_list_as_of_the_first_page():
    cluster = build_cluster(scenario=None, plugins=())
    store = cluster.store
    store.create("namespaces", {"metadata": {"name": "default"}})
    for i in range(6):
        store.create("configmaps", cm(f"cm-{i}"))
    first = store.list("configmaps", namespace="default", limit=2)
    store.create("configmaps", cm("cm-9"))  # created after page 1: absent
    store.delete("configmaps", "default", "cm-3")  # deleted after page 1: still listed
    store.patch("configmaps", "default", "cm-4", {"data": {"v": "1"}}, "application/merge-patch+json")
    second = store.list("configmaps", namespace="default", limit=2, continue_token=first.continue_token)
    third = store.list("configmaps", namespace="default", limit=2, continue_token=second.continue_token)
    assert [o["metadata"]["name"] for o in first.items + second.items + third.items] == [
        f"cm-{i}" for i in range(6)]
    assert third.items[0]["data"] == {"v": "0"}  # cm-4 as it was, not as patched since
    assert first.resource_version == second.resource_version == third.resource_version
    assert third.continue_token is None
    fresh = store.list("configmaps", namespace="default")
    assert [o["metadata"]["name"] for o in fresh.items] == ["cm-0", "cm-1", "cm-2", "cm-4", "cm-5", "cm-9"]


def test_snapshot_pages_of_pods_on_a_node_and_an_expired_token_over_http(make_sandbox):
    sb: Sandbox = make_sandbox({"settings": {"tick_ms": 50, "watch_history": 20},
                                "nodes": [{"name": "worker-0"}],
                                "workloads": [{"kind": "Pod", "name": "p", "replicas": 4, "node": "worker-0"}]})
    kube = sb.kube()
    first = kube.request("GET", "/api/v1/pods", query={"limit": 2, "fieldSelector": "spec.nodeName=worker-0"},
                         what="page 1")
    kube.request("DELETE", "/api/v1/namespaces/default/pods/p-3", query={"gracePeriodSeconds": 0}, what="delete")
    token = first["metadata"]["continue"]
    second = kube.request("GET", "/api/v1/pods", query={"limit": 2, "continue": token,
                                                        "fieldSelector": "spec.nodeName=worker-0"}, what="page 2")
    names = [p["metadata"]["name"] for p in first["items"] + second["items"]]
    assert names == ["p-0", "p-1", "p-2", "p-3"]
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    for i in range(40):  # push the first page's version out of the kept history
        kube.request("POST", "/api/v1/namespaces/default/configmaps", body=cm(f"filler-{i}"), what="fill")
    status, body = sb_request(sb, f"/api/v1/pods?limit=2&continue={token}")
    assert status == 410
    assert body["reason"] == "Expired" and body["message"] == EXPIRED and body["code"] == 410


def sb_request(sb: Sandbox, path: str) -> tuple[int, Any]:
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(sb.server.url + path, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())

