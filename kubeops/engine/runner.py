"""The runner: executes a validated playbook step by step, checkpointing before and after every step.

Semantics (documented in docs/engine.md):
- main steps run in order; a step whose `when` is false is `skipped`; a failing step is retried per its
  `retry` policy (never for InputError), then either aborts the run (`on_failure: abort`, default) or is left
  `failed` while the run goes on (`on_failure: continue`);
- cleanup steps: after an aborted run every cleanup step runs; after a successful run only those marked
  `always: true` run; a failing cleanup step is recorded and the remaining cleanup steps still run;
- timeouts: the action gets `ctx.deadline`; if it returns after the deadline the attempt fails anyway;
- dry run: read-only actions run for real, mutating ones only `plan` (plan outputs stand in for outputs);
- a guard (cluster lock, windows, notifications) wraps the run: `acquire` before the record is
  written, `before_step` before each main step (OutsideWindow pauses the run: status `paused`, resumable),
  `on_finish` with the final record, `release` always;
- an InputError before any mutating step started (e.g. node not found, detected by a read-only check) ends
  the run `rejected`: cleanup is skipped because nothing was changed, and the task exits 2.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from kubeops.actions.context import StepContext
from kubeops.actions.registry import ActionSpec, Registry, check_value, type_name
from kubeops.clients.factory import Clients
from kubeops.engine.checkpoints import CheckpointStore, RunRecord, StepRecord, new_run_id, now_iso
from kubeops.engine.logging import get_logger, redact, redact_text
from kubeops.errors import ActionError, InputError, LockHeld, OutsideWindow, TransientError
from kubeops.model import refs
from kubeops.model.playbook import Playbook, Step
from kubeops.processes import pid_alive
from kubeops.settings import Settings


class RunGuard(Protocol):
    """Hooks around a run (lock, windows, notifications); keyword-only, and a guard may make any of them a no-op."""

    def acquire(self, *, run_id: str, playbook: Playbook, resumed: bool) -> None:
        """Before anything is written: take the cluster lock (raise LockHeld) or refuse to start (OutsideWindow)."""

    def before_step(self, *, run_id: str, step: Step) -> None:
        """Before each main step: raise OutsideWindow to pause the run cleanly (resumable)."""

    def before_change(self, *, run_id: str, step: Step) -> None:
        """Once, before the first mutating step that will run (not in dry runs): take the cluster lock.

        Read-only steps before it (node exists, capacity) run unlocked, so a run they reject changes nothing
        anywhere. Raising LockHeld here pauses the run (resumable) and exits 3.
        """

    def on_finish(self, *, record: RunRecord) -> None:
        """After the final record is saved (done, failed, paused, rejected): notifications, metrics."""

    def release(self, *, run_id: str) -> None:
        """Always called after `acquire` succeeded, even when the run raised."""


class NullGuard:
    """No lock, no window, no notifications."""

    def acquire(self, *, run_id: str, playbook: Playbook, resumed: bool) -> None:
        return None

    def before_step(self, *, run_id: str, step: Step) -> None:
        return None

    def before_change(self, *, run_id: str, step: Step) -> None:
        return None

    def on_finish(self, *, record: RunRecord) -> None:
        return None

    def release(self, *, run_id: str) -> None:
        return None


@dataclass(slots=True)
class _Outcome:
    ok: bool
    error: BaseException | None = None


@functools.lru_cache(maxsize=512)
def _param_specs(spec: ActionSpec) -> dict[str, Any]:
    """`spec.param_specs()` once per action: it resolves string annotations, which compiles code each time."""
    return spec.param_specs()


def build_params(spec: ActionSpec, args: Mapping[str, Any]) -> Any:
    """The action's params dataclass from resolved args; a type mismatch is an InputError (never retried)."""
    specs = _param_specs(spec)
    for name, value in args.items():
        pspec = specs[name]
        if not check_value(pspec.type, value):
            raise InputError(f"argument {name!r} of {spec.name} must be {type_name(pspec.type)}, got {value!r}")
    values = dict(args)
    for name, pspec in specs.items():
        if name in values and isinstance(values[name], int) and pspec.type is float:
            values[name] = float(values[name])
    return spec.params(**values)


def _step_entry(step: Step) -> StepRecord:
    return {
        "name": step.name,
        "action": step.action,
        "phase": "cleanup" if step.cleanup else "main",
        "status": "pending",
        "attempts": 0,
        "outputs": None,
        "intent": None,
        "plan": None,
        "started": None,
        "finished": None,
        "error": None,
        "source": str(step.source) if step.source else None,
    }


def _playbook_info(playbook: Playbook) -> dict[str, str]:
    """What a record keeps of its playbook: the name and path to reload it, the hash that detects a change."""
    return {"name": playbook.name, "path": playbook.path, "hash": playbook.content_hash}


def _describe_error(exc: BaseException) -> str:
    text = (
        str(exc)
        if isinstance(exc, ActionError | InputError) or hasattr(exc, "message")
        else (f"{type(exc).__name__}: {exc}")
    )
    return redact_text(text)


class Runner:
    """Runs one playbook against one cluster; create one per run."""

    def __init__(
        self,
        *,
        settings: Settings,
        registry: Registry,
        store: CheckpointStore,
        guard: RunGuard | None = None,
        clients: Clients | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.guard: RunGuard = guard or NullGuard()
        self._clients = clients
        self.sleep = sleep
        self._change_guarded = False  # whether guard.before_change ran for the current run

    # -- entry points ---------------------------------------------------------------------------------------
    def start(
        self, playbook: Playbook, *, params: Mapping[str, Any], dry_run: bool = False, run_id: str | None = None
    ) -> RunRecord:
        """Run `playbook` with bound `params`; returns the final record (status done, failed, paused, rejected)."""
        rid = run_id or new_run_id()
        record: RunRecord = {
            "version": 1,
            "id": rid,
            "playbook": _playbook_info(playbook),
            "params": redact(dict(params)),
            "cluster": self.settings.cluster,
            "dry_run": dry_run,
            "status": "running",
            "started": now_iso(),
            "finished": None,
            "error": None,
            "failed_step": None,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "steps": [_step_entry(s) for s in playbook.all_steps()],
        }
        return self._guarded(record, playbook, resumed=False, running=set())

    def resume(self, record: RunRecord, playbook: Playbook, *, force: bool = False) -> RunRecord:
        """Continue `record` from its first step not done; returns the final record."""
        rid = record["id"]
        if record.get("dry_run"):
            raise InputError(f"run {rid} was a dry run; there is nothing to resume")
        if record.get("status") == "done":
            return record
        old_hash = record.get("playbook", {}).get("hash")
        if old_hash != playbook.content_hash and not force:
            raise InputError(
                f"playbook {playbook.name!r} changed since run {rid} started (content hash differs)",
                hint=f"review the change, then `invoke resume --run={rid} --force` to continue with the new version",
            )
        if (
            record.get("status") == "running"
            and record.get("host") == socket.gethostname()
            and record.get("pid") not in (None, os.getpid())
            and pid_alive(int(record["pid"]))  # type: ignore[arg-type]
        ):
            raise LockHeld(f"run {rid} is still running as pid {record['pid']} on {record['host']}")
        old = {s["name"]: s for s in record.get("steps", [])}
        steps: list[StepRecord] = []
        running: set[str] = set()
        for step in playbook.all_steps():
            entry = old.get(step.name)
            if entry is None or entry.get("action") != step.action:
                entry = _step_entry(step)
            entry = dict(entry)  # type: ignore[assignment]
            entry["source"] = str(step.source) if step.source else entry.get("source")
            if step.cleanup:
                if entry["status"] != "pending":
                    entry.update(status="pending", outputs=None, error=None, started=None, finished=None)
            elif entry["status"] == "running":
                running.add(step.name)
            elif entry["status"] == "failed":
                entry["status"] = "pending"
            steps.append(entry)
        record = dict(record)  # type: ignore[assignment]
        record.update(
            steps=steps,
            status="running",
            error=None,
            failed_step=None,
            finished=None,
            host=socket.gethostname(),
            pid=os.getpid(),
            playbook=_playbook_info(playbook),
        )
        record.setdefault("resumes", []).append(now_iso())  # type: ignore[typeddict-item]
        return self._guarded(record, playbook, resumed=True, running=running)

    # -- the run --------------------------------------------------------------------------------------------
    def _guarded(self, record: RunRecord, playbook: Playbook, *, resumed: bool, running: set[str]) -> RunRecord:
        rid = record["id"]
        log = get_logger(run_id=rid, playbook=playbook.name, step=None, action=None)
        # Guard events (lock, window, notifications) carry the run id too.
        with structlog.contextvars.bound_contextvars(run_id=rid, step=None, action=None):
            self.guard.acquire(run_id=rid, playbook=playbook, resumed=resumed)
            self._change_guarded = False
            clients = self._clients or Clients(self.settings, dry_run=bool(record.get("dry_run")))
            try:
                self.store.save(record=record)
                log.info(
                    "run.resumed" if resumed else "run.started",
                    cluster=record["cluster"],
                    dry_run=record["dry_run"],
                    params=record["params"],
                    steps=len(playbook.steps),
                )
                try:
                    self._execute(record, playbook, clients=clients, running=running, log=log)
                except LockHeld as exc:
                    # Lost the race for the lock before its first change: nothing to resume, like bad input.
                    # Lost it later (renewal failed): paused, and `resume` continues once the lock is free.
                    record["status"] = "paused" if self._mutated(record, playbook) else "rejected"
                    record["error"] = redact_text(str(exc))
                    record["finished"] = now_iso()
                    self.store.save(record=record)
                    log.info(f"run.{record['status']}", reason=record["error"])
                    raise
                record["finished"] = now_iso()
                self.store.save(record=record)
                event = {"done": "run.done", "paused": "run.paused"}.get(record["status"], "run.failed")
                log.info(
                    event, status=record["status"], failed_step=record.get("failed_step"), error=record.get("error")
                )
                self.guard.on_finish(record=record)
            finally:
                if self._clients is None:
                    clients.close()
                self.guard.release(run_id=rid)
        return record

    def _execute(self, record: RunRecord, playbook: Playbook, *, clients: Clients, running: set[str], log: Any) -> None:
        index = {s["name"]: s for s in record["steps"]}
        dry_run = bool(record.get("dry_run"))
        run_vars = {"id": record["id"], "dry_run": dry_run, "cluster": record["cluster"], "playbook": playbook.name}
        aborted: _Outcome | None = None
        aborted_at: Step | None = None
        for step in playbook.steps:
            entry = index[step.name]
            if entry["status"] in ("done", "skipped"):
                continue
            try:
                self.guard.before_step(run_id=record["id"], step=step)
            except OutsideWindow as exc:
                record["status"] = "paused"
                record["error"] = redact_text(str(exc))
                log.info("run.pausing", step=step.name, reason=record["error"])
                return
            outcome = self._run_step(step, entry, record, run_vars, clients, resumed=step.name in running, log=log)
            if not outcome.ok and step.on_failure == "abort":
                aborted, aborted_at = outcome, step
                break
        if aborted is not None and aborted_at is not None:
            record["failed_step"] = aborted_at.name
            record["error"] = index[aborted_at.name].get("error")
            if isinstance(aborted.error, InputError) and not self._mutated(record, playbook):
                record["status"] = "rejected"
                for step in playbook.cleanup:
                    self._skip(
                        index[step.name], record, "nothing was changed", log.bind(step=step.name, action=step.action)
                    )
                return
        cleanup_failed = False
        for step in playbook.cleanup:
            entry = index[step.name]
            if entry["status"] in ("done", "skipped"):
                continue
            if aborted is None and not step.always:
                self._skip(entry, record, "run succeeded (not always)", log.bind(step=step.name, action=step.action))
                continue
            outcome = self._run_step(step, entry, record, run_vars, clients, resumed=False, log=log)
            cleanup_failed = cleanup_failed or not outcome.ok
        if aborted is not None:
            record["status"] = "failed"
        elif cleanup_failed:
            record["status"] = "failed"
            record["error"] = "a cleanup step failed: " + ", ".join(
                s["name"] for s in record["steps"] if s["phase"] == "cleanup" and s["status"] == "failed"
            )
        else:
            record["status"] = "done"

    def _mutated(self, record: RunRecord, playbook: Playbook) -> bool:
        """Whether any mutating step may have changed something (started, or recorded intent)."""
        if record.get("dry_run"):
            return False  # a dry run only planned its mutating steps
        for entry in record["steps"]:
            spec = self.registry.get(entry["action"])
            if spec is None or not spec.mutates or entry["phase"] != "main":
                continue
            if entry["status"] in ("done", "running") or entry.get("intent"):
                return True
            if entry["status"] == "failed" and entry.get("name") != record.get("failed_step"):
                return True
        return False

    def _skip(self, entry: StepRecord, record: RunRecord, reason: str, log: Any) -> None:
        entry.update(status="skipped", finished=now_iso(), error=None)
        entry["skip_reason"] = reason  # type: ignore[typeddict-unknown-key]
        self.store.save(record=record)
        log.info("step.skipped", reason=reason)

    def _scope(self, record: RunRecord, run_vars: dict[str, Any]) -> refs.Scope:
        outputs: dict[str, Any] = {}
        unavailable: dict[str, str] = {}
        for s in record["steps"]:
            if s["status"] == "done":
                outputs[s["name"]] = s.get("outputs") or {}
            elif s["status"] == "skipped":
                unavailable[s["name"]] = "was skipped"
            elif s["status"] == "failed":
                unavailable[s["name"]] = "failed"
        return refs.Scope(params=record["params"], outputs=outputs, run=run_vars, unavailable=unavailable)

    def _run_step(
        self,
        step: Step,
        entry: StepRecord,
        record: RunRecord,
        run_vars: dict[str, Any],
        clients: Clients,
        *,
        resumed: bool,
        log: Any,
    ) -> _Outcome:
        slog = log.bind(step=step.name, action=step.action)
        scope = self._scope(record, run_vars)
        try:
            go = refs.evaluate(step.when, scope)
        except refs.RefError as exc:
            return self._fail(entry, record, exc, slog, attempt=0, will_retry=False)
        if not go:
            self._skip(entry, record, "condition is false", slog)
            return _Outcome(ok=True)
        spec = self.registry.get(step.action)
        if spec is None:
            return self._fail(
                entry, record, InputError(f"unknown action {step.action!r}"), slog, attempt=0, will_retry=False
            )
        dry_run = bool(record.get("dry_run"))
        if spec.mutates and not dry_run and not self._change_guarded:
            self.guard.before_change(run_id=record["id"], step=step)
            self._change_guarded = True
        attempt = 0
        while True:
            attempt += 1
            entry.update(status="running", started=now_iso(), finished=None, error=None)
            entry["attempts"] = int(entry.get("attempts") or 0) + 1
            self.store.save(record=record)
            slog.info(
                "step.started", attempt=entry["attempts"], resumed=resumed and attempt == 1, source=entry.get("source")
            )
            began = time.monotonic()
            try:
                with structlog.contextvars.bound_contextvars(step=step.name, action=step.action):
                    outputs = self._attempt(
                        step,
                        spec,
                        entry,
                        record,
                        scope,
                        clients,
                        dry_run=dry_run,
                        resumed=resumed and attempt == 1,
                        log=slog,
                    )
            except InputError as exc:
                return self._fail(entry, record, exc, slog, attempt=attempt, will_retry=False)
            except Exception as exc:
                will_retry = attempt < step.retry.attempts
                self._fail(entry, record, exc, slog, attempt=attempt, will_retry=will_retry)
                if not will_retry:
                    return _Outcome(ok=False, error=exc)
                delay = step.retry.delay_s(attempt)
                if isinstance(exc, TransientError):
                    delay = max(delay, exc.delay_s)
                slog.info("step.retry", attempt=attempt + 1, of=step.retry.attempts, delay_s=round(delay, 3))
                self.sleep(delay)
                continue
            entry.update(status="done", outputs=outputs, finished=now_iso(), error=None)
            self.store.save(record=record)
            slog.info(
                "step.done",
                attempt=entry["attempts"],
                duration_ms=round((time.monotonic() - began) * 1000, 1),
                planned=bool(entry.get("plan")),
            )
            return _Outcome(ok=True)

    def _attempt(
        self,
        step: Step,
        spec: ActionSpec,
        entry: StepRecord,
        record: RunRecord,
        scope: refs.Scope,
        clients: Clients,
        *,
        dry_run: bool,
        resumed: bool,
        log: Any,
    ) -> dict[str, Any]:
        args = refs.resolve(step.args, scope)
        params = build_params(spec, args)
        deadline = time.monotonic() + step.timeout_s if step.timeout_s else None

        def persist(intent: dict[str, Any]) -> None:
            entry["intent"] = redact(json.loads(json.dumps(intent, default=str)))
            self.store.save(record=record)
            log.info("step.intent", intent=entry["intent"])

        ctx = StepContext(
            run_id=record["id"],
            step=step.name,
            action=step.action,
            settings=self.settings,
            clients=clients,
            log=log,
            dry_run=dry_run,
            attempt=int(entry["attempts"]),
            resumed=resumed,
            intent=entry.get("intent"),
            deadline=deadline,
            _persist_intent=None if dry_run else persist,
        )
        if dry_run and spec.mutates:
            assert spec.plan is not None  # the registry refuses mutating actions without a plan
            plan = spec.plan(ctx, params)
            entry["plan"] = {"summary": plan.summary, "details": list(plan.details)}
            outputs: Any = dict(plan.outputs)
        else:
            outputs = spec.fn(ctx, params)
            if dry_run:
                entry["plan"] = None
        if outputs is None:
            outputs = {}
        if dataclasses.is_dataclass(outputs) and not isinstance(outputs, type):
            outputs = dataclasses.asdict(outputs)
        if not isinstance(outputs, dict):
            raise ActionError(f"action {spec.name} returned {type(outputs).__name__}, not a mapping of outputs")
        try:
            outputs = redact(json.loads(json.dumps(outputs)))
        except (TypeError, ValueError) as exc:
            raise ActionError(f"action {spec.name} returned outputs that are not JSON: {exc}") from None
        if deadline is not None and time.monotonic() > deadline:
            raise ActionError(f"step {step.name!r} timed out after {step.timeout_s:g}s")
        return outputs

    def _fail(
        self, entry: StepRecord, record: RunRecord, exc: BaseException, log: Any, *, attempt: int, will_retry: bool
    ) -> _Outcome:
        message = _describe_error(exc)
        entry.update(status="failed", finished=now_iso(), error=message)
        self.store.save(record=record)
        log.warning(
            "step.failed",
            error=message,
            attempt=entry.get("attempts"),
            will_retry=will_retry,
            error_type=type(exc).__name__,
        )
        return _Outcome(ok=False, error=exc)
