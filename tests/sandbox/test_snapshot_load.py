"""Loading a snapshot into the sandbox's store: objects verbatim (UIDs, owner references, status), system
namespaces added, terminating pods and kinds the sandbox does not serve left out and counted; the scenario
built from it carries the groups, their member nodes and the timing settings."""

from __future__ import annotations

from kubeops.sandbox import snapshot_load
from kubeops.sandbox.cluster import build_cluster


def _doc() -> dict:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "uid": "node-uid", "labels": {
        "topology.kubernetes.io/region": "eu-west-1", "topology.kubernetes.io/zone": "eu-west-1b", "pool": "a"}},
        "spec": {"providerID": "aws:///eu-west-1b/i-0abc"},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.1.2.3"}],
                   "capacity": {"cpu": "4"}, "allocatable": {"cpu": "4"},
                   "nodeInfo": {"kubeletVersion": "v1.30.2"}}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "web-1", "namespace": "shop", "uid": "pod-uid",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-x", "uid": "rs-uid",
                             "controller": True}]},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "web"}]},
        "status": {"phase": "Running", "podIP": "100.64.0.9"}}
    leaving = {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "old", "namespace": "shop", "uid": "old-uid", "deletionTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "web"}]}, "status": {"phase": "Running"}}
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"}}
    return {"header": {"format": snapshot_load.SNAPSHOT_FORMAT, "cluster": "prod"},
            "objects": {"namespaces": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}],
                        "nodes": [node], "pods": [pod, leaving],
                        "customresourcedefinitions.apiextensions.k8s.io": [crd]},
            "autoscaling_groups": [{"name": "g", "min": 1, "max": 5, "desired": 2, "zones": ["eu-west-1b"],
                                    "instances": [{"id": "i-0abc", "zone": "eu-west-1b", "state": "InService",
                                                   "instance_type": "m6i.large"}],
                                    "suspended_processes": ["AZRebalance"], "lifecycle_hooks": []}]}


def test_a_snapshot_loads_verbatim_and_says_what_it_left_out() -> None:
    doc = _doc()
    scenario = snapshot_load.scenario(doc, speed=5, join_s=100)
    assert scenario.settings["timing"] == "spec" and scenario.settings["speed"] == 5
    assert scenario.settings["join_delay_s"] == 20 and scenario.settings["region"] == "eu-west-1"
    assert scenario.settings["kubelet_version"] == "v1.30.2"
    (group,) = scenario.autoscaling_groups
    assert (group["name"], group["desired"], group["instance_type"]) == ("g", 2, "m6i.large")
    assert group["node"]["labels"] == {"topology.kubernetes.io/region": "eu-west-1", "pool": "a"}
    assert scenario.nodes == ({"name": "n1", "autoscaling_group": "g", "zone": "eu-west-1b",
                               "internal_ip": "10.1.2.3"},)

    cluster = build_cluster(scenario=scenario, plugins=())
    loaded = snapshot_load.apply(cluster, doc)
    pod = cluster.store.get("pods", "shop", "web-1")
    assert pod["metadata"]["uid"] == "pod-uid" and pod["metadata"]["ownerReferences"][0]["uid"] == "rs-uid"
    assert pod["status"]["podIP"] == "100.64.0.9" and pod["spec"]["nodeName"] == "n1"
    assert cluster.store.get("nodes", None, "n1")["metadata"]["uid"] == "node-uid"
    assert cluster.store.try_get("pods", "shop", "old") is None
    assert cluster.store.try_get("namespaces", None, "kube-system") is not None
    assert loaded["pods"] == 1
    assert cluster.settings["not_loaded"] == {"terminating pods": 1,
                                              "apiextensions.k8s.io/v1 CustomResourceDefinition": 1}


def test_a_snapshots_default_service_account_and_root_ca_are_kept_not_doubled() -> None:
    """The namespace controllers fill only what the snapshot lacks: its own default ServiceAccount (same uid, never
    replaced by a blank one) and kube-root-ca.crt (its CA, verbatim) stay; a namespace without them gets them."""
    doc = _doc()
    doc["objects"]["namespaces"].append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bare"}})
    doc["objects"]["serviceaccounts"] = [{"apiVersion": "v1", "kind": "ServiceAccount",
                                          "metadata": {"name": "default", "namespace": "shop", "uid": "sa-uid"}}]
    doc["objects"]["configmaps"] = [{"apiVersion": "v1", "kind": "ConfigMap", "data": {"ca.crt": "PROD CA"},
                                     "metadata": {"name": "kube-root-ca.crt", "namespace": "shop", "uid": "cm-uid"}}]
    cluster = build_cluster(scenario=snapshot_load.scenario(doc), plugins=("namespaces",))
    start = cluster.store.resource_version
    snapshot_load.apply(cluster, doc)
    cluster.prepare()
    store = cluster.store
    assert [sa["metadata"]["uid"] for sa in store.iter("serviceaccounts", "shop")] == ["sa-uid"]
    assert [(e.type, e.obj["metadata"]["uid"]) for e in store.events_since(start)
            if e.resource == "serviceaccounts" and e.namespace == "shop"] == [("ADDED", "sa-uid")]
    (cm,) = store.iter("configmaps", "shop")
    assert (cm["metadata"]["uid"], cm["data"]) == ("cm-uid", {"ca.crt": "PROD CA"})
    assert [o["metadata"]["name"] for o in store.iter("serviceaccounts", "bare")] == ["default"]
    assert store.get("configmaps", "bare", "kube-root-ca.crt")["data"]["ca.crt"].startswith("-----BEGIN CERTIFICATE")
