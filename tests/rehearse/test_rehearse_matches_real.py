"""A rehearsal on a snapshot predicts the real run: same outcome, failing step and message, evicted pods and
instance changes; and neither the snapshot nor the rehearsal changes anything on the original cluster or in
its AWS (its request log holds only reads, its moto groups are as they were)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubeops.engine.api import run_playbook
from kubeops.rehearse.rehearsal import rehearse
from kubeops.rehearse.snapshot import take
from tests.rehearse.conftest import Original

pytestmark = pytest.mark.timeout(240)


def _instance_changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[int, int]:
    old = {i for g in before.values() for i in g["instances"]}
    new = {i for g in after.values() for i, state in g["instances"].items() if not state.startswith("Terminat")}
    return len(new - old), len(old - new)


def _compare(orig: Original, playbook: str, params: dict[str, Any], *, speed: float = 1.0,
             join_s: float = 2.0) -> tuple[Any, dict[str, Any]]:
    """Snapshot, rehearse, then run for real on the original; assert they agree; return (report, record)."""
    orig.settle()
    groups_before = orig.groups()
    mark = orig.mark()
    doc = take(orig.settings)
    report = rehearse(doc, playbook, params=params, settings=orig.settings, speed=speed, join_s=join_s)

    assert orig.mutations(mark) == [], "the snapshot or the rehearsal wrote to the original cluster"
    assert orig.groups() == groups_before, "the snapshot or the rehearsal changed the original's AWS"

    real_mark = orig.mark()
    record = run_playbook(playbook, settings=orig.settings, params=params, check=False)
    assert report.status == record["status"]
    assert report.failed_step == record.get("failed_step")
    assert report.error == record.get("error")
    assert {e["pod"] for e in report.evictions if e["evicted"]} == orig.evicted(real_mark)
    launched, terminated = _instance_changes(groups_before, orig.groups())
    assert (len(report.instances_launched), len(report.instances_terminated)) == (launched, terminated)
    return report, record


def test_decommission_on_the_default_scenario(original_factory) -> None:
    orig = original_factory("default", aws=True)
    report, _ = _compare(orig, "decommission-node", {"node": "worker-2", "terminate_instance": True}, speed=4)
    assert report.exit_code == 0
    assert report.nodes_deleted == ["worker-2"]
    assert len(report.evictions) == 4 and any(e["budget_waits"] for e in report.evictions)
    assert {m["from"] for m in report.pods_moved} == {"worker-2"}
    assert report.speed == 4 and report.scaled_params == {"timeout_s": "1800 -> 450"}


def test_a_budget_that_blocks_the_drain_fails_the_same_step_with_the_same_message(original_factory) -> None:
    orig = original_factory("pdb-blocked")
    report, _ = _compare(orig, "drain-node", {"node": "worker-0", "timeout_s": 5})
    assert report.status == "failed" and report.exit_code == 1 and report.failed_step == "drain"
    assert "critical" in (report.error or "")
    blocked = [e for e in report.evictions if not e["evicted"]]
    assert blocked and all(e["budget_waits"] > 0 for e in blocked)


def test_replace_node_launches_one_instance_and_terminates_one(original_factory) -> None:
    orig = original_factory("autoscaling", aws=True)
    nodes = orig.sb.request("GET", "/api/v1/nodes")[1]["items"]
    worker = next(n["metadata"]["name"] for n in nodes if n["metadata"]["name"].startswith("ip-"))
    report, _ = _compare(orig, "replace-node", {"node": worker})
    assert report.exit_code == 0
    assert len(report.instances_launched) == 1 and len(report.instances_terminated) == 1
    assert report.instances_terminated[0]["node"] == worker
    assert worker in report.nodes_deleted and len(report.nodes_added) == 1


def test_replace_group_rolls_every_instance(original_factory) -> None:
    orig = original_factory("autoscaling", aws=True)
    report, _ = _compare(orig, "replace-group", {"group": "workers", "batch": 3})
    assert report.exit_code == 0
    assert len(report.instances_launched) == 3 and len(report.instances_terminated) == 3


def test_rolling_deploy_of_a_new_version(original_factory) -> None:
    orig = original_factory({"name": "apps", "settings": {"tick_ms": 50}, "nodes": [{"name_prefix": "w-", "count": 3}]})
    apps = Path(str(orig.settings.inventory_path)).parent / "apps"
    apps.mkdir()
    (apps / "web.yaml").write_text(
        "name: web\nrole: frontend-web\nimage: example/web\nversion: '1'\nreplicas: 3\n"
        "ports: [{name: http, port: 80, target_port: 8080}]\nrollout: {surge: 1, step_timeout_s: 20}\n"
        "pod_annotations: {sandbox.kubeops.io/readiness-delay-s: '0.3'}\n", encoding="utf-8")
    assert run_playbook("rolling-deploy", settings=orig.settings, params={"app": "web", "version": "1"},
                        check=False)["status"] == "done"
    report, _ = _compare(orig, "rolling-deploy", {"app": "web", "version": "2"}, speed=2)
    assert report.exit_code == 0
    assert len(report.pods_removed) == 3  # the v1 pods go; their controller is scaled down, not replaced


def test_pods_that_would_not_fit_are_reported_like_the_real_run_leaves_them(original_factory) -> None:
    orig = original_factory({"name": "tight", "settings": {"tick_ms": 50}, "namespaces": ["apps"], "nodes": [
        {"name_prefix": "worker-", "count": 2, "capacity": {"cpu": "1", "memory": "4Gi", "pods": "110"}}],
        "workloads": [{"kind": "Deployment", "name": "big", "namespace": "apps", "replicas": 2,
                       "labels": {"app": "big"}, "image": "nginx",
                       "resources": {"requests": {"cpu": "600m"}}}]})
    report, record = _compare(orig, "drain-node", {"node": "worker-0"})
    assert record["status"] == "done"
    pending = [p["metadata"]["name"] for p in orig.sb.request("GET", "/api/v1/namespaces/apps/pods")[1]["items"]
               if not p["spec"].get("nodeName")]
    assert len(report.would_not_fit) == len(pending) == 1
    assert report.would_not_fit[0]["owner"].startswith("ReplicaSet/big-")
    assert "cpu" in report.would_not_fit[0]["reason"].lower()
