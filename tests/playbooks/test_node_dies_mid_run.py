"""A node dies while kubeops maintains another: the sandbox's node-faults endpoint stops its heartbeats, the
control plane marks it NotReady/unreachable and (after tolerationSeconds) evicts its pods. kubeops must fail
clearly instead of hanging or misreporting, and the run must resume once the cluster has healed."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from tests.k8s_sandbox import Sandbox, sandbox_maker  # noqa: F401  (provides `make_sandbox`)
from tests.playbooks.test_decommission_playbooks import kubeops

SCENARIO: dict[str, Any] = {
    "settings": {"tick_ms": 50, "node_monitor_grace_period_s": 40},
    "namespaces": ["apps"],
    "nodes": [{"name_prefix": "worker-", "count": 3, "role": "worker", "capacity": {"cpu": "4", "memory": "8Gi"}}],
    "workloads": [{"kind": "Deployment", "name": "web", "namespace": "apps", "replicas": 3,
                   "resources": {"requests": {"cpu": "500m"}}, "pdb": {"max_unavailable": 1}}],
}


def node_fault(sb: Sandbox, node: str, *, heartbeats: bool) -> dict[str, Any]:
    request = urllib.request.Request(f"{sb.server.url}/sandbox/v1/node-faults", method="POST",
                                     data=json.dumps({"node": node, "heartbeats": heartbeats}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def advance(sb: Sandbox, seconds: float) -> None:
    sb.cluster.clock.advance(seconds)
    sb.cluster.tick()


def ready_condition(sb: Sandbox, node: str) -> dict[str, Any]:
    conditions = sb.get(f"/api/v1/nodes/{node}")["status"]["conditions"]
    return next(c for c in conditions if c["type"] == "Ready")


def one_web_pod_per_node(sb: Sandbox) -> bool:
    return all(len(sb.pods_on(f"worker-{i}")) == 1 for i in range(3))


def test_a_dead_node_goes_unknown_gets_the_unreachable_taints_and_its_pods_are_evicted_after_300s(make_sandbox):
    sb: Sandbox = make_sandbox(SCENARIO)
    sb.wait_for(lambda: one_web_pod_per_node(sb), what="one web pod per worker")
    assert node_fault(sb, "worker-1", heartbeats=False)["dead"].keys() == {"worker-1"}
    advance(sb, 30)
    assert ready_condition(sb, "worker-1")["status"] == "True"  # inside node_monitor_grace_period_s
    advance(sb, 15)
    ready = ready_condition(sb, "worker-1")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    taints = {(t["key"], t["effect"]) for t in sb.get("/api/v1/nodes/worker-1")["spec"]["taints"]}
    assert taints == {("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")}
    victim = sb.pods_on("worker-1")[0]
    tolerations = victim["spec"]["tolerations"]
    assert {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
            "tolerationSeconds": 300} in tolerations
    advance(sb, 250)
    assert sb.pods_on("worker-1"), "evicted before its tolerationSeconds ran out"
    advance(sb, 60)
    sb.wait_for(lambda: not sb.pods_on("worker-1"), what="the taint eviction")
    stuck = sb.get(f"/api/v1/namespaces/apps/pods/{victim['metadata']['name']}")
    assert stuck["metadata"]["deletionTimestamp"]  # no kubelet to confirm: Terminating until the node is back
    sb.wait_for(lambda: sum(len(sb.pods_on(f"worker-{i}")) for i in (0, 2)) == 3, what="a replacement elsewhere")
    reasons = {(e["reason"], e["source"]["component"]) for e in
               sb.get("/api/v1/events")["items"]}
    assert ("TaintManagerEviction", "taint-eviction-controller") in reasons
    assert ("NodeNotReady", "node-controller") in reasons
    node_fault(sb, "worker-1", heartbeats=True)
    sb.wait_for(lambda: ready_condition(sb, "worker-1")["status"] == "True", what="the node back")
    assert not sb.get("/api/v1/nodes/worker-1")["spec"].get("taints")
    sb.wait_for(lambda: any(e["reason"] == "NodeReady" and e["involvedObject"]["name"] == "worker-1"
                            for e in sb.get("/api/v1/namespaces/default/events")["items"]), what="NodeReady")
    names = lambda: {p["metadata"]["name"] for p in sb.get("/api/v1/namespaces/apps/pods")["items"]}  # noqa: E731
    sb.wait_for(lambda: victim["metadata"]["name"] not in names(), what="the revived kubelet finishing it")


def test_decommission_while_another_node_dies_fails_clearly_and_resumes_once_healed(make_sandbox):
    sb: Sandbox = make_sandbox(SCENARIO)
    sb.wait_for(lambda: one_web_pod_per_node(sb), what="one web pod per worker")
    node_fault(sb, "worker-1", heartbeats=False)
    advance(sb, 45)  # worker-1 is NotReady: its web pod no longer counts as healthy for the budget
    failed = kubeops(sb, "decommission", "--node=worker-0", "--timeout=3")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    error = next(line for line in failed.stderr.splitlines() if line.startswith("error: "))
    dead_pod = sb.pods_on("worker-1")[0]["metadata"]["name"]
    assert "blocked by PodDisruptionBudget apps/web" in error
    assert f"unhealthy: apps/{dead_pod} is not Ready (on node worker-1, Ready=Unknown (NodeStatusUnknown))" in error
    assert "the node stays cordoned; fix the budget or wait, then resume the run" in failed.stderr
    run_id = error.split()[2]
    assert sb.get("/api/v1/nodes/worker-0")["spec"]["unschedulable"] is True
    # the control plane heals: the dead node's pod is evicted after 300 s and replaced on worker-2
    advance(sb, 310)
    sb.wait_for(lambda: len(sb.pods_on("worker-2")) == 2, what="web's replacement on worker-2")
    resumed = kubeops(sb, "resume", f"--run={run_id}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"run {run_id}: playbook decommission-node on cluster sandbox: done" in resumed.stdout
    assert sb.pods_on("worker-0") == []
