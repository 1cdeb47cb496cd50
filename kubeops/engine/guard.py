"""The run guard: maintenance window + cluster lock + notifications + textfile metrics around a run.

`build_guard(settings)` is what `kubeops.tasks` calls for every real (not dry) run and resume. Order matters:
1. `acquire`: the windows first (outside it nothing is touched, not even the lock: exit 0 "outside window"),
   then a read-only look at the cluster lock (busy: LockHeld, exit 3, and a notification);
   `before_change`: the lock is taken for real right before the first step that can change something, so
   a run rejected by its read-only checks (unknown node...) writes nothing to the cluster, not even the Lease;
2. `before_step`: the window again (closed: OutsideWindow, the runner pauses the run, resumable), and the
   lock (lost to another run: LockHeld; the record stays resumable);
3. `on_finish`: textfile metrics, then a notification for a failure (or success, if asked);
4. `release`: give the lock back.

The lock lives in the cluster; when the inventory gives no usable Kubernetes configuration at all (no
kubeconfig file), there is nothing to lock against and no Kubernetes step can run either, so the run goes on
unlocked with a `lock.skipped` warning. Any other failure to take the lock stops the run (fail closed).

Windows: the inventory's (the cluster owner's rule) and the playbook's own (`window:` in the playbook and in
the playbooks it includes: the task's rule). When several are set a run must be inside all of them: the
stricter wins, so neither the playbook nor the inventory can widen what the other allows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeops.engine.checkpoints import RunRecord
from kubeops.engine.logging import get_logger
from kubeops.engine.notify import Notifier, lock_message, resolve_url
from kubeops.engine.textfile import TextfileWriter
from kubeops.errors import InputError, LockHeld, OutsideWindow, PlaybookError
from kubeops.model.playbook import Playbook, Step
from kubeops.model.windows import Window, WindowError

if TYPE_CHECKING:
    from kubeops.engine.lock import ClusterLock
    from kubeops.settings import Settings


def window_from_settings(settings: Settings) -> Window | None:
    """The inventory's window, validated; a bad field is a PlaybookError naming the inventory file and line."""
    raw = settings.window
    if raw is None:
        return None
    try:
        return Window.parse(days=raw.days, start=raw.start, end=raw.end, timezone=raw.timezone)
    except WindowError as exc:
        path = settings.inventory_path or "(inventory)"
        line = None
        if settings.inventory_path:
            from kubeops.yamlsource import load_yaml

            try:
                line = load_yaml(Path(settings.inventory_path)).line_of(("window", exc.field))
            except (OSError, InputError):
                line = None
        raise PlaybookError(str(exc), path=path, line=line, field=f"window.{exc.field}") from None


def notifier_from_settings(settings: Settings, environ: Mapping[str, str]) -> Notifier | None:
    """A Notifier when a webhook URL is configured (inventory or the named environment variable)."""
    url = resolve_url(url=settings.notify.webhook_url, url_env=settings.notify.webhook_url_env, environ=environ)
    if not url:
        return None
    if not url.startswith(("https://", "http://")):
        source = "notify.webhook_url" if settings.notify.webhook_url else f"${settings.notify.webhook_url_env}"
        raise InputError(f"the webhook URL ({source}) must start with https:// or http://")
    return Notifier(url, on_success=settings.notify.on_success)


class Guard:
    """Implements the runner's `RunGuard` protocol from optional parts (each may be None)."""

    def __init__(
        self,
        *,
        cluster: str,
        window: Window | None = None,
        lock_factory: Callable[[], ClusterLock | None] | None = None,
        notifier: Notifier | None = None,
        textfile: TextfileWriter | None = None,
        wait_for_lock_s: float = 0.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.cluster = cluster
        self.window = window
        self.lock_factory = lock_factory
        self.notifier = notifier
        self.textfile = textfile
        self.wait_for_lock_s = wait_for_lock_s
        self.clock = clock
        self.lock: ClusterLock | None = None  # held
        self._pending_lock: ClusterLock | None = None  # checked free at start, taken by `before_change`
        self._playbook: str | None = None
        self._windows: list[tuple[Window, str]] = [(window, "")] if window else []  # (window, where it was set)
        self._began: float | None = None
        self.log = get_logger()

    def acquire(self, *, run_id: str, playbook: Playbook, resumed: bool) -> None:
        self._playbook = playbook.name
        self._began = time.monotonic()
        own = [(w, f"playbook {playbook.name}") for w in playbook.windows]
        self._windows = ([(self.window, "inventory" if own else "")] if self.window else []) + own
        self._check_window(starting=True)
        if self.lock_factory is None:
            return
        lock = self.lock_factory()
        if lock is None:
            return
        self._pending_lock = lock
        if self.wait_for_lock_s <= 0:
            self._notify_busy(lambda: lock.check_free(run_id=run_id))  # busy: exit 3 now, before any step runs

    def before_change(self, *, run_id: str, step: Step) -> None:
        """Take the lock right before the first step that can change something (see `ClusterLock.check_free`)."""
        lock, self._pending_lock = self._pending_lock, None
        if lock is None:
            return
        playbook = self._playbook or ""
        self._notify_busy(lambda: lock.acquire(run_id=run_id, playbook=playbook, wait_s=self.wait_for_lock_s))
        self.lock = lock

    def _notify_busy(self, take: Callable[[], object]) -> None:
        try:
            take()
        except LockHeld as exc:
            if self.notifier is not None:
                self.notifier.send(
                    lock_message(cluster=self.cluster, playbook=self._playbook or "", reason=exc.message),
                    kind="locked",
                )
            raise

    def before_step(self, *, run_id: str, step: Step) -> None:
        self._check_window(starting=False)
        if self.lock is not None and self.lock.lost:
            raise LockHeld(
                f"run {run_id} stopped before step {step.name!r}: it lost the cluster lock ({self.lock.lost})",
                hint=f"the run is checkpointed; `invoke resume --run={run_id}` once the lock is free",
            )

    def on_finish(self, *, record: RunRecord) -> None:
        finished = time.time()
        duration = time.monotonic() - self._began if self._began is not None else 0.0
        if self.textfile is not None:
            try:
                self.textfile.record(
                    playbook=record["playbook"]["name"],
                    status=str(record.get("status")),
                    finished_s=finished,
                    duration_s=duration,
                )
            except OSError as exc:
                self.log.warning("textfile.failed", path=str(self.textfile.path), error=str(exc))
        if self.notifier is not None:
            self.notifier.run_finished(record)

    def release(self, *, run_id: str) -> None:
        pending, self._pending_lock = self._pending_lock, None
        held, self.lock = self.lock, None
        if held is not None:
            held.release()
        for lock in {id(x): x for x in (held, pending) if x is not None}.values():
            lock.kube.close()  # `lock_for` gives each lock a client of its own: its connections go with the run

    def _check_window(self, *, starting: bool) -> None:
        """Every window must be open (the stricter wins); the message names the first closed one and when
        all of them are next open together."""
        now = self.clock()
        closed = next(((w, origin) for w, origin in self._windows if not w.contains(now)), None)
        if closed is None:
            return
        window, origin = closed
        text = window.outside_message(now, origin=origin, others=[w for w, _ in self._windows if w is not window])
        raise OutsideWindow(text if starting else f"{text}; the run pauses and continues in the next window")


def lock_for(
    settings: Settings, *, required: bool = False, clock: Callable[[], datetime] | None = None
) -> ClusterLock | None:
    """The cluster's lock through a non-dry-run client, or None (logged) when no kubeconfig exists at all
    (unless `required`: then that is an InputError). `clock` decides when leases expire (a rehearsal judges the
    snapshot's Lease at the time the snapshot was taken)."""
    from kubeops.clients.kube import KubeClient
    from kubeops.engine.lock import ClusterLock

    try:
        kube = KubeClient.from_settings(settings.kube, dry_run=False)
    except InputError as exc:
        if required or "does not exist" not in exc.message:
            raise
        get_logger().warning("lock.skipped", reason=exc.message)
        return None
    return ClusterLock(
        kube,
        namespace=settings.lock.namespace,
        name=settings.lock.name,
        ttl_s=settings.lock.ttl_s,
        concurrency=int(settings.lock.concurrency),
        **({"clock": clock} if clock else {}),
    )


def build_guard(
    settings: Settings,
    *,
    wait_for_lock_s: float = 0.0,
    textfile_dir: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Guard:
    """The guard for one run of `settings.cluster`; invalid window/notify settings fail here, before the run.

    The textfile goes to `textfile_dir` (default ``<state_dir>/metrics``). `environ` is where a
    ``notify.webhook_url_env`` variable is read (default: the process environment, read here in the tasks' call).
    """
    if int(settings.lock.concurrency) < 1:
        raise PlaybookError(
            f"must be at least 1, got {settings.lock.concurrency}",
            path=settings.inventory_path or "(inventory)",
            field="lock.concurrency",
        )
    return Guard(
        cluster=settings.cluster,
        window=window_from_settings(settings),
        lock_factory=lambda: lock_for(settings),
        notifier=notifier_from_settings(settings, os.environ if environ is None else environ),
        textfile=TextfileWriter(Path(textfile_dir) if textfile_dir else settings.state_dir / "metrics",
                                cluster=settings.cluster),
        wait_for_lock_s=wait_for_lock_s,
        **({"clock": clock} if clock else {}),
    )


def describe_holders(states: list[Any], now: datetime | None = None) -> list[str]:
    """Lines for `invoke lock`."""
    moment = now or datetime.now(UTC)
    return [s.describe(moment) for s in states]
