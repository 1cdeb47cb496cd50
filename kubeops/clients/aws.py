"""The one seam between kubeops and EC2 Auto Scaling (boto3).

Why a wrapper:
- botocore raises `ClientError` with codes a person at 3 a.m. should not have to decode; every call goes through
  `AwsClient._call`, which lets botocore retry throttling ("standard" retry mode, `max_attempts` from settings) and
  then turns what is left into `AwsError` / `AwsInputError` with a clear message and never a credential;
- Auto Scaling has no server-side dry run: `_mutate` is the single choke point that, in dry-run mode, records the
  intended call in `self.intended` and returns a synthetic answer instead of calling AWS. Reads still happen, so a
  dry-run plan is made from the real state;
- some rules AWS enforces are not enforced by moto (desired above max, suspended processes, lifecycle hooks): the
  checks here (`set_desired_capacity` refuses to pass max) hold whatever the server does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubeops.errors import AwsError, AwsInputError, InputError

if TYPE_CHECKING:
    from kubeops.settings import AwsSettings

THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "RequestThrottled"}
)
AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "AuthFailure",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidAccessKeyId",
    }
)
GONE_STATES = frozenset({"shutting-down", "terminated"})


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance as its Auto Scaling group sees it."""

    id: str
    group: str
    zone: str
    lifecycle_state: str  # Pending, InService, Terminating, Terminating:Wait, Detaching, ...
    health_status: str = "Healthy"

    @property
    def leaving(self) -> bool:
        """On its way out of the group (terminating or detaching): do not terminate it again."""
        state = self.lifecycle_state
        return state.startswith("Terminat") or state.startswith("Detach") or state == "Standby"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "group": self.group, "zone": self.zone, "lifecycle_state": self.lifecycle_state}


@dataclass(frozen=True, slots=True)
class Group:
    """What a replacement needs to know about an Auto Scaling group."""

    name: str
    min_size: int
    max_size: int
    desired: int
    instances: tuple[Instance, ...]
    suspended: tuple[str, ...]

    @property
    def in_service(self) -> list[str]:
        return [i.id for i in self.instances if i.lifecycle_state == "InService"]

    def as_dict(self) -> dict[str, Any]:
        """JSON-able snapshot (step outputs, checkpoints)."""
        return {
            "group": self.name,
            "min_size": self.min_size,
            "max_size": self.max_size,
            "desired": self.desired,
            "instances": [i.id for i in self.instances],
            "in_service": self.in_service,
            "suspended": list(self.suspended),
        }


def instance_id_from_provider_id(provider_id: str | None) -> str | None:
    """``aws:///us-east-1a/i-0abc`` -> ``i-0abc``; None when the node is not an EC2 instance."""
    if not provider_id or not provider_id.startswith("aws://"):
        return None
    last = provider_id.rstrip("/").rsplit("/", 1)[-1]
    return last if last.startswith("i-") else None


def _instance(raw: dict[str, Any], group: str) -> Instance:
    """An instance entry of DescribeAutoScalingGroups or DescribeAutoScalingInstances (same fields)."""
    return Instance(
        id=raw["InstanceId"],
        group=group,
        zone=raw.get("AvailabilityZone", ""),
        lifecycle_state=raw.get("LifecycleState", ""),
        health_status=raw.get("HealthStatus", "Healthy"),
    )


def group_not_found(name: str) -> AwsInputError:
    return AwsInputError(
        f'Auto Scaling group "{name}" not found',
        code="ValidationError",
        hint="check the group name and the inventory's aws.region and aws.profile",
    )


def map_client_error(exc: Any, *, what: str, attempts: int | None = None) -> AwsError:
    """A botocore ClientError as an AwsError; credentials and auth failure details are never echoed."""
    error = getattr(exc, "response", {}).get("Error", {})
    code = str(error.get("Code") or "Unknown")
    message = str(error.get("Message") or "").strip()
    if code in THROTTLING_CODES:
        tries = f" after {attempts} attempts" if attempts else ""
        return AwsError(
            f"{what}: throttled by AWS ({code}){tries}",
            code=code,
            hint="AWS is rate-limiting this account; retry later or raise aws.max_attempts in the inventory",
        )
    if code in AUTH_CODES:
        return AwsError(
            f"{what}: missing permissions or bad credentials ({code})",
            code=code,
            hint="check the IAM policy of the identity in use and the inventory's aws.profile (or AWS_* variables)",
        )
    return AwsError(f"{what}: {message or code} ({code})", code=code)


class AwsClient:
    """Auto Scaling and EC2 calls for one account and region, with error mapping and dry-run at one choke point."""

    def __init__(
        self,
        autoscaling: Any,
        ec2: Any,
        *,
        dry_run: bool = False,
        max_attempts: int = 8,
        poll_s: float = 0.25,
    ) -> None:
        self.autoscaling = autoscaling
        self.ec2 = ec2
        self.dry_run = dry_run
        self.max_attempts = max_attempts
        self.poll_s = poll_s
        self.intended: list[dict[str, Any]] = []  # dry run: the mutating calls we would have made, in order
        self.waited_s = 0.0  # time spent sleeping in waits (benchmarks subtract it from wall time)

    @classmethod
    def from_settings(cls, settings: AwsSettings, *, dry_run: bool = False) -> AwsClient:
        """boto3 clients from the inventory: env file, then explicit fields, then boto3's standard chain."""
        import boto3
        import botocore.config
        from botocore.exceptions import BotoCoreError, ProfileNotFound

        from kubeops.settings import read_env_file

        env: dict[str, str] = {}
        if settings.env_file:
            from pathlib import Path

            if not Path(settings.env_file).is_file():
                raise InputError(
                    f"AWS env file {settings.env_file} does not exist",
                    hint="start the sandbox (`invoke sandbox --detach`) or remove aws.env_file from the inventory",
                )
            env = read_env_file(settings.env_file)
        region = settings.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        endpoint = settings.endpoint_url or env.get("AWS_ENDPOINT_URL")
        profile = settings.profile or env.get("AWS_PROFILE")
        try:
            session = boto3.session.Session(
                aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
                aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
                aws_session_token=env.get("AWS_SESSION_TOKEN"),
                region_name=region,
                profile_name=profile,
            )
        except ProfileNotFound:
            raise InputError(
                f"AWS profile {profile!r} not found", hint="check aws.profile in the inventory and ~/.aws/config"
            ) from None
        if not session.region_name:
            raise InputError("no AWS region configured", hint="set aws.region in the inventory or AWS_REGION")
        config = botocore.config.Config(
            retries={"mode": "standard", "total_max_attempts": settings.max_attempts},
            connect_timeout=10,
            read_timeout=60,
        )
        try:
            autoscaling = session.client("autoscaling", endpoint_url=endpoint, config=config)
            ec2 = session.client("ec2", endpoint_url=endpoint, config=config)
        except BotoCoreError as exc:
            raise InputError(f"cannot configure AWS clients: {type(exc).__name__}") from None
        return cls(autoscaling, ec2, dry_run=dry_run, max_attempts=settings.max_attempts)

    def close(self) -> None:
        for client in (self.autoscaling, self.ec2):
            closer = getattr(client, "close", None)
            if closer is not None:
                closer()

    # --- the choke points -------------------------------------------------------------------------------------
    def _call(self, fn: Callable[..., Any], *, what: str, **kwargs: Any) -> Any:
        """Call one boto3 operation; botocore has already retried throttling when an error reaches us."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )
        from botocore.parsers import ResponseParserError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            raise map_client_error(exc, what=what, attempts=self.max_attempts) from None
        except NoCredentialsError:
            raise AwsError(
                f"{what}: no AWS credentials found",
                code="NoCredentials",
                hint="set aws.profile in the inventory or provide credentials through the standard AWS chain",
            ) from None
        except EndpointConnectionError:
            raise AwsError(
                f"{what}: cannot reach the AWS endpoint",
                code="EndpointConnectionError",
                hint="is the network (or the sandbox's moto server) up?",
            ) from None
        except ResponseParserError:
            raise AwsError(f"{what}: AWS answered with an unreadable response", code="ServerError") from None
        except BotoCoreError as exc:
            raise AwsError(f"{what}: {type(exc).__name__}", code=type(exc).__name__) from None

    def _mutate(self, operation: str, *, what: str, synthetic: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """The only path to a mutating Auto Scaling call: in dry-run mode record it and return `synthetic`."""
        if self.dry_run:
            self.intended.append({"operation": operation, "params": kwargs})
            return dict(synthetic or {})
        return self._call(getattr(self.autoscaling, operation), what=what, **kwargs)

    # --- reads ---------------------------------------------------------------------------------------------------
    def describe_group(self, name: str) -> Group:
        """The group, or AwsInputError('... not found') when it does not exist."""
        answer = self._call(
            self.autoscaling.describe_auto_scaling_groups,
            what=f"describe Auto Scaling group {name!r}",
            AutoScalingGroupNames=[name],
        )
        groups = answer.get("AutoScalingGroups") or []
        if not groups:
            raise group_not_found(name)
        raw = groups[0]
        instances = tuple(_instance(i, name) for i in raw.get("Instances") or [])
        return Group(
            name=name,
            min_size=int(raw["MinSize"]),
            max_size=int(raw["MaxSize"]),
            desired=int(raw["DesiredCapacity"]),
            instances=instances,
            suspended=tuple(sorted(p["ProcessName"] for p in raw.get("SuspendedProcesses") or [])),
        )

    def find_instance(self, instance_id: str) -> Instance | None:
        """The instance as its group sees it, or None when it belongs to no group (terminated, detached)."""
        answer = self._call(
            self.autoscaling.describe_auto_scaling_instances,
            what=f"describe Auto Scaling instance {instance_id}",
            InstanceIds=[instance_id],
        )
        for raw in answer.get("AutoScalingInstances") or []:
            if raw.get("InstanceId") == instance_id:
                return _instance(raw, raw["AutoScalingGroupName"])
        return None

    def instance_state(self, instance_id: str) -> str | None:
        """EC2 state name (pending, running, shutting-down, terminated, ...); None when EC2 does not know it."""
        try:
            answer = self._call(
                self.ec2.describe_instances, what=f"describe EC2 instance {instance_id}", InstanceIds=[instance_id]
            )
        except AwsError as exc:
            if exc.code in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
                return None
            raise
        for reservation in answer.get("Reservations") or []:
            for raw in reservation.get("Instances") or []:
                if raw.get("InstanceId") == instance_id:
                    return str(raw.get("State", {}).get("Name"))
        return None

    def launch_times(self, instance_ids: list[str]) -> dict[str, str]:
        """ISO launch time of each instance EC2 knows (to tell the newest ones apart)."""
        answer = self._call(self.ec2.describe_instances, what="describe EC2 instances", InstanceIds=list(instance_ids))
        return {
            raw["InstanceId"]: raw["LaunchTime"].isoformat() if hasattr(raw.get("LaunchTime"), "isoformat") else ""
            for reservation in answer.get("Reservations") or []
            for raw in reservation.get("Instances") or []
        }

    def termination_hooks(self, group: str) -> list[str]:
        """Names of the group's lifecycle hooks that hold terminating instances (Terminating:Wait)."""
        answer = self._call(
            self.autoscaling.describe_lifecycle_hooks,
            what=f"describe lifecycle hooks of {group!r}",
            AutoScalingGroupName=group,
        )
        return [
            h["LifecycleHookName"]
            for h in answer.get("LifecycleHooks") or []
            if h.get("LifecycleTransition") == "autoscaling:EC2_INSTANCE_TERMINATING"
        ]

    # --- mutations -----------------------------------------------------------------------------------------------
    def set_desired_capacity(self, group: Group, desired: int, *, allow_raise_max: bool = False) -> dict[str, Any]:
        """Set desired capacity; refuses to pass max unless allowed, and then raises max to exactly `desired`.

        moto accepts desired > max, AWS does not: the check is ours so both behave the same.
        """
        if desired < group.min_size:
            raise AwsInputError(
                f'Auto Scaling group "{group.name}": desired {desired} is below its minimum size {group.min_size}',
                code="ValidationError",
            )
        if desired > group.max_size and not allow_raise_max:
            raise AwsInputError(
                f'Auto Scaling group "{group.name}" is at its maximum size ({group.max_size}): '
                f"cannot set desired capacity {group.desired} -> {desired}",
                code="GroupAtMax",
                hint="raise the group's max size, or allow raising it (allow_raise_max=true; it is restored after)",
            )
        what = f'set desired capacity {group.desired} -> {desired} on group "{group.name}"'
        if desired > group.max_size:
            self._mutate(
                "update_auto_scaling_group",
                what=what,
                AutoScalingGroupName=group.name,
                MaxSize=desired,
                DesiredCapacity=desired,
            )
            return {"desired": desired, "max_size": desired, "raised_max": True}
        self._mutate(
            "set_desired_capacity",
            what=what,
            AutoScalingGroupName=group.name,
            DesiredCapacity=desired,
            HonorCooldown=False,
        )
        return {"desired": desired, "max_size": group.max_size, "raised_max": False}

    def update_limits(self, group: str, *, max_size: int | None = None, desired: int | None = None) -> None:
        """Restore max size (and desired with it when given) in one call."""
        kwargs: dict[str, Any] = {"AutoScalingGroupName": group}
        if max_size is not None:
            kwargs["MaxSize"] = max_size
        if desired is not None:
            kwargs["DesiredCapacity"] = desired
        self._mutate("update_auto_scaling_group", what=f'update limits of group "{group}"', **kwargs)

    def suspend_processes(self, group: str, processes: Iterable[str]) -> None:
        self._processes("suspend", group, processes)

    def resume_processes(self, group: str, processes: Iterable[str]) -> None:
        self._processes("resume", group, processes)

    def _processes(self, verb: str, group: str, processes: Iterable[str]) -> None:
        """suspend_processes / resume_processes: one sorted call, none at all for an empty list."""
        names = sorted(set(processes))
        if names:
            self._mutate(
                f"{verb}_processes",
                what=f'{verb} {", ".join(names)} on group "{group}"',
                AutoScalingGroupName=group,
                ScalingProcesses=names,
            )

    def terminate_instance(self, instance_id: str, *, decrement: bool) -> dict[str, Any]:
        """Terminate through the group (so it knows), decrementing desired capacity or letting it replace."""
        answer = self._mutate(
            "terminate_instance_in_auto_scaling_group",
            what=f"terminate instance {instance_id}" + (" (decrementing desired)" if decrement else ""),
            synthetic={"Activity": {"StatusCode": "DryRun"}},
            InstanceId=instance_id,
            ShouldDecrementDesiredCapacity=decrement,
        )
        activity = answer.get("Activity") or {}
        return {"activity_id": activity.get("ActivityId"), "status": activity.get("StatusCode")}

    def detach_instance(self, group: str, instance_id: str, *, decrement: bool) -> None:
        self._mutate(
            "detach_instances",
            what=f'detach instance {instance_id} from group "{group}"',
            AutoScalingGroupName=group,
            InstanceIds=[instance_id],
            ShouldDecrementDesiredCapacity=decrement,
        )

    def complete_lifecycle_action(self, group: str, hook: str, instance_id: str, *, result: str = "CONTINUE") -> None:
        """Let a terminating instance held by a lifecycle hook go on (moto does not implement this call)."""
        self._mutate(
            "complete_lifecycle_action",
            what=f'complete lifecycle action {hook!r} for {instance_id} on group "{group}"',
            AutoScalingGroupName=group,
            LifecycleHookName=hook,
            InstanceId=instance_id,
            LifecycleActionResult=result,
        )

    # --- waits ---------------------------------------------------------------------------------------------------
    def _sleep(self, seconds: float) -> None:
        started = time.monotonic()
        time.sleep(seconds)
        self.waited_s += time.monotonic() - started

    def wait_in_service(
        self,
        group: str,
        *,
        count: int,
        timeout_s: float,
        check: Callable[[], None] | None = None,
    ) -> Group:
        """Until at least `count` instances of the group are InService; AwsError naming the shortfall on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            current = self.describe_group(group)
            if len(current.in_service) >= count:
                return current
            if time.monotonic() >= deadline:
                states = ", ".join(f"{i.id}={i.lifecycle_state}" for i in current.instances) or "no instances"
                raise AwsError(
                    f'group "{group}": {len(current.in_service)} of {count} instances InService '
                    f"after {timeout_s:.0f}s ({states})",
                    code="WaitTimeout",
                )
            if check is not None:
                check()
            self._sleep(self.poll_s)

    def wait_instance_gone(self, instance_id: str, *, timeout_s: float) -> None:
        """Until the instance has left its group and EC2 reports it shutting down or terminated."""
        deadline = time.monotonic() + timeout_s
        while True:
            member = self.find_instance(instance_id)
            if member is None or member.lifecycle_state == "Terminated":
                state = self.instance_state(instance_id)
                if state is None or state in GONE_STATES:
                    return
            if time.monotonic() >= deadline:
                where = member.lifecycle_state if member else "detached"
                raise AwsError(f"instance {instance_id} still {where} after {timeout_s:.0f}s", code="WaitTimeout")
            self._sleep(self.poll_s)
