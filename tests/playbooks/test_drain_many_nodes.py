"""`drain`, `cordon` and `uncordon` of several nodes (``--node=a,b`` or ``--selector=LABELS``) through the real CLI.

What a user sees: all nodes drained together by one run, bad input (an unknown node among several, a selector
matching nothing) refused with exit 2 before anything is written, a dry run that changes nothing, and a drain
of two nodes killed with SIGKILL mid-way finished by `resume` with every pod evicted once.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.k8s_sandbox import Sandbox, sandbox_maker  # noqa: F401  (provides `make_sandbox`)
from tests.playbooks.test_decommission_playbooks import kill_at_first_eviction, kubeops, mutations, writes

OLD = {"pool": "old"}
THREE_WORKERS = {
    "namespaces": ["apps"],
    "nodes": [{"name": "worker-a", "labels": OLD}, {"name": "worker-b", "labels": OLD},
              {"name": "worker-c", "taints": [{"key": "hold", "effect": "NoSchedule"}]}],
}


def web(replicas: int = 4, **extra: Any) -> dict[str, Any]:
    return {"kind": "Deployment", "name": "web", "namespace": "apps", "replicas": replicas, **extra}


def on_old_nodes(sb: Sandbox) -> list[dict[str, Any]]:
    return sb.pods_on("worker-a") + sb.pods_on("worker-b")


def ready(sb: Sandbox, replicas: int) -> None:
    """All replicas on the two old nodes, then the spare node opened (as an operator adding capacity would)."""
    sb.wait_for(lambda: len(on_old_nodes(sb)) == replicas, what=f"{replicas} pods on worker-a and worker-b")
    sb.kube().request("PATCH", "/api/v1/nodes/worker-c", body={"spec": {"taints": None}},
                      content_type="application/merge-patch+json", what="test: open worker-c")


def cordoned(sb: Sandbox, node: str) -> bool:
    return bool(sb.get(f"/api/v1/nodes/{node}")["spec"].get("unschedulable"))


def last_run(sb: Sandbox) -> dict[str, Any]:
    runs = json.loads(kubeops(sb, "runs", "--json").stdout)
    return runs[0] if isinstance(runs, list) else runs


@pytest.mark.parametrize("target", ["--node=worker-a,worker-b", "--selector=pool=old"])
def test_several_nodes_are_drained_together_by_one_run(make_sandbox, target: str) -> None:
    sb = make_sandbox({**THREE_WORKERS, "workloads": [web(pdb={"min_available": 3})]})
    ready(sb, 4)
    done = kubeops(sb, "drain", target, "--log-format=console")
    assert done.returncode == 0, done.stderr
    assert on_old_nodes(sb) == [] and len(sb.pods_on("worker-c")) == 4
    assert cordoned(sb, "worker-a") and cordoned(sb, "worker-b") and not cordoned(sb, "worker-c")
    run = last_run(sb)
    assert "drain-nodes" in json.dumps(run) and "done" in json.dumps(run), run


def test_an_unknown_node_or_an_empty_selector_exits_2_naming_it_and_writes_nothing(make_sandbox) -> None:
    sb = make_sandbox({**THREE_WORKERS, "workloads": [web(replicas=2)]})
    sb.wait_for(lambda: len(on_old_nodes(sb)) == 2, what="pods placed")
    mark = sb.mark()
    for task in ("drain", "cordon", "uncordon"):
        done = kubeops(sb, task, "--node=worker-a,ghost,worker-b")
        assert done.returncode == 2, (task, done.stderr)
        assert "node 'ghost' not found" in done.stderr, done.stderr
        done = kubeops(sb, task, "--selector=pool=nope")
        assert done.returncode == 2, (task, done.stderr)
        assert "label selector 'pool=nope' matches no node" in done.stderr, done.stderr
        for bad, says in (
            (["--node=worker-a", "--selector=pool=old"], "give --node or --selector, not both"),
            (["--node=worker-a,,worker-b"], "--node has an empty name"),
            ([], "--node is required"),
        ):
            done = kubeops(sb, task, *bad)
            assert done.returncode == 2 and says in done.stderr, (task, bad, done.stderr)
    assert writes(sb, mark) == []  # not even the lock: it is taken only before the first change
    assert not cordoned(sb, "worker-a") and not cordoned(sb, "worker-b")


def test_dry_run_of_a_multi_node_drain_changes_nothing(make_sandbox) -> None:
    sb = make_sandbox({**THREE_WORKERS, "workloads": [web()]})
    ready(sb, 4)
    before = sorted(p["metadata"]["uid"] for p in on_old_nodes(sb))
    mark = sb.mark()
    done = kubeops(sb, "drain", "--selector=pool=old", "--dry-run", "--log-format=console")
    assert done.returncode == 0, done.stderr
    assert "would drain 2 node(s) together: 4 eviction(s)" in done.stdout, done.stdout
    assert "would cordon 2 node(s)" in done.stdout, done.stdout
    sent = mutations(sb, mark)
    assert sent and all(r.get("dry_run") for r in sent), sent
    assert sorted(p["metadata"]["uid"] for p in on_old_nodes(sb)) == before
    assert not cordoned(sb, "worker-a") and not cordoned(sb, "worker-b")


def test_cordon_and_uncordon_several_nodes_leave_the_others_alone(make_sandbox) -> None:
    sb = make_sandbox({**THREE_WORKERS})
    done = kubeops(sb, "cordon", "--node=worker-a,worker-b")
    assert done.returncode == 0, done.stderr
    assert cordoned(sb, "worker-a") and cordoned(sb, "worker-b") and cordoned(sb, "worker-c") is False
    done = kubeops(sb, "uncordon", "--selector=pool=old")
    assert done.returncode == 0, done.stderr
    assert not cordoned(sb, "worker-a") and not cordoned(sb, "worker-b")


def test_sigkill_during_a_two_node_drain_then_resume_finishes_both(make_sandbox) -> None:
    # pods take 2 s to terminate after their eviction, so the drain is caught mid-way
    sb = make_sandbox({**THREE_WORKERS, "workloads": [web(replicas=6, termination_delay_s=2.0)]})
    ready(sb, 6)
    kill_at_first_eviction(sb, "drain", "--node=worker-a,worker-b")
    assert cordoned(sb, "worker-a") and cordoned(sb, "worker-b")
    left = sb.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dworker-a")["items"]
    left += sb.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dworker-b")["items"]
    assert left, "the kill should land before the drain finished (pods still there or terminating)"
    resumed = kubeops(sb, "resume")
    assert resumed.returncode == 0, resumed.stderr
    assert on_old_nodes(sb) == []
    assert cordoned(sb, "worker-a") and cordoned(sb, "worker-b")
    evictions = [r for r in sb.requests() if r.get("subresource") == "eviction" and r["status"] < 300]
    assert len({r["name"] for r in evictions}) == 6  # each pod was evicted, none twice after it was gone


MAINTAIN_MANY = """\
name: cordon-then-uncordon
params:
  nodes: {type: list}
steps:
  - name: cordon
    action: k8s.cordon_nodes
    args: {nodes: "${params.nodes}"}
  - name: uncordon
    action: k8s.uncordon_nodes
    args: {nodes: "${params.nodes}", unless_was_cordoned: "${steps.cordon.outputs.was_cordoned}"}
"""


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_uncordon_nodes_leaves_a_node_someone_else_had_cordoned(make_sandbox, tmp_path, dry_run: bool) -> None:
    sb = make_sandbox({**THREE_WORKERS})
    sb.kube().request("PATCH", "/api/v1/nodes/worker-b", body={"spec": {"unschedulable": True}},
                      content_type="application/merge-patch+json", what="test: a colleague cordons worker-b")
    playbook = tmp_path / "maintain-many.yaml"
    playbook.write_text(MAINTAIN_MANY)
    mark = sb.mark()
    args = ["run", f"--playbook={playbook}", "--param", "nodes=worker-a,worker-b", "--log-format=console"]
    done = kubeops(sb, *args, *(["--dry-run"] if dry_run else []))
    assert done.returncode == 0, done.stderr
    assert not cordoned(sb, "worker-a") and cordoned(sb, "worker-b")  # worker-b stays as the colleague left it
    if dry_run:
        assert "leave 1 cordoned" in done.stdout + done.stderr
        planned = mutations(sb, mark)
        assert planned and all(r.get("dry_run") for r in planned)
    else:
        patched = [r["name"] for r in mutations(sb, mark) if r["resource"] == "nodes"]
        assert patched == ["worker-a", "worker-a"]  # cordoned, then uncordoned; worker-b never touched
