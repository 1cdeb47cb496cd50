"""Running a drain: evictions with a concurrency bound, budget refusals retried until the deadline, and
a watch (not polling) that tells when each pod is really gone.

Which pods to remove is decided beforehand by the pure `kubeops.drain.select_pods`; this module only does
the I/O and the waiting, with one global deadline. A pod counts as gone when the watch reports it DELETED,
when a pod with its name but another UID appears (a StatefulSet recreated it), or when an eviction or
delete answers 404/409 on our UID precondition. A drain re-entered after a crash simply lists again: pods
already evicted are gone or terminating, and terminating ones are only waited for.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubeops.clients import pods as pod_api
from kubeops.drain import blocking_budget_names, controller_ref, pod_key
from kubeops.errors import ClusterError, Forbidden, TooManyRequests
from kubeops.progress import Progress

if TYPE_CHECKING:
    from kubeops.clients.kube import KubeClient
    from kubeops.drain import DrainSelection

__all__ = ["DrainOutcome", "run_drain", "run_drains", "wait_for_replacements"]

Obj = Mapping[str, Any]
_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 5.0  # kubectl waits 5 s between refused evictions


@dataclass(slots=True)
class DrainOutcome:
    """What happened to each pod; `ok` when every removable pod is gone (or, in dry-run, none refused)."""

    evicted: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    already_gone: list[str] = field(default_factory=list)
    blocked: dict[str, dict[str, Any]] = field(default_factory=dict)  # pod -> {"budgets": [...], "message": ...}
    failed: dict[str, str] = field(default_factory=dict)  # pod -> error that retrying will not fix
    not_gone: list[str] = field(default_factory=list)  # removal accepted, pod still terminating at the deadline
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return not (self.blocked or self.failed or self.not_gone)

    def budgets(self) -> list[str]:
        names: list[str] = []
        for info in self.blocked.values():
            for name in info["budgets"]:
                if name not in names:
                    names.append(name)
        return names

    def failure_message(self, node: str, timeout_s: float | None) -> str:
        parts: list[str] = []
        if self.blocked:
            lines = []
            for pod, info in sorted(self.blocked.items()):
                ns = pod.split("/", 1)[0]
                budgets = ", ".join(f"PodDisruptionBudget {ns}/{b}" for b in info["budgets"]) or "no budget named"
                line = f"{pod} (blocked by {budgets}: {info['message']}"
                if info.get("unhealthy"):
                    line += "; unhealthy: " + ", ".join(info["unhealthy"])
                lines.append(line + ")")
            parts.append(f"{len(self.blocked)} pod(s) could not be evicted: " + "; ".join(lines))
        if self.failed:
            parts.append("; ".join(f"{pod}: {why}" for pod, why in sorted(self.failed.items())))
        if self.not_gone:
            parts.append(f"{len(self.not_gone)} pod(s) still terminating: {', '.join(sorted(self.not_gone))}")
        head = f"drain of node {node} did not finish"
        if self.timed_out and timeout_s is not None:
            head += f" within {timeout_s:.0f}s"
        return head + ": " + " | ".join(parts)


class _GoneWatcher:
    """Background watch of the node's pods; puts ("gone", uid) on the queue for each target that disappears."""

    def __init__(self, kube: KubeClient, node: str, version: str, targets: dict[str, Obj], out: queue.Queue) -> None:
        self.kube, self.node, self.version, self.out = kube, node, version, out
        self.names = {pod_key(p): uid for uid, p in targets.items()}
        self.targets = dict(targets)
        self._stop = threading.Event()
        self._stream: Any = None
        self._thread = threading.Thread(target=self._run, name=f"drain-watch-{node}", daemon=True)

    def start(self) -> None:
        """Open the first watch here, not in the thread: a role that may not watch pods (403) stops the drain
        with that refusal before any eviction, instead of evicting pods nobody can see go."""
        self._stream = self._open()
        self._thread.start()

    def _open(self) -> Any:
        query = {"fieldSelector": f"spec.nodeName={self.node}", "resourceVersion": self.version}
        return self.kube.watch("/api/v1/pods", query=query, timeout_s=60, what="watch pods")

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        self._thread.join(timeout=2.0)

    def _gone(self, uid: str) -> None:
        if self.targets.pop(uid, None) is not None:
            self.out.put(("gone", uid, None))

    def _relist(self) -> None:
        pods, self.version = pod_api.list_pods(self.kube, node=self.node)
        present = {(p.get("metadata") or {}).get("uid") for p in pods}
        for uid in list(self.targets):
            if uid not in present:
                self._gone(uid)

    def _run(self) -> None:
        failures = 0
        stream = self._stream  # opened by start()
        while not self._stop.is_set() and self.targets:
            try:
                self._stream = stream if stream is not None else self._open()
                stream = None
                if self._stop.is_set():
                    self._stream.close()
                    return
                for event in self._stream:
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":  # 410 Gone: our version is too old; list again
                        self._relist()
                        break
                    meta = obj.get("metadata") or {}
                    self.version = meta.get("resourceVersion") or self.version
                    uid = meta.get("uid")
                    if kind == "DELETED":
                        self._gone(uid)
                    elif kind in ("ADDED", "MODIFIED"):
                        old = self.names.get(pod_key(obj))
                        if old is not None and old != uid:
                            self._gone(old)  # same name, new pod: ours is gone
                    if not self.targets:
                        return
                failures = 0
            except Forbidden as exc:  # the role lost `watch` on pods mid-drain: retrying will not bring it back
                self.out.put(("watch-error", "", str(exc)))
                return
            except ClusterError as exc:
                failures += 1
                if self._stop.wait(min(5.0, 0.5 * failures)):
                    return
                with contextlib.suppress(ClusterError):
                    self._relist()
                if failures > 20:
                    self.out.put(("watch-error", "", str(exc)))
                    return


def run_drain(
    kube: KubeClient,
    node: str,
    selection: DrainSelection,
    list_version: str,
    *,
    deadline: float,
    grace_period_s: int | None = None,
    disable_eviction: bool = False,
    concurrency: int = 10,
    log: Any = None,
    gate: threading.Semaphore | None = None,
) -> DrainOutcome:
    """Remove the selected pods and wait until they are gone, or until `deadline` (a `time.monotonic()` value).

    In dry-run mode (the client sends dryRun=All) every request is sent once, refusals are reported and
    nothing is waited for. While waiting, `log` gets a ``drain.progress`` event at most once a second
    ("3 pods left, 1 blocked by budget web"). `gate`, shared by several drains running at once (`run_drains`),
    bounds their evictions in flight together; it is held only for the request, never across a budget's backoff.
    A role that may not watch pods raises that `Forbidden` before any eviction (and ends the wait if it is lost
    midway): the drain cannot tell its pods are gone without the watch.
    """
    outcome = DrainOutcome()
    progress = Progress(log, "drain.progress", timeout_s=round(max(0.0, deadline - time.monotonic()), 1))
    dry = bool(kube.dry_run)
    targets: dict[str, Obj] = {}
    for pod in [*selection.evict, *selection.delete, *selection.terminating]:
        uid = (pod.get("metadata") or {}).get("uid") or pod_key(pod)
        targets[uid] = pod
    if not targets:
        return outcome
    events: queue.Queue = queue.Queue()
    waiting = set(targets)  # uids not yet known to be gone
    watcher = None if dry else _GoneWatcher(kube, node, list_version, targets, events)
    if watcher is not None:
        watcher.start()

    to_delete = {id(p) for p in selection.delete}
    pending: list[tuple[float, Obj, int]] = [(0.0, p, 0) for p in [*selection.evict, *selection.delete]]
    inflight = 0

    def send(pod: Obj, attempt: int) -> None:
        if gate is None:
            _send(pod, attempt)
            return
        with gate:
            _send(pod, attempt)

    def _send(pod: Obj, attempt: int) -> None:
        key = pod_key(pod)
        try:
            if disable_eviction or id(pod) in to_delete:
                done = pod_api.delete_pod(kube, pod, grace_period_s=grace_period_s)
                events.put(("deleted" if done else "gone-already", key, pod))
            else:
                done = pod_api.evict_pod(kube, pod, grace_period_s=grace_period_s)
                events.put(("evicted" if done else "gone-already", key, pod))
        except TooManyRequests as exc:
            events.put(("blocked", key, (pod, attempt, exc)))
        except ClusterError as exc:
            events.put(("failed", key, (pod, str(exc))))
        except Exception as exc:  # a bug or a dropped connection must not hang the drain
            events.put(("failed", key, (pod, f"{type(exc).__name__}: {exc}")))

    def uid_of(pod: Obj) -> str:
        return (pod.get("metadata") or {}).get("uid") or pod_key(pod)

    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="evict") as pool:
        try:
            while True:
                now = time.monotonic()
                pending.sort(key=lambda item: item[0])
                while pending and pending[0][0] <= now and inflight < concurrency:
                    _, pod, attempt = pending.pop(0)
                    pool.submit(send, pod, attempt)
                    inflight += 1
                if inflight == 0 and not pending and (dry or not waiting):
                    break
                if now >= deadline:
                    outcome.timed_out = True
                    break
                if not dry:
                    progress.emit(_progress_text(len(waiting), outcome.blocked))
                # a due retry waits for a free worker, whose completion is itself an event
                wake = deadline if inflight >= concurrency else min([deadline, *(due for due, _, _ in pending[:1])])
                if log is not None:
                    wake = min(wake, now + progress.every_s)  # wake up to say how it is going
                try:
                    kind, key, data = events.get(timeout=max(0.0, wake - now) + 0.001)
                except queue.Empty:
                    continue
                if kind == "gone":
                    waiting.discard(key)
                    continue
                if kind == "watch-error":
                    outcome.failed["(watch)"] = str(data)
                    break
                inflight -= 1
                if kind in ("evicted", "deleted", "gone-already"):
                    outcome.blocked.pop(key, None)
                    {"evicted": outcome.evicted, "deleted": outcome.deleted}.get(kind, outcome.already_gone).append(
                        key
                    )
                    if kind == "gone-already" or dry:
                        waiting.discard(uid_of(data))
                elif kind == "blocked":
                    pod, attempt, exc = data
                    message = _refusal_text(exc)
                    budgets = blocking_budget_names(message, getattr(exc, "details", None))
                    outcome.blocked[key] = {"budgets": budgets, "message": message,
                                            "namespace": (pod.get("metadata") or {}).get("namespace") or "default"}
                    if log is not None and attempt == 0:
                        log.info("drain.eviction_blocked", pod=key, budgets=budgets)
                    if dry:
                        waiting.discard(uid_of(pod))
                    else:
                        hint = exc.retry_after_s if exc.retry_after_s else None
                        # a rehearsal's sandbox runs `kube.pace` times faster than real time: so does this wait
                        delay = min(_BACKOFF_MAX_S, hint or _BACKOFF_FIRST_S * 2**attempt) / kube.pace
                        pending.append((time.monotonic() + delay, pod, attempt + 1))
                elif kind == "failed":
                    pod, why = data
                    outcome.failed[key] = why
                    waiting.discard(uid_of(pod))
        finally:
            if watcher is not None:
                watcher.stop()
    if not dry:
        keys = (pod_key(targets[u]) for u in waiting)
        outcome.not_gone = sorted(k for k in keys if k not in outcome.blocked and k not in outcome.failed)
        if outcome.blocked:
            _explain_budgets(kube, outcome)
    return outcome


def _explain_budgets(kube: KubeClient, outcome: DrainOutcome) -> None:
    """Name the pods that keep each blocking budget short, and why (a NotReady node, a pod not Ready).

    Why: "needs 2 healthy pods and has 2" does not say that the missing health is a pod on a node that just
    died; an operator at 3 a.m. needs that to decide between waiting and acting. Best effort: nothing is added
    when the reads fail."""
    from kubeops.clients import nodes as node_api

    node_states: dict[str, str] = {}
    for info in outcome.blocked.values():
        notes: list[str] = []
        for budget in info["budgets"]:
            try:
                notes += _unhealthy_of(kube, info, budget, node_api, node_states)
            except ClusterError:
                continue
        if notes:
            info["unhealthy"] = notes


def _unhealthy_of(kube: KubeClient, info: Mapping[str, Any], budget: str, node_api: Any,
                  node_states: dict[str, str]) -> list[str]:
    namespace = str(info.get("namespace") or "")
    listing = kube.request("GET", f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets",
                           what=f"list budgets in {namespace}")
    pdb = next((b for b in listing.get("items") or () if (b.get("metadata") or {}).get("name") == budget), None)
    selector = ((pdb or {}).get("spec") or {}).get("selector") or {}
    if pdb is None or selector.get("matchExpressions") or not selector.get("matchLabels"):
        return []
    labels = ",".join(f"{k}={v}" for k, v in sorted(selector["matchLabels"].items()))
    pods, _ = pod_api.list_pods(kube, namespace=namespace, label_selector=labels)
    notes = []
    for pod in pods:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        if meta.get("deletionTimestamp") or _pod_ready(pod):
            continue
        where = spec.get("nodeName")
        text = f"{namespace}/{meta.get('name')} is not Ready"
        if where:
            if where not in node_states:
                try:
                    node = node_api.get_node(kube, where)
                    node_states[where] = "" if node_api.node_is_ready(node) else node_api.ready_text(node)
                except ClusterError:
                    node_states[where] = "gone"
            state = node_states[where]
            text += f" (on node {where}, {state})" if state else f" (on node {where})"
        notes.append(text)
    return notes


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def run_drains(
    kube: KubeClient,
    jobs: Mapping[str, tuple[DrainSelection, str]],
    *,
    deadline: float,
    grace_period_s: int | None = None,
    disable_eviction: bool = False,
    concurrency: int = 10,
    log: Any = None,
) -> dict[str, DrainOutcome]:
    """Drain several nodes at once: `jobs` maps node -> (selection, list resourceVersion) as for `run_drain`.

    Why together: a batch of nodes drained one after another costs the sum of their drains, and a budget that
    holds one node's pods would hold every node behind it. Here each node has its own drain (own watch, own
    retries) and all share one deadline and one bound of `concurrency` evictions in flight across the nodes,
    so the API server sees no more than a single drain would send. A node's failure never stops the others;
    every node's outcome is returned, the caller decides.
    """
    if not jobs:
        return {}
    if len(jobs) == 1:
        ((node, (selection, version)),) = jobs.items()
        return {node: run_drain(kube, node, selection, version, deadline=deadline, grace_period_s=grace_period_s,
                                disable_eviction=disable_eviction, concurrency=concurrency, log=log)}
    gate = threading.BoundedSemaphore(max(1, concurrency))

    def one(node: str, selection: DrainSelection, version: str) -> DrainOutcome:
        node_log = log.bind(node=node) if log is not None and hasattr(log, "bind") else log
        return run_drain(kube, node, selection, version, deadline=deadline, grace_period_s=grace_period_s,
                         disable_eviction=disable_eviction, concurrency=concurrency, log=node_log, gate=gate)

    outcomes: dict[str, DrainOutcome] = {}
    refused: Forbidden | None = None
    with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="drain") as pool:
        futures = {node: pool.submit(one, node, sel, ver) for node, (sel, ver) in jobs.items()}
        for node, future in futures.items():
            try:
                outcomes[node] = future.result()
            except Forbidden as exc:  # the role, not the node: every node meets it, say it once as the API did
                refused = refused or exc
            except Exception as exc:  # one node's bug or lost connection is that node's failure only
                outcome = DrainOutcome()
                outcome.failed["(drain)"] = f"{type(exc).__name__}: {exc}"
                outcomes[node] = outcome
    if refused is not None:
        raise refused
    return outcomes


def _progress_text(left: int, blocked: Mapping[str, Mapping[str, Any]]) -> str:
    """Say "3 pods left, 1 blocked by budget web": what a person watching a drain wants to know."""
    text = f"{left} pod{'' if left == 1 else 's'} left"
    if blocked:
        budgets = sorted({b for info in blocked.values() for b in info["budgets"]})
        text += f", {len(blocked)} blocked by budget {', '.join(budgets) or '(unnamed)'}"
    return text


def _refusal_text(exc: TooManyRequests) -> str:
    """The server's words for a refusal: the budget causes ("needs 2 healthy pods and has 2") when given."""
    details = getattr(exc, "details", None) or {}
    causes = [str(c.get("message")) for c in details.get("causes") or () if isinstance(c, dict) and c.get("message")]
    return "; ".join(causes) or getattr(exc, "server_message", None) or exc.message


_MIRRORED_NAMESPACES = 8  # above this many namespaces, one cluster-wide pod watch instead of one per namespace


def wait_for_replacements(kube: KubeClient, pods: list[Obj], *, deadline: float, log: Any = None) -> list[str]:
    """Wait until the controllers of the removed pods have all their replicas Ready again; returns those that did not.

    Counts the controller's own Ready pods other than the removed ones, not its ``status.readyReplicas``: right
    after an eviction that status still counts the pods just removed until the controller catches up.

    Watches instead of polling: the pods of the controllers' namespaces are followed by `Mirror`s (one list, then
    one watch each; a 410 Gone lists again; watches that keep failing fall back to a slow list) and the condition
    is evaluated only when a pod changed. The mirrors hold only the controllers' own pods, and of those only
    name, owner, deletion and Ready (above 8 namespaces the watch is cluster-wide: 60,000 pods are read once,
    not held). A controller is read again (GET, which the least-privilege role allows
    on ReplicaSets and StatefulSets) only when its own pods changed, which is also when a scale or a deletion
    shows. A watch refused by RBAC (401/403) raises that `Forbidden` at once, as every other wait does, naming
    the verb and resource, instead of polling around a permission that will never come. Says which controllers
    it waits for in a ``drain.progress`` event at most once a second.
    """
    from kubeops.clients.watch import Mirror, wait_until

    progress = Progress(log, "drain.progress", timeout_s=round(max(0.0, deadline - time.monotonic()), 1))
    removed = {(p.get("metadata") or {}).get("uid") for p in pods}
    owners: dict[tuple[str, str, str], None] = {}
    for pod in pods:
        ref = controller_ref(pod)
        if ref is not None and ref.get("kind") in ("ReplicaSet", "StatefulSet", "ReplicationController"):
            ns = (pod.get("metadata") or {}).get("namespace") or "default"
            owners[(str(ref["kind"]), ns, str(ref["name"]))] = None
    left = list(owners)
    if not left:
        return []
    namespaces = sorted({ns for _, ns, _ in left})
    paths = ([f"/api/v1/namespaces/{ns}/pods" for ns in namespaces] if len(namespaces) <= _MIRRORED_NAMESPACES
             else ["/api/v1/pods"])
    controllers: dict[tuple[str, str, str], Obj | None] = {}
    seen: dict[tuple[str, str, str], frozenset[tuple[str, str]]] = {}

    def still_late(mirrors: list[Mirror]) -> bool | None:
        owned: dict[str, list[Obj]] = {}  # controller uid -> its pods, as the watches last saw them
        for mirror in mirrors:
            for pod in mirror.objects():
                uid = (controller_ref(pod) or {}).get("uid")
                if uid:
                    owned.setdefault(str(uid), []).append(pod)
        still: list[tuple[str, str, str]] = []
        for key in left:
            mine = owned.get(_uid(controllers.get(key)), [])
            now = frozenset((_uid(p), str((p.get("metadata") or {}).get("resourceVersion"))) for p in mine)
            if key not in controllers or seen.get(key) != now:  # its pods changed: so may have its spec
                controllers[key] = pod_api.get_controller(kube, *key)
                mine = owned.get(_uid(controllers[key]), [])  # a controller recreated under the same name
                seen[key] = frozenset((_uid(p), str((p.get("metadata") or {}).get("resourceVersion"))) for p in mine)
            obj = controllers[key]
            if obj is None:
                continue  # deleted meanwhile: nothing to wait for
            want = int((obj.get("spec") or {}).get("replicas", 1) or 0)
            if _count_ready(mine, removed) < want:
                still.append(key)
        left[:] = still
        return True if not still else None

    def report() -> None:
        progress.emit(f"waiting for {len(left)} controller(s) to be Ready again: "
                      + ", ".join(f"{kind} {ns}/{name}" for kind, ns, name in left))

    wanted = {(ns, kind, name) for kind, ns, name in left}

    def keep(pod: Obj) -> Obj | None:
        """Only the controllers' own pods, and of them only what the count reads."""
        meta = pod.get("metadata") or {}
        ref = controller_ref(pod) or {}
        if (meta.get("namespace") or "default", ref.get("kind"), ref.get("name")) not in wanted:
            return None
        ready = [c for c in (pod.get("status") or {}).get("conditions") or () if c.get("type") == "Ready"]
        slim = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "ownerReferences",
                                     "deletionTimestamp") if k in meta}
        return {"metadata": slim, "status": {"conditions": ready}}

    mirrors = [Mirror(kube, path, what="pods" if path == "/api/v1/pods" else f"pods in {path.split('/')[4]}",
                      keep=keep) for path in paths]
    started: list[Mirror] = []
    try:
        for mirror in mirrors:
            started.append(mirror.start())
        wait_until(started, lambda: still_late(started), deadline=deadline, check=report)
    finally:
        for mirror in started:
            mirror.stop()
    return [f"{kind} {ns}/{name}" for kind, ns, name in left]


def _uid(obj: Obj | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("uid") or "")


def _count_ready(owned: list[Obj], removed: set[Any]) -> int:
    """Ready, not terminating pods among `owned`, the removed ones excepted."""
    count = 0
    for pod in owned:
        meta = pod.get("metadata") or {}
        if meta.get("uid") in removed or meta.get("deletionTimestamp"):
            continue
        count += _pod_ready(pod)
    return count
