"""`--wait-for-lock` on the domain tasks, through the real CLI against a sandbox: without it a busy lock exits 3 at
once; with it the task waits for the holder to finish and then runs; a malformed duration exits 2."""

from __future__ import annotations

import time

import pytest

from kubeops.sandbox.testing import SandboxProcess
from tests.engine.schedule_harness import Harness, finish, wait_for


def _unschedulable(sandbox: SandboxProcess, node: str) -> bool:
    status, body = sandbox.request("GET", f"/api/v1/nodes/{node}")
    assert status == 200, body
    return bool(body["spec"].get("unschedulable"))


@pytest.mark.timeout(240)
def test_cordon_waits_for_a_busy_lock_with_the_flag_and_exits_3_without(tmp_path, sandbox: SandboxProcess) -> None:
    h = Harness(tmp_path, sandbox, ttl_s=30)
    holder = h.start("run", f"--playbook={h.playbook(['a'])}")
    wait_for(lambda: (h.gates / "a.entered").exists(), holder)
    (held,) = h.records()

    refused = h.call("cordon", "--node=worker-1")
    assert refused.returncode == 3, refused.stderr
    assert f"held by {held['id']}@" in refused.stderr

    waiting = h.start("cordon", "--node=worker-1", "--wait-for-lock=90s")
    time.sleep(2)
    assert waiting.poll() is None, "the task should still be waiting for the lock"
    assert not _unschedulable(sandbox, "worker-1")
    h.open_gates("a")
    assert finish(holder)[0] == 0
    code, _, err = finish(waiting)
    assert code == 0, err
    assert _unschedulable(sandbox, "worker-1")
    cordons = [r for r in h.records() if r["playbook"]["name"] == "cordon-node"]
    assert [r["status"] for r in cordons] == ["done"]


def test_a_malformed_wait_duration_exits_2_before_anything_runs(tmp_path) -> None:
    h = Harness(tmp_path, None)
    proc = h.call("drain", "--node=worker-1", "--wait-for-lock=soon")
    assert proc.returncode == 2
    assert "--wait-for-lock expects a duration like 30s, 10m or 1h, got 'soon'" in proc.stderr
    assert h.records() == []
