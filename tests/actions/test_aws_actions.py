"""AWS actions against a real moto_server: intents before side effects, reconciling on re-entry, restoring.

A re-entered step (the engine's resume after a crash) is modelled here the way the engine does it: the same action
called again with the intent the first attempt recorded. Kubernetes-facing parts are covered with the sandbox in
tests/playbooks; here only AWS is involved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog

from kubeops.actions import aws as aws_actions
from kubeops.actions.context import StepContext
from kubeops.clients.aws import AwsClient
from kubeops.clients.factory import Clients
from kubeops.errors import AwsInputError, InputError
from kubeops.settings import AwsSettings, Settings
from tests.aws_fixtures import REGION, MotoServer, create_group, describe, ec2_state, mutating


class Harness:
    """Builds step contexts the way the engine does, keeping what each one persisted as its intent."""

    def __init__(self, moto: MotoServer, tmp_path: Path) -> None:
        env = tmp_path / "env"
        env.write_text(
            f"AWS_ENDPOINT_URL={moto.url}\nAWS_ACCESS_KEY_ID=testing\nAWS_SECRET_ACCESS_KEY=testing\n"
            f"AWS_DEFAULT_REGION={REGION}\n"
        )
        self.settings = Settings(state_dir=tmp_path, aws=AwsSettings(env_file=str(env)))
        self.persisted: list[dict[str, Any]] = []

    def ctx(self, *, dry_run: bool = False, intent: dict[str, Any] | None = None) -> StepContext:
        return StepContext(
            run_id="run-test",
            step="step",
            action="aws.test",
            settings=self.settings,
            clients=Clients(self.settings, dry_run=dry_run),
            log=structlog.get_logger(),
            dry_run=dry_run,
            resumed=intent is not None,
            intent=intent,
            _persist_intent=self.persisted.append,
        )


@pytest.fixture
def h(moto: MotoServer, tmp_path: Path) -> Harness:
    return Harness(moto, tmp_path)


class TestDescribe:
    def test_snapshot_has_what_restore_needs(self, moto: MotoServer, h: Harness):
        ids = create_group(moto, "workers", desired=2, max_size=4)
        out = aws_actions.describe_group(h.ctx(), aws_actions.DescribeGroupParams(group="workers", need=1))
        assert (out["desired"], out["max_size"], sorted(out["instances"]), out["suspended"]) == (2, 4, sorted(ids), [])

    def test_group_at_max_is_refused_before_anything_changes(self, moto: MotoServer, h: Harness):
        create_group(moto, "workers", desired=3, max_size=3)
        with moto.recording_actions() as actions, pytest.raises(AwsInputError, match="at its maximum size"):
            aws_actions.describe_group(h.ctx(), aws_actions.DescribeGroupParams(group="workers", need=1))
        assert mutating(actions) == []

    def test_unknown_group_is_an_input_error(self, moto: MotoServer, h: Harness):
        with pytest.raises(InputError, match='Auto Scaling group "ghost" not found'):
            aws_actions.describe_group(h.ctx(), aws_actions.DescribeGroupParams(group="ghost"))


class TestScaleUp:
    def test_records_the_intent_before_scaling(self, moto: MotoServer, h: Harness):
        create_group(moto, "workers", desired=3)
        out = aws_actions.scale_up(h.ctx(), aws_actions.ScaleUpParams(group="workers", count=1))
        assert h.persisted[0]["summary"] == 'desired 3 -> 4 on group "workers"'
        assert (out["previous_desired"], out["desired"]) == (3, 4)
        assert describe(moto, "workers")["DesiredCapacity"] == 4

    def test_re_entry_after_the_call_does_not_scale_twice(self, moto: MotoServer, h: Harness):
        create_group(moto, "workers", desired=3)
        aws_actions.scale_up(h.ctx(), aws_actions.ScaleUpParams(group="workers", count=1))
        out = aws_actions.scale_up(h.ctx(intent=h.persisted[-1]), aws_actions.ScaleUpParams(group="workers", count=1))
        group = describe(moto, "workers")
        assert (group["DesiredCapacity"], len(group["Instances"])) == (4, 4)
        assert out["previous_desired"] == 3

    def test_re_entry_before_the_call_reached_aws_scales_once(self, moto: MotoServer, h: Harness):
        create_group(moto, "workers", desired=3)
        intent = {"group": "workers", "from": 3, "to": 4, "max_before": 5, "instances_before": []}
        aws_actions.scale_up(h.ctx(intent=intent), aws_actions.ScaleUpParams(group="workers", count=1))
        assert describe(moto, "workers")["DesiredCapacity"] == 4

    def test_at_max_fails_without_recording_or_changing_anything(self, moto: MotoServer, h: Harness):
        create_group(moto, "workers", desired=2, max_size=2)
        with pytest.raises(AwsInputError, match=r"maximum size \(2\).*2 -> 3"):
            aws_actions.scale_up(h.ctx(), aws_actions.ScaleUpParams(group="workers"))
        assert h.persisted == []
        assert describe(moto, "workers")["DesiredCapacity"] == 2

    def test_dry_run_plans_without_a_mutating_call(self, moto: MotoServer, h: Harness):
        create_group(moto, "workers", desired=2, max_size=2)
        from kubeops.actions.registry import default_registry

        spec = default_registry().get("aws.scale_up")
        assert spec is not None and spec.plan is not None
        ctx = h.ctx(dry_run=True)
        with moto.recording_actions() as actions:
            plan = spec.plan(ctx, aws_actions.ScaleUpParams(group="workers", allow_raise_max=True))
        assert plan.summary == 'set desired capacity 2 -> 3 on group "workers"'
        assert plan.details == ["raise max 2 -> 3 (restored by restore_group)"]
        assert mutating(actions) == []
        assert describe(moto, "workers")["DesiredCapacity"] == 2


class TestProcesses:
    def test_suspend_remembers_what_someone_else_suspended_and_resume_leaves_it(self, moto: MotoServer, h: Harness):
        create_group(moto, "workers")
        moto.boto("autoscaling").suspend_processes(AutoScalingGroupName="workers", ScalingProcesses=["AZRebalance"])
        out = aws_actions.suspend_processes(h.ctx(), aws_actions.ProcessesParams(group="workers"))
        assert out["already_suspended"] == ["AZRebalance"]
        # a crash after the call: every process now looks suspended, the recorded reading wins
        again = aws_actions.suspend_processes(
            h.ctx(intent=h.persisted[-1]), aws_actions.ProcessesParams(group="workers")
        )
        assert again["already_suspended"] == ["AZRebalance"]
        aws_actions.resume_processes(
            h.ctx(), aws_actions.ResumeParams(group="workers", keep=again["already_suspended"])
        )
        assert [p["ProcessName"] for p in describe(moto, "workers")["SuspendedProcesses"]] == ["AZRebalance"]


class TestTerminate:
    def test_terminate_with_decrement_then_re_entry_is_a_no_op(self, moto: MotoServer, h: Harness):
        ids = create_group(moto, "workers", desired=3)
        params = aws_actions.TerminateParams(instance_id=ids[0], decrement=True)
        out = aws_actions.terminate_instance(h.ctx(), params)
        assert out["already"] is False
        again = aws_actions.terminate_instance(h.ctx(intent=h.persisted[-1]), params)
        assert again["already"] is True
        assert describe(moto, "workers")["DesiredCapacity"] == 2
        assert ec2_state(moto, ids[0]) in ("shutting-down", "terminated")

    def test_terminate_without_decrement_lets_the_group_replace_it(self, moto: MotoServer, h: Harness):
        ids = create_group(moto, "workers", desired=2)
        aws_actions.terminate_instance(h.ctx(), aws_actions.TerminateParams(instance_id=ids[0], decrement=False))
        group = describe(moto, "workers")
        assert group["DesiredCapacity"] == 2 and ids[0] not in [i["InstanceId"] for i in group["Instances"]]

    def test_detach_is_idempotent(self, moto: MotoServer, h: Harness):
        ids = create_group(moto, "workers", desired=2)
        params = aws_actions.DetachParams(instance_id=ids[0], decrement=True)
        assert aws_actions.detach_instance(h.ctx(), params)["detached"] is True
        assert aws_actions.detach_instance(h.ctx(intent=h.persisted[-1]), params)["detached"] is False
        assert describe(moto, "workers")["DesiredCapacity"] == 1
        assert ec2_state(moto, ids[0]) == "running"


class TestRestore:
    def test_restore_after_a_failed_replacement_removes_the_added_instance_and_resumes(
        self, moto: MotoServer, h: Harness
    ):
        create_group(moto, "workers", desired=2, max_size=2)
        snap = aws_actions.describe_group(
            h.ctx(), aws_actions.DescribeGroupParams(group="workers", need=1, allow_raise_max=True)
        )
        aws_actions.suspend_processes(h.ctx(), aws_actions.ProcessesParams(group="workers"))
        aws_actions.scale_up(h.ctx(), aws_actions.ScaleUpParams(group="workers", allow_raise_max=True))
        assert (describe(moto, "workers")["DesiredCapacity"], describe(moto, "workers")["MaxSize"]) == (3, 3)
        params = aws_actions.RestoreParams(
            group="workers",
            desired=snap["desired"],
            max_size=snap["max_size"],
            suspended=snap["suspended"],
            instances=snap["instances"],
        )
        out = aws_actions.restore_group(h.ctx(), params)
        assert len(out["remove"]) == 1 and out["remove"][0] not in snap["instances"]
        group = describe(moto, "workers")
        assert (group["DesiredCapacity"], group["MaxSize"], group["SuspendedProcesses"]) == (2, 2, [])
        assert sorted(i["InstanceId"] for i in group["Instances"]) == sorted(snap["instances"])
        # running it again (a resumed cleanup) changes nothing
        with moto.recording_actions() as actions:
            aws_actions.restore_group(h.ctx(intent=h.persisted[-1]), params)
        assert mutating(actions) == []

    def test_restore_after_success_only_resumes_processes(self, moto: MotoServer, h: Harness):
        create_group(moto, "workers", desired=2)
        snap = aws_actions.describe_group(h.ctx(), aws_actions.DescribeGroupParams(group="workers"))
        aws_actions.suspend_processes(h.ctx(), aws_actions.ProcessesParams(group="workers"))
        aws_actions.scale_up(h.ctx(), aws_actions.ScaleUpParams(group="workers"))
        new = [
            i["InstanceId"] for i in describe(moto, "workers")["Instances"] if i["InstanceId"] not in snap["instances"]
        ]
        aws_actions.terminate_instance(h.ctx(), aws_actions.TerminateParams(instance_id=snap["instances"][0]))
        out = aws_actions.restore_group(
            h.ctx(),
            aws_actions.RestoreParams(
                group="workers", desired=2, max_size=snap["max_size"], instances=snap["instances"]
            ),
        )
        assert out["remove"] == [] and out["set_desired"] is None
        group = describe(moto, "workers")
        assert group["DesiredCapacity"] == 2 and group["SuspendedProcesses"] == []
        assert new[0] in [i["InstanceId"] for i in group["Instances"]]


class TestLifecycleHooks:
    """moto neither holds instances in Terminating:Wait nor implements CompleteLifecycleAction.

    So this one test plays AWS with botocore's Stubber on clients the test constructs (a test double at the library
    boundary, for the calls moto cannot serve) and checks that our terminate answers the hook.
    """

    def test_terminate_completes_the_termination_hook_holding_the_instance(self, tmp_path: Path):
        import boto3
        from botocore.stub import Stubber

        kwargs = {"region_name": REGION, "aws_access_key_id": "x", "aws_secret_access_key": "y"}
        asg, ec2 = boto3.client("autoscaling", **kwargs), boto3.client("ec2", **kwargs)
        stub = Stubber(asg)

        def member(state: str) -> dict[str, Any]:
            return {
                "AutoScalingInstances": [
                    {
                        "InstanceId": "i-0123456789abcdef0",
                        "AutoScalingGroupName": "workers",
                        "AvailabilityZone": "us-east-1a",
                        "LifecycleState": state,
                        "HealthStatus": "HEALTHY",
                        "ProtectedFromScaleIn": False,
                    }
                ]
            }

        iid = {"InstanceIds": ["i-0123456789abcdef0"]}
        stub.add_response("describe_auto_scaling_instances", member("InService"), iid)
        stub.add_response(
            "terminate_instance_in_auto_scaling_group",
            {
                "Activity": {
                    "ActivityId": "a",
                    "AutoScalingGroupName": "workers",
                    "Cause": "c",
                    "StartTime": "2024-01-01T00:00:00Z",
                    "StatusCode": "InProgress",
                }
            },
            {"InstanceId": "i-0123456789abcdef0", "ShouldDecrementDesiredCapacity": True},
        )
        stub.add_response(
            "describe_lifecycle_hooks",
            {
                "LifecycleHooks": [
                    {
                        "LifecycleHookName": "drain-hook",
                        "AutoScalingGroupName": "workers",
                        "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
                    }
                ]
            },
            {"AutoScalingGroupName": "workers"},
        )
        stub.add_response("describe_auto_scaling_instances", member("Terminating:Wait"), iid)
        stub.add_response(
            "complete_lifecycle_action",
            {},
            {
                "AutoScalingGroupName": "workers",
                "LifecycleHookName": "drain-hook",
                "InstanceId": "i-0123456789abcdef0",
                "LifecycleActionResult": "CONTINUE",
            },
        )
        stub.add_response("describe_auto_scaling_instances", member("Terminating:Proceed"), iid)
        stub.add_response("describe_auto_scaling_instances", {"AutoScalingInstances": []}, iid)
        settings = Settings(state_dir=tmp_path)
        clients = Clients(settings)
        clients._aws = AwsClient(asg, ec2)  # clients built by the test, handed to the factory slot
        ctx = StepContext(
            run_id="r",
            step="s",
            action="aws.terminate_instance",
            settings=settings,
            clients=clients,
            log=structlog.get_logger(),
            _persist_intent=lambda _: None,
        )
        with stub:
            out = aws_actions.terminate_instance(
                ctx, aws_actions.TerminateParams(instance_id="i-0123456789abcdef0", decrement=True)
            )
            stub.assert_no_pending_responses()
        assert out["hooks_completed"] == ["drain-hook"]
