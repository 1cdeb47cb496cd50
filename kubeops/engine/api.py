"""The engine's front door: what tasks (and tests of other areas) call. Exit codes are not decided here.

- `load_playbook(ref)`: find + validate (PlaybookError on any problem);
- `run_playbook(ref, settings=..., params=..., dry_run=...)`: run and return the final record;
  raises StepFailed (resumable) or InputError (rejected: nothing changed) unless ``check=False``;
- `resume_run(run_id, settings=..., force=...)`: continue a run (None: the latest unfinished of the cluster);
- `list_runs`, `get_run`, `list_unreadable`: read records (an undecodable one is listed as unreadable, and
  `get_run` of it raises CorruptRecord saying where it is and what to do).

A dry run keeps its record in memory only: it never appears in `runs` and can never be resumed, so a dry run
leaves no trace in the state folder (the returned record carries each step's plan for printing).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubeops.actions.registry import Registry, default_registry
from kubeops.clients.factory import Clients
from kubeops.engine.checkpoints import (
    CheckpointStore,
    MemoryCheckpointStore,
    RunRecord,
    UnreadableRecord,
    latest_unfinished,
)
from kubeops.engine.runner import NullGuard, RunGuard, Runner
from kubeops.engine.stores import store_for
from kubeops.errors import InputError, PlaybookError, StepFailed
from kubeops.model import loader
from kubeops.model.params import bind_params
from kubeops.model.playbook import Playbook
from kubeops.settings import Settings


def load_playbook(ref: str | Path | Playbook, *, registry: Registry | None = None) -> Playbook:
    """A validated playbook from a name, a path, or an already loaded Playbook."""
    if isinstance(ref, Playbook):
        return ref
    return loader.load_playbook(ref, registry=registry or default_registry())


def raise_for_status(record: RunRecord) -> RunRecord:
    """StepFailed for a failed run, InputError for a rejected one; the record otherwise."""
    status = record.get("status")
    rid = record["id"]
    if status == "failed":
        step = record.get("failed_step") or "?"
        exc = StepFailed(
            f"run {rid} failed at step {step!r}: {record.get('error')}",
            step=step,
            run_id=rid,
            hint="dry run: nothing was changed and there is nothing to resume"
            if record.get("dry_run")
            else f"fix the cause, then `invoke resume --run={rid}`; see `invoke show --run={rid}`",
        )
        exc.record = record  # type: ignore[attr-defined]
        raise exc
    if status == "rejected":
        exc2 = InputError(
            f"step {record.get('failed_step')!r}: {record.get('error')}",
            hint=f"nothing was changed (run {rid})",
        )
        exc2.record = record  # type: ignore[attr-defined]
        raise exc2
    return record


def run_playbook(
    ref: str | Path | Playbook,
    *,
    settings: Settings,
    params: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    registry: Registry | None = None,
    store: CheckpointStore | None = None,
    guard: RunGuard | None = None,
    clients: Clients | None = None,
    check: bool = True,
    run_id: str | None = None,
) -> RunRecord:
    """Load, bind parameters (inventory defaults apply), and run. Returns the final record.

    `run_id` names the run before it starts: the fleet writes it into its own record first (so a crash between
    the two still finds the run) and the console shows a run's page before its first step ends. None: a fresh id.

    With ``check=True`` (default) a failed run raises StepFailed and a rejected one InputError (the exception
    has `.record`). Dry runs use an in-memory store and no guard (no lock, no window): they change nothing.
    """
    reg = registry or default_registry()
    playbook = load_playbook(ref, registry=reg)
    bound = bind_params(playbook, params or {}, defaults=settings.params)
    if dry_run:
        store, guard = MemoryCheckpointStore(), NullGuard()
    runner = Runner(
        settings=settings,
        registry=reg,
        store=store if store is not None else store_for(settings),
        guard=guard,
        clients=clients,
    )
    record = runner.start(playbook, params=bound, dry_run=dry_run, run_id=run_id)
    return raise_for_status(record) if check else record


def get_run(run_id: str, *, settings: Settings, store: CheckpointStore | None = None) -> RunRecord:
    """The record of `run_id`; an unknown id is an input error."""
    record = (store or store_for(settings)).load(run_id=run_id)
    if record is None:
        raise InputError(f"no run {run_id!r} in {settings.state_dir / 'runs'}", hint="list runs with `invoke runs`")
    return record


def list_runs(
    *, settings: Settings, store: CheckpointStore | None = None, all_clusters: bool = False
) -> list[RunRecord]:
    """Run records, oldest first (of `settings.cluster` unless `all_clusters`)."""
    return (store or store_for(settings)).list(cluster=None if all_clusters else settings.cluster)


def list_unreadable(
    *, settings: Settings, store: CheckpointStore | None = None, all_clusters: bool = False
) -> list[UnreadableRecord]:
    """Stored records that cannot be decoded (truncated, not JSON): shown by `runs` so no run vanishes."""
    st = store or store_for(settings)
    finder = getattr(st, "unreadable", None)
    return list(finder(cluster=None if all_clusters else settings.cluster)) if finder else []


def resume_run(
    run_id: str | None,
    *,
    settings: Settings,
    force: bool = False,
    registry: Registry | None = None,
    store: CheckpointStore | None = None,
    guard: RunGuard | None = None,
    clients: Clients | None = None,
    check: bool = True,
) -> RunRecord:
    """Continue run `run_id` (None: the latest unfinished run of the cluster) from its first step not done.

    A run that is already done is returned as is. The playbook is reloaded from the path it ran from (or by
    name); a changed playbook is refused unless `force`.
    """
    reg = registry or default_registry()
    st = store if store is not None else store_for(settings)
    if run_id is None:
        record = latest_unfinished(st, cluster=settings.cluster)
        if record is None:
            broken = list_unreadable(settings=settings, store=st)
            raise InputError(
                f"no unfinished run for cluster {settings.cluster!r}"
                + (f" ({len(broken)} unreadable record(s) skipped: {', '.join(u.where for u in broken)})"
                   if broken else ""),
                hint="see `invoke runs`",
            )
    else:
        record = get_run(run_id, settings=settings, store=st)
    if record.get("status") == "done":
        return record
    info = record.get("playbook", {})
    path = info.get("path")
    try:
        playbook = (
            load_playbook(Path(path), registry=reg)
            if path and Path(path).is_file()
            else load_playbook(info.get("name", "?"), registry=reg)
        )
    except PlaybookError as exc:
        raise PlaybookError(
            exc.detail,
            path=exc.path,
            line=exc.line,
            field=exc.field,
            hint=f"run {record['id']} cannot be resumed until its playbook is valid again",
        ) from None
    runner = Runner(settings=settings, registry=reg, store=st, guard=guard, clients=clients)
    final = runner.resume(record, playbook, force=force)
    return raise_for_status(final) if check else final
