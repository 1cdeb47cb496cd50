"""Live copies of collections (list once, then watch) and waiting on them: rollouts and waits without polling.

Why: a wait that polls every 0.2 s sends five requests a second per object it reads, all day on a large cluster,
and still sees a change up to one period late. A `Mirror` lists a collection once and then follows its watch,
so a wait evaluates its condition on local copies, only when something changed, for one list plus one long
watch request per collection. When the watch's resourceVersion is too old (ERROR event or HTTP 410 Gone) the
mirror lists again and watches from there, as client-go's reflector does. Only when watches keep failing
(a proxy that cuts long requests, a flaky API server) does it fall back to listing every `fallback_poll_s`.
A 401/403 (RBAC without `watch` or `list`) is not such a failure: it will never heal by itself, and polling
around it would hide a missing permission behind a slower rollout. So the mirror stops and `wait_until` raises
that Forbidden, naming the verb and resource, as `kubectl rollout status` does without `watch`.

    with Mirror(kube, "/api/v1/namespaces/apps/pods", query={"labelSelector": "app=web"}, what="pods") as pods:
        wait_until([pods], lambda: len(pods.objects()) >= 3, deadline=time.monotonic() + 60)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from kubeops.clients.kube import gc_paused
from kubeops.errors import ClusterError, Forbidden

if TYPE_CHECKING:
    from kubeops.clients.kube import KubeClient

__all__ = ["Mirror", "wait_until"]

Obj = dict[str, Any]
T = TypeVar("T")
_WATCH_S = 240.0  # one watch request's server-side timeout; the mirror re-watches from its last version
_FAILURES_BEFORE_POLLING = 3
_PAGE = 500


class Mirror:
    """One collection (a path plus label/field selectors), kept current by a background list-then-watch."""

    def __init__(
        self,
        kube: KubeClient,
        path: str,
        *,
        what: str,
        query: dict[str, Any] | None = None,
        fallback_poll_s: float = 5.0,
        seed: tuple[list[Obj], str] | None = None,
        keep: Callable[[Obj], Obj | None] | None = None,
    ) -> None:
        """`seed`: (items, resourceVersion) of a list the caller already made, used instead of listing again.
        `keep`: what to hold of each object, as it arrives (None: not at all): a wait that watches a whole
        cluster's pods for a few controllers keeps those pods' few fields, not 60,000 pods whole."""
        self.kube, self.path, self.what = kube, path, what
        self.seed = seed
        self.keep = keep
        self.query = {k: v for k, v in (query or {}).items() if v}
        self.fallback_poll_s = fallback_poll_s
        self.changed = threading.Condition()
        self.generation = 0  # bumped on every change; waiters compare it
        self.relists = 0  # lists after the first one (410 Gone or a failed watch)
        self.polling = False  # True once watches failed and the mirror lists every `fallback_poll_s`
        self.error: ClusterError | None = None  # the last error seen (reported if a wait times out)
        self.forbidden: Forbidden | None = None  # a 401/403 on a watch or list: the mirror stopped; waits raise it
        self._objects: dict[str, Obj] = {}
        self._version = ""
        self._stop = threading.Event()
        self._stream: Any = None
        self._thread = threading.Thread(target=self._run, name=f"mirror-{path.rsplit('/', 1)[-1]}", daemon=True)

    # --- reading ------------------------------------------------------------------------------------------------
    def objects(self) -> list[Obj]:
        """The collection as last seen (shared dicts: read, never modify)."""
        with self.changed:
            return list(self._objects.values())

    def get(self, name: str, namespace: str | None = None) -> Obj | None:
        with self.changed:
            return self._objects.get(f"{namespace or ''}/{name}")

    # --- lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> Mirror:
        """List synchronously (errors of the first list propagate, e.g. 403), then follow the watch."""
        if self.seed is not None:
            items, version = self.seed
            self._objects, self._version = self._kept(items), str(version)
        else:
            self._list()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        with self.changed:
            self.changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def __enter__(self) -> Mirror:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- internals ----------------------------------------------------------------------------------------------
    def _bump(self) -> None:
        self.generation += 1
        self.changed.notify_all()

    def _list(self) -> None:
        """List in pages of 500 (as kubectl does), then swap the copy in whole."""
        objects: dict[str, Obj] = {}
        token: str | None = None
        version = ""
        with gc_paused(freeze=self.kube.freeze_big_lists):
            while True:
                query = {**self.query, "limit": _PAGE, "continue": token}
                data = self.kube.request("GET", self.path, query=query, what=f"list {self.what}")
                objects.update(self._kept(data.get("items") or []))
                meta = data.get("metadata") or {}
                version = str(meta.get("resourceVersion") or version)
                token = meta.get("continue")
                if not token:
                    break
        with self.changed:
            self._objects, self._version = objects, version
            self._bump()

    def _kept(self, items: Iterable[Obj]) -> dict[str, Obj]:
        if self.keep is None:
            return {_key(o): o for o in items}
        return {_key(o): kept for o in items if (kept := self.keep(o)) is not None}

    def _apply(self, event: dict[str, Any]) -> bool:
        """Apply one watch event; False when the version expired (the caller lists again)."""
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            return False
        meta = obj.get("metadata") or {}
        with self.changed:
            self._version = meta.get("resourceVersion") or self._version
            if kind == "BOOKMARK":
                return True
            if kind == "DELETED":
                self._objects.pop(_key(obj), None)
            elif kind in ("ADDED", "MODIFIED"):
                kept = obj if self.keep is None else self.keep(obj)
                if kept is None:
                    self._objects.pop(_key(obj), None)  # no longer of interest (or never was)
                else:
                    self._objects[_key(obj)] = kept
            self._bump()
        return True

    def _run(self) -> None:
        try:
            self._follow()
        except Forbidden as exc:  # missing permission: fail the wait clearly instead of polling around it
            with self.changed:
                self.error = self.forbidden = exc
                self._bump()

    def _follow(self) -> None:
        failures = 0
        while not self._stop.is_set():
            if self.polling:
                if self._stop.wait(self.fallback_poll_s):
                    return
                self._relist()
                continue
            try:
                query = {**self.query, "resourceVersion": self._version}
                self._stream = self.kube.watch(self.path, query=query, timeout_s=_WATCH_S, what=f"watch {self.what}")
                if self._stop.is_set():
                    self._stream.close()
                    return
                expired = False
                for event in self._stream:
                    if not self._apply(event):
                        expired = True
                        break
                if expired:
                    self._stream.close()
                    self._list()
                    self.relists += 1
                failures = 0
            except Forbidden:
                if self._stop.is_set():
                    return
                raise
            except ClusterError as exc:
                if self._stop.is_set():
                    return
                self.error = exc
                failures += 1
                if exc.status == 410:  # the watch request itself answered Gone
                    failures = 0
                elif failures >= _FAILURES_BEFORE_POLLING:
                    self.polling = True
                    continue
                if self._stop.wait(min(5.0, 0.5 * failures)):
                    return
                self._relist()

    def _relist(self) -> None:
        """List again after a failed watch or while polling: Forbidden stops the mirror (raised), any other error
        is remembered for the wait's timeout message and the next round tries again."""
        try:
            self._list()
            self.relists += 1
        except Forbidden:
            raise
        except ClusterError as exc:
            self.error = exc


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def wait_until(
    mirrors: Iterable[Mirror],
    condition: Callable[[], T | None],
    *,
    deadline: float,
    check: Callable[[], None] | None = None,
) -> T | None:
    """Evaluate `condition` now and after every change of any mirror; its first truthy value, or None at `deadline`.

    `check` runs on every wake-up (e.g. a step's deadline check that raises). Mirrors share no lock, so each is
    watched for its own change counter; a wake-up happens at least once a second to notice the others.
    A mirror refused by RBAC (401/403 on its watch or list) raises that `Forbidden` here.
    """
    watched = list(mirrors)
    seen = [-1] * len(watched)
    while True:
        for mirror in watched:
            if mirror.forbidden is not None:
                raise mirror.forbidden
        now_seen = [m.generation for m in watched]
        if now_seen != seen:
            seen = now_seen
            result = condition()
            if result:
                return result
        if check is not None:
            check()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        first = watched[0]
        with first.changed:
            if first.generation == seen[0]:
                first.changed.wait(timeout=min(remaining, 0.05 if len(watched) > 1 else 1.0))
