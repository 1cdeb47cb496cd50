"""What every task module shares: flags -> Settings, ``--param k=v`` parsing, running a playbook, exit codes.

Exit codes are decided here and nowhere else:
0 success (also: outside the maintenance window, nothing done); 1 a step failed (resumable; the message says
how); 2 invalid input, nothing changed (bad flags, bad playbook, unknown node found by read-only checks);
3 another run holds the cluster's lock.
Fleets (several clusters): 1 when any cluster failed, else 2 when any was rejected, else 3 when any found its
lock held, else 0 (a failure needs a person more than a busy lock, which only needs a later `resume --fleet`);
130 when Ctrl-C stopped the fleet and no cluster failed.

Imports of the engine happen inside functions so that listing tasks stays fast.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from invoke import Exit, Task
from invoke import task as _invoke_task

if TYPE_CHECKING:
    from kubeops.actions.registry import Registry
    from kubeops.engine.checkpoints import RunRecord
    from kubeops.settings import Settings

class KubeopsTask(Task):  # type: ignore[misc]
    """An invoke Task whose automatic short flags never take ``-h``: ``invoke <task> -h`` always means help."""

    def arg_opts(self, name: str, default: Any, taken_names: set[str]) -> dict[str, Any]:
        return super().arg_opts(name, default, set(taken_names) | {"h"})  # type: ignore[no-any-return]


def task(*args: Any, **kwargs: Any) -> Any:
    """invoke's ``@task`` making a `KubeopsTask`; every task module declares its tasks with it."""
    kwargs.setdefault("klass", KubeopsTask)
    return _invoke_task(*args, **kwargs)


@dataclass(frozen=True, slots=True)
class FleetFlags:
    """A playbook task's fleet flags as typed (invoke hands strings; `fleet_numbers` checks them), plus the task's
    name, which the fleet record keeps for people reading `invoke fleets`."""

    task: str = "run"
    clusters: str | None = None
    parallel: Any = None
    canary: Any = None
    max_failures: Any = None


def playbook_task(*, fleet_flags_after: str | None = None, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
    """``@task`` for a task that runs a playbook on a cluster: it also takes ``--clusters``, ``--parallel``,
    ``--canary`` and ``--max-failures`` (help: `FLEET_HELP`), handed to the body as one ``fleet=FleetFlags``.

    Why one decorator: every playbook task must offer the same fleet flags with the same help, and a new task gets
    them by being declared with it rather than by copying four parameters and four help lines. invoke gives short
    flags in signature order, so the fleet flags go last and every option the task had keeps its letter (scripts
    and crontabs use them); `fleet_flags_after` names the option they follow instead, for a task that had fleet
    flags there before.
    """

    def decorate(body: Callable[..., Any]) -> Any:
        name = kwargs.get("name") or body.__name__.replace("_", "-")
        sig = inspect.signature(body)
        if "fleet" not in sig.parameters:
            raise TypeError(f"playbook task {name!r} must accept fleet= and pass it to run_playbook_task")
        own = [p for p in sig.parameters.values() if p.name != "fleet"]
        added = [inspect.Parameter(f, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None) for f in FLEET_FLAGS]

        @functools.wraps(body)
        def wrapper(c: Any, *args: Any, **given: Any) -> Any:
            flags = FleetFlags(task=name, **{f: given.pop(f, None) for f in FLEET_FLAGS})
            return body(c, *args, fleet=flags, **given)

        names = [p.name for p in own]
        at = names.index(fleet_flags_after) + 1 if fleet_flags_after else len(own)
        wrapper.__signature__ = sig.replace(parameters=[*own[:at], *added, *own[at:]])  # type: ignore[attr-defined]
        return task(**{**kwargs, "help": {**kwargs.get("help", {}), **FLEET_HELP}})(wrapper)

    return decorate


EXIT_OK, EXIT_STEP_FAILED, EXIT_INPUT, EXIT_LOCKED = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # a fleet stopped by Ctrl-C (128 + SIGINT, as shells report it)

# Flag help shared by the task modules, so `--help` says the same thing everywhere.
CLUSTER_HELP = "cluster from inventory/<name>.yaml (default: sandbox); a,b,c runs a fleet in that order"
CLUSTERS_HELP = "a fleet of every inventory cluster matching GLOB (e.g. 'prod-*'; comma-separated globs in order)"
PARALLEL_HELP = "fleet: clusters run at once after the canaries (default 1)"
CANARY_HELP = "fleet: the first K clusters run alone, one after another; one not done stops the fleet"
MAX_FAILURES_HELP = (
    "fleet: after the canaries, start no further cluster once N have failed or been rejected, or more than P% "
    "of the clusters with P% (runs in flight finish; `resume --fleet` continues); default: no limit"
)
FLEET_HELP = {
    "clusters": CLUSTERS_HELP, "parallel": PARALLEL_HELP, "canary": CANARY_HELP, "max-failures": MAX_FAILURES_HELP,
}
FLEET_FLAGS = ("clusters", "parallel", "canary", "max_failures")  # what `playbook_task` adds to a task
LOG_HELP = "auto (console on a terminal, JSON otherwise), console or json"
WAIT_HELP = "wait up to DURATION (e.g. 90s, 10m) for a busy cluster lock instead of exiting 3"
REHEARSE_FLAGS_HELP = {
    "rehearse": "run it on a private copy of the cluster (snapshot) and report what the real run would do",
    "snapshot": "with --rehearse: snapshot file, cluster-info dump folder or List files (default: take one now)",
    "speed": "with --rehearse: divide grace periods, probe delays and *timeout_s params by N (default 1)",
}


def build_settings(cluster: str | None = None, log_format: str | None = None) -> Settings:
    """Settings for `--cluster` (default: sandbox) and `--log-format` (auto, console, json)."""
    from kubeops.errors import InputError
    from kubeops.settings import DEFAULT_CLUSTER, load_settings

    fmt = log_format or os.environ.get("KUBEOPS_LOG_FORMAT") or "auto"
    if fmt not in ("auto", "console", "json"):
        raise InputError(f"--log-format must be auto, console or json, got {fmt!r}")
    return load_settings(cluster or os.environ.get("KUBEOPS_CLUSTER") or DEFAULT_CLUSTER, log_format=fmt)


def cluster_names(cluster: str | None, clusters: str | None) -> list[str]:
    """The clusters a task names: ``--cluster=a,b,c`` in that order, or ``--clusters=GLOB[,GLOB]`` over the
    inventory (each glob's matches sorted, globs in the order given); neither: the default cluster."""
    import fnmatch

    from kubeops.errors import InputError
    from kubeops.settings import DEFAULT_CLUSTER, inventory_dir

    if cluster and clusters:
        raise InputError("give --cluster or --clusters, not both")
    if clusters:
        folder = inventory_dir()
        known = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        names: list[str] = []
        for pattern in filter(None, (g.strip() for g in clusters.split(","))):
            matched = [n for n in fnmatch.filter(known, pattern) if n not in names]
            if not matched and not any(fnmatch.fnmatch(n, pattern) for n in names):
                raise InputError(
                    f"--clusters={pattern} matches no inventory file in {folder}",
                    hint=f"known clusters: {', '.join(known) or '(none)'}",
                )
            names += matched
        return names
    names = [n.strip() for n in (cluster or os.environ.get("KUBEOPS_CLUSTER") or DEFAULT_CLUSTER).split(",")]
    if "" in names:
        raise InputError(f"--cluster has an empty name: {cluster!r}", hint="e.g. --cluster=staging,prod-eu")
    for name in names:
        if names.count(name) > 1:
            raise InputError(f"--cluster names {name!r} twice")
    return names


def whole_number(value: Any, flag: str, *, default: int) -> int:
    """A flag's whole number (invoke hands strings for flags without a typed default); exit 2 otherwise."""
    from kubeops.errors import InputError

    if value is None or value == "":
        return default
    try:
        return int(str(value))
    except ValueError:
        raise InputError(f"{flag} expects a whole number, got {value!r}") from None


def is_fleet(cluster: str | None, clusters: str | None) -> bool:
    """A fleet when --clusters is given or --cluster names more than one cluster."""
    return bool(clusters) or "," in (cluster or "")


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
    number = whole_number(value, flag, default=0)
    if number < 1:
        raise InputError(f"{flag} expects a whole number of at least 1, got {value!r}")
    return number


def max_failures_flag(value: Any) -> int | str | None:
    """``--max-failures``: a whole number of at least 1, or a percentage of the fleet's clusters ("25%", 0 to 100,
    as Ansible's max_fail_percentage); InputError naming the flag otherwise."""
    from kubeops.errors import InputError

    if value in (None, ""):
        return None
    text = str(value).strip()
    if text.endswith("%"):
        number = text[:-1].strip()
        if not number.isdigit() or int(number) > 100:
            raise InputError(f"--max-failures expects a whole number or a percentage from 0% to 100%, got {value!r}")
        return f"{int(number)}%"
    return positive_int(value, "--max-failures")


def fleet_numbers(fleet: FleetFlags) -> tuple[int, int, int | str | None]:
    """``(parallel, canary, max_failures)`` from the flags: whole numbers, parallel and max-failures at least 1
    (or max-failures a percentage), canary at least 0; InputError naming the flag otherwise. Checked for a single
    cluster too (where they have no effect), so a typo in a script is found before the script meets a fleet."""
    from kubeops.errors import InputError

    parallel = positive_int(fleet.parallel, "--parallel")
    canary = whole_number(fleet.canary, "--canary", default=0)
    if canary < 0:
        raise InputError(f"--canary expects a whole number of at least 0, got {fleet.canary!r}")
    return (1 if parallel is None else parallel), canary, max_failures_flag(fleet.max_failures)


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
    fleet: FleetFlags | None = None,
) -> RunRecord | None:
    """Run playbook `playbook` (name or path) as a task: settings, logging, guard, summary, exit codes.

    Several clusters (`cluster` = ``a,b,c`` or a ``--clusters`` glob in `fleet`) make a fleet: `run_fleet_task`
    runs it and None is returned (there is no single record).

    Domain tasks (declared with `playbook_task`) are one call: ``run_playbook_task(c, "decommission-node",
    params={"node": node}, dry_run=dry_run, cluster=cluster, log_format=log_format, wait_for_lock=wait_for_lock,
    fleet=fleet)``. `params` values may be typed or strings; `wait_for_lock` is the raw ``--wait-for-lock`` flag
    (``90s``, ``10m``), parsed like `run`'s (a malformed one exits 2 before anything starts).
    """
    fleet = fleet or FleetFlags()
    if is_fleet(cluster, fleet.clusters):
        run_fleet_task(
            playbook, params=params, dry_run=dry_run, cluster=cluster, log_format=log_format,
            wait_for_lock=wait_for_lock, fleet=fleet,
        )
        return None
    with exit_codes():
        fleet_numbers(fleet)  # no effect on one cluster, but a malformed value is still an error
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


def _fleet_runner(log_format: str | None, wait_for_lock_s: float) -> Any:
    from kubeops.fleet.runner import FleetRunner
    from kubeops.settings import default_state_dir

    return FleetRunner(
        state_dir=default_state_dir(),
        registry=registry(),  # loaded once here, before any cluster's thread starts
        settings_for=lambda name: build_settings(name, log_format),
        guard_for=lambda settings: build_guard(settings, wait_for_lock_s=wait_for_lock_s),
    )


def run_fleet_task(
    playbook: str,
    *,
    params: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    cluster: str | None = None,
    log_format: str | None = None,
    wait_for_lock: str | None = None,
    fleet: FleetFlags | None = None,
) -> None:
    """Run `playbook` on every named cluster as a fleet: checks, runs, the summary table, the fleet exit code."""
    fleet = fleet or FleetFlags()
    with exit_codes():
        from kubeops.engine.logging import configure_logging
        from kubeops.errors import InputError
        from kubeops.fleet.runner import FleetPlan

        parallel, canary, max_failures = fleet_numbers(fleet)  # flags first: exit 2 before any inventory is read
        plan = FleetPlan(
            clusters=tuple(cluster_names(cluster, fleet.clusters)),
            playbook=playbook,
            params={k: v for k, v in (params or {}).items() if v is not None},
            task=fleet.task,
            canary=canary,
            parallel=parallel,
            max_failures=max_failures,
            dry_run=dry_run,
        )
        wait_s = parse_wait(wait_for_lock)
        fmt = log_format or os.environ.get("KUBEOPS_LOG_FORMAT") or "auto"
        if fmt not in ("auto", "console", "json"):
            raise InputError(f"--log-format must be auto, console or json, got {fmt!r}")
        configure_logging(log_format=fmt)
        result = _fleet_runner(fmt, wait_s).start(plan)
    finish_fleet(result, dry_run=dry_run)


def resume_fleet_task(
    fleet_id: str, *, parallel: int | None = None, max_failures: Any = None, force: bool = False,
    log_format: str | None = None, wait_for_lock: str | None = None,
) -> None:
    """`invoke resume --fleet=ID`: continue every cluster of the fleet that is not done (with the fleet's
    --parallel and --max-failures unless given again)."""
    with exit_codes():
        from kubeops.engine.logging import configure_logging

        count = positive_int(parallel, "--parallel")  # None: not given, keep the fleet's
        limit = max_failures_flag(max_failures)
        wait_s = parse_wait(wait_for_lock)
        fmt = log_format or os.environ.get("KUBEOPS_LOG_FORMAT") or "auto"
        configure_logging(log_format=fmt)
        result = _fleet_runner(fmt, wait_s).resume(fleet_id, parallel=count, max_failures=limit, force=force)
    finish_fleet(result, dry_run=False)


def fleet_exit_code(statuses: Iterable[str]) -> int:
    """1 any failed (resumable), else 2 any rejected (nothing changed there), else 3 any locked, else 0.

    Paused (outside the window) and not-started clusters alone exit 0, like a single run outside its window.
    """
    seen = set(statuses)
    for status, code in (("failed", EXIT_STEP_FAILED), ("rejected", EXIT_INPUT), ("locked", EXIT_LOCKED)):
        if status in seen:
            return code
    return EXIT_OK


def finish_fleet(result: Any, *, dry_run: bool, out: Any = None) -> None:
    """Print each cluster's plan (dry run) and the summary table; exit with the fleet's code."""
    from kubeops.fleet.table import limit_text, summary_lines

    out = out or sys.stdout
    record = result.record
    if dry_run:
        for name in record["clusters"]:
            print(f"== cluster {name} ==", file=out)
            if name in result.runs:
                print_record_summary(result.runs[name], out=out)
            else:
                print(f"  {record['members'][name].get('status')}: {record['members'][name].get('error')}", file=out)
    for line in summary_lines(record, dry_run=dry_run):
        print(line, file=out)
    code = fleet_exit_code(m["status"] for m in record["members"].values())
    if getattr(result, "interrupted", False):
        what = (
            "the runs in flight finished and every cluster is done"
            if record["status"] == "done"
            else f"no further cluster was started; continue with `invoke resume --fleet={record['id']}`"
        )
        raise Exit(f"interrupted: fleet {record['id']}: {what}", EXIT_INTERRUPTED if code == EXIT_OK else code)
    if code != EXIT_OK:
        bad = [f"{c} {m['status']}" for c, m in record["members"].items() if m["status"] not in ("done", "pending")]
        unstarted = [c for c, m in record["members"].items() if m["status"] == "pending"]
        if record.get("stopped_by_failures") and unstarted:
            bad.append(f"{', '.join(unstarted)} not started (--max-failures={limit_text(record)} reached)")
        hint = "" if dry_run else f"; fix the cause, then `invoke resume --fleet={record['id']}`"
        raise Exit(f"error: fleet {record['id']}: {', '.join(bad)}{hint}", code)
    if not dry_run and record["status"] != "done":
        print(f"fleet {record['id']} is not finished ({record['status']}): `invoke resume --fleet={record['id']}`",
              file=out)
