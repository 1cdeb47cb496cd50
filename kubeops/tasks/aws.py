"""AWS Auto Scaling tasks: scale-up, replace (one node), replace-group. Each is one playbook run; thin on purpose.

Flags become playbook parameters; `_common.run_playbook_task` loads settings, runs the engine, prints the summary
and turns errors into exit codes (2: unknown node or group, or a group at max - nothing changed; 1: a step
failed, the group was restored and the run is resumable with `invoke resume`).
"""

from __future__ import annotations

from typing import Any

from kubeops.tasks import _common
from kubeops.tasks._common import playbook_task
from kubeops.tasks.rehearse import run_or_rehearse

_DRY = "plan only: AWS and Kubernetes are read, nothing is changed (Auto Scaling calls are recorded, not sent)"
_CLUSTER = _common.CLUSTER_HELP
_LOG = _common.LOG_HELP
_WAIT = _common.WAIT_HELP
_MAX = "raise the group's max size if the surge needs it (restored afterwards)"


def _positive(value: Any, flag: str) -> int:
    """``--count`` and ``--batch`` (default 1): a whole number of at least 1, exit 2 naming the flag otherwise.

    The flags default to None, not 1: with an int default invoke converts the value itself and answers
    ``--count=abc`` with a traceback instead of our message."""
    with _common.exit_codes():
        number = _common.positive_int(value, f"--{flag}")
        return 1 if number is None else number


@playbook_task(
    help={
        "group": "the Auto Scaling group",
        "count": "instances to add (default 1)",
        "allow-raise-max": "raise the group's max size if needed",
        "dry-run": _DRY,
        "cluster": _CLUSTER,
        "log-format": _LOG,
        "wait-for-lock": _WAIT,
    }
)
def scale_up(  # type: ignore[no-untyped-def]
    c, group=None, count=None, allow_raise_max=False, dry_run=False, cluster=None, log_format=None, wait_for_lock=None,
    fleet=None,
):
    """Add instances to an Auto Scaling group and wait until their Nodes are Ready."""
    params = {
        "group": _common.required_flag(group, "group", "workers"),
        "count": _positive(count, "count"),
        "allow_raise_max": bool(allow_raise_max),
    }
    _common.run_playbook_task(
        c, "scale-up", params=params, dry_run=dry_run, cluster=cluster, log_format=log_format,
        wait_for_lock=wait_for_lock, fleet=fleet,
    )


@playbook_task(
    help={
        "node": "the node to replace (as `kubectl get nodes` shows it)",
        "allow-raise-max": _MAX,
        "dry-run": _DRY,
        "cluster": _CLUSTER,
        "log-format": _LOG,
        "wait-for-lock": _WAIT,
        **_common.REHEARSE_FLAGS_HELP,
    }
)
def replace(  # type: ignore[no-untyped-def]
    c, node=None, allow_raise_max=False, dry_run=False, cluster=None, log_format=None, wait_for_lock=None,
    rehearse=False, snapshot=None, speed=None, fleet=None,
):
    """Replace a node with a fresh instance of its Auto Scaling group: surge one, drain, terminate the old one."""
    params = {
        "node": _common.required_flag(node, "node", "ip-10-0-1-23.ec2.internal"),
        "allow_raise_max": bool(allow_raise_max),
    }
    run_or_rehearse(
        c, "replace-node", params=params, dry_run=dry_run, cluster=cluster, log_format=log_format,
        wait_for_lock=wait_for_lock, rehearse=rehearse, snapshot=snapshot, speed=speed, fleet=fleet,
    )


@playbook_task(
    fleet_flags_after="wait_for_lock",  # where replace-group had --clusters/--parallel/--canary before
    help={
        "group": "the Auto Scaling group to roll",
        "batch": "surge: nodes replaced at a time (default 1)",
        "allow-raise-max": _MAX,
        "dry-run": _DRY,
        "cluster": _CLUSTER,
        "log-format": _LOG,
        "wait-for-lock": _WAIT,
        **_common.REHEARSE_FLAGS_HELP,
    }
)
def replace_group(  # type: ignore[no-untyped-def]
    c, group=None, batch=None, allow_raise_max=False, dry_run=False, cluster=None, log_format=None, wait_for_lock=None,
    rehearse=False, snapshot=None, speed=None, fleet=None,
):
    """Replace every node of an Auto Scaling group in batches, validating the cluster between batches."""
    params = {
        "group": _common.required_flag(group, "group", "workers"),
        "batch": _positive(batch, "batch"),
        "allow_raise_max": bool(allow_raise_max),
    }
    run_or_rehearse(
        c, "replace-group", params=params, dry_run=dry_run, cluster=cluster, log_format=log_format,
        wait_for_lock=wait_for_lock, rehearse=rehearse, snapshot=snapshot, speed=speed, fleet=fleet,
    )
