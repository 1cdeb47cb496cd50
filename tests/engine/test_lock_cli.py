"""The cluster lock through the real CLI against a sandbox: concurrent runs, SIGKILLed holders, `invoke lock`."""

from __future__ import annotations

import json
import time

import pytest

from kubeops.sandbox.testing import SandboxProcess
from tests.engine.schedule_harness import Harness, finish, kill, wait_for


@pytest.mark.timeout(240)
def test_two_runs_started_together_the_second_exits_3_naming_the_holder(tmp_path, sandbox: SandboxProcess) -> None:
    h = Harness(tmp_path, sandbox, ttl_s=30)
    pb = h.playbook(["a"])
    first = h.start("run", f"--playbook={pb}")
    second = h.start("run", f"--playbook={pb}")
    # exactly one of them reaches the step; the other is refused at once
    wait_for(lambda: (h.gates / "a.entered").exists() or first.poll() is not None or second.poll() is not None)
    wait_for(lambda: first.poll() is not None or second.poll() is not None)
    loser, winner = (first, second) if first.poll() is not None else (second, first)
    code, _, err = finish(loser)
    assert code == 3, err
    holder_id = next(r["id"] for r in h.records() if r["status"] == "running")
    assert f"held by {holder_id}@" in err and "(playbook gated) since " in err
    # `lock` shows the same holder while the run is alive
    shown = h.call("lock")
    assert shown.returncode == 0 and f"held by {holder_id}@" in shown.stdout
    h.open_gates("a")
    code, _, err = finish(winner)
    assert code == 0, err
    assert h.effects_done() == ["a"]
    # the refused run changed nothing: no record when refused at start, a `rejected` one when it lost the race
    # for the lock right before its first change (the lock is taken there, after the read-only steps)
    assert sorted(r["status"] for r in h.records()) in (["done"], ["done", "rejected"])
    assert "is free (last held by" in h.call("lock").stdout


@pytest.mark.timeout(240)
def test_a_sigkilled_holder_blocks_other_runs_until_the_ttl_but_its_own_schedule_resumes_it_at_once(
    tmp_path, sandbox: SandboxProcess
) -> None:
    h = Harness(tmp_path, sandbox, ttl_s=4)
    pb = h.playbook(["a", "b"])
    proc = h.start("run-scheduled", f"--playbook={pb}")
    h.open_gates("a")
    wait_for(lambda: (h.gates / "b.entered").exists(), proc)
    killed_at = time.monotonic()
    kill(proc)
    (crashed,) = h.records()
    assert crashed["status"] == "running" and h.effects_done() == ["a"]
    # within the TTL another playbook is refused with exit 3, naming the dead holder
    other_pb = h.playbook(["x"], name="other")
    blocked = h.call("run", f"--playbook={other_pb}")
    assert blocked.returncode == 3, blocked.stderr
    assert f"held by {crashed['id']}@" in blocked.stderr
    assert time.monotonic() - killed_at < 4, "the check ran too late to prove the TTL blocks"
    # the next invocation of the same schedule on this host resumes the crashed run at once: the lease is in
    # that run's own name and its process is gone, so there is nothing to wait for
    h.open_gates("b")
    resumed = h.call("run-scheduled", f"--playbook={pb}")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming run {crashed['id']}" in resumed.stdout
    assert "lock.reclaimed" in resumed.stderr
    (record,) = [r for r in h.records() if r["playbook"]["name"] == "gated"]
    assert record["id"] == crashed["id"] and record["status"] == "done"
    assert h.effects_done() == ["a", "b"]  # a did not run again


def test_a_dead_holder_from_another_host_is_taken_over_only_after_the_ttl(
    tmp_path, sandbox: SandboxProcess
) -> None:
    h = Harness(tmp_path, sandbox, ttl_s=4)
    pb = h.playbook(["a", "b"])
    proc = h.start("run-scheduled", f"--playbook={pb}")
    h.open_gates("a")
    wait_for(lambda: (h.gates / "b.entered").exists(), proc)
    kill(proc)
    (crashed,) = h.records()
    # make the lease look held by the same run on another machine: its process cannot be checked from here
    sandbox.kubectl(
        "-n", "kube-system", "patch", "lease", "kubeops-lock", "--type=merge",
        "-p", json.dumps({"spec": {"holderIdentity": f"{crashed['id']}@elsewhere"}}),
    )
    killed_at = time.monotonic()
    blocked = h.call("run-scheduled", f"--playbook={pb}")
    assert blocked.returncode == 3, blocked.stderr
    assert "elsewhere" in blocked.stderr
    assert time.monotonic() - killed_at < 4, "the check ran too late to prove the TTL blocks"
    time.sleep(max(0.0, 4.5 - (time.monotonic() - killed_at)))
    h.open_gates("b")
    resumed = h.call("run-scheduled", f"--playbook={pb}")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming run {crashed['id']}" in resumed.stdout
    assert "lock.takeover" in resumed.stderr
    assert h.effects_done() == ["a", "b"]


@pytest.mark.timeout(240)
def test_wait_for_lock_and_break(tmp_path, sandbox: SandboxProcess) -> None:
    h = Harness(tmp_path, sandbox, ttl_s=60)
    pb = h.playbook(["a"])
    holder = h.start("run-scheduled", f"--playbook={pb}")
    wait_for(lambda: (h.gates / "a.entered").exists(), holder)
    other = h.playbook(["w"], name="waiter")
    waiter = h.start("run-scheduled", f"--playbook={other}", "--wait-for-lock=60s")
    time.sleep(2)
    assert waiter.poll() is None  # still waiting
    h.open_gates("a", "w")
    assert finish(holder)[0] == 0
    code, _, err = finish(waiter)
    assert code == 0, err
    assert h.effects_done() == ["a", "w"]
    # a lock left behind (holder killed, long TTL) is broken only with confirmation
    stuck = h.start("run-scheduled", f"--playbook={h.playbook(['s'], name='stuck')}")
    wait_for(lambda: (h.gates / "s.entered").exists(), stuck)
    kill(stuck)
    refused = h.call("lock", "--break")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert "held by" in h.call("lock").stdout
    broken = h.call("lock", "--break", "--yes")
    assert broken.returncode == 0 and "deleted lease kube-system/kubeops-lock" in broken.stdout
    assert "not locked" in h.call("lock").stdout
    bad = h.call("run-scheduled", f"--playbook={pb}", "--wait-for-lock=soon")
    assert bad.returncode == 2 and "--wait-for-lock expects a duration" in bad.stderr
