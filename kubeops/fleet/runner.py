"""`FleetRunner`: one playbook across several clusters, one ordinary run per cluster.

Scheduling (documented in docs/fleet.md):
- canaries: the first `canary` clusters run ONE AFTER ANOTHER, in the order given, each alone; the next starts only
  when the previous one is done. A canary that ends any other way (failed, rejected, locked, paused) stops the
  fleet: later clusters are left ``pending`` and `resume --fleet` continues from there once the cause is fixed;
- the rest: `parallel` at a time, started in order; by default a failure there does not stop the others (every
  cluster is independent; gate the risky ones with a larger --canary). With `max_failures` N, once N of them have
  ended failed or rejected (the change, or its input, is wrong there) no further cluster starts: the runs in
  flight finish and the rest stay ``pending`` for `resume --fleet`, which honours the same limit. Locked and
  paused clusters do not count: another run or the calendar stopped them, not the change. `max_failures` "P%"
  is a share of the fleet's clusters, as Ansible's ``max_fail_percentage``: no further start once MORE than P% of
  them failed (`failure_limit`);
- each cluster's run is the engine's ordinary run: its own Settings, clients, checkpoint store, guard (lock,
  window, notifications), in its own thread with ``cluster`` and ``fleet_id`` bound in the log context.

Nothing global is shared between the threads: settings, stores, guards and clients are built per cluster; the
action registry is loaded once, before the first thread starts.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from kubeops.actions.registry import Registry
from kubeops.engine.api import load_playbook, resume_run, run_playbook
from kubeops.engine.checkpoints import UNFINISHED, RunRecord, new_run_id
from kubeops.engine.logging import get_logger, redact, redact_text
from kubeops.engine.runner import RunGuard
from kubeops.engine.stores import store_for
from kubeops.errors import InputError, KubeopsError, LockHeld
from kubeops.fleet.limits import MaxFailures, failure_limit
from kubeops.fleet.record import (
    FLEET_RECORD_VERSION,
    FleetRecord,
    FleetStore,
    MemberRecord,
    fleet_status,
    new_fleet_id,
    now_iso,
)
from kubeops.model.params import bind_params
from kubeops.processes import pid_alive
from kubeops.settings import Settings

_RUN_TO_MEMBER = {"done": "done", "failed": "failed", "paused": "paused", "rejected": "rejected"}
COUNTED_FAILURES = ("failed", "rejected")  # what --max-failures counts (see the module docstring)


@dataclass(frozen=True, slots=True)
class FleetPlan:
    """What to run where: validated by the tasks (names exist, numbers in range) before it gets here."""

    clusters: tuple[str, ...]
    playbook: str  # name or path
    params: Mapping[str, Any] = field(default_factory=dict)
    task: str = "run"
    canary: int = 0
    parallel: int = 1
    max_failures: MaxFailures = None  # None: no limit (a failure after the canaries stops nothing); N or "P%"
    dry_run: bool = False

    def __post_init__(self) -> None:
        if not self.clusters:
            raise InputError("a fleet needs at least one cluster")
        if len(set(self.clusters)) != len(self.clusters):
            dup = next(c for c in self.clusters if self.clusters.count(c) > 1)
            raise InputError(f"cluster {dup!r} is named twice")
        if self.parallel < 1:
            raise InputError(f"--parallel must be at least 1, got {self.parallel}")
        failure_limit(self.max_failures, len(self.clusters))  # a bad value fails here, before anything runs
        if not 0 <= self.canary <= len(self.clusters):
            raise InputError(
                f"--canary must be between 0 and the number of clusters ({len(self.clusters)}), got {self.canary}"
            )


@dataclass(slots=True)
class FleetResult:
    """The fleet record, plus each cluster's final run record (dry runs: the plans to print)."""

    record: FleetRecord
    runs: dict[str, RunRecord] = field(default_factory=dict)
    interrupted: bool = False  # Ctrl-C: no further cluster was started


class FleetRunner:
    """Starts and resumes fleets. `settings_for(cluster)` and `guard_for(settings)` come from the tasks, so the
    fleet reads no flag, environment variable or global of its own."""

    def __init__(
        self,
        *,
        state_dir: Any,
        registry: Registry,
        settings_for: Callable[[str], Settings],
        guard_for: Callable[[Settings], RunGuard],
    ) -> None:
        self.store = FleetStore(state_dir)
        self.registry = registry
        self.settings_for = settings_for
        self.guard_for = guard_for
        self._mutex = threading.Lock()
        self.log = get_logger()

    # -- entry points -----------------------------------------------------------------------------------------
    def start(self, plan: FleetPlan) -> FleetResult:
        """Check every cluster (inventory, parameters, guard settings), then run the fleet; returns the result.

        Any problem found by the checks is an InputError before any cluster is touched and before a record is
        written. A dry run writes no fleet record (like a dry run writes no run record).
        """
        playbook = load_playbook(plan.playbook, registry=self.registry)
        for cluster in plan.clusters:
            try:
                settings = self.settings_for(cluster)
                bind_params(playbook, plan.params, defaults=settings.params)
                if not plan.dry_run:
                    self.guard_for(settings)  # invalid window or notify settings fail here, for every cluster
            except InputError as exc:
                raise InputError(f"cluster {cluster!r}: {exc.message}", hint=exc.hint) from None
        stored = redact(dict(plan.params))
        by_path = "/" in plan.playbook or plan.playbook.endswith((".yaml", ".yml"))
        record: FleetRecord = {
            "version": FLEET_RECORD_VERSION,
            "id": new_fleet_id(),
            # a path is kept absolute, so a resume from another folder starts the same file
            "playbook": str(Path(playbook.path).resolve()) if by_path and playbook.path else plan.playbook,
            "playbook_hash": playbook.content_hash,
            "task": plan.task,
            "params": stored,
            "params_redacted": stored != dict(plan.params),
            "clusters": list(plan.clusters),
            "canary": plan.canary,
            "parallel": plan.parallel,
            "max_failures": plan.max_failures,
            "status": "running",
            "started": now_iso(),
            "finished": None,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "members": {c: _member(c) for c in plan.clusters},
            "stopped_by": None,
            "stopped_by_failures": None,
        }
        result = FleetResult(record=record)
        self._drive(result, params=dict(plan.params), dry_run=plan.dry_run, force=False, resumed=False)
        return result

    def resume(
        self, fleet_id: str, *, parallel: int | None = None, max_failures: MaxFailures = None, force: bool = False
    ) -> FleetResult:
        """Continue every cluster of the fleet that is not done: unfinished runs resume, unstarted ones start.

        The fleet's canary, parallel and max_failures apply again (`parallel` / `max_failures` replace the stored
        ones when given); failures are counted afresh, among the clusters this resume runs."""
        record = self.store.get(fleet_id)
        if (
            record.get("status") == "running"
            and record.get("host") == socket.gethostname()
            and record.get("pid") not in (None, os.getpid())
            and pid_alive(int(record["pid"]))
        ):
            raise LockHeld(f"fleet {fleet_id} is still running as pid {record['pid']} on {record['host']}")
        if parallel is not None:
            if parallel < 1:
                raise InputError(f"--parallel must be at least 1, got {parallel}")
            record["parallel"] = parallel
        if max_failures is not None:
            failure_limit(max_failures, len(record["clusters"]))  # checked before the record changes
            record["max_failures"] = max_failures
        result = FleetResult(record=record)
        if fleet_status(record["members"]) == "done":
            return result
        unstarted = [c for c, m in record["members"].items() if not m.get("run_id")]
        if unstarted and record.get("params_redacted"):
            raise InputError(
                f"fleet {fleet_id}: clusters {', '.join(unstarted)} never started and the fleet's parameters held "
                "a secret, which is never stored",
                hint="start those clusters with a new command (`--cluster=" + ",".join(unstarted) + "`)",
            )
        if unstarted and not force:
            current = load_playbook(record["playbook"], registry=self.registry).content_hash
            if record.get("playbook_hash") not in (None, current):
                raise InputError(
                    f"playbook {record['playbook']!r} changed since fleet {fleet_id} started; clusters "
                    f"{', '.join(unstarted)} would run another version than the canaries did",
                    hint=f"review the change, then `invoke resume --fleet={fleet_id} --force`",
                )
        record.update(status="running", finished=None, host=socket.gethostname(), pid=os.getpid(), stopped_by=None,
                      stopped_by_failures=None)
        self._drive(result, params=dict(record.get("params") or {}), dry_run=False, force=force, resumed=True)
        return result

    # -- scheduling ---------------------------------------------------------------------------------------------
    def _drive(
        self, result: FleetResult, *, params: dict[str, Any], dry_run: bool, force: bool, resumed: bool
    ) -> None:
        record = result.record
        fid = record["id"]
        order = list(record["clusters"])
        canaries, rest = order[: record["canary"]], order[record["canary"] :]
        with structlog.contextvars.bound_contextvars(fleet_id=fid):
            self._save(record, dry_run)
            self.log.info(
                "fleet.resumed" if resumed else "fleet.started",
                fleet_id=fid, clusters=order, canary=record["canary"], parallel=record["parallel"],
                max_failures=record.get("max_failures"), dry_run=dry_run,
            )
            stopped_by = None
            limit = failure_limit(record.get("max_failures"), len(order))
            gate = _FailureGate(limit if not dry_run else None, self._mutex)
            pool: ThreadPoolExecutor | None = None
            futures: list[Future[None]] = []
            try:
                for cluster in canaries:  # one after another: each canary must be done before the next starts
                    self._member_run(result, cluster, params=params, dry_run=dry_run, force=force)
                    if record["members"][cluster]["status"] != "done" and not dry_run:
                        stopped_by = cluster
                        break
                todo = [c for c in rest if record["members"][c]["status"] != "done"] if stopped_by is None else []
                if stopped_by is not None:
                    self.log.warning(
                        "fleet.stopped", canary=stopped_by, status=record["members"][stopped_by]["status"]
                    )
                elif todo:
                    pool = ThreadPoolExecutor(max_workers=min(record["parallel"], len(todo)),
                                              thread_name_prefix="fleet")
                    futures = [
                        pool.submit(self._gated_run, gate, result, c, params=params, dry_run=dry_run, force=force)
                        for c in todo
                    ]
                    for future in futures:
                        future.result()
            except KeyboardInterrupt:
                # Ctrl-C: start no further cluster and let the runs in flight finish (a canary, run in this
                # thread, is interrupted like a crash). A second Ctrl-C leaves at once; every run stays resumable.
                result.interrupted = True
                self.log.warning("fleet.interrupted", note="runs in flight finish; no further cluster starts")
                if pool is not None:
                    pool.shutdown(wait=False, cancel_futures=True)
                    for future in futures:
                        if not future.cancelled():
                            future.result()
            finally:
                if pool is not None:
                    pool.shutdown(wait=False)
                with self._mutex:
                    record["stopped_by"] = stopped_by
                    record["stopped_by_failures"] = gate.reached_by()
                    record["finished"] = now_iso()
                    self._save(record, dry_run)
            self.log.info("fleet.finished", status=record["status"],
                          members={c: m["status"] for c, m in record["members"].items()})

    def _gated_run(self, gate: _FailureGate, result: FleetResult, cluster: str, **kwargs: Any) -> None:
        """`_member_run` after the canaries: not started once the failure limit is reached (stays ``pending``)."""
        if not gate.admits():
            self.log.info("fleet.member.not_started", cluster=cluster, reason="max_failures",
                          failed=gate.failed, max_failures=gate.limit)
            return
        self._member_run(result, cluster, **kwargs)
        gate.count(cluster, result.record["members"][cluster]["status"])

    def _member_run(
        self, result: FleetResult, cluster: str, *, params: dict[str, Any], dry_run: bool, force: bool
    ) -> None:
        """Start, resume or skip one cluster's run; never raises (the member's status says what happened)."""
        record = result.record
        member = record["members"][cluster]
        with structlog.contextvars.bound_contextvars(cluster=cluster, fleet_id=record["id"]):
            began = time.monotonic()
            try:
                settings = self.settings_for(cluster)
                store = store_for(settings)
                existing = store.load(run_id=member["run_id"]) if member.get("run_id") and not dry_run else None
                if existing is not None and existing.get("status") == "done":
                    self._finish(record, member, existing, began, dry_run, count=False)
                    return
                resuming = existing is not None and existing.get("status") in UNFINISHED
                if not resuming and member.get("attempts") and record.get("params_redacted"):
                    raise InputError(
                        "this cluster's run must start afresh, but the fleet's parameters held a secret, which is "
                        "never stored",
                        hint=f"start it with a new command (`--cluster={cluster}`)",
                    )
                with self._mutex:
                    if not resuming and not (member.get("run_id") and existing is None):
                        member["run_id"] = new_run_id()  # written before the run starts: a crash finds it
                    member.update(status="running", error=None, failed_step=None, finished=None)
                    member["started"] = member.get("started") or now_iso()
                    member["attempts"] = member.get("attempts", 0) + 1
                    self._save(record, dry_run)
                rid = str(member["run_id"])
                self.log.info("fleet.member.started", run_id=rid, resumed=resuming)
                guard = None if dry_run else self.guard_for(settings)
                if resuming:
                    run = resume_run(rid, settings=settings, force=force, registry=self.registry, store=store,
                                     guard=guard, check=False)
                else:
                    run = run_playbook(record["playbook"], settings=settings, params=params, dry_run=dry_run,
                                       registry=self.registry, store=store, guard=guard, check=False, run_id=rid)
                result.runs[cluster] = run
                self._finish(record, member, run, began, dry_run, count=True)
            except LockHeld as exc:
                self._fail(record, member, "locked", exc, began, dry_run)
            except InputError as exc:
                self._fail(record, member, "rejected", exc, began, dry_run)
            except KubeopsError as exc:
                self._fail(record, member, "failed", exc, began, dry_run)
            except Exception as exc:  # one cluster's bug must not take the other clusters' runs down with it
                self.log.exception("fleet.member.crashed")
                self._fail(record, member, "failed", exc, began, dry_run)

    # -- bookkeeping ----------------------------------------------------------------------------------------------
    def _finish(
        self, record: FleetRecord, member: MemberRecord, run: RunRecord, began: float, dry_run: bool, *, count: bool
    ) -> None:
        with self._mutex:
            member["status"] = _RUN_TO_MEMBER.get(str(run.get("status")), "failed")
            member["failed_step"] = run.get("failed_step")
            member["error"] = run.get("error")
            member["finished"] = run.get("finished") or now_iso()
            if count:
                member["duration_s"] = round(member.get("duration_s", 0.0) + time.monotonic() - began, 3)
            self._save(record, dry_run)
        self.log.info("fleet.member.finished", run_id=member.get("run_id"), status=member["status"],
                      failed_step=member.get("failed_step"), duration_s=member.get("duration_s"))

    def _fail(
        self, record: FleetRecord, member: MemberRecord, status: str, exc: BaseException, began: float, dry_run: bool
    ) -> None:
        text = str(exc) if isinstance(exc, KubeopsError) else f"{type(exc).__name__}: {exc}"
        with self._mutex:
            member["status"] = status
            member["error"] = redact_text(text)
            member["finished"] = now_iso()
            member["duration_s"] = round(member.get("duration_s", 0.0) + time.monotonic() - began, 3)
            self._save(record, dry_run)
        self.log.info("fleet.member.finished", run_id=member.get("run_id"), status=status, error=member["error"])

    def _save(self, record: FleetRecord, dry_run: bool) -> None:
        """Persist the record (never for a dry run); once the fleet is over, its status follows its members (a run
        still in flight after Ctrl-C finishes later and updates it)."""
        if record.get("finished"):
            record["status"] = fleet_status(record["members"])
        if not dry_run:
            self.store.save(record)


class _FailureGate:
    """``--max-failures`` after the canaries: counts the clusters of this drive that ended failed or rejected and
    admits no further start once `limit` is reached (None: no limit). Runs in flight are not touched."""

    def __init__(self, limit: int | None, mutex: threading.Lock) -> None:
        self.limit = limit
        self.failed: list[str] = []
        self.refused = False
        self._mutex = mutex

    def admits(self) -> bool:
        with self._mutex:
            if self.limit is not None and len(self.failed) >= self.limit:
                self.refused = True
                return False
            return True

    def count(self, cluster: str, status: str) -> None:
        if status in COUNTED_FAILURES:
            with self._mutex:
                self.failed.append(cluster)

    def reached_by(self) -> list[str] | None:
        """The clusters whose failures reached the limit, when a cluster was left unstarted because of it."""
        return list(self.failed) if self.refused else None


def refresh_members(record: FleetRecord, settings_for: Callable[[str], Settings]) -> FleetRecord:
    """The record with each member's status read from its run record (for display: a member resumed on its own
    with `invoke resume --run=ID` is done although the fleet record, written by the fleet, still says failed)."""
    for cluster, member in record["members"].items():
        if not member.get("run_id") or member.get("status") in ("done", "pending"):
            continue
        try:
            run = store_for(settings_for(cluster)).load(run_id=str(member["run_id"]))
        except KubeopsError:
            continue  # an inventory gone or unreadable: show what the fleet last wrote
        if run is not None and run.get("status") == "done":
            member.update(status="done", error=None, failed_step=None, finished=run.get("finished"))
    if record.get("finished"):
        record["status"] = fleet_status(record["members"])
    return record


def _member(cluster: str) -> MemberRecord:
    return {
        "cluster": cluster,
        "run_id": None,
        "status": "pending",
        "started": None,
        "finished": None,
        "duration_s": 0.0,
        "failed_step": None,
        "error": None,
        "attempts": 0,
    }
