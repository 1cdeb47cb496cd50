"""Engine tasks: run, validate, runs, show, resume. Thin: parse flags, call kubeops.engine.api, print."""

from __future__ import annotations

import json
import sys
from typing import Any

from invoke import Exit

from kubeops.tasks import _common
from kubeops.tasks._common import playbook_task, task

_CLUSTER = _common.CLUSTER_HELP
_LOG = _common.LOG_HELP
_WAIT = _common.WAIT_HELP


@playbook_task(
    iterable=["param"],
    help={
        "playbook": "playbook name (in playbooks/) or path to a YAML file",
        "param": "playbook parameter name=value (repeatable)",
        "dry-run": "run read-only steps, only plan mutating ones; changes nothing",
        "cluster": _CLUSTER,
        "log-format": _LOG,
        "wait-for-lock": _WAIT,
    },
)
def run(  # type: ignore[no-untyped-def]
    c, playbook=None, param=None, dry_run=False, cluster=None, log_format=None, wait_for_lock=None, fleet=None,
):
    """Run a playbook (checkpointed; resumable with `resume`)."""
    playbook = _common.required_flag(playbook, "playbook", "hello")
    with _common.exit_codes():
        params = _common.parse_params(param)
    _common.run_playbook_task(
        c, playbook, params=params, dry_run=dry_run, cluster=cluster, log_format=log_format,
        wait_for_lock=wait_for_lock, fleet=fleet,
    )


@task(help={"playbook": "playbook name (in playbooks/) or path to a YAML file"})
def validate(c, playbook=None):  # type: ignore[no-untyped-def]
    """Check a playbook (actions, arguments, references, includes) without running anything."""
    playbook = _common.required_flag(playbook, "playbook", "hello")
    with _common.exit_codes():
        from kubeops.engine.api import load_playbook

        pb = load_playbook(playbook, registry=_common.registry())
        print(
            f"ok: {pb.name} ({pb.path}): {len(pb.steps)} steps, {len(pb.cleanup)} cleanup steps, "
            f"params: {', '.join(p.name for p in pb.params) or '(none)'}"
        )


def _current_step(record: dict[str, Any]) -> str:
    for s in record.get("steps", []):
        if s.get("status") in ("running", "failed"):
            return str(s.get("name", "?"))
    for s in record.get("steps", []):
        if s.get("status") == "pending":
            return str(s.get("name", "?"))
    return "-"


@task(
    help={
        "json": "print records as JSON",
        "cluster": _CLUSTER,
        "all": "runs of every cluster",
        "fleet": "the runs of one fleet, one row per cluster (same as `invoke fleets --fleet=ID`)",
    }
)
def runs(c, json_=False, cluster=None, all_=False, fleet=None):  # type: ignore[no-untyped-def]
    """List runs: id, playbook, cluster, status, started, current step."""
    if fleet:
        from kubeops.tasks.fleet import show_fleet

        show_fleet(fleet, as_json=json_)
        return
    with _common.exit_codes():
        from kubeops.engine.api import list_runs, list_unreadable
        from kubeops.engine.checkpoints import start_order

        settings = _common.build_settings(cluster)
        records = list_runs(settings=settings, all_clusters=all_)
        broken = list_unreadable(settings=settings, all_clusters=all_)
        records = sorted(records, key=start_order)  # oldest first; same-second ids by their start time
        if json_:
            entries = [*({"id": u.run_id, "status": "unreadable", "path": u.where, "reason": u.reason}
                         for u in sorted(broken, key=lambda u: u.run_id)), *records]
            print(json.dumps(entries, indent=1))
            return
        rows = [("ID", "PLAYBOOK", "CLUSTER", "STATUS", "STARTED", "STEP")]
        rows += [(u.run_id, "?", "?", "unreadable", "-", "-") for u in sorted(broken, key=lambda u: u.run_id)]
        rows += [
            (r["id"], r.get("playbook", {}).get("name", "?"), r.get("cluster", "?"), r["status"],
             r.get("started", "-"), _current_step(r))
            for r in records
        ]
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        for u in broken:
            print(f"unreadable {u.run_id}: {u.where}: {u.reason} (see `invoke show --run={u.run_id}`)")


@task(help={"run": "run id (see `runs`)", "json": "print the record as JSON", "cluster": _CLUSTER})
def show(c, run=None, json_=False, cluster=None):  # type: ignore[no-untyped-def]
    """Show one run: steps, attempts, outputs, errors."""
    run = _common.required_flag(run, "run", "ID (see `invoke runs`)")
    with _common.exit_codes():
        from kubeops.engine.api import get_run

        record = get_run(run, settings=_common.build_settings(cluster))
        if json_:
            print(json.dumps(record, indent=1))
            return
        _print_run(record)


def _print_run(record: dict[str, Any], out: Any = None) -> None:
    out = out or sys.stdout
    pb = record["playbook"]
    print(f"run {record['id']}  playbook {pb['name']} ({pb.get('path')})  cluster {record['cluster']}", file=out)
    print(
        f"status {record['status']}  started {record['started']}  finished {record.get('finished') or '-'}  "
        f"host {record.get('host')} pid {record.get('pid')}",
        file=out,
    )
    print(f"params {json.dumps(record.get('params', {}), sort_keys=True)}", file=out)
    if record.get("error"):
        print(f"error {record['error']}", file=out)
    for s in record["steps"]:
        phase = "cleanup " if s.get("phase") == "cleanup" else ""
        print(f"  {phase}{s['name']} [{s['action']}] {s['status']} attempts={s.get('attempts', 0)}", file=out)
        if s.get("outputs"):
            print(f"      outputs: {json.dumps(s['outputs'], sort_keys=True)[:400]}", file=out)
        if s.get("intent"):
            print(f"      intent: {json.dumps(s['intent'], sort_keys=True)[:400]}", file=out)
        if s.get("error"):
            print(f"      error: {s['error']}", file=out)
    if record["status"] in ("failed", "paused", "running"):
        print(f"resume with: invoke resume --run={record['id']}", file=out)


@task(
    help={
        "run": "run id (default: the latest unfinished run of the cluster)",
        "force": "continue even though the playbook changed since the run started",
        "cluster": _CLUSTER,
        "log-format": _LOG,
        "wait-for-lock": _WAIT,
        "fleet": "continue every unfinished or unstarted cluster of fleet ID (see `invoke fleets`)",
        "parallel": "with --fleet: clusters at once after the canaries (default: as the fleet started)",
        "max-failures": "with --fleet: start no further cluster once N (or more than P% of the clusters) have "
        "failed in this resume (default: as the fleet started)",
    }
)
def resume(  # type: ignore[no-untyped-def]
    c, run=None, force=False, cluster=None, log_format=None, wait_for_lock=None, fleet=None, parallel=None,
    max_failures=None,
):
    """Continue a failed, paused or crashed run from its first step not done (or every cluster of a fleet)."""
    if fleet:
        if run or cluster:
            with _common.exit_codes():
                from kubeops.errors import InputError

                raise InputError(
                    "--fleet resumes every cluster of the fleet; give --run/--cluster for one run instead"
                )
        _common.resume_fleet_task(
            fleet, parallel=parallel, max_failures=max_failures, force=force, log_format=log_format,
            wait_for_lock=wait_for_lock,
        )
        return
    with _common.exit_codes():
        from kubeops.engine.api import get_run, resume_run
        from kubeops.errors import InputError

        given = [flag for flag, value in (("--parallel", parallel), ("--max-failures", max_failures)) if value]
        if given:  # silently ignoring them would let a script believe it limited something
            verb = "apply" if len(given) > 1 else "applies"
            raise InputError(f"{' and '.join(given)} {verb} only to a fleet: `invoke resume --fleet=ID`",
                             hint="`invoke fleets` lists the fleets")
        wait_s = _common.parse_wait(wait_for_lock)
        settings = _common.build_settings(cluster, log_format)
        _common.setup_logging(settings)
        if run is None:
            from kubeops.engine.api import list_unreadable

            for u in list_unreadable(settings=settings):
                print(f"warning: skipped unreadable run record {u.where} ({u.reason}); "
                      f"see `invoke show --run={u.run_id}`", file=sys.stderr)
        if run is not None and get_run(run, settings=settings).get("status") == "done":
            print(f"run {run} is already done; nothing to resume")
            return
        record = resume_run(
            run,
            settings=settings,
            force=force,
            registry=_common.registry(),
            guard=_common.build_guard(settings, wait_for_lock_s=wait_s),
        )
        _common.print_record_summary(record)
        if record["status"] == "paused":
            raise Exit(f"outside window: run {record['id']} paused again ({record.get('error')})", 0)
