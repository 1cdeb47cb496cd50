"""`kubeops replace-group --batch=2` killed with SIGKILL while a batch's nodes are draining together, then resumed.

What a user cares about: after the resume the group holds exactly `desired` instances, all new, the old ones
terminated, nothing cordoned, desired/max/processes as before, the workload Ready: no instance added twice and
none lost, even though the kill landed while two nodes were being drained at once.
"""

from __future__ import annotations

import signal
import time

from tests.aws_sandbox import GROUP, AwsSandbox, module_sandbox

env = module_sandbox("aws-batch-crash", desired=4, max_size=8)


def test_sigkill_mid_batch_drain_then_resume_ends_with_exactly_the_right_instances(env: AwsSandbox):
    env.wait_for(lambda: len(env.ready_workers()) == 4, "workers Ready")
    env.wait_for(env.deployment_ready, "web Ready")
    before = env.group_state()
    seen = len(env.requests())
    proc = env.popen("replace-group", f"--group={GROUP}", "--batch=2")
    deadline = time.monotonic() + 120
    evictions: list[dict] = []
    while time.monotonic() < deadline and proc.poll() is None:
        evictions = [r for r in env.requests()[seen:] if r.get("subresource") == "eviction"]
        if evictions:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert evictions and proc.returncode == -signal.SIGKILL, "the run ended before its first batch drained"
    run = env.runs()[-1]
    roll = next(s for s in run["steps"] if s["name"] == "roll")
    assert run["status"] == "running" and roll["status"] == "running"
    assert len(roll["intent"]["batch"]) == 2 and roll["intent"]["done"] == []  # killed inside the first batch
    resumed = env.kubeops("resume", "--wait-for-lock=30s")  # the dead run's lease expires after its TTL
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert env.runs()[-1]["status"] == "done"
    after = env.group_state()
    assert (after["desired"], after["max"], after["suspended"]) == (before["desired"], before["max"], [])
    assert len(after["instances"]) == 4 and set(after["instances"]).isdisjoint(before["instances"])
    for old in before["instances"]:
        assert env.ec2_state(old) in ("shutting-down", "terminated")
    assert sorted(env.ready_workers().values()) == sorted(after["instances"])
    assert not [n for n in env.nodes() if n["spec"].get("unschedulable")]
    env.wait_for(env.deployment_ready, "web Ready")
