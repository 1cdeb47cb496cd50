"""Rehearsal tasks: `snapshot` (a read-only copy of a cluster) and `rehearse` (run a playbook on a copy, report).

Thin: flags -> `kubeops.rehearse` -> printed report -> exit code. The exit code of `rehearse` is the one the real
run would return (0 done or outside the maintenance window, 1 a step would fail, 2 rejected/bad input, 3 the
cluster lock is held by another run); the domain tasks' `--rehearse` flag
(`invoke decommission --node=x --rehearse`) comes through `rehearse_playbook` here.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from invoke import Exit

from kubeops.tasks import _common
from kubeops.tasks._common import task

_SPEED = "divide grace periods, probe delays, minReadySeconds, node joins and *timeout_s params by N (default 1)"
_SNAPSHOT = ("snapshot to rehearse on: a file from `invoke snapshot` (.json/.json.gz), a `kubectl cluster-info "
             "dump --output-directory` folder, or `kubectl get -o json` files (a,b,c); default: take one of --cluster")
_OUTPUT = "text (default) or json"


def _speed(value: Any) -> float:
    from kubeops.errors import InputError

    try:
        speed = float(value if value not in (None, "") else 1)
    except (TypeError, ValueError):
        raise InputError(f"--speed expects a number, got {value!r}") from None
    if speed <= 0:
        raise InputError(f"--speed must be > 0, got {speed:g}")
    return speed


def _exit_s(value: Any) -> float | str | None:
    from kubeops.errors import InputError

    if value in (None, ""):
        return None
    if str(value) == "grace":
        return "grace"
    try:
        return max(0.0, float(value))
    except ValueError:
        raise InputError(f"--exit-s expects seconds or 'grace', got {value!r}") from None


def _join_s(value: Any, flag: str = "--join-s") -> float:
    from kubeops.errors import InputError

    if value in (None, ""):
        return 120.0
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{flag} expects seconds, got {value!r}") from None
    if seconds < 0:
        raise InputError(f"{flag} must be >= 0, got {seconds:g}")
    return seconds


def _at(value: Any) -> Any:
    """The ``--at`` time as an aware datetime (no zone: UTC), None when absent; a bad one is an input error."""
    from datetime import UTC, datetime

    from kubeops.errors import InputError

    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--at expects an ISO 8601 time like 2026-12-05T03:00:00+01:00, got {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def rehearse_playbook(
    playbook: str,
    *,
    params: Mapping[str, Any] | None,
    cluster: str | None,
    snapshot: str | None,
    speed: Any = None,
    output: str | None = None,
    log_format: str | None = None,
    exit_s: float | str | None = None,
    join_s: Any = None,
    at: Any = None,
    wait_for_lock: str | None = None,
    reboot_s: Any = None,
) -> None:
    """Rehearse `playbook` and print the report; raises `Exit` with the real run's exit code."""
    with _common.exit_codes():
        from kubeops.errors import InputError

        fmt = output or "text"
        if fmt not in ("text", "json"):
            raise InputError(f"--output must be text or json, got {fmt!r}")
        speed_n, join = _speed(speed), _join_s(join_s)  # bad flags exit 2 before any snapshot is taken
        reboot = _join_s(reboot_s, "--reboot-s") if reboot_s not in (None, "") else 60.0
        when, wait_s = _at(at), _common.parse_wait(wait_for_lock)
        settings = _common.build_settings(cluster, log_format)
        _common.setup_logging(settings)
        from kubeops.rehearse.rehearsal import rehearse
        from kubeops.rehearse.report import render_text
        from kubeops.rehearse.snapshot import take

        given = {k: v for k, v in (params or {}).items() if v is not None}
        with tempfile.TemporaryDirectory(prefix="kubeops-snapshot-") as tmp:
            source = snapshot
            if not snapshot:
                print(f"taking a snapshot of {settings.cluster} (reads only)...", file=sys.stderr)
                source = str(Path(tmp) / "snapshot.json")
                take(settings, path=source)
            report = rehearse(source, playbook, params=given, settings=settings, speed=speed_n,
                              exit_s=exit_s, join_s=join, registry=_common.registry(), at=when,
                              wait_for_lock_s=wait_s, reboot_s=reboot)
        print(report.to_json() if fmt == "json" else render_text(report))
    if report.exit_code:
        raise Exit(code=report.exit_code)


def run_or_rehearse(
    c: Any, playbook: str, *, rehearse: bool = False, snapshot: str | None = None, speed: Any = None, **kwargs: Any
) -> None:
    """What a domain task with ``--rehearse`` calls: the real run (`_common.run_playbook_task` with `kwargs`), or
    a rehearsal of the same playbook and parameters on `snapshot` (or a snapshot of ``--cluster`` taken now).

    A rehearsal is of one cluster (one snapshot, one report): with a fleet (``--cluster=a,b`` or ``--clusters``)
    it is refused, exit 2, before any snapshot is taken."""
    if not rehearse:
        _common.run_playbook_task(c, playbook, **kwargs)
        return
    with _common.exit_codes():
        from kubeops.errors import InputError

        if kwargs.get("dry_run"):
            raise InputError("--rehearse and --dry-run do not go together", hint="a rehearsal changes nothing real")
        fleet = kwargs.get("fleet") or _common.FleetFlags()
        if _common.is_fleet(kwargs.get("cluster"), fleet.clusters):
            raise InputError(
                "--rehearse takes one cluster, not a fleet",
                hint="rehearse each cluster of the fleet on its own (`--rehearse --cluster=NAME`)",
            )
        _common.fleet_numbers(fleet)  # no effect on one cluster, but a malformed value is still an error
    rehearse_playbook(playbook, params=kwargs.get("params"), cluster=kwargs.get("cluster"), snapshot=snapshot,
                      speed=speed, log_format=kwargs.get("log_format"), wait_for_lock=kwargs.get("wait_for_lock"))


@task(
    help={
        "cluster": _common.CLUSTER_HELP,
        "output": "file to write (.json or .json.gz; default snapshot-<cluster>-<time>.json.gz)",
        "namespaces": "only these namespaces (comma-separated); nodes and other cluster-wide objects always",
        "no-aws": "do not read Auto Scaling groups",
        "log-format": _common.LOG_HELP,
    }
)
def snapshot(c, cluster=None, output=None, namespaces=None, no_aws=False, log_format=None):  # type: ignore[no-untyped-def]
    """Take a read-only copy of a cluster (get/list and AWS describe only; never Secrets or ConfigMap data)."""
    import time

    with _common.exit_codes():
        settings = _common.build_settings(cluster, log_format)
        _common.setup_logging(settings)
        from kubeops.rehearse.snapshot import take

        wanted = [n.strip() for n in str(namespaces or "").split(",") if n.strip()] or None
        path = Path(output or f"snapshot-{settings.cluster}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json.gz")
        doc = take(settings, namespaces=wanted, aws=not no_aws, path=path)
        counts = doc["header"]["counts"]
        print(f"snapshot of {settings.cluster} written to {path} ({path.stat().st_size / 1024:.0f} KiB): "
              f"{counts.get('nodes', 0)} nodes, {counts.get('pods', 0)} pods, "
              f"{len(doc['autoscaling_groups'])} Auto Scaling groups")
        if doc["header"].get("autoscaling_not_read"):
            print(f"warning: Auto Scaling groups not read: {doc['header']['autoscaling_not_read']}", file=sys.stderr)


@task(
    iterable=["param"],
    help={
        "playbook": "playbook name or path",
        "param": "playbook parameter name=value (repeatable)",
        "snapshot": _SNAPSHOT,
        "cluster": _common.CLUSTER_HELP + "; its inventory params and lock settings apply",
        "speed": _SPEED,
        "join-s": "seconds a new instance takes to be a Ready node in real life (default 120)",
        "exit-s": "seconds every pod takes to exit after SIGTERM, or 'grace' for its whole grace period "
        "(default: a preStop `sleep N` takes N, other preStop hooks the whole grace, no hook: at once)",
        "output": _OUTPUT,
        "at": "judge the maintenance windows as if the run started at this ISO 8601 time (default now; "
        "no zone: UTC), e.g. 2026-12-05T03:00:00+01:00",
        "wait-for-lock": "the real run's --wait-for-lock (reported; a rehearsal never waits)",
        "reboot-s": "seconds a node takes to reboot in real life (default 60; SSH commands are recorded, never sent)",
        "log-format": _common.LOG_HELP,
    },
)
def rehearse(  # type: ignore[no-untyped-def]
    c, playbook=None, param=None, snapshot=None, cluster=None, speed=None, exit_s=None, join_s=None, output=None,
    at=None, wait_for_lock=None, reboot_s=None, log_format=None,
):
    """Run a playbook for real on a private copy of the cluster and report what the real run would do."""
    name = _common.required_flag(playbook, "playbook", "decommission-node")
    with _common.exit_codes():
        params = _common.parse_params(param)
    rehearse_playbook(name, params=params, cluster=cluster, snapshot=snapshot, speed=speed, output=output,
                      log_format=log_format, exit_s=_exit_s(exit_s), join_s=join_s, at=at,
                      wait_for_lock=wait_for_lock, reboot_s=reboot_s)
