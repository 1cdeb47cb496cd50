"""The cluster lock: a coordination.k8s.io/v1 Lease held by one run at a time (or N, with `concurrency`).

Why a Lease: it lives in the cluster the runs operate on, so two operators on two laptops (or a laptop and a
CronJob pod) see the same lock; the API server's optimistic concurrency (resourceVersion) decides races.

Protocol (the same fields Kubernetes leader election uses):
- holder identity ``<run_id>@<host>``; ``acquireTime`` when taken, ``renewTime`` every ``ttl/3`` seconds by a
  background thread while the run is alive, ``leaseDurationSeconds`` = the TTL;
- a lease is free when it has no holder, or when ``renewTime + leaseDurationSeconds`` is in the past (its holder
  died: SIGKILL, node lost, pod evicted). Taking it over increments ``leaseTransitions``. Expiry compares the
  holder's renewTime with this machine's clock, so clocks must agree to well under the TTL (NTP);
- every write is a PUT carrying the resourceVersion we read: of two runs racing for a free lease exactly one
  PUT succeeds, the other gets 409 Conflict and re-reads;
- a live lease is never taken, even one in the resuming run's own name: a crashed run is resumed once its
  lease has expired (a hostname is no proof the old process is gone: two machines may share one);
- concurrency N > 1 uses N leases ``<name>-0`` .. ``<name>-<N-1>``; a run takes any free one;
- release clears the holder (the Lease object stays, so `invoke lock` can say who held it last);
- if renewal finds another holder (our lease expired while we could not reach the API), the lock is `lost`
  and the guard stops the run before its next step.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kubeops.clients import leases
from kubeops.engine.logging import get_logger
from kubeops.errors import ClusterError, Conflict, LockHeld, NotFound
from kubeops.processes import pid_alive

if TYPE_CHECKING:
    from kubeops.clients.kube import KubeClient

ANNOTATION_PLAYBOOK = "kubeops.io/playbook"
ANNOTATION_PID = "kubeops.io/pid"
ANNOTATION_LAST_HOLDER = "kubeops.io/last-holder"


def micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime: ``2026-01-01T03:00:00.123456Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> datetime | None:
    """MicroTime or Time (RFC 3339) as an aware datetime; None for missing or unreadable values."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LeaseState:
    """What one lease says about its holder, as `invoke lock` shows it."""

    lease: str  # namespace/name
    holder: str | None
    playbook: str | None
    acquired: datetime | None
    renewed: datetime | None
    ttl_s: float
    last_holder: str | None = None

    def expires(self) -> datetime | None:
        """When the holder loses the lease unless it renews."""
        base = self.renewed or self.acquired
        return base + timedelta(seconds=self.ttl_s) if base and self.holder else None

    def is_free(self, now: datetime) -> bool:
        """No holder, or the holder stopped renewing more than a TTL ago."""
        expires = self.expires()
        return not self.holder or expires is None or expires <= now

    def describe(self, now: datetime) -> str:
        """One line for humans: who, what, since when, until when."""
        if not self.holder:
            last = f" (last held by {self.last_holder})" if self.last_holder else ""
            return f"lease {self.lease} is free{last}"
        since = self.acquired.isoformat(timespec="seconds") if self.acquired else "an unknown time"
        expires = self.expires()
        if expires is not None and expires <= now:
            state = f"expired at {expires.isoformat(timespec='seconds')} (its holder stopped renewing)"
        elif expires is not None:
            state = f"expires at {expires.isoformat(timespec='seconds')} unless renewed"
        else:
            state = "never renewed"
        playbook = f" (playbook {self.playbook})" if self.playbook else ""
        return f"lease {self.lease} is held by {self.holder}{playbook} since {since}; {state}"


def state_of(lease: dict[str, Any], *, default_ttl_s: float) -> LeaseState:
    """Read a Lease object."""
    meta = lease.get("metadata") or {}
    spec = lease.get("spec") or {}
    annotations = meta.get("annotations") or {}
    return LeaseState(
        lease=f"{meta.get('namespace')}/{meta.get('name')}",
        holder=spec.get("holderIdentity") or None,
        playbook=annotations.get(ANNOTATION_PLAYBOOK),
        acquired=parse_time(spec.get("acquireTime")),
        renewed=parse_time(spec.get("renewTime")),
        ttl_s=float(spec.get("leaseDurationSeconds") or default_ttl_s),
        last_holder=annotations.get(ANNOTATION_LAST_HOLDER),
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


class ClusterLock:
    """Take, keep and give back the cluster's Lease(s). One instance per run."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        namespace: str,
        name: str,
        ttl_s: float,
        concurrency: int = 1,
        host: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if concurrency < 1:
            raise ValueError("lock concurrency must be at least 1")
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.ttl_s = max(1.0, float(ttl_s))
        self.concurrency = concurrency
        self.host = host or socket.gethostname()
        self.clock = clock
        self.sleep = sleep
        self.identity: str | None = None
        self.held: str | None = None  # the lease name we hold
        self.lost: str | None = None  # why we no longer hold it (set by the renewal thread)
        self._lease: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()
        self.log = get_logger(lock=f"{namespace}/{name}")

    # -- reading ------------------------------------------------------------------------------------------------
    def lease_names(self) -> list[str]:
        """``[name]``, or ``[name-0, ..., name-(N-1)]`` for concurrency N."""
        if self.concurrency == 1:
            return [self.name]
        return [f"{self.name}-{i}" for i in range(self.concurrency)]

    def states(self) -> list[LeaseState]:
        """Every lease of this lock that exists."""
        out = []
        for name in self.lease_names():
            lease = leases.get_lease(self.kube, self.namespace, name)
            if lease is not None:
                out.append(state_of(lease, default_ttl_s=self.ttl_s))
        return out

    # -- taking -------------------------------------------------------------------------------------------------
    def acquire(self, *, run_id: str, playbook: str, wait_s: float = 0.0) -> str:
        """Take a free lease (waiting up to `wait_s`), start renewing it, and return its name; else LockHeld."""
        self.identity = f"{run_id}@{self.host}"
        deadline = time.monotonic() + max(0.0, wait_s)
        poll_s = min(2.0, max(0.2, self.ttl_s / 4))
        waited = False
        while True:
            busy: list[LeaseState] = []
            for name in self.lease_names():
                state = self._try(name, playbook=playbook)
                if state is None:
                    self.held = name
                    self.log.info("lock.acquired", lease=f"{self.namespace}/{name}", holder=self.identity)
                    self._start_renewing()
                    return name
                busy.append(state)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._busy_error(busy, waited_s=wait_s if waited else None)
            if not waited:
                self.log.info("lock.waiting", holders=[s.holder for s in busy], wait_s=wait_s)
            waited = True
            self.sleep(min(poll_s, remaining))

    def check_free(self, *, run_id: str) -> None:
        """Read-only: raise LockHeld when every lease has a live holder, without writing anything.

        Runs call this at start, so a busy lock still exits 3 at once, and take the lock for real (`acquire`)
        only before their first step that can change something: a run rejected by its read-only checks
        (unknown node, no capacity) then leaves no trace in the cluster, not even in the Lease.
        """
        self.identity = f"{run_id}@{self.host}"
        now = self.clock()
        busy = []
        for name in self.lease_names():
            lease = leases.get_lease(self.kube, self.namespace, name)
            if lease is None:
                return
            state = state_of(lease, default_ttl_s=self.ttl_s)
            if state.is_free(now) or self._own_dead_holder(lease, state):
                return
            busy.append(state)
        if busy:
            raise self._busy_error(busy, waited_s=None)

    def _busy_error(self, busy: list[LeaseState], *, waited_s: float | None) -> LockHeld:
        now = self.clock()
        described = "; ".join(s.describe(now) for s in busy)
        expiry = min((s.expires() for s in busy if s.expires()), default=None)
        hint = (
            "wait for it with --wait-for-lock=DURATION"
            + (f" (a dead holder's lease expires by itself at {expiry.isoformat(timespec='seconds')})"
               if expiry else "")
            + "; if you are sure no run is alive, `invoke lock --break` removes it"
        )
        waited_text = f" after waiting {waited_s:g}s" if waited_s is not None else ""
        return LockHeld(f"cluster lock busy{waited_text}: {described}", hint=hint)

    def _own_dead_holder(self, lease: dict[str, Any], state: LeaseState) -> bool:
        """A live lease held in this very run's name (`<run_id>@<host>`) by a process that is gone from this host.

        That is this run, crashed and now resumed here: waiting out the TTL would only delay the person who is
        resuming it. Any other holder, or a holder process still alive, is waited out as usual.
        """
        if state.holder != self.identity:
            return False
        pid_text = ((lease.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_PID, "")
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or pid_alive(int(pid_text)):
            return False
        self.log.warning("lock.reclaimed", lease=state.lease, dead_pid=int(pid_text))
        return True

    def _body(self, name: str, *, playbook: str, base: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
        body: dict[str, Any] = dict(base) if base else {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease"}
        meta = dict(body.get("metadata") or {})
        meta.update(name=name, namespace=self.namespace)
        annotations = dict(meta.get("annotations") or {})
        annotations[ANNOTATION_PLAYBOOK] = playbook
        annotations[ANNOTATION_PID] = str(os.getpid())
        meta["annotations"] = annotations
        meta.setdefault("labels", {})["app.kubernetes.io/managed-by"] = "kubeops"
        body["metadata"] = meta
        spec = dict(body.get("spec") or {})
        previous = spec.get("holderIdentity")
        if previous and previous != self.identity:
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=max(1, round(self.ttl_s)),
            acquireTime=micro_time(now),
            renewTime=micro_time(now),
        )
        spec.setdefault("leaseTransitions", 0)
        body["spec"] = spec
        return body

    def _try(self, name: str, *, playbook: str) -> LeaseState | None:
        """None when we now hold lease `name`; otherwise the state of its live holder."""
        for _ in range(5):  # a few rounds of lost races, then report whoever won
            lease = leases.get_lease(self.kube, self.namespace, name)
            now = self.clock()
            if lease is None:
                try:
                    self._lease = leases.create_lease(
                        self.kube, self.namespace, self._body(name, playbook=playbook, base=None, now=now)
                    )
                    return None
                except Conflict:
                    continue  # another run created it first: read who
            state = state_of(lease, default_ttl_s=self.ttl_s)
            if not state.is_free(now) and not self._own_dead_holder(lease, state):
                return state
            if state.holder:
                self.log.warning("lock.takeover", lease=state.lease, expired_holder=state.holder)
            try:
                self._lease = leases.replace_lease(
                    self.kube, self.namespace, self._body(name, playbook=playbook, base=lease, now=now)
                )
                return None
            except (Conflict, NotFound):
                continue  # someone wrote (or broke the lock) between our read and write: read again
        final = leases.get_lease(self.kube, self.namespace, name)
        return state_of(final or {"metadata": {"namespace": self.namespace, "name": name}}, default_ttl_s=self.ttl_s)

    # -- keeping ------------------------------------------------------------------------------------------------
    def _start_renewing(self) -> None:
        self._stop.clear()
        self.lost = None
        self._thread = threading.Thread(target=self._renew_loop, name="kubeops-lock-renew", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        interval = max(0.2, self.ttl_s / 3)
        last_ok = time.monotonic()
        while not self._stop.wait(interval):
            try:
                with self._mutex:
                    self.renew()
                last_ok = time.monotonic()
            except _Lost as exc:
                self.lost = str(exc)
                self.log.error("lock.lost", reason=self.lost)
                return
            except ClusterError as exc:
                self.log.warning("lock.renew_failed", error=str(exc))
                if time.monotonic() - last_ok > self.ttl_s:
                    self.lost = f"could not renew the lease for {self.ttl_s:g}s ({exc.message})"
                    self.log.error("lock.lost", reason=self.lost)
                    return

    def renew(self) -> None:
        """Push renewTime forward; `_Lost` when the lease now belongs to someone else."""
        if self.held is None or self._lease is None:
            return
        body = dict(self._lease)
        body["spec"] = {**(body.get("spec") or {}), "renewTime": micro_time(self.clock())}
        try:
            self._lease = leases.replace_lease(self.kube, self.namespace, body)
            return
        except NotFound:
            raise _Lost(f"lease {self.namespace}/{self.held} was deleted (lock broken)") from None
        except Conflict:
            current = leases.get_lease(self.kube, self.namespace, self.held)
        if current is None:
            raise _Lost(f"lease {self.namespace}/{self.held} was deleted (lock broken)")
        holder = (current.get("spec") or {}).get("holderIdentity")
        if holder != self.identity:
            raise _Lost(f"lease {self.namespace}/{self.held} is now held by {holder or 'nobody'}")
        self._lease = current
        self.renew()

    # -- giving back --------------------------------------------------------------------------------------------
    def release(self) -> None:
        """Stop renewing and clear the holder, if it is still us; errors are logged, never raised."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        name, self.held = self.held, None
        if name is None or self.lost:
            return
        with self._mutex:
            try:
                for _ in range(3):
                    lease = leases.get_lease(self.kube, self.namespace, name)
                    if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                        return
                    meta = dict(lease.get("metadata") or {})
                    meta["annotations"] = {**(meta.get("annotations") or {}), ANNOTATION_LAST_HOLDER: self.identity}
                    meta["annotations"].pop(ANNOTATION_PID, None)
                    spec = {k: v for k, v in (lease.get("spec") or {}).items()
                            if k not in ("holderIdentity", "acquireTime", "renewTime")}
                    try:
                        leases.replace_lease(self.kube, self.namespace, {**lease, "metadata": meta, "spec": spec})
                        self.log.info("lock.released", lease=f"{self.namespace}/{name}")
                        return
                    except Conflict:
                        continue
            except ClusterError as exc:
                self.log.warning("lock.release_failed", error=str(exc), note="the lease expires after its TTL")

    def break_lock(self) -> list[str]:
        """Delete every lease of this lock (a human decided no run is alive); the names deleted."""
        return [
            f"{self.namespace}/{name}"
            for name in self.lease_names()
            if leases.delete_lease(self.kube, self.namespace, name)
        ]


class _Lost(Exception):
    """Renewal found the lease gone or held by another run."""
