"""Node tasks: decommission, maintain, drain, cordon, uncordon. Each is one playbook run; thin on purpose.

Flags become playbook parameters; `_common.run_playbook_task` loads settings, runs the engine, prints the
summary and turns errors into exit codes (2: bad input or unknown node, nothing changed; 1: a step failed,
the run is resumable with `invoke resume`). Declared with `playbook_task`, each also runs as a fleet
(``--clusters='prod-*' --canary=1 --max-failures=1``): `--node` then names a node of that name in every cluster,
and a cluster without it is rejected (exit 2 there, nothing changed) like a single run would be.
"""

from __future__ import annotations

from typing import Any

from kubeops.tasks import _common
from kubeops.tasks._common import playbook_task
from kubeops.tasks.rehearse import run_or_rehearse

_NODE = "the node's name (as `kubectl get nodes` shows it)"
_NODES = "the node's name, or several comma-separated (a,b,c): all checked before any is touched"
_SELECTOR = "nodes by label selector, like kubectl's -l (e.g. pool=batch,zone!=a); instead of --node"
_DRY = "plan only: reads happen, changes are sent with dryRun=All or not at all; nothing changes"
_CLUSTER = _common.CLUSTER_HELP
_LOG = _common.LOG_HELP
_WAIT = _common.WAIT_HELP
_DRAIN_HELP = {
    "ignore-daemonsets": "leave DaemonSet pods (default: yes; --no-ignore-daemonsets refuses them like kubectl)",
    "delete-emptydir-data": "allow evicting pods that use emptyDir (their data is lost)",
    "force": "allow deleting pods that no controller will recreate",
    "grace-period": "termination grace in seconds for every pod (-1: each pod's own)",
    "timeout": "seconds budgets may hold the drain up before the step fails (node stays cordoned)",
}


def _need(node: str | None) -> str:
    """`--node` is a flag (not positional) so `--help` after the task works; it is still required."""
    return str(_common.required_flag(node, "node", "worker-2 (see `kubectl get nodes`)"))


def _targets(node: str | None, selector: str | None) -> tuple[str, dict[str, Any]]:
    """``("one", {"node": n})`` for a single ``--node`` (the single-node playbooks, unchanged), otherwise
    ``("many", {"nodes": [...]})`` or ``("many", {"selector": s})`` for the multi-node ones; exit 2 on bad input.

    Why split here and not in the playbook: one node keeps exactly the runs, outputs and checkpoints it always had.
    """
    with _common.exit_codes():
        from kubeops.errors import InputError

        selector = (selector or "").strip()
        if node and selector:
            raise InputError("give --node or --selector, not both")
        if selector:
            return "many", {"selector": selector}
        if not node:
            raise InputError("--node is required",
                             hint="e.g. --node=worker-2, --node=worker-2,worker-3 or --selector=pool=batch")
        names = [n.strip() for n in str(node).split(",")]
        if "" in names:
            raise InputError(f"--node has an empty name: {node!r}", hint="e.g. --node=worker-2,worker-3")
        names = list(dict.fromkeys(names))
        return ("one", {"node": names[0]}) if len(names) == 1 else ("many", {"nodes": names})


def _drain_flags(
    ignore_daemonsets: bool, delete_emptydir_data: bool, force: bool, grace_period: int, timeout: float | None,
) -> dict[str, Any]:
    return {
        "ignore_daemonsets": bool(ignore_daemonsets),
        "delete_emptydir_data": bool(delete_emptydir_data),
        "force": bool(force),
        "grace_period_s": int(grace_period),
        "timeout_s": float(timeout) if timeout is not None else None,
    }


def _drain_params(
    node: str | None, ignore_daemonsets: bool, delete_emptydir_data: bool, force: bool, grace_period: int,
    timeout: float | None,
) -> dict[str, Any]:
    flags = _drain_flags(ignore_daemonsets, delete_emptydir_data, force, grace_period, timeout)
    return {"node": _need(node), **flags}


def _split_commands(commands: list[str] | None) -> list[list[str]]:
    """Each ``--command`` is split like a shell would split it, into an argument list (never run by a shell)."""
    import shlex

    from kubeops.errors import InputError

    out: list[list[str]] = []
    for text in commands or ():
        try:
            argv = shlex.split(text)
        except ValueError as exc:
            raise InputError(f"--command {text!r}: {exc}") from None
        if not argv:
            raise InputError("--command must not be empty")
        out.append(argv)
    return out


@playbook_task(
    help={
        "node": _NODE,
        "delete-node": "delete the Node object once it is empty",
        "terminate": "terminate the node's EC2 instance, shrinking its Auto Scaling group (implies --delete-node)",
        **_DRAIN_HELP,
        "dry-run": _DRY,
        "cluster": _CLUSTER,
        "log-format": _LOG,
        "wait-for-lock": _WAIT,
        **_common.REHEARSE_FLAGS_HELP,
    }
)
def decommission(  # type: ignore[no-untyped-def]
    c, node=None, delete_node=False, terminate=False, ignore_daemonsets=True, delete_emptydir_data=False,
    force=False, grace_period=-1, timeout=None, dry_run=False, cluster=None, log_format=None, wait_for_lock=None,
    rehearse=False, snapshot=None, speed=None, fleet=None,
):
    """Take a node out of service: capacity check, cordon, drain (budgets respected), optionally terminate/delete."""
    params = _drain_params(node, ignore_daemonsets, delete_emptydir_data, force, grace_period, timeout)
    params["delete_node"] = bool(delete_node)
    params["terminate_instance"] = bool(terminate)
    run_or_rehearse(
        c, "decommission-node", params=params, dry_run=dry_run, cluster=cluster, log_format=log_format,
        wait_for_lock=wait_for_lock, rehearse=rehearse, snapshot=snapshot, speed=speed, fleet=fleet,
    )


@playbook_task(
    iterable=["command"],
    help={
        "node": _NODE,
        "command": "a maintenance command run on the node over SSH (repeatable; split like a shell, never "
        "interpreted by one)",
        "reboot": "reboot the node after the commands and wait until it is Ready again",
        "no-sudo": "run the commands as the SSH user instead of with `sudo -n`",
        **_DRAIN_HELP,
        "dry-run": _DRY,
        "cluster": _CLUSTER,
        "log-format": _LOG,
        "wait-for-lock": _WAIT,
        **_common.REHEARSE_FLAGS_HELP,
    },
)
def maintain(  # type: ignore[no-untyped-def]
    c, node=None, command=None, reboot=False, no_sudo=False, ignore_daemonsets=True, delete_emptydir_data=False,
    force=False, grace_period=-1, timeout=None, dry_run=False, cluster=None, log_format=None, wait_for_lock=None,
    rehearse=False, snapshot=None, speed=None, fleet=None,
):
    """Cordon and drain a node, run maintenance over SSH, optionally reboot, wait Ready, uncordon."""
    with _common.exit_codes():
        commands = _split_commands(command)
    params = _drain_params(node, ignore_daemonsets, delete_emptydir_data, force, grace_period, timeout)
    params.update({"commands": commands, "reboot": bool(reboot), "sudo": not no_sudo})
    run_or_rehearse(  # a rehearsal records the SSH commands; one that would reboot is refused
        c, "maintain-node", params=params, dry_run=dry_run, cluster=cluster, log_format=log_format,
        wait_for_lock=wait_for_lock, rehearse=rehearse, snapshot=snapshot, speed=speed, fleet=fleet,
    )


@playbook_task(
    help={
        "node": _NODES, "selector": _SELECTOR, **_DRAIN_HELP, "dry-run": _DRY, "cluster": _CLUSTER,
        "log-format": _LOG, "wait-for-lock": _WAIT, **_common.REHEARSE_FLAGS_HELP,
    }
)
def drain(  # type: ignore[no-untyped-def]
    c, node=None, ignore_daemonsets=True, delete_emptydir_data=False, force=False, grace_period=-1, timeout=None,
    dry_run=False, cluster=None, log_format=None, wait_for_lock=None, rehearse=False, snapshot=None, speed=None,
    selector=None,  # last, so the flags that were there before keep their short letters (-s stays --snapshot)
    fleet=None,
):
    """Cordon nodes and evict their pods like `kubectl drain`, respecting PodDisruptionBudgets (several: together)."""
    how, target = _targets(node, selector)
    params = {**target, **_drain_flags(ignore_daemonsets, delete_emptydir_data, force, grace_period, timeout)}
    run_or_rehearse(
        c, "drain-node" if how == "one" else "drain-nodes", params=params, dry_run=dry_run, cluster=cluster,
        log_format=log_format, wait_for_lock=wait_for_lock, rehearse=rehearse, snapshot=snapshot, speed=speed,
        fleet=fleet,
    )


_ONE_OR_MANY = {"node": _NODES, "selector": _SELECTOR, "dry-run": _DRY, "cluster": _CLUSTER, "log-format": _LOG,
                "wait-for-lock": _WAIT}


@playbook_task(help=_ONE_OR_MANY)
def cordon(  # type: ignore[no-untyped-def]
    c, node=None, dry_run=False, cluster=None, log_format=None, wait_for_lock=None, selector=None, fleet=None
):
    """Mark nodes unschedulable (idempotent)."""
    how, target = _targets(node, selector)
    _common.run_playbook_task(
        c, "cordon-node" if how == "one" else "cordon-nodes", params=target, dry_run=dry_run, cluster=cluster,
        log_format=log_format, wait_for_lock=wait_for_lock, fleet=fleet,
    )


@playbook_task(help=_ONE_OR_MANY)
def uncordon(  # type: ignore[no-untyped-def]
    c, node=None, dry_run=False, cluster=None, log_format=None, wait_for_lock=None, selector=None, fleet=None
):
    """Make nodes schedulable again (idempotent)."""
    how, target = _targets(node, selector)
    _common.run_playbook_task(
        c, "uncordon-node" if how == "one" else "uncordon-nodes", params=target, dry_run=dry_run, cluster=cluster,
        log_format=log_format, wait_for_lock=wait_for_lock, fleet=fleet,
    )
