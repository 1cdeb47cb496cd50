"""Auto Scaling actions: describe a group, add nodes, replace a node, roll a group, and always put the group back.

Crash safety: every mutating action records what it is about to do (``ctx.record_intent``) before calling AWS,
and on re-entry reconciles with the group's actual state instead of repeating itself: a scale-up aims at an
absolute desired capacity fixed in its intent ("desired 3 -> 4"), so a resumed step never adds a second node;
a termination checks whether the instance is already on its way out.

Restoring: `aws.describe_group` is the first step of every playbook here and snapshots desired, max, suspended
processes and instances before any change. `aws.restore_group` takes that snapshot (by reference) and puts the
group back whatever happened in between, so cleanup works even when a step died halfway and left no outputs.

Dry run: the AWS client records intended calls instead of making them; the waits here return at once with
predicted outputs, because nothing they would wait for is going to happen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kubeops.actions.context import StepContext
from kubeops.actions.registry import Plan, action
from kubeops.errors import ActionError, AwsInputError, InputError, NotFound

# Scaling processes suspended while a node is replaced: they would otherwise fight the replacement
# (rebalance across zones, replace the instance we just took out, act on alarms or schedules).
DEFAULT_PROCESSES = ["AZRebalance", "ReplaceUnhealthy", "AlarmNotification", "ScheduledActions"]
POLL_S = 0.25
FALLBACK_POLL_S = 5.0  # waits on Kubernetes objects follow watches; this slow poll only when watches keep failing


def _group_dict(ctx: StepContext, name: str) -> dict[str, Any]:
    return ctx.aws.describe_group(name).as_dict()


def _check_headroom(group: Any, need: int, allow_raise_max: bool) -> None:
    if need > 0 and group.desired + need > group.max_size and not allow_raise_max:
        raise AwsInputError(
            f'Auto Scaling group "{group.name}" is at its maximum size ({group.max_size}): adding {need} '
            f"instance(s) needs desired capacity {group.desired} -> {group.desired + need}",
            code="GroupAtMax",
            hint="raise the group's max size, or pass allow_raise_max=true (max is restored afterwards)",
        )


def _wait_s(ctx: StepContext, timeout_s: float) -> float:
    """The time a wait gets: the action's own `timeout_s`, cut short by the step's timeout when that ends first
    (as k8s.wait_node_ready does); a step already past its deadline fails here instead of waiting again."""
    ctx.check_deadline()
    remaining = ctx.remaining_s()
    return timeout_s if remaining is None else min(timeout_s, remaining)


def _sleep(ctx: StepContext, seconds: float) -> None:
    ctx.check_deadline()
    remaining = ctx.remaining_s()
    time.sleep(seconds if remaining is None else max(0.0, min(seconds, remaining)))


# --- aws.describe_group ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DescribeGroupParams:
    group: str = field(metadata={"help": "Auto Scaling group name"})
    need: int = field(default=0, metadata={"help": "instances the run will add: refuse now if max would pass"})
    allow_raise_max: bool = field(default=False, metadata={"help": "allow raising max (restored afterwards)"})


GROUP_OUTPUTS = ("group", "min_size", "max_size", "desired", "instances", "in_service", "suspended")


@action(
    "aws.describe_group",
    params=DescribeGroupParams,
    mutates=False,
    outputs=(*GROUP_OUTPUTS, "termination_hooks"),
)
def describe_group(ctx: StepContext, p: DescribeGroupParams) -> dict[str, Any]:
    """Snapshot the group before any change (restore_group puts it back to this); refuse early at max."""
    group = ctx.aws.describe_group(p.group)
    _check_headroom(group, p.need, p.allow_raise_max)
    return {**group.as_dict(), "termination_hooks": ctx.aws.termination_hooks(p.group)}


# --- aws.node_instance -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NodeParams:
    node: str = field(metadata={"help": "Kubernetes node name"})


def node_instance_info(ctx: StepContext, node_name: str) -> dict[str, Any]:
    """Node -> providerID -> instance -> group; every dead end is an input error (nothing was changed)."""
    from kubeops.clients import nodes as node_api

    try:
        node = node_api.get_node(ctx.kube, node_name)
    except NotFound:
        raise InputError(f"node {node_name!r} not found", hint="`kubectl get nodes` lists the nodes") from None
    instance_id = node_api.node_instance_id(node)
    if instance_id is None:
        provider = (node.get("spec") or {}).get("providerID") or "(none)"
        raise InputError(f"node {node_name!r} is not an EC2 instance (providerID {provider})")
    member = ctx.aws.find_instance(instance_id)
    if member is None:
        raise InputError(f"instance {instance_id} of node {node_name!r} belongs to no Auto Scaling group")
    return {
        "node": node_name,
        "instance_id": instance_id,
        "group": member.group,
        "zone": member.zone,
        "lifecycle_state": member.lifecycle_state,
    }


@action(
    "aws.node_instance",
    params=NodeParams,
    mutates=False,
    outputs=("node", "instance_id", "group", "zone", "lifecycle_state"),
)
def node_instance(ctx: StepContext, p: NodeParams) -> dict[str, Any]:
    """Which EC2 instance and Auto Scaling group a node is (from its providerID)."""
    return node_instance_info(ctx, p.node)


# --- aws.suspend_processes / aws.resume_processes ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProcessesParams:
    group: str = field(metadata={"help": "Auto Scaling group name"})
    processes: list[str] = field(
        default_factory=lambda: list(DEFAULT_PROCESSES), metadata={"help": "scaling processes"}
    )


def _plan_suspend(ctx: StepContext, p: ProcessesParams) -> Plan:
    group = ctx.aws.describe_group(p.group)
    already = sorted(set(p.processes) & set(group.suspended))
    ours = sorted(set(p.processes) - set(group.suspended))
    details = [f"already suspended, left as they are: {', '.join(already)}"] if already else []
    return Plan(
        summary=f'suspend {", ".join(ours) or "nothing"} on group "{p.group}"',
        details=details,
        outputs={"group": p.group, "suspended": ours, "already_suspended": already},
    )


@action(
    "aws.suspend_processes",
    params=ProcessesParams,
    mutates=True,
    plan=_plan_suspend,
    outputs=("group", "suspended", "already_suspended"),
)
def suspend_processes(ctx: StepContext, p: ProcessesParams) -> dict[str, Any]:
    """Suspend scaling processes for the replacement; remembers which were already suspended by someone else."""
    if ctx.intent is None:
        already = sorted(set(p.processes) & set(ctx.aws.describe_group(p.group).suspended))
        ctx.record_intent({"group": p.group, "already_suspended": already, "processes": sorted(p.processes)})
    else:  # re-entered: after our own call, everything looks "already suspended"; trust the first reading
        already = list(ctx.intent["already_suspended"])
    ours = sorted(set(p.processes) - set(already))
    ctx.aws.suspend_processes(p.group, ours)
    return {"group": p.group, "suspended": ours, "already_suspended": already}


@dataclass(frozen=True, slots=True)
class ResumeParams:
    group: str = field(metadata={"help": "Auto Scaling group name"})
    processes: list[str] = field(
        default_factory=lambda: list(DEFAULT_PROCESSES), metadata={"help": "scaling processes to resume"}
    )
    keep: list[str] = field(
        default_factory=list, metadata={"help": "leave these suspended (they were suspended before the run)"}
    )


def _resume_targets(ctx: StepContext, p: ResumeParams) -> list[str]:
    current = set(ctx.aws.describe_group(p.group).suspended)
    return sorted((set(p.processes) - set(p.keep)) & current)


def _plan_resume(ctx: StepContext, p: ResumeParams) -> Plan:
    names = _resume_targets(ctx, p)
    return Plan(summary=f'resume {", ".join(names) or "nothing"} on group "{p.group}"', outputs={"resumed": names})


@action("aws.resume_processes", params=ResumeParams, mutates=True, plan=_plan_resume, outputs=("resumed",))
def resume_processes(ctx: StepContext, p: ResumeParams) -> dict[str, Any]:
    """Resume the processes this run suspended, never the ones listed in `keep` (idempotent)."""
    names = _resume_targets(ctx, p)
    ctx.aws.resume_processes(p.group, names)
    return {"resumed": names}


# --- aws.scale_up / aws.set_desired ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ScaleUpParams:
    group: str = field(metadata={"help": "Auto Scaling group name"})
    count: int = field(default=1, metadata={"help": "instances to add"})
    allow_raise_max: bool = field(default=False, metadata={"help": "raise max if needed (restore it afterwards)"})


@dataclass(frozen=True, slots=True)
class SetDesiredParams:
    group: str = field(metadata={"help": "Auto Scaling group name"})
    desired: int = field(metadata={"help": "the desired capacity to set"})
    allow_raise_max: bool = field(default=False, metadata={"help": "raise max if needed (restore it afterwards)"})


SCALE_OUTPUTS = ("group", "previous_desired", "desired", "max_size", "raised_max", "instances_before")


def _scale_outputs(group: Any, target: int, before: dict[str, Any] | None = None) -> dict[str, Any]:
    before = before or {"from": group.desired, "instances_before": [i.id for i in group.instances]}
    return {
        "group": group.name,
        "previous_desired": before["from"],
        "desired": target,
        "max_size": max(group.max_size, target),
        "raised_max": target > group.max_size,
        "instances_before": list(before["instances_before"]),
    }


def _scale_to(ctx: StepContext, name: str, target_of: Any, allow_raise_max: bool) -> dict[str, Any]:
    """Shared body: fix the absolute target in the intent first, then converge the group to it."""
    group = ctx.aws.describe_group(name)
    if ctx.intent is None:
        target = int(target_of(group))
        if target > group.max_size and not allow_raise_max:
            ctx.aws.set_desired_capacity(group, target)  # raises the clear "at its maximum size" error
        ctx.record_intent(
            {
                "group": name,
                "from": group.desired,
                "to": target,
                "max_before": group.max_size,
                "instances_before": [i.id for i in group.instances],
                "summary": f'desired {group.desired} -> {target} on group "{name}"',
            }
        )
        before = None
    else:
        target = int(ctx.intent["to"])
        before = dict(ctx.intent)
        ctx.log.info("aws.scale.reconcile", group=name, desired=group.desired, target=target)
    if group.desired < target:
        ctx.aws.set_desired_capacity(group, target, allow_raise_max=allow_raise_max)
    elif before is not None:
        ctx.log.info("aws.scale.already_done", group=name, desired=group.desired)
    return _scale_outputs(group, target, before)


def _plan_scale(ctx: StepContext, name: str, target: int, allow_raise_max: bool) -> Plan:
    group = ctx.aws.describe_group(name)
    ctx.aws.set_desired_capacity(group, target, allow_raise_max=allow_raise_max)  # dry-run client: checks only
    details = [f"raise max {group.max_size} -> {target} (restored by restore_group)"] if target > group.max_size else []
    return Plan(
        summary=f'set desired capacity {group.desired} -> {target} on group "{name}"',
        details=details,
        outputs=_scale_outputs(group, target),
    )


@action(
    "aws.scale_up",
    params=ScaleUpParams,
    mutates=True,
    plan=lambda ctx, p: _plan_scale(ctx, p.group, ctx.aws.describe_group(p.group).desired + p.count, p.allow_raise_max),
    outputs=SCALE_OUTPUTS,
)
def scale_up(ctx: StepContext, p: ScaleUpParams) -> dict[str, Any]:
    """Add `count` instances: desired d -> d+count, fixed in the intent so a resume never adds twice."""
    if p.count < 1:
        raise InputError(f"aws.scale_up: count must be at least 1, got {p.count}")
    return _scale_to(ctx, p.group, lambda g: g.desired + p.count, p.allow_raise_max)


@action(
    "aws.set_desired",
    params=SetDesiredParams,
    mutates=True,
    plan=lambda ctx, p: _plan_scale(ctx, p.group, p.desired, p.allow_raise_max),
    outputs=SCALE_OUTPUTS,
)
def set_desired(ctx: StepContext, p: SetDesiredParams) -> dict[str, Any]:
    """Set desired capacity to an absolute value (never past max unless allowed)."""
    return _scale_to(ctx, p.group, lambda g: p.desired, p.allow_raise_max)


# --- waits -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WaitInServiceParams:
    group: str = field(metadata={"help": "Auto Scaling group name"})
    count: int | None = field(default=None, metadata={"help": "InService instances to wait for (default: desired)"})
    exclude: list[str] = field(default_factory=list, metadata={"help": "instances that are not new (before)"})
    timeout_s: float = field(default=900.0, metadata={"help": "give up after this long"})


@action(
    "aws.wait_instances_in_service",
    params=WaitInServiceParams,
    mutates=False,
    outputs=("group", "in_service", "new_instances"),
)
def wait_instances_in_service(ctx: StepContext, p: WaitInServiceParams) -> dict[str, Any]:
    """Wait until the group has `count` (default: its desired capacity) instances InService."""
    group = ctx.aws.describe_group(p.group)
    count = p.count if p.count is not None else group.desired
    if ctx.dry_run:  # the scale-up was only planned: nothing will launch
        predicted = [f"(new instance {n + 1})" for n in range(max(0, count - len(group.in_service)))]
        new = [i for i in group.in_service if i not in p.exclude] + predicted
        return {"group": p.group, "in_service": group.in_service + predicted, "new_instances": new}
    group = ctx.aws.wait_in_service(
        p.group, count=count, timeout_s=_wait_s(ctx, p.timeout_s), check=ctx.check_deadline
    )
    in_service = group.in_service
    return {"group": p.group, "in_service": in_service, "new_instances": [i for i in in_service if i not in p.exclude]}


@dataclass(frozen=True, slots=True)
class WaitNodesParams:
    instance_ids: list[str] = field(metadata={"help": "EC2 instances whose Nodes must be Ready"})
    timeout_s: float = field(default=900.0, metadata={"help": "give up after this long"})


def nodes_by_instance(ctx: StepContext) -> dict[str, dict[str, Any]]:
    """Every Node with an EC2 providerID, by instance id."""
    from kubeops.clients import nodes as node_api

    found: dict[str, dict[str, Any]] = {}
    for node in node_api.list_nodes(ctx.kube):
        instance_id = node_api.node_instance_id(node)
        if instance_id:
            found[instance_id] = node
    return found


def _watch_until(ctx: StepContext, mirrors: list[Any], condition: Any, timeout_s: float) -> Any:
    """`condition()` re-checked on every change the mirrors see (no polling); None when `timeout_s` passes."""
    from kubeops.clients.watch import wait_until

    deadline = time.monotonic() + timeout_s
    remaining = ctx.remaining_s()
    if remaining is not None:
        deadline = min(deadline, time.monotonic() + remaining)
    for mirror in mirrors:
        mirror.fallback_poll_s = FALLBACK_POLL_S
    return wait_until(mirrors, condition, deadline=deadline, check=ctx.check_deadline)


def wait_for_nodes(ctx: StepContext, instance_ids: list[str], timeout_s: float) -> list[str]:
    """Block until each instance has a Ready Node; returns the node names in the same order (watches Nodes)."""
    from kubeops.clients import nodes as node_api
    from kubeops.clients.watch import Mirror

    found: dict[str, dict[str, Any]] = {}

    def missing() -> list[str]:
        return [i for i in instance_ids if i not in found or not node_api.node_is_ready(found[i])]

    def all_ready() -> bool:
        found.clear()
        for node in nodes.objects():
            instance_id = node_api.node_instance_id(node)
            if instance_id:
                found[instance_id] = node
        return not missing()

    with Mirror(ctx.kube, "/api/v1/nodes", what="nodes") as nodes:
        ok = _watch_until(ctx, [nodes], all_ready, timeout_s)
    if ok:
        return [found[i]["metadata"]["name"] for i in instance_ids]
    states = ", ".join(
        f"{i}: " + (f"node {found[i]['metadata']['name']} NotReady" if i in found else "no node yet")
        for i in missing()
    )
    raise ActionError(f"nodes not Ready after {timeout_s:.0f}s ({states})")


@action("aws.wait_nodes_ready", params=WaitNodesParams, mutates=False, outputs=("nodes", "instance_ids"))
def wait_nodes_ready(ctx: StepContext, p: WaitNodesParams) -> dict[str, Any]:
    """Wait until the Kubernetes Node of each instance (matched by providerID) exists and is Ready."""
    if ctx.dry_run:
        found = nodes_by_instance(ctx)
        names = [found[i]["metadata"]["name"] if i in found else f"(node of {i})" for i in p.instance_ids]
        return {"nodes": names, "instance_ids": list(p.instance_ids)}
    timeout = _wait_s(ctx, p.timeout_s)
    return {"nodes": wait_for_nodes(ctx, list(p.instance_ids), timeout), "instance_ids": list(p.instance_ids)}


def wait_node_gone(ctx: StepContext, name: str, timeout_s: float) -> None:
    """Block until the Node object is deleted (the cloud controller does it when the instance goes); watches it."""
    from kubeops.clients.watch import Mirror

    one = {"fieldSelector": f"metadata.name={name}"}
    with Mirror(ctx.kube, "/api/v1/nodes", query=one, what=f"node {name}") as node:
        gone = _watch_until(ctx, [node], lambda: node.get(name) is None, timeout_s)
    if not gone:
        raise ActionError(f"node {name} still registered {timeout_s:.0f}s after its instance terminated")


# --- aws.terminate_instance / aws.detach_instance / aws.complete_lifecycle_action --------------------------------
@dataclass(frozen=True, slots=True)
class TerminateParams:
    instance_id: str = field(metadata={"help": "EC2 instance id"})
    decrement: bool = field(default=True, metadata={"help": "decrement desired capacity (no replacement)"})
    wait: bool = field(default=True, metadata={"help": "wait until the instance has left the group"})
    node: str | None = field(default=None, metadata={"help": "also wait until this Node object is gone"})
    lifecycle_result: str = field(default="CONTINUE", metadata={"help": "answer to a termination lifecycle hook"})
    timeout_s: float = field(default=900.0, metadata={"help": "give up waiting after this long"})


def complete_waiting_hooks(ctx: StepContext, group: str, instance_id: str, result: str) -> list[str]:
    """Answer every termination hook holding the instance in Terminating:Wait; returns the hooks answered."""
    member = ctx.aws.find_instance(instance_id)
    if member is None or member.lifecycle_state != "Terminating:Wait":
        return []
    hooks = ctx.aws.termination_hooks(group)
    for hook in hooks:
        ctx.aws.complete_lifecycle_action(group, hook, instance_id, result=result)
    return hooks


def terminate_and_wait(ctx: StepContext, instance_id: str, p: TerminateParams, *, record: Any = None) -> dict[str, Any]:
    """The idempotent core of a termination (also used by restore and replace_group).

    `record(member)` is called after the lookup and before the call, so the caller can persist its intent.
    """
    member = ctx.aws.find_instance(instance_id)
    if record is not None:
        record(member)
    if member is None:
        state = ctx.aws.instance_state(instance_id)
        if state is None or state in ("shutting-down", "terminated"):
            if p.node and not ctx.dry_run and p.wait:
                wait_node_gone(ctx, p.node, _wait_s(ctx, p.timeout_s))
            return {"instance_id": instance_id, "terminated": True, "already": True, "hooks_completed": []}
        raise ActionError(f"instance {instance_id} is {state} but belongs to no Auto Scaling group: not terminating it")
    already = member.leaving
    if not already:
        ctx.aws.terminate_instance(instance_id, decrement=p.decrement)
        if p.node and not ctx.dry_run:
            how = "desired capacity decremented" if p.decrement else "the group replaces it"
            ctx.record_node_event(p.node, "InstanceTerminated", f"Instance {instance_id} of node {p.node} "
                                  f'terminated through Auto Scaling group "{member.group}" ({how})')
    hooks: list[str] = []
    if not ctx.dry_run and p.wait:
        deadline = time.monotonic() + _wait_s(ctx, p.timeout_s)
        known = ctx.aws.termination_hooks(member.group)  # once: most groups have none
        while True:
            current = ctx.aws.find_instance(instance_id)
            if current is None or current.lifecycle_state == "Terminated":
                break
            if current.lifecycle_state == "Terminating:Wait" and known and not hooks:
                for hook in known:
                    ctx.aws.complete_lifecycle_action(member.group, hook, instance_id, result=p.lifecycle_result)
                hooks = known
                continue
            if time.monotonic() >= deadline:
                raise ActionError(f"instance {instance_id} still {current.lifecycle_state} after {p.timeout_s:.0f}s")
            _sleep(ctx, POLL_S)
        if p.node:
            wait_node_gone(ctx, p.node, max(1.0, deadline - time.monotonic()))
    elif not ctx.dry_run:
        hooks = complete_waiting_hooks(ctx, member.group, instance_id, p.lifecycle_result)
    return {"instance_id": instance_id, "terminated": True, "already": already, "hooks_completed": hooks}


def _plan_terminate(ctx: StepContext, p: TerminateParams) -> Plan:
    member = ctx.aws.find_instance(p.instance_id)
    if member is None:
        return Plan(summary=f"instance {p.instance_id} is not in any group: nothing to terminate")
    group = ctx.aws.describe_group(member.group)
    after = group.desired - 1 if p.decrement else group.desired
    hooks = ctx.aws.termination_hooks(member.group)
    return Plan(
        summary=f'terminate {p.instance_id} in group "{member.group}" (desired {group.desired} -> {after})',
        details=[f"answer termination hooks {', '.join(hooks)} with {p.lifecycle_result}"] if hooks else [],
        outputs={"instance_id": p.instance_id, "terminated": True, "already": False, "hooks_completed": []},
    )


@action(
    "aws.terminate_instance",
    params=TerminateParams,
    mutates=True,
    plan=_plan_terminate,
    outputs=("instance_id", "terminated", "already", "hooks_completed"),
)
def terminate_instance(ctx: StepContext, p: TerminateParams) -> dict[str, Any]:
    """Terminate through the group (decrementing desired or not); a no-op when already terminating or gone."""

    def record(member: Any) -> None:
        if ctx.intent is None:
            ctx.record_intent(
                {
                    "instance_id": p.instance_id,
                    "group": member.group if member else None,
                    "decrement": p.decrement,
                    "summary": f"terminate {p.instance_id}" + (" decrementing desired" if p.decrement else ""),
                }
            )

    return terminate_and_wait(ctx, p.instance_id, p, record=record)


@dataclass(frozen=True, slots=True)
class DetachParams:
    instance_id: str = field(metadata={"help": "EC2 instance id"})
    decrement: bool = field(default=False, metadata={"help": "decrement desired (otherwise the group replaces it)"})


def _plan_detach(ctx: StepContext, p: DetachParams) -> Plan:
    member = ctx.aws.find_instance(p.instance_id)
    if member is None:
        return Plan(summary=f"instance {p.instance_id} is in no group: nothing to detach", outputs={"detached": False})
    return Plan(summary=f'detach {p.instance_id} from group "{member.group}"', outputs={"detached": True})


@action("aws.detach_instance", params=DetachParams, mutates=True, plan=_plan_detach, outputs=("detached", "group"))
def detach_instance(ctx: StepContext, p: DetachParams) -> dict[str, Any]:
    """Take an instance out of its group, leaving it running (for debugging); idempotent."""
    member = ctx.aws.find_instance(p.instance_id)
    if member is None:
        return {"detached": False, "group": (ctx.intent or {}).get("group")}
    ctx.record_intent({"instance_id": p.instance_id, "group": member.group, "decrement": p.decrement})
    if not member.leaving:
        ctx.aws.detach_instance(member.group, p.instance_id, decrement=p.decrement)
    return {"detached": True, "group": member.group}


@dataclass(frozen=True, slots=True)
class LifecycleParams:
    group: str = field(metadata={"help": "Auto Scaling group name"})
    instance_id: str = field(metadata={"help": "EC2 instance id"})
    result: str = field(default="CONTINUE", metadata={"help": "CONTINUE or ABANDON"})


def _plan_lifecycle(ctx: StepContext, p: LifecycleParams) -> Plan:
    hooks = ctx.aws.termination_hooks(p.group)
    return Plan(summary=f"complete lifecycle hooks {hooks} for {p.instance_id} with {p.result} if it waits")


@action(
    "aws.complete_lifecycle_action",
    params=LifecycleParams,
    mutates=True,
    plan=_plan_lifecycle,
    outputs=("hooks_completed",),
)
def complete_lifecycle_action(ctx: StepContext, p: LifecycleParams) -> dict[str, Any]:
    """Release an instance held in Terminating:Wait by the group's termination hooks (no-op otherwise)."""
    if p.result not in ("CONTINUE", "ABANDON"):
        raise InputError(f"aws.complete_lifecycle_action: result must be CONTINUE or ABANDON, got {p.result!r}")
    return {"hooks_completed": complete_waiting_hooks(ctx, p.group, p.instance_id, p.result)}


# --- aws.restore_group --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RestoreParams:
    group: str = field(metadata={"help": "Auto Scaling group name"})
    desired: int = field(metadata={"help": "original desired capacity (from aws.describe_group)"})
    max_size: int = field(metadata={"help": "original max size (from aws.describe_group)"})
    suspended: list[str] = field(default_factory=list, metadata={"help": "processes suspended before the run"})
    instances: list[str] = field(default_factory=list, metadata={"help": "instances before the run"})
    processes: list[str] = field(
        default_factory=lambda: list(DEFAULT_PROCESSES), metadata={"help": "processes this run suspends"}
    )


def restore_plan(ctx: StepContext, p: RestoreParams) -> dict[str, Any]:
    """What it takes to put the group back, computed from its actual state (so re-running is harmless)."""
    group = ctx.aws.describe_group(p.group)
    remove: list[str] = []
    set_desired: int | None = None
    excess = group.desired - p.desired
    if excess > 0:
        # Instances this run added and not yet swapped in for an old one: newest first.
        added = [i.id for i in group.instances if i.id not in p.instances and not i.leaving]
        launched = ctx.aws.launch_times(added) if added else {}
        added.sort(key=lambda i: (launched.get(i, ""), i), reverse=True)
        remove = added[:excess]
        if len(remove) < excess:
            set_desired = p.desired
    elif excess < 0:
        set_desired = p.desired
    resume = sorted((set(p.processes) - set(p.suspended)) & set(group.suspended))
    return {
        "group": p.group,
        "remove": remove,
        "set_desired": set_desired,
        "max_size": p.max_size if group.max_size != p.max_size else None,
        "resume": resume,
        "summary": f'restore group "{p.group}": desired {group.desired} -> {p.desired}, '
        f"max {group.max_size} -> {p.max_size}, resume {', '.join(resume) or 'nothing'}",
    }


def _plan_restore(ctx: StepContext, p: RestoreParams) -> Plan:
    todo = restore_plan(ctx, p)
    details = [f"terminate {i} (added by this run), decrementing desired" for i in todo["remove"]]
    return Plan(summary=todo["summary"], details=details, outputs={k: v for k, v in todo.items() if k != "summary"})


@action(
    "aws.restore_group",
    params=RestoreParams,
    mutates=True,
    plan=_plan_restore,
    outputs=("group", "remove", "set_desired", "max_size", "resume"),
)
def restore_group(ctx: StepContext, p: RestoreParams) -> dict[str, Any]:
    """Put desired capacity, max size and suspended processes back as the snapshot had them (success or failure)."""
    todo = restore_plan(ctx, p)
    ctx.record_intent(todo)
    for instance_id in todo["remove"]:
        terminate_and_wait(ctx, instance_id, TerminateParams(instance_id=instance_id, decrement=True, wait=False))
    if todo["set_desired"] is not None or todo["max_size"] is not None:
        ctx.aws.update_limits(p.group, max_size=todo["max_size"], desired=todo["set_desired"])
    ctx.aws.resume_processes(p.group, todo["resume"])
    return {k: v for k, v in todo.items() if k != "summary"}


# --- cluster.validate --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ValidateParams:
    timeout_s: float = field(default=300.0, metadata={"help": "keep checking this long before failing"})
    namespace: str | None = field(default=None, metadata={"help": "only pods of this namespace (default: all)"})


def cluster_problems(ctx: StepContext, namespace: str | None = None) -> dict[str, Any]:
    """kops-style health: every node Ready, no pod Pending. Returns counts and what is wrong."""
    from kubeops.clients import nodes as node_api
    from kubeops.clients import pods as pod_api

    return _problems(node_api.list_nodes(ctx.kube), pod_api.list_pods(ctx.kube, namespace=namespace)[0])


def _problems(nodes: list[dict[str, Any]], pods: list[dict[str, Any]]) -> dict[str, Any]:
    from kubeops.clients import nodes as node_api

    not_ready = sorted(n["metadata"]["name"] for n in nodes if not node_api.node_is_ready(n))
    pending = sorted(
        f"{p['metadata'].get('namespace')}/{p['metadata']['name']}"
        for p in pods
        if (p.get("status") or {}).get("phase") == "Pending" and not p["metadata"].get("deletionTimestamp")
    )
    return {"nodes": len(nodes), "not_ready_nodes": not_ready, "pending_pods": pending, "pods": len(pods)}


def validate_cluster(ctx: StepContext, timeout_s: float, namespace: str | None = None) -> dict[str, Any]:
    """Wait until the cluster is healthy; ActionError naming the NotReady nodes and Pending pods otherwise.

    One list of nodes and pods; when something is wrong, both are watched (not listed again every quarter
    second: on 2,000 nodes that is 60,000 pods a poll) until it is right or the time is up.
    """
    from kubeops.clients import nodes as node_api
    from kubeops.clients import pods as pod_api
    from kubeops.clients.watch import Mirror

    node_items = node_api.list_nodes(ctx.kube)
    pod_items, pod_version = pod_api.list_pods(ctx.kube, namespace=namespace)
    state = _problems(node_items, pod_items)
    if not ctx.dry_run and (state["not_ready_nodes"] or state["pending_pods"]):
        pods_path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
        seen = {"state": state}

        def healthy() -> bool:
            seen["state"] = _problems(nodes.objects(), pods.objects())
            return not seen["state"]["not_ready_nodes"] and not seen["state"]["pending_pods"]

        with (
            Mirror(ctx.kube, "/api/v1/nodes", what="nodes") as nodes,
            Mirror(ctx.kube, pods_path, what="pods", seed=(pod_items, pod_version)) as pods,
        ):
            _watch_until(ctx, [nodes, pods], healthy, timeout_s)
        state = seen["state"]
    if not state["not_ready_nodes"] and not state["pending_pods"]:
        return {**state, "valid": True}
    parts = []
    if state["not_ready_nodes"]:
        parts.append("NotReady nodes: " + ", ".join(state["not_ready_nodes"]))
    if state["pending_pods"]:
        pods_text = state["pending_pods"]
        parts.append(
            "Pending pods: " + ", ".join(pods_text[:10])
            + (f" (+{len(pods_text) - 10} more)" if len(pods_text) > 10 else "")
        )
    raise ActionError(
        f"cluster validation failed after {timeout_s:.0f}s: " + "; ".join(parts),
        hint="fix the cluster (or wait), then `invoke resume`: the run continues from this step",
    )


@action(
    "cluster.validate",
    params=ValidateParams,
    mutates=False,
    outputs=("valid", "nodes", "pods", "not_ready_nodes", "pending_pods"),
)
def validate(ctx: StepContext, p: ValidateParams) -> dict[str, Any]:
    """Every node Ready and no pod Pending (kops-style), waiting up to `timeout_s` for it to settle."""
    return validate_cluster(ctx, _wait_s(ctx, p.timeout_s), p.namespace)


# --- aws.replace_group -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReplaceGroupParams:
    group: str = field(metadata={"help": "Auto Scaling group whose every instance is replaced"})
    batch: int = field(default=1, metadata={"help": "surge: instances added (and old ones replaced) at a time"})
    allow_raise_max: bool = field(default=False, metadata={"help": "raise max for the surge (restored afterwards)"})
    ready_timeout_s: float = field(default=900.0, metadata={"help": "per batch: new instances and Nodes Ready"})
    drain_timeout_s: float = field(
        default=900.0, metadata={"help": "per batch: how long budgets may hold its nodes' drains (run together)"}
    )
    validate_timeout_s: float = field(default=300.0, metadata={"help": "per batch: cluster validation"})
    ignore_daemonsets: bool = field(default=True, metadata={"help": "leave DaemonSet pods"})
    delete_emptydir_data: bool = field(default=True, metadata={"help": "allow evicting pods with emptyDir data"})
    force: bool = field(default=False, metadata={"help": "allow deleting pods no controller will recreate"})
    grace_period_s: int = field(default=-1, metadata={"help": "termination grace; -1 keeps each pod's own"})


def _batches(old: list[str], size: int) -> list[list[str]]:
    return [old[i : i + size] for i in range(0, len(old), size)]


def _plan_replace_group(ctx: StepContext, p: ReplaceGroupParams) -> Plan:
    group = ctx.aws.describe_group(p.group)
    _check_headroom(group, min(p.batch, len(group.instances)), p.allow_raise_max)
    by_instance = nodes_by_instance(ctx)
    old = sorted(group.in_service)
    details = []
    for n, batch in enumerate(_batches(old, max(1, p.batch)), start=1):
        names = ", ".join(
            f"{i} ({by_instance[i]['metadata']['name'] if i in by_instance else 'no node'})" for i in batch
        )
        details.append(
            f"batch {n}: desired {group.desired} -> {group.desired + len(batch)}, wait Ready, cordon/drain/"
            f"terminate {names}, validate the cluster"
        )
    return Plan(
        summary=f'replace {len(old)} instance(s) of group "{p.group}" in batches of {p.batch}',
        details=details,
        outputs={"group": p.group, "replaced": old, "new_instances": [], "batches": len(details)},
    )


def _member_present(ctx: StepContext, instance_id: str) -> bool:
    member = ctx.aws.find_instance(instance_id)
    return member is not None and not member.leaving


def _replace_batch(ctx: StepContext, p: ReplaceGroupParams, state: dict[str, Any], batch: list[str]) -> None:
    """One batch, every part absolute or idempotent, so re-entering at any point neither adds nor loses a node."""
    from kubeops.actions import k8s as k8s_actions
    from kubeops.clients import nodes as node_api

    present = [i for i in batch if _member_present(ctx, i)]
    group = ctx.aws.describe_group(p.group)
    target = int(state["desired_start"]) + len(present)
    if group.desired < target:
        ctx.log.info("aws.replace.scale", group=p.group, desired=group.desired, target=target, batch=batch)
        ctx.aws.set_desired_capacity(group, target, allow_raise_max=p.allow_raise_max)
    group = ctx.aws.wait_in_service(p.group, count=target, timeout_s=p.ready_timeout_s, check=ctx.check_deadline)
    new = [i for i in group.in_service if i not in state["old"]]
    wait_for_nodes(ctx, new, p.ready_timeout_s)
    for instance_id in new:
        if instance_id not in state["new"]:
            state["new"].append(instance_id)
    by_instance = nodes_by_instance(ctx)
    targets = [(i, by_instance[i]["metadata"]["name"] if i in by_instance else None) for i in present]
    cordoned: list[str] = state.setdefault("cordoned", [])  # ours to uncordon if the batch fails
    try:
        for _, node in targets:
            if node and not (node_api.get_node(ctx.kube, node).get("spec") or {}).get("unschedulable"):
                cordoned.append(node)
                ctx.record_intent(state)  # before the patch: a crash right after still knows it was us
                node_api.set_unschedulable(ctx.kube, node, True)
        to_drain = [node for _, node in targets if node]
        if to_drain:  # the batch's nodes drain together: one deadline, one eviction bound, no node waits on another
            k8s_actions.run_drains(
                ctx,
                k8s_actions.DrainParams(
                    node="",
                    ignore_daemonsets=p.ignore_daemonsets,
                    delete_emptydir_data=p.delete_emptydir_data,
                    force=p.force,
                    grace_period_s=p.grace_period_s,
                    timeout_s=p.drain_timeout_s,
                ),
                to_drain,
            )
    except Exception:
        for node in cordoned:  # leave the old nodes serving; the run stops here and is resumable
            node_api.set_unschedulable(ctx.kube, node, False)
        state["cordoned"] = []
        ctx.record_intent(state)
        raise
    for instance_id, _ in targets:
        if _member_present(ctx, instance_id):
            ctx.aws.terminate_instance(instance_id, decrement=True)
    for instance_id, node in targets:
        terminate_and_wait(
            ctx, instance_id, TerminateParams(instance_id=instance_id, node=node, timeout_s=p.ready_timeout_s)
        )
    validate_cluster(ctx, p.validate_timeout_s)


@action(
    "aws.replace_group",
    params=ReplaceGroupParams,
    mutates=True,
    plan=_plan_replace_group,
    outputs=("group", "replaced", "new_instances", "batches"),
)
def replace_group(ctx: StepContext, p: ReplaceGroupParams) -> dict[str, Any]:
    """Replace every instance of a group, `batch` at a time, validating the cluster between batches.

    The engine's playbooks have no loops, so the roll is one resumable action: its intent keeps the original
    instances, the desired capacity it started from and which instances are done. Each batch aims at an absolute
    desired capacity (start + old instances of the batch still present), so a resume never surges twice.
    """
    if p.batch < 1:
        raise InputError(f"aws.replace_group: batch must be at least 1, got {p.batch}")
    if ctx.intent is None:
        group = ctx.aws.describe_group(p.group)
        _check_headroom(group, min(p.batch, len(group.instances)), p.allow_raise_max)
        state: dict[str, Any] = {
            "group": p.group,
            "old": sorted(group.in_service),
            "desired_start": group.desired,
            "done": [],
            "new": [],
            "batch": None,
        }
        ctx.record_intent(state)
    else:
        state = {
            **ctx.intent,
            "done": list(ctx.intent["done"]),
            "new": list(ctx.intent["new"]),
            "cordoned": list(ctx.intent.get("cordoned") or []),
        }
        ctx.log.info("aws.replace.resume", done=len(state["done"]), of=len(state["old"]), batch=state["batch"])
    batches = 0
    while True:
        remaining = [i for i in state["old"] if i not in state["done"]]
        if not remaining:
            break
        batch = state["batch"] or remaining[: p.batch]
        if state["batch"] != batch:
            state["batch"] = batch
            ctx.record_intent(state)
        _replace_batch(ctx, p, state, batch)
        state["done"] = state["done"] + batch
        state["batch"] = None
        state["cordoned"] = []
        ctx.record_intent(state)
        batches += 1
        ctx.log.info("aws.replace.batch_done", done=len(state["done"]), of=len(state["old"]))
    return {"group": p.group, "replaced": state["old"], "new_instances": state["new"], "batches": batches}


# --- aws.verify_group --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class VerifyGroupParams:
    group: str = field(metadata={"help": "Auto Scaling group name"})
    desired: int = field(metadata={"help": "the desired capacity the group must be back at"})
    gone: list[str] = field(default_factory=list, metadata={"help": "instances that must have left the group"})
    timeout_s: float = field(default=300.0, metadata={"help": "keep checking this long before failing"})


@action(
    "aws.verify_group",
    params=VerifyGroupParams,
    mutates=False,
    outputs=("group", "desired", "in_service", "nodes"),
)
def verify_group(ctx: StepContext, p: VerifyGroupParams) -> dict[str, Any]:
    """After a replacement: desired is back, that many instances InService, each with a Ready Node."""
    from kubeops.clients import nodes as node_api

    deadline = time.monotonic() + _wait_s(ctx, p.timeout_s)
    while True:
        group = ctx.aws.describe_group(p.group)
        found = nodes_by_instance(ctx)
        if ctx.dry_run:  # the changes were only planned: there is nothing to verify yet
            names = [found[i]["metadata"]["name"] for i in group.in_service if i in found]
            return {"group": p.group, "desired": group.desired, "in_service": group.in_service, "nodes": names}
        problems = []
        if group.desired != p.desired:
            problems.append(f"desired capacity is {group.desired}, expected {p.desired}")
        if len(group.in_service) != p.desired:
            problems.append(f"{len(group.in_service)} instances InService, expected {p.desired}")
        stale = [i for i in p.gone if any(m.id == i for m in group.instances)]
        if stale:
            problems.append(f"still in the group: {', '.join(stale)}")
        unready = [i for i in group.in_service if i not in found or not node_api.node_is_ready(found[i])]
        if unready:
            problems.append(f"no Ready node for {', '.join(unready)}")
        if not problems:
            names = [found[i]["metadata"]["name"] for i in group.in_service]
            return {"group": p.group, "desired": group.desired, "in_service": group.in_service, "nodes": names}
        if time.monotonic() >= deadline:
            raise ActionError(f'group "{p.group}" is not as expected: ' + "; ".join(problems))
        _sleep(ctx, POLL_S)
