"""AwsClient against a real moto_server: what a user of scale-up/replace sees when AWS says yes, no, or slow down."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeops.clients.aws import AwsClient, instance_id_from_provider_id
from kubeops.errors import AwsError, AwsInputError, InputError
from kubeops.settings import AwsSettings
from tests.aws_fixtures import (
    REGION,
    MotoServer,
    ThrottlingProxy,
    create_group,
    describe,
    ec2_state,
    mutating,
)

SECRET = "testing-secret-never-shown"


def env_file(tmp_path: Path, url: str) -> str:
    path = tmp_path / "env"
    path.write_text(
        f"export AWS_ENDPOINT_URL={url}\nexport AWS_ACCESS_KEY_ID=testing\n"
        f"export AWS_SECRET_ACCESS_KEY='{SECRET}'\nexport AWS_DEFAULT_REGION={REGION}\n"
    )
    return str(path)


def client(tmp_path: Path, url: str, *, dry_run: bool = False, max_attempts: int = 8) -> AwsClient:
    settings = AwsSettings(env_file=env_file(tmp_path, url), max_attempts=max_attempts)
    return AwsClient.from_settings(settings, dry_run=dry_run)


class TestSettings:
    def test_endpoint_region_and_credentials_come_from_the_sandbox_env_file(self, moto: MotoServer, tmp_path: Path):
        create_group(moto, "workers", desired=2)
        group = client(tmp_path, moto.url).describe_group("workers")
        assert (group.desired, len(group.in_service)) == (2, 2)

    def test_a_missing_env_file_is_an_input_error_not_a_call_to_real_aws(self, tmp_path: Path):
        with pytest.raises(InputError, match=r"env file .* does not exist"):
            AwsClient.from_settings(AwsSettings(env_file=str(tmp_path / "absent")))

    def test_no_region_anywhere_is_an_input_error(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
        with pytest.raises(InputError, match="no AWS region"):
            AwsClient.from_settings(AwsSettings(endpoint_url="http://127.0.0.1:9"))

    def test_an_unknown_profile_is_an_input_error(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
        with pytest.raises(InputError, match="profile 'nobody' not found"):
            AwsClient.from_settings(AwsSettings(region=REGION, profile="nobody"))


class TestGroups:
    def test_unknown_group_is_an_input_error_naming_the_group(self, moto: MotoServer, tmp_path: Path):
        with pytest.raises(AwsInputError, match='Auto Scaling group "ghost" not found') as caught:
            client(tmp_path, moto.url).describe_group("ghost")
        assert isinstance(caught.value, InputError)

    def test_instance_maps_to_its_group_and_a_stranger_to_none(self, moto: MotoServer, tmp_path: Path):
        ids = create_group(moto, "workers", desired=2)
        aws = client(tmp_path, moto.url)
        member = aws.find_instance(ids[0])
        assert member is not None and member.group == "workers" and member.lifecycle_state == "InService"
        assert aws.find_instance("i-0000000000000dead") is None
        assert aws.instance_state(ids[0]) == "running"

    def test_provider_id_gives_the_instance_id(self):
        assert instance_id_from_provider_id("aws:///us-east-1a/i-0abc123") == "i-0abc123"
        assert instance_id_from_provider_id("gce://project/zone/vm") is None
        assert instance_id_from_provider_id(None) is None


class TestDesiredCapacity:
    def test_group_at_max_is_refused_before_any_call_even_though_moto_would_accept(
        self, moto: MotoServer, tmp_path: Path
    ):
        create_group(moto, "workers", desired=3, max_size=3)
        aws = client(tmp_path, moto.url)
        group = aws.describe_group("workers")
        with moto.recording_actions() as actions, pytest.raises(AwsInputError) as caught:
            aws.set_desired_capacity(group, 4)
        assert 'Auto Scaling group "workers" is at its maximum size (3)' in str(caught.value)
        assert "3 -> 4" in str(caught.value)
        assert mutating(actions) == []
        assert describe(moto, "workers")["DesiredCapacity"] == 3

    def test_raising_max_when_allowed_and_restoring_it(self, moto: MotoServer, tmp_path: Path):
        create_group(moto, "workers", desired=3, max_size=3)
        aws = client(tmp_path, moto.url)
        result = aws.set_desired_capacity(aws.describe_group("workers"), 4, allow_raise_max=True)
        assert result == {"desired": 4, "max_size": 4, "raised_max": True}
        after = describe(moto, "workers")
        assert (after["DesiredCapacity"], after["MaxSize"], len(after["Instances"])) == (4, 4, 4)
        aws.update_limits("workers", max_size=3, desired=3)
        assert (describe(moto, "workers")["MaxSize"], describe(moto, "workers")["DesiredCapacity"]) == (3, 3)

    def test_wait_in_service_returns_once_the_new_instances_are_in(self, moto: MotoServer, tmp_path: Path):
        create_group(moto, "workers", desired=2)
        aws = client(tmp_path, moto.url)
        aws.set_desired_capacity(aws.describe_group("workers"), 3)
        assert len(aws.wait_in_service("workers", count=3, timeout_s=10).in_service) == 3

    def test_wait_in_service_times_out_naming_the_shortfall(self, moto: MotoServer, tmp_path: Path):
        create_group(moto, "workers", desired=2)
        with pytest.raises(AwsError, match='"workers": 2 of 5 instances InService'):
            client(tmp_path, moto.url).wait_in_service("workers", count=5, timeout_s=0.3)


class TestInstancesAndProcesses:
    def test_terminate_with_decrement_removes_the_instance_and_one_unit_of_desired(
        self, moto: MotoServer, tmp_path: Path
    ):
        ids = create_group(moto, "workers", desired=3)
        aws = client(tmp_path, moto.url)
        aws.terminate_instance(ids[0], decrement=True)
        aws.wait_instance_gone(ids[0], timeout_s=10)
        after = describe(moto, "workers")
        assert after["DesiredCapacity"] == 2
        assert ids[0] not in [i["InstanceId"] for i in after["Instances"]]
        assert ec2_state(moto, ids[0]) in ("shutting-down", "terminated")

    def test_detach_without_decrement_keeps_the_instance_running_outside_the_group(
        self, moto: MotoServer, tmp_path: Path
    ):
        ids = create_group(moto, "workers", desired=2)
        aws = client(tmp_path, moto.url)
        aws.detach_instance("workers", ids[0], decrement=False)
        assert aws.find_instance(ids[0]) is None
        assert ec2_state(moto, ids[0]) == "running"
        assert describe(moto, "workers")["DesiredCapacity"] == 2

    def test_suspend_and_resume_processes(self, moto: MotoServer, tmp_path: Path):
        create_group(moto, "workers")
        aws = client(tmp_path, moto.url)
        aws.suspend_processes("workers", ["AZRebalance", "ReplaceUnhealthy"])
        assert aws.describe_group("workers").suspended == ("AZRebalance", "ReplaceUnhealthy")
        aws.resume_processes("workers", ["AZRebalance"])
        assert aws.describe_group("workers").suspended == ("ReplaceUnhealthy",)


class TestDryRun:
    def test_dry_run_records_intended_calls_and_sends_no_mutating_request(self, moto: MotoServer, tmp_path: Path):
        ids = create_group(moto, "workers", desired=2, max_size=2)
        aws = client(tmp_path, moto.url, dry_run=True)
        with moto.recording_actions() as actions:
            group = aws.describe_group("workers")
            aws.set_desired_capacity(group, 3, allow_raise_max=True)
            aws.suspend_processes("workers", ["AZRebalance"])
            aws.terminate_instance(ids[0], decrement=True)
            aws.detach_instance("workers", ids[1], decrement=False)
            aws.complete_lifecycle_action("workers", "drain-hook", ids[0])
        assert "DescribeAutoScalingGroups" in actions
        assert mutating(actions) == []
        assert [c["operation"] for c in aws.intended] == [
            "update_auto_scaling_group",
            "suspend_processes",
            "terminate_instance_in_auto_scaling_group",
            "detach_instances",
            "complete_lifecycle_action",
        ]
        after = describe(moto, "workers")
        assert (after["DesiredCapacity"], after["MaxSize"], after["SuspendedProcesses"]) == (2, 2, [])
        assert sorted(i["InstanceId"] for i in after["Instances"]) == sorted(ids)


class TestErrors:
    def test_throttling_is_retried_by_botocore_until_it_passes(self, moto: MotoServer, tmp_path: Path):
        create_group(moto, "workers", desired=1)
        proxy = ThrottlingProxy(moto.url, throttle=2)
        try:
            assert client(tmp_path, proxy.url).describe_group("workers").desired == 1
        finally:
            proxy.close()
        assert proxy.requests == 3

    def test_persistent_throttling_becomes_a_clear_error_after_max_attempts(self, moto: MotoServer, tmp_path: Path):
        proxy = ThrottlingProxy(moto.url, throttle=100)
        try:
            with pytest.raises(AwsError, match=r"throttled by AWS \(Throttling\) after 2 attempts") as caught:
                client(tmp_path, proxy.url, max_attempts=2).describe_group("workers")
        finally:
            proxy.close()
        assert caught.value.code == "Throttling"
        assert proxy.requests == 2

    @pytest.mark.parametrize("code", ["AccessDenied", "UnauthorizedOperation", "InvalidClientTokenId"])
    def test_auth_failures_say_permissions_or_credentials_and_echo_nothing(self, code: str):
        # moto does not check credentials: a botocore Stubber on a client this test builds plays AWS's answer.
        import boto3
        from botocore.stub import Stubber

        raw = boto3.client(
            "autoscaling", region_name=REGION, aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key=SECRET
        )
        stub = Stubber(raw)
        stub.add_client_error(
            "describe_auto_scaling_groups",
            service_error_code=code,
            service_message=f"credential AKIAEXAMPLE with secret {SECRET} was rejected",
            http_status_code=403,
        )
        with stub, pytest.raises(AwsError) as caught:
            AwsClient(raw, None).describe_group("workers")
        text = str(caught.value)
        assert "missing permissions or bad credentials" in text and code in text
        assert SECRET not in text and "AKIAEXAMPLE" not in text

    def test_an_unreachable_endpoint_is_a_clear_error(self, tmp_path: Path):
        from tests.aws_fixtures import free_port

        aws = client(tmp_path, f"http://127.0.0.1:{free_port()}", max_attempts=1)
        with pytest.raises(AwsError, match="cannot reach the AWS endpoint"):
            aws.describe_group("workers")
