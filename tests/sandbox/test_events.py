"""The control plane's Events in the sandbox, without a server: recorded, aggregated, expired."""

from __future__ import annotations

from kubeops.sandbox import scenario
from kubeops.sandbox.cluster import build_cluster


def test_events_expire_after_event_ttl_s():
    """A long-running sandbox does not grow without end: Events go after --event-ttl, as in kube-apiserver."""
    loaded = scenario.load({"name": "ttl", "settings": {"event_ttl_s": 600}, "nodes": [{"name": "w"}],
                            "workloads": [{"kind": "Deployment", "name": "web", "replicas": 2}]})
    cluster = build_cluster(scenario=loaded)
    scenario.apply(cluster, loaded)
    for _ in range(20):
        cluster.tick()
    reasons = {e["reason"] for e in cluster.store.iter("events")}
    assert {"ScalingReplicaSet", "SuccessfulCreate", "Scheduled"} <= reasons
    cluster.clock.advance(500)
    cluster.tick()
    assert cluster.store.count("events") > 0
    cluster.clock.advance(200)
    cluster.tick()
    assert cluster.store.count("events") == 0


def test_repeated_events_are_aggregated_and_events_false_records_none():
    loaded = scenario.load({"name": "agg", "nodes": [{"name": "w"}]})
    cluster = build_cluster(scenario=loaded)
    scenario.apply(cluster, loaded)
    for unschedulable in (True, False, True):
        cluster.store.patch("nodes", None, "w", {"spec": {"unschedulable": unschedulable}},
                            "application/merge-patch+json")
        cluster.tick()
    by_reason = {e["reason"]: e for e in cluster.store.iter("events")}
    assert by_reason["NodeNotSchedulable"]["count"] == 2 and by_reason["NodeSchedulable"]["count"] == 1
    assert by_reason["NodeNotSchedulable"]["involvedObject"] == {"kind": "Node", "name": "w", "uid": "w",
                                                                 "apiVersion": "v1"}
    quiet = scenario.load({"name": "quiet", "settings": {"events": False}, "nodes": [{"name": "w"}],
                           "workloads": [{"kind": "Deployment", "name": "web", "replicas": 2}]})
    silent = build_cluster(scenario=quiet)
    scenario.apply(silent, quiet)
    for _ in range(20):
        silent.tick()
    assert silent.store.count("events") == 0 and silent.store.count("pods") == 2
