"""The ConfigMap checkpoint store against the sandbox: round trip, listing by cluster, conflicting writers, and a
run SIGKILLed mid-step resumed by the next invocation from the ConfigMap alone (no local state)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from kubeops.clients.kube import KubeClient
from kubeops.engine.configmap_store import ConfigMapCheckpointStore, configmap_name, label_value
from kubeops.errors import Conflict, InputError
from kubeops.sandbox.testing import SandboxProcess
from kubeops.settings import KubeSettings
from tests.engine.schedule_harness import Harness, kill, wait_for


def _store(sb: SandboxProcess) -> ConfigMapCheckpointStore:
    kube = KubeClient.from_settings(KubeSettings(kubeconfig=str(sb.kubeconfig)))
    return ConfigMapCheckpointStore(kube, namespace="kube-system")


@pytest.mark.timeout(120)
def test_records_round_trip_list_by_cluster_and_refuse_a_second_writer(sandbox: SandboxProcess) -> None:
    store = _store(sandbox)
    assert store.load(run_id="20260101T000000Z-aaaa") is None
    one = {"id": "20260101T000000Z-aaaa", "cluster": "prod", "status": "running", "steps": [{"name": "a"}]}
    two = {"id": "20260102T000000Z-bbbb", "cluster": "prod", "status": "done", "steps": []}
    other = {"id": "20260103T000000Z-cccc", "cluster": "staging", "status": "done", "steps": []}
    for record in (two, one, other):
        store.save(record=record)  # type: ignore[arg-type]
    one["status"] = "done"
    store.save(record=one)  # type: ignore[arg-type]
    assert store.load(run_id=one["id"]) == one
    assert [r["id"] for r in store.list(cluster="prod")] == [one["id"], two["id"]]
    assert len(_store(sandbox).list()) == 3
    status, cm = sandbox.request("GET", f"/api/v1/namespaces/kube-system/configmaps/{configmap_name(one['id'])}")
    assert status == 200 and cm["metadata"]["labels"]["kubeops.io/cluster"] == "prod"
    # another process writes the same record behind our back: our next write is refused, not silently merged
    intruder = _store(sandbox)
    intruder.load(run_id=one["id"])
    intruder.save(record={**one, "status": "failed"})  # type: ignore[arg-type]
    with pytest.raises(Conflict, match="changed by another process"):
        store.save(record=one)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        store.load(run_id="../etc")


@pytest.mark.timeout(240)
def test_a_run_killed_mid_step_is_resumed_from_the_configmap_by_the_next_invocation(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    h = Harness(tmp_path, sandbox, ttl_s=3, checkpoint_store="configmap")
    pb = h.playbook(["a", "b"])
    proc = h.start("run-scheduled", f"--playbook={pb}")
    h.open_gates("a")
    wait_for(lambda: (h.gates / "b.entered").exists(), proc)
    killed = time.monotonic()
    kill(proc)
    assert h.records() == []  # nothing in the local state folder: the pod's disk is gone anyway
    shutil.rmtree(h.state, ignore_errors=True)
    listed = h.call("runs", "--json")
    assert listed.returncode == 0, listed.stderr
    (crashed,) = json.loads(listed.stdout)
    assert crashed["status"] == "running" and [s["status"] for s in crashed["steps"]] == ["done", "running"]
    time.sleep(max(0.0, 3.5 - (time.monotonic() - killed)))  # the dead pod's lease expires
    h.open_gates("b")
    resumed = h.call("run-scheduled", f"--playbook={pb}")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming run {crashed['id']}" in resumed.stdout
    (final,) = json.loads(h.call("runs", "--json").stdout)
    assert final["id"] == crashed["id"] and final["status"] == "done"
    assert h.effects_done() == ["a", "b"]


@pytest.mark.timeout(120)
def test_a_corrupt_record_configmap_is_listed_unreadable_and_load_says_what_to_do(sandbox: SandboxProcess) -> None:
    from kubeops.engine.checkpoints import CorruptRecord

    store = _store(sandbox)
    good = {"id": "20260101T000000Z-aaaa", "cluster": "prod", "status": "done", "steps": []}
    bad = {"id": "20260102T000000Z-bbbb", "cluster": "prod", "status": "running", "steps": []}
    store.save(record=good)  # type: ignore[arg-type]
    store.save(record=bad)  # type: ignore[arg-type]
    name = configmap_name(bad["id"])
    status, cm = sandbox.request("GET", f"/api/v1/namespaces/kube-system/configmaps/{name}")
    cm["data"]["record.json"] = json.dumps(bad)[:25]  # a hand edit cut short
    status, _ = sandbox.request("PUT", f"/api/v1/namespaces/kube-system/configmaps/{name}", cm)
    assert status == 200
    reader = _store(sandbox)
    assert [r["id"] for r in reader.list(cluster="prod")] == [good["id"]]
    [broken] = reader.unreadable(cluster="prod")
    assert broken.run_id == label_value(bad["id"]) and broken.where == f"configmap kube-system/{name}"
    assert broken.reason.startswith("truncated")
    with pytest.raises(CorruptRecord, match=f"kubectl -n kube-system delete configmap {name}"):
        reader.load(run_id=bad["id"])
