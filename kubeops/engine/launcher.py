"""Runs in the background, for a long-lived front end (the console): start, resume, cancel, see what is live.

Why a module of its own: a task runs one playbook in the foreground and exits, while the console must answer
requests while runs go on, show a run's page before its first step ends, and stop a run on request. The run
itself is the same `api.run_playbook` / `api.resume_run` the tasks call, with the same guard (lock, windows,
notifications); this module only adds a thread, a run id chosen up front, the audit entries, and a cancel flag.

Cancel is honoured at the next step boundary, never inside a step: the guard raises `Cancelled` (an
`OutsideWindow`) from `before_step`, which the runner already turns into a clean `paused` record, resumable like
a run stopped by its maintenance window. A console that stops mid-run leaves a `running` record, which `resume`
continues like after any crash.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubeops.actions.registry import Registry
from kubeops.engine import api
from kubeops.engine.audit import Actor, AuditedStore, AuditEntry, AuditLog
from kubeops.engine.checkpoints import RunRecord, new_run_id
from kubeops.engine.guard import build_guard
from kubeops.engine.logging import get_logger, redact_text
from kubeops.engine.runner import RunGuard
from kubeops.engine.stores import store_for
from kubeops.errors import KubeopsError, OutsideWindow
from kubeops.model.playbook import Playbook, Step
from kubeops.processes import pid_alive
from kubeops.settings import Settings


class Cancelled(OutsideWindow):
    """A run stopped on request at a step boundary; the runner records it `paused` (resumable)."""


class CancellableGuard:
    """The run's real guard, plus a cancel flag checked before every main step."""

    def __init__(self, inner: RunGuard, flag: threading.Event) -> None:
        self.inner = inner
        self.flag = flag
        self.reason = "cancelled"
        # A console lives for months: the API clients of the run's lock are closed when the run ends
        # (a task's process simply exits).
        self._locks: list[Any] = []
        factory = getattr(inner, "lock_factory", None)
        if factory is not None:
            def tracked() -> Any:
                lock = factory()
                if lock is not None:
                    self._locks.append(lock)
                return lock

            inner.lock_factory = tracked  # type: ignore[attr-defined]

    def acquire(self, *, run_id: str, playbook: Playbook, resumed: bool) -> None:
        self.inner.acquire(run_id=run_id, playbook=playbook, resumed=resumed)

    def before_step(self, *, run_id: str, step: Step) -> None:
        if self.flag.is_set():
            raise Cancelled(f"{self.reason} before step {step.name!r}; the run is resumable")
        self.inner.before_step(run_id=run_id, step=step)

    def before_change(self, *, run_id: str, step: Step) -> None:
        self.inner.before_change(run_id=run_id, step=step)

    def on_finish(self, *, record: RunRecord) -> None:
        self.inner.on_finish(record=record)

    def release(self, *, run_id: str) -> None:
        try:
            self.inner.release(run_id=run_id)
        finally:
            self.close()

    def close(self) -> None:
        """Close the lock's API clients (also when `acquire` refused the run, which skips `release`)."""
        for lock in self._locks:
            lock.kube.close()
        self._locks.clear()


@dataclass
class LiveRun:
    """A run this process started or resumed; `error` holds why it ended without a record (lock busy...)."""

    run_id: str
    kind: str  # launch or resume
    store: AuditedStore
    guard: CancellableGuard
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    error: str | None = None

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class Launcher:
    """Starts runs in threads and keeps track of them; one per console process."""

    def __init__(self, *, settings: Settings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self.audit = AuditLog(settings.state_dir)
        self._live: dict[str, LiveRun] = {}
        self._mutex = threading.Lock()
        self.log = get_logger()

    # -- what the console reads -------------------------------------------------------------------------------
    def live(self, run_id: str) -> LiveRun | None:
        with self._mutex:
            return self._live.get(run_id)

    def is_alive(self, run_id: str) -> bool:
        live = self.live(run_id)
        return live is not None and live.alive

    def process_alive(self, record: RunRecord) -> bool | None:
        """Whether the process running `record` lives: True (this console's thread, or an `invoke run` in a
        terminal of this host), False (it crashed: `resume` continues it), None (another host: cannot tell)."""
        if self.is_alive(record["id"]):
            return True
        pid = record.get("pid")
        if record.get("host") != socket.gethostname() or pid is None:
            return None
        return pid != os.getpid() and pid_alive(int(pid))

    # -- actions -------------------------------------------------------------------------------------------------
    def plan(self, playbook: Playbook, *, params: Mapping[str, Any]) -> RunRecord:
        """The dry run (reads for real, mutations only planned); nothing is written anywhere."""
        return api.run_playbook(playbook, settings=self.settings, params=params, dry_run=True,
                                registry=self.registry, check=False)

    def launch(self, playbook: Playbook, *, params: Mapping[str, Any], actor: Actor) -> str:
        """Start a real run of `playbook` in the background; returns its id at once."""
        run_id = new_run_id()
        live = self._prepare(run_id, "launch")
        entry = AuditEntry.make(actor, "launch", playbook.name, run_id=run_id,
                                detail=f"playbook {playbook.name} on {self.settings.cluster}")
        live.store.note(entry)
        self.audit.append(entry)

        def work() -> None:
            api.run_playbook(playbook, settings=self.settings, params=params, registry=self.registry,
                             store=live.store, guard=live.guard, check=False, run_id=run_id)

        self._start(live, work)
        return run_id

    def resume(self, run_id: str, *, actor: Actor, force: bool = False) -> None:
        """Continue `run_id` in the background (it must exist; InputError otherwise, at once)."""
        api.get_run(run_id, settings=self.settings)
        if self.is_alive(run_id):
            raise KubeopsError(f"run {run_id} is already running in this console")
        live = self._prepare(run_id, "resume")
        entry = AuditEntry.make(actor, "resume", run_id, run_id=run_id, detail="force" if force else "")
        live.store.note(entry)
        self.audit.append(entry)

        def work() -> None:
            api.resume_run(run_id, settings=self.settings, force=force, registry=self.registry, store=live.store,
                           guard=live.guard, check=False)

        self._start(live, work)

    def cancel(self, run_id: str, *, actor: Actor) -> bool:
        """Ask a live run to stop before its next step; False when it is not running in this process."""
        live = self.live(run_id)
        if live is None or not live.alive:
            return False
        live.guard.reason = f"cancelled by {actor.name} ({actor.role})"
        entry = AuditEntry.make(actor, "cancel", run_id, run_id=run_id)
        live.store.note(entry)
        self.audit.append(entry)
        live.cancel.set()
        return True

    def record(self, entry: AuditEntry) -> None:
        """An action that belongs to no run (breaking the lock)."""
        self.audit.append(entry)

    def shutdown(self, *, timeout_s: float = 5.0) -> None:
        """Cancel live runs and give each a moment to reach its step boundary (the rest resume like a crash)."""
        with self._mutex:
            runs = [r for r in self._live.values() if r.alive]
        for live in runs:
            live.guard.reason = "cancelled: the console stopped"
            live.cancel.set()
        for live in runs:
            if live.thread is not None:
                live.thread.join(timeout_s)

    # -- internals -----------------------------------------------------------------------------------------------
    def _prepare(self, run_id: str, kind: str) -> LiveRun:
        flag = threading.Event()
        guard = CancellableGuard(build_guard(self.settings), flag)  # bad window/notify settings raise here
        return LiveRun(run_id=run_id, kind=kind, store=AuditedStore(store_for(self.settings)), guard=guard,
                       cancel=flag)

    def _start(self, live: LiveRun, work: Any) -> None:
        def target() -> None:
            try:
                work()
            except KubeopsError as exc:  # lock busy, outside the window, playbook changed...: shown on the run page
                live.error = redact_text(str(exc))
                self.log.warning("console.run.refused", run_id=live.run_id, error=live.error)
            except Exception as exc:  # a bug must not kill the console; the record (if any) stays resumable
                live.error = redact_text(f"{type(exc).__name__}: {exc}")
                self.log.error("console.run.crashed", run_id=live.run_id, error=live.error)
            finally:
                live.guard.close()

        live.thread = threading.Thread(target=target, name=f"run-{live.run_id}", daemon=True)
        with self._mutex:
            self._live[live.run_id] = live
        live.thread.start()


