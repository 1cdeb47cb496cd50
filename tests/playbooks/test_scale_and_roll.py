"""`kubeops scale-up` and `kubeops replace-group` on a sandbox with AWS, through the CLI; dry runs in-process with
AWS calls counted by a botocore event hook on clients this test builds (our client code is not patched)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubeops.clients.aws import AwsClient
from kubeops.clients.factory import Clients
from kubeops.engine.api import run_playbook
from kubeops.settings import load_settings
from tests.aws_sandbox import GROUP, AwsSandbox, module_sandbox

READS = ("Describe", "List", "Get")


env = module_sandbox("aws-roll")


def settle(env: AwsSandbox) -> None:
    env.wait_for(lambda: len(env.ready_workers()) == env.group()["DesiredCapacity"], "workers Ready")
    env.wait_for(env.deployment_ready, "web Ready")


def counted_clients(env: AwsSandbox, settings: Any, calls: list[str]) -> Clients:
    """Clients whose AWS side is built here, on boto3 clients that log every operation before it is sent."""
    asg, ec2 = env.boto("autoscaling"), env.boto("ec2")
    for client in (asg, ec2):
        client.meta.events.register("before-call", lambda model, **_: calls.append(model.name))
    clients = Clients(settings, dry_run=True)
    clients._aws = AwsClient(asg, ec2, dry_run=True)  # the factory's slot, filled by the test instead of settings
    return clients


class TestScaleUp:
    def test_adds_instances_and_waits_for_their_nodes(self, env: AwsSandbox):
        settle(env)
        before = env.group_state()
        result = env.kubeops("scale-up", f"--group={GROUP}", "--count=2")
        assert result.returncode == 0, result.stderr[-3000:]
        after = env.group_state()
        assert after["desired"] == before["desired"] + 2
        assert len(set(after["instances"]) - set(before["instances"])) == 2
        assert len(env.ready_workers()) == before["desired"] + 2  # Ready when the command returned
        env.boto("autoscaling").set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=before["desired"])
        env.wait_for(lambda: len(env.ready_workers()) == before["desired"], "back to 3 workers")

    def test_unknown_group_is_exit_2(self, env: AwsSandbox):
        result = env.kubeops("scale-up", "--group=ghost")
        assert result.returncode == 2
        assert 'Auto Scaling group "ghost" not found' in result.stderr

    def test_group_at_max_is_exit_2_and_nothing_changes(self, env: AwsSandbox):
        settle(env)
        before = env.group_state()
        result = env.kubeops("scale-up", f"--group={GROUP}", "--count=4")
        assert result.returncode == 2
        assert "is at its maximum size (6)" in result.stderr and "3 -> 7" in result.stderr
        assert env.group_state() == before

    @pytest.mark.parametrize(
        ("playbook", "params"),
        [("scale-up", {"group": GROUP, "count": 2}), ("replace-group", {"group": GROUP, "batch": 2})],
    )
    def test_dry_run_makes_no_mutating_aws_call_and_no_kubernetes_change(
        self, env: AwsSandbox, monkeypatch: pytest.MonkeyPatch, playbook: str, params: dict[str, Any]
    ):
        settle(env)
        monkeypatch.setenv("KUBEOPS_STATE_DIR", str(env.root))
        settings = load_settings("sandbox", state_dir=Path(env.root))
        calls: list[str] = []
        before = env.group_state()
        seen = len(env.requests())
        record = run_playbook(
            playbook, settings=settings, params=params, dry_run=True, clients=counted_clients(env, settings, calls)
        )
        assert record["status"] == "done"
        assert "DescribeAutoScalingGroups" in calls
        assert [c for c in calls if not c.startswith(READS)] == []
        assert env.group_state() == before
        writes = [r for r in env.requests()[seen:] if r["method"] not in ("GET", "HEAD") and not r.get("dry_run")]
        assert [w for w in writes if "kubeops" in (w.get("user_agent") or "")] == []
        plans = [s["plan"]["summary"] for s in record["steps"] if s.get("plan")]
        assert plans, record["steps"]


class TestReplaceGroup:
    @pytest.mark.parametrize("batch", [1, 2])
    def test_every_node_is_replaced_and_the_group_is_as_before(self, env: AwsSandbox, batch: int):
        settle(env)
        before = env.group_state()
        result = env.kubeops("replace-group", f"--group={GROUP}", f"--batch={batch}")
        assert result.returncode == 0, result.stderr[-3000:]
        after = env.group_state()
        assert (after["desired"], after["max"], after["suspended"]) == (before["desired"], before["max"], [])
        assert set(after["instances"]).isdisjoint(before["instances"])
        assert len(after["instances"]) == before["desired"]
        for old in before["instances"]:
            assert env.ec2_state(old) in ("shutting-down", "terminated")
        assert sorted(env.ready_workers().values()) == after["instances"]
        env.wait_for(env.deployment_ready, "web Ready")
        roll = next(s for s in env.runs()[-1]["steps"] if s["name"] == "roll")
        assert roll["outputs"]["batches"] == -(-before["desired"] // batch)

    def test_a_failed_validation_stops_the_roll_and_resume_finishes_it(self, env: AwsSandbox):
        settle(env)
        before = env.group_state()
        workers = env.ready_workers()
        first_node = next(name for name, iid in workers.items() if iid == before["instances"][0])
        # A Deployment pinned to the first node to be replaced: once that node is drained, its pod stays Pending.
        pinned = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "pinned", "namespace": "apps"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "pinned"}},
                "template": {
                    "metadata": {"labels": {"app": "pinned"}},
                    "spec": {
                        "nodeSelector": {"kubernetes.io/hostname": first_node},
                        "containers": [{"name": "c", "image": "nginx:1.27"}],
                    },
                },
            },
        }
        status, body = env.sb.request("POST", "/apis/apps/v1/namespaces/apps/deployments", pinned)
        assert status == 201, body
        env.wait_for(lambda: env.deployment_ready("pinned"), "pinned Ready")
        result = env.kubeops(
            "run", "--playbook=replace-group", "--param", f"group={GROUP}", "--param", "validate_timeout_s=2"
        )
        assert result.returncode == 1, result.stderr[-2000:]
        assert "cluster validation failed" in result.stderr and "Pending pods: apps/pinned-" in result.stderr
        record = env.runs()[-1]
        assert record["failed_step"] == "roll"
        assert len(record["steps"][3]["intent"]["done"]) == 0  # stopped in the first batch, before moving on
        mid = env.group_state()
        assert (mid["desired"], mid["max"], mid["suspended"]) == (before["desired"], before["max"], [])
        # the operator fixes the cause, then resumes
        status, _ = env.sb.request("DELETE", "/apis/apps/v1/namespaces/apps/deployments/pinned")
        assert status == 200
        env.wait_for(
            lambda: (
                not [
                    p
                    for p in env.get("/api/v1/namespaces/apps/pods")["items"]
                    if p["metadata"]["name"].startswith("pinned")
                ]
            ),
            "pinned pods gone",
        )
        resumed = env.kubeops("resume")
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        after = env.group_state()
        assert set(after["instances"]).isdisjoint(before["instances"])
        assert (after["desired"], after["max"], after["suspended"]) == (before["desired"], before["max"], [])
