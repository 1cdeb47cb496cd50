"""After `kubeops decommission`, the cluster tells the story the way a real one does: `kubectl events` and
`kubectl describe node` show the cordon, the kills of the evicted pods, their replacements, and kubeops' own
Events naming the run; a dry run records none."""

from __future__ import annotations

import json
import re

import pytest

from kubeops.sandbox.testing import kubectl_binary
from tests.k8s_sandbox import Sandbox, sandbox_maker  # noqa: F401  (provides `make_sandbox`)
from tests.playbooks.test_decommission_playbooks import kubeops, settle

SCENARIO = {
    "namespaces": ["apps"],
    "nodes": [{"name_prefix": "worker-", "count": 3, "role": "worker"}],
    "workloads": [{"kind": "Deployment", "name": "web", "namespace": "apps", "replicas": 3,
                   "pdb": {"max_unavailable": 1}}],
}


def run_id(stdout: str) -> str:
    found = re.search(r"run (\S+): playbook", stdout)
    assert found, stdout
    return found.group(1)


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_kubectl_events_and_describe_node_tell_the_decommission(make_sandbox, version: str):
    sb: Sandbox = make_sandbox(SCENARIO)
    sb.wait_for(lambda: sum(len(sb.pods_on(f"worker-{i}")) for i in range(3)) == 3, what="3 web pods")
    sb.wait_for(lambda: len(sb.pods_on("worker-2")) >= 1, what="a web pod on worker-2")  # spread over the three
    victims = {p["metadata"]["name"] for p in sb.pods_on("worker-2")}
    done = kubeops(sb, "decommission", "--node=worker-2")
    assert done.returncode == 0, done.stderr[-2000:]
    rid = run_id(done.stdout)
    settle(sb, "worker-2", 0)
    kubectl = kubectl_binary(version)

    def events_of(*args: str) -> list[dict]:
        out = sb.kubectl("events", *args, "-o", "json", binary=kubectl)
        return json.loads(out)["items"]

    sb.wait_for(lambda: any(e["reason"] == "Drained" for e in events_of("-n", "default")), what="kubeops' events")
    node_events = [e for e in events_of("-n", "default", "--for", "node/worker-2")]
    reasons = [(e["source"]["component"], e["reason"]) for e in node_events]
    assert ("kubelet", "NodeNotSchedulable") in reasons
    assert ("kubeops", "Cordoned") in reasons and ("kubeops", "Drained") in reasons
    ours = [e for e in node_events if e["source"]["component"] == "kubeops"]
    assert all(rid in e["message"] and e["metadata"]["annotations"]["kubeops.io/run-id"] == rid for e in ours)
    drained = next(e for e in ours if e["reason"] == "Drained")
    assert drained["message"].startswith(f"Node worker-2 drained: {len(victims)} pod(s) evicted, 0 deleted")

    apps = events_of("-n", "apps")
    killed = {e["involvedObject"]["name"] for e in apps if e["reason"] == "Killing"}
    assert victims <= killed
    assert all(e["source"] == {"component": "kubelet", "host": "worker-2"}
               for e in apps if e["reason"] == "Killing" and e["involvedObject"]["name"] in victims)
    created = [e for e in apps if e["reason"] == "SuccessfulCreate"]
    assert len(created) >= 3 + len(victims)  # the first three pods, then one replacement per evicted pod
    assert any(e["reason"] == "Scheduled" and e["message"].endswith(("to worker-0", "to worker-1")) for e in apps)

    table = sb.kubectl("events", "-n", "default", "--for", "node/worker-2", binary=kubectl)
    assert re.search(r"Normal\s+Cordoned\s+Node/worker-2\s+Node worker-2 cordoned by kubeops run", table)
    describe = sb.kubectl("describe", "node", "worker-2", binary=kubectl)
    story = describe.split("Events:", 1)[1]
    for line in ("NodeNotSchedulable", "kubelet", "Cordoned", "Drained", f"kubeops run {rid}"):
        assert line in story, story


def test_a_dry_run_records_no_event(make_sandbox):
    sb: Sandbox = make_sandbox(SCENARIO)
    sb.wait_for(lambda: sum(len(sb.pods_on(f"worker-{i}")) for i in range(3)) == 3, what="3 web pods")
    done = kubeops(sb, "decommission", "--node=worker-1", "--dry-run")
    assert done.returncode == 0, done.stderr[-2000:]
    sb.cluster.tick()
    events = sb.get("/api/v1/namespaces/default/events")["items"]
    assert not [e for e in events if e["source"]["component"] == "kubeops"]
    posted = [r for r in sb.requests() if r["method"] == "POST" and r.get("resource") == "events"]
    assert all(r["dry_run"] for r in posted)
