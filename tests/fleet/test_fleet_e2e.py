"""Fleets end to end: `kubeops deploy --cluster=c1,c2,c3` against three real sandboxes, over the wire.

Canary order, parallel runs, a canary failure that stops the fleet and a fixed one that `resume --fleet` finishes,
a held lock on one cluster, kill -9 of the fleet process then resume: each cluster deployed exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from datetime import UTC, datetime

import pytest

from tests.fleet.conftest import CLUSTERS, Fleet, app_yaml

pytestmark = pytest.mark.timeout(240)


def table_rows(stdout: str) -> dict[str, list[str]]:
    """cluster -> the row's columns, from the summary table (after its header line)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("CLUSTER"))
    return {line.split()[0]: line.split() for line in lines[start + 1 :] if line.split()}


def test_deploy_across_three_clusters_in_canary_order(fleet: Fleet) -> None:
    fleet.write_app("web", app_yaml("web", annotations="sandbox.kubeops.io/readiness-delay-s: '0.2'"))
    result = fleet.kubeops("deploy", "--app=web", "--version=1", "--cluster=c1,c2,c3", "--canary=1", "--parallel=2")
    assert result.returncode == 0, result.stderr[-3000:]

    rows = table_rows(result.stdout)
    assert list(rows) == list(CLUSTERS)
    assert all(row[2] == "done" for row in rows.values()), result.stdout
    for cluster in fleet.clusters.values():
        assert cluster.ready_version("web") == "1"
    record = fleet.fleet_of("web")
    assert record["status"] == "done" and record["clusters"] == list(CLUSTERS)
    # the canary finished before either of the others started
    members = record["members"]
    assert all(members["c1"]["finished"] <= members[c]["started"] for c in ("c2", "c3"))
    # each cluster's run is an ordinary run of that cluster, with the id the table shows
    for name, row in rows.items():
        shown = fleet.kubeops("show", f"--run={row[1]}", f"--cluster={name}", "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["cluster"] == name

    listed = fleet.kubeops("fleets")
    assert record["id"] in listed.stdout and "3/3 done" in listed.stdout


def test_a_failing_canary_stops_the_fleet_and_resume_finishes_it_once_fixed(fleet: Fleet) -> None:
    broken = "clusters:\n  c1:\n    pod_annotations: {sandbox.kubeops.io/never-ready: 'true'}\n"
    fleet.write_app("api", app_yaml("api", timeout_s=2, extra=broken))
    marks = {name: c.mark() for name, c in fleet.clusters.items()}

    result = fleet.kubeops("deploy", "--app=api", "--version=1", "--cluster=c1,c2,c3", "--canary=1", "--parallel=2")

    assert result.returncode == 1, result.stderr[-3000:]
    rows = table_rows(result.stdout)
    assert [rows[c][2] for c in CLUSTERS] == ["failed", "pending", "pending"]
    assert "not started: canary c1" in result.stdout
    assert fleet.clusters["c2"].mutations(marks["c2"]) == [] and fleet.clusters["c3"].mutations(marks["c3"]) == []
    record = fleet.fleet_of("api")
    assert record["stopped_by"] == "c1"
    assert f"resume --fleet={record['id']}" in result.stderr

    fleet.write_app("api", app_yaml("api", timeout_s=10))  # the fix: c1 no longer overrides the pods
    c1_run = record["members"]["c1"]["run_id"]
    alone = fleet.kubeops("resume", f"--run={c1_run}", "--cluster=c1")  # one cluster's run resumes on its own
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert fleet.clusters["c1"].ready_version("api") == "1"
    shown = fleet.kubeops("fleets", f"--fleet={record['id']}")
    assert [table_rows(shown.stdout)[c][2] for c in CLUSTERS] == ["done", "pending", "pending"]

    resumed = fleet.kubeops("resume", f"--fleet={record['id']}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert all(row[2] == "done" for row in table_rows(resumed.stdout).values()), resumed.stdout
    for cluster in fleet.clusters.values():
        assert cluster.ready_version("api") == "1"
    after = fleet.fleet_of("api")
    assert after["members"]["c1"]["run_id"] == c1_run and after["members"]["c1"]["attempts"] == 1  # not run again
    assert fleet.kubeops("resume", f"--fleet={record['id']}").returncode == 0  # a done fleet: nothing to do


def _hold_lock(fleet: Fleet, cluster: str) -> None:
    """Another operator's live run holds c3's lock (a Lease renewed just now, for ten minutes)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "kubeops-lock", "namespace": "kube-system"},
        "spec": {"holderIdentity": "20260101T000000Z-beef@elsewhere", "leaseDurationSeconds": 600,
                 "acquireTime": now, "renewTime": now},
    }
    url = fleet.clusters[cluster].process.api_url + "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"
    existing = fleet.clusters[cluster].get("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kubeops-lock")
    if existing is not None:
        body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        request = urllib.request.Request(url + "/kubeops-lock", method="PUT", data=json.dumps(body).encode())
    else:
        request = urllib.request.Request(url, method="POST", data=json.dumps(body).encode())
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10):
        pass


def _free_lock(fleet: Fleet, cluster: str) -> None:
    url = (fleet.clusters[cluster].process.api_url
           + "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kubeops-lock")
    with urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=10):
        pass


def test_a_held_lock_exits_3_for_that_cluster_while_the_others_finish(fleet: Fleet) -> None:
    fleet.write_app("db", app_yaml("db"))
    _hold_lock(fleet, "c3")
    mark = fleet.clusters["c3"].mark()
    try:
        result = fleet.kubeops("deploy", "--app=db", "--version=1", "--cluster=c1,c2,c3", "--parallel=3")
    finally:
        _free_lock(fleet, "c3")

    assert result.returncode == 3, result.stderr[-3000:]
    rows = table_rows(result.stdout)
    assert [rows[c][2] for c in CLUSTERS] == ["done", "done", "locked"]
    assert "held by 20260101T000000Z-beef@elsewhere" in result.stdout
    assert fleet.clusters["c1"].ready_version("db") == "1" and fleet.clusters["c2"].ready_version("db") == "1"
    assert fleet.clusters["c3"].mutations(mark) == []

    resumed = fleet.kubeops("resume", f"--fleet={fleet.fleet_of('db')['id']}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert fleet.clusters["c3"].ready_version("db") == "1"


def test_kill_9_mid_fleet_then_resume_deploys_every_cluster_exactly_once(fleet: Fleet) -> None:
    fleet.write_app("queue", app_yaml("queue", annotations="sandbox.kubeops.io/readiness-delay-s: '0.6'"))
    marks = {name: c.mark() for name, c in fleet.clusters.items()}
    process = fleet.spawn("deploy", "--app=queue", "--version=1", "--cluster=c1,c2,c3", "--parallel=1")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        if "queue-v1" in fleet.clusters["c2"].controllers("queue"):  # c1 done, c2 mid-rollout, c3 not started
            break
        time.sleep(0.02)
    assert process.poll() is None, process.communicate()[1][-3000:]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    record = fleet.fleet_of("queue")
    assert record["members"]["c2"]["status"] == "running" and record["members"]["c3"]["status"] == "pending"

    resumed = fleet.kubeops("resume", f"--fleet={record['id']}")

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for name, cluster in fleet.clusters.items():
        assert cluster.ready_version("queue") == "1", name
        assert cluster.deployments_created(marks[name]) == 1, name  # exactly once, the crash notwithstanding
    final = fleet.fleet_of("queue")
    assert final["members"]["c2"]["run_id"] == record["members"]["c2"]["run_id"]
    assert final["members"]["c1"]["attempts"] == 1  # the finished canary was not run again


def test_dry_run_prints_each_clusters_plan_and_changes_nothing(fleet: Fleet) -> None:
    fleet.write_app("peek", app_yaml("peek"))
    marks = {name: c.mark() for name, c in fleet.clusters.items()}
    result = fleet.kubeops("deploy", "--app=peek", "--version=1", "--cluster=c1,c3", "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "== cluster c1 ==" in result.stdout and "== cluster c3 ==" in result.stdout
    assert result.stdout.count("dry run (nothing changed): playbook rolling-deploy on cluster") == 2
    assert "dry run (nothing changed): fleet deploy (rolling-deploy) on 2 clusters" in result.stdout
    assert "would roll peek-v1 0->2" in result.stdout
    assert all(c.mutations(marks[n]) == [] for n, c in fleet.clusters.items())
    assert [r for r in fleet.fleet_records() if r["params"].get("app") == "peek"] == []


def test_an_unknown_cluster_exits_2_before_any_cluster_is_touched(fleet: Fleet) -> None:
    fleet.write_app("nope", app_yaml("nope"))
    marks = {name: c.mark() for name, c in fleet.clusters.items()}
    result = fleet.kubeops("deploy", "--app=nope", "--version=1", "--cluster=c1,c9")
    assert result.returncode == 2
    assert "unknown cluster 'c9'" in result.stderr
    assert all(c.mutations(marks[n]) == [] for n, c in fleet.clusters.items())


def _unschedulable(fleet: Fleet, cluster: str, node: str) -> bool:
    return bool(fleet.clusters[cluster].get(f"/api/v1/nodes/{node}")["spec"].get("unschedulable"))


def test_run_over_a_glob_runs_each_cluster_with_logs_bound_to_it(fleet: Fleet) -> None:
    result = fleet.kubeops("run", "--playbook=cordon-node", "--param", "node=w-1", "--clusters=c*", "--parallel=3")
    try:
        assert result.returncode == 0, result.stderr[-3000:]
        assert all(_unschedulable(fleet, c, "w-1") for c in CLUSTERS)
        rows = table_rows(result.stdout)
        assert list(rows) == list(CLUSTERS)
        run_of = {row[1]: name for name, row in rows.items()}
        events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
        in_runs = [e for e in events if e.get("run_id") in run_of]
        assert {e["run_id"] for e in in_runs} == set(run_of)
        assert all(e.get("cluster") == run_of[e["run_id"]] for e in in_runs)  # three threads, no crossed lines
    finally:
        fleet.kubeops("run", "--playbook=uncordon-node", "--param", "node=w-1", "--cluster=c1,c2,c3", "--parallel=3")
    assert not any(_unschedulable(fleet, c, "w-1") for c in CLUSTERS)


def test_malformed_fleet_flags_exit_2_naming_the_flag(fleet: Fleet) -> None:
    bad = fleet.kubeops("run", "--playbook=hello", "--cluster=c1,c2", "--parallel=two")
    assert bad.returncode == 2 and "--parallel expects a whole number, got 'two'" in bad.stderr
    bad = fleet.kubeops("run", "--playbook=hello", "--cluster=c1,c2", "--canary=3")
    assert bad.returncode == 2 and "--canary must be between 0 and the number of clusters (2)" in bad.stderr
    bad = fleet.kubeops("resume", "--fleet=fleet-nope")
    assert bad.returncode == 2 and "no fleet 'fleet-nope'" in bad.stderr


def test_ctrl_c_starts_no_further_cluster_and_lets_the_one_in_flight_finish(fleet: Fleet) -> None:
    fleet.write_app("cache", app_yaml("cache", annotations="sandbox.kubeops.io/readiness-delay-s: '0.6'"))
    mark = fleet.clusters["c3"].mark()
    process = fleet.spawn("deploy", "--app=cache", "--version=1", "--cluster=c1,c2,c3", "--parallel=1")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        if "cache-v1" in fleet.clusters["c2"].controllers("cache"):
            break
        time.sleep(0.02)
    assert process.poll() is None, process.communicate()[1][-3000:]
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)

    assert process.returncode == 130
    assert "no further cluster was started; continue with `invoke resume --fleet=" in err
    assert fleet.clusters["c2"].ready_version("cache") == "1", err[-3000:]  # the run in flight finished
    assert fleet.clusters["c3"].mutations(mark) == []  # and no further cluster started
    record = fleet.fleet_of("cache")
    assert [record["members"][c]["status"] for c in CLUSTERS] == ["done", "done", "pending"]
    resumed = fleet.kubeops("resume", f"--fleet={record['id']}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert fleet.clusters["c3"].ready_version("cache") == "1"


def test_a_rejected_canary_exits_2_and_a_changed_playbook_is_not_started_on_the_rest(fleet: Fleet, tmp_path) -> None:
    from pathlib import Path

    source = Path(__file__).resolve().parents[2] / "playbooks" / "cordon-node.yaml"
    playbook = fleet.root / "my-cordon.yaml"
    playbook.write_text(source.read_text())
    marks = {name: c.mark() for name, c in fleet.clusters.items()}

    result = fleet.kubeops("run", "--playbook=my-cordon.yaml", "--param", "node=w-9", "--cluster=c1,c2",
                           "--canary=1")

    assert result.returncode == 2, result.stderr[-3000:]  # no such node on the canary: nothing changed there
    rows = table_rows(result.stdout)
    assert [rows["c1"][2], rows["c2"][2]] == ["rejected", "pending"]
    (record,) = [r for r in fleet.fleet_records() if r["playbook"] == str(playbook)]  # kept as an absolute path
    assert all(c.mutations(marks[n]) == [] for n, c in fleet.clusters.items())

    playbook.write_text(source.read_text() + "    timeout: 5m\n")  # the cordon step changed
    refused = subprocess.run(fleet.argv("resume", f"--fleet={record['id']}"), env=fleet.env(), cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert "changed since fleet" in refused.stderr and "--force" in refused.stderr
    forced = subprocess.run(fleet.argv("resume", f"--fleet={record['id']}", "--force"), env=fleet.env(),
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert forced.returncode == 2 and "w-9" in forced.stdout  # it ran again (and the node is still missing)
