"""What every task module shares: flags -> Settings, ``--param k=v`` parsing, running a playbook, exit codes.

Exit codes are decided here and nowhere else:
0 success (also: outside the maintenance window, nothing done); 1 a step failed (resumable; the message says
how); 2 invalid input, nothing changed (bad flags, bad playbook, unknown node found by read-only checks);
3 another run holds the cluster's lock.

Imports of the engine happen inside functions so that listing tasks stays fast.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from invoke import Exit

if TYPE_CHECKING:
    from kubeops.actions.registry import Registry
    from kubeops.engine.checkpoints import RunRecord
    from kubeops.settings import Settings

EXIT_OK, EXIT_STEP_FAILED, EXIT_INPUT, EXIT_LOCKED = 0, 1, 2, 3

# Flag help shared by the task modules, so `--help` says the same thing everywhere.
CLUSTER_HELP = "cluster from inventory/<name>.yaml (default: sandbox)"
LOG_HELP = "auto (console on a terminal, JSON otherwise), console or json"
WAIT_HELP = "wait up to DURATION (e.g. 90s, 10m) for a busy cluster lock instead of exiting 3"


def build_settings(cluster: str | None = None, log_format: str | None = None) -> Settings:
    """Settings for `--cluster` (default: sandbox) and `--log-format` (auto, console, json)."""
    from kubeops.errors import InputError
    from kubeops.settings import DEFAULT_CLUSTER, load_settings

    fmt = log_format or os.environ.get("KUBEOPS_LOG_FORMAT") or "auto"
    if fmt not in ("auto", "console", "json"):
        raise InputError(f"--log-format must be auto, console or json, got {fmt!r}")
    return load_settings(cluster or os.environ.get("KUBEOPS_CLUSTER") or DEFAULT_CLUSTER, log_format=fmt)


def required_flag(value: Any, flag: str, example: str) -> Any:
    """Required flags stay flags (so `--help` works after the task name); a missing one exits 2 naming it."""
    if value is None or value == "":
        with exit_codes():
            from kubeops.errors import InputError

            raise InputError(f"--{flag} is required", hint=f"e.g. --{flag}={example}")
    return value


def parse_params(pairs: Iterable[str] | None) -> dict[str, str]:
    """``["node=w1", "count=2"]`` -> ``{"node": "w1", "count": "2"}``; values are typed later, per playbook."""
    from kubeops.errors import InputError

    out: dict[str, str] = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--param expects name=value, got {pair!r}")
        out[name.strip()] = value
    return out


def registry() -> Registry:
    """The default registry plus the modules named in `$KUBEOPS_ACTION_MODULES` (comma-separated; tests)."""
    from kubeops.actions.registry import default_registry

    reg = default_registry()
    for name in filter(None, (m.strip() for m in os.environ.get("KUBEOPS_ACTION_MODULES", "").split(","))):
        importlib.import_module(name)
    return reg


def build_guard(settings: Settings, *, wait_for_lock_s: float = 0.0) -> Any:
    """The run guard (lock, windows, notifications) for a real (not dry) run or resume of `settings.cluster`."""
    from kubeops.engine.guard import build_guard as engine_build_guard

    return engine_build_guard(settings, wait_for_lock_s=wait_for_lock_s)


def setup_logging(settings: Settings) -> None:
    from kubeops.engine.logging import configure_logging

    configure_logging(log_format=settings.log_format)


@contextmanager
def exit_codes() -> Iterator[None]:
    """Turn kubeops errors into `invoke.Exit(message, code)`: the one place exit codes are decided."""
    from kubeops.engine.logging import redact_text
    from kubeops.errors import InputError, KubeopsError, LockHeld, OutsideWindow, StepFailed

    try:
        yield
    except OutsideWindow as exc:
        raise Exit(f"outside window: {redact_text(str(exc))}", EXIT_OK) from None
    except LockHeld as exc:
        raise Exit(f"error: {redact_text(str(exc))}", EXIT_LOCKED) from None
    except StepFailed as exc:
        raise Exit(f"error: {redact_text(str(exc))}", EXIT_STEP_FAILED) from None
    except InputError as exc:
        raise Exit(f"error: {redact_text(str(exc))}", EXIT_INPUT) from None
    except KubeopsError as exc:  # str(error) holds no secret by contract; masking here is the safety net
        raise Exit(f"error: {redact_text(str(exc))}", EXIT_STEP_FAILED) from None


def print_record_summary(record: RunRecord, *, out: Any = None) -> None:
    """Human summary of a finished run on stdout: the plan for a dry run, the step statuses otherwise."""
    out = out or sys.stdout
    dry = record.get("dry_run")
    title = "dry run (nothing changed)" if dry else f"run {record['id']}"
    print(
        f"{title}: playbook {record['playbook']['name']} on cluster {record['cluster']}: {record['status']}", file=out
    )
    for s in record["steps"]:
        status = s["status"]
        if dry:
            if s.get("plan"):
                line = f"would {s['plan']['summary']}"
            elif status == "done":
                line = "read: " + _short(s.get("outputs"))
            elif status == "skipped":
                line = f"skipped ({s.get('skip_reason', 'condition is false')})"
            else:
                line = status + (f": {s['error']}" if s.get("error") else "")
        else:
            line = status + (f": {s['error']}" if s.get("error") else "")
        prefix = "  cleanup " if s.get("phase") == "cleanup" else "  "
        print(f"{prefix}{s['name']} [{s['action']}]: {line}", file=out)
        if dry and s.get("plan"):
            for detail in s["plan"].get("details", []):
                print(f"      - {detail}", file=out)


def _short(value: Any, limit: int = 100) -> str:
    import json

    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def positive_int(value: Any, flag: str) -> int | None:
    """A whole-number flag of at least 1 (None when absent); InputError naming the flag otherwise."""
    from kubeops.errors import InputError

    if value in (None, ""):
        return None
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number < 1:
        raise InputError(f"{flag} expects a whole number of at least 1, got {value!r}")
    return number


def parse_wait(value: str | None, flag: str = "--wait-for-lock") -> float:
    """Seconds from a `--wait-for-lock` value (0 when absent); InputError for a malformed one."""
    from kubeops.errors import InputError
    from kubeops.model.loader import parse_duration

    if value in (None, "", "0"):
        return 0.0
    seconds = parse_duration(value)
    if seconds is None:
        raise InputError(f"{flag} expects a duration like 30s, 10m or 1h, got {value!r}")
    return seconds


def run_playbook_task(
    c: Any,
    playbook: str,
    *,
    params: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    cluster: str | None = None,
    log_format: str | None = None,
    wait_for_lock: str | None = None,
) -> RunRecord:
    """Run playbook `playbook` (name or path) as a task: settings, logging, guard, summary, exit codes.

    Domain tasks are one call: ``run_playbook_task(c, "decommission-node", params={"node": node},
    dry_run=dry_run, cluster=cluster, log_format=log_format, wait_for_lock=wait_for_lock)``. `params` values
    may be typed or strings; `wait_for_lock` is the raw ``--wait-for-lock`` flag (``90s``, ``10m``), parsed
    like `run`'s (a malformed one exits 2 before anything starts).
    """
    with exit_codes():
        wait_for_lock_s = parse_wait(wait_for_lock)
        settings = build_settings(cluster, log_format)
        setup_logging(settings)
        from kubeops.engine.api import run_playbook

        given = {k: v for k, v in (params or {}).items() if v is not None}
        record = run_playbook(
            playbook,
            settings=settings,
            params=given,
            dry_run=dry_run,
            registry=registry(),
            guard=None if dry_run else build_guard(settings, wait_for_lock_s=wait_for_lock_s),
        )
        print_record_summary(record)
        if record["status"] == "paused":
            raise Exit(
                f"outside window: run {record['id']} paused ({record.get('error')}); it continues with "
                f"`invoke resume --run={record['id']}`",
                EXIT_OK,
            )
        return record
