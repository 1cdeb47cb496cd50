"""Indexes over the store shared by the sandbox's controllers, scheduler and kubelet, kept current from events.

Why: reconcilers run every ~50 ms and a large scenario holds 60,000 pods on 2,000 nodes, so none of them may
scan the store per tick. One store subscriber (running under the store lock, so it stays cheap) keeps pods by
controller and by node, the scheduler's free-capacity index, and per-resource dirty sets; reconcilers take
their dirty keys with `Tracker.take` and only look at those. `Tracker.later` re-queues a key at a sandbox time
(readiness delays, minReadySeconds). One tracker per Cluster: `tracker_for(cluster)`.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from kubeops.sandbox.scheduler import (
    SchedulingIndex,
    needs_scheduling,
    node_is_ready,
    unschedulable_taint_in_step,
)

if TYPE_CHECKING:
    from kubeops.sandbox.cluster import Cluster
    from kubeops.sandbox.store import Store, WatchEvent

__all__ = ["OWNER_RESOURCES", "Tracker", "controller_ref", "tracker_for"]

Obj = dict[str, Any]
Key = tuple[str, str]

# ownerReference kind -> store resource key of the controllers the sandbox runs
OWNER_RESOURCES: dict[str, str] = {
    "ReplicaSet": "replicasets.apps",
    "Deployment": "deployments.apps",
    "StatefulSet": "statefulsets.apps",
    "DaemonSet": "daemonsets.apps",
    "ReplicationController": "replicationcontrollers",
    "Job": "jobs.batch",
}
_WORKLOADS = frozenset(OWNER_RESOURCES.values())


def controller_ref(obj: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ownerReference with ``controller: true``, if any."""
    if not obj:
        return None
    for ref in obj["metadata"].get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


def _key(obj: Obj) -> Key:
    meta = obj["metadata"]
    return meta.get("namespace") or "", meta["name"]


class Tracker:
    """See the module docstring. Mutated only under ``store.lock``; read under it too."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pods: dict[Key, Obj] = {}
        self.by_owner: dict[str, set[Key]] = defaultdict(set)  # controller uid -> dependent keys (pods, RSs)
        self.by_node: dict[str, set[Key]] = defaultdict(set)
        self.sched = SchedulingIndex()
        self.pending: set[Key] = set()  # pods waiting for the scheduler
        self.unschedulable: set[Key] = set()  # tried and did not fit; retried when capacity changes
        self.capacity_changed = False
        self.unstarted: set[Key] = set()  # bound but not started by the kubelet
        self.dirty: dict[str, set[Key]] = defaultdict(set)
        self.listeners: dict[str, list[Callable[[WatchEvent], None]]] = defaultdict(list)
        self._timers: list[tuple[float, int, str, Key]] = []
        self._seq = itertools.count()
        with store.lock:
            store.subscribe(self._on_event)
            for resource in ("nodes", "pods", *_WORKLOADS):
                for obj in store.iter(resource):
                    self._apply(resource, obj, None, "ADDED")

    # -- for reconcilers ----------------------------------------------------------------------------
    def take(self, resource: str) -> set[Key]:
        """Keys of ``resource`` changed since the last call (and cleared)."""
        with self.store.lock:
            return self.dirty.pop(resource, set())

    def mark(self, resource: str, key: Key) -> None:
        with self.store.lock:
            self.dirty[resource].add(key)

    def later(self, due: float, resource: str, key: Key) -> None:
        """Mark ``key`` dirty once sandbox time reaches ``due``."""
        with self.store.lock:
            heapq.heappush(self._timers, (due, next(self._seq), resource, key))

    def fire_timers(self, now: float) -> None:
        with self.store.lock:
            while self._timers and self._timers[0][0] <= now:
                _, _, resource, key = heapq.heappop(self._timers)
                self.dirty[resource].add(key)

    def pods_of(self, uid: str) -> list[Obj]:
        """Current pods whose controller has this uid (read-only objects)."""
        with self.store.lock:
            return [self.pods[k] for k in self.by_owner.get(uid, ()) if k in self.pods]

    def pods_on(self, node: str) -> list[Obj]:
        with self.store.lock:
            return [self.pods[k] for k in self.by_node.get(node, ()) if k in self.pods]

    # -- event handling -----------------------------------------------------------------------------
    def _on_event(self, event: WatchEvent) -> None:
        resource = event.resource
        if resource != "pods" and resource != "nodes" and resource not in _WORKLOADS:
            for fn in self.listeners.get(resource, ()):
                fn(event)
            return
        new = None if event.type == "DELETED" else event.obj
        self._apply(resource, new, event.old, event.type, event)

    def _apply(self, resource: str, new: Obj | None, old: Obj | None, etype: str,
               event: WatchEvent | None = None) -> None:
        if resource == "pods":
            self._pod(new, old)
        elif resource == "nodes":
            self._node(new, old)
        else:
            obj = new or old
            if obj is not None:
                self.dirty[resource].add(_key(obj))
                self._owner_link(resource, new, old)
                self.dirty["__pdb_scale__"].add(_key(obj))  # PDBs scale against controllers
        if event is not None:
            for fn in self.listeners.get(resource, ()):
                fn(event)

    def _owner_link(self, resource: str, new: Obj | None, old: Obj | None) -> None:
        """Keep dependents by controller uid and wake the controller up."""
        obj = new or old
        assert obj is not None
        key = _key(obj)
        for o, add in ((old, False), (new, True)):
            ref = controller_ref(o)
            if ref is None:
                continue
            uid = ref.get("uid") or ""
            if add:
                self.by_owner[uid].add(key)
            elif new is None or controller_ref(new) != ref:
                self.by_owner[uid].discard(key)
                if not self.by_owner[uid]:
                    del self.by_owner[uid]
            owner_resource = OWNER_RESOURCES.get(ref.get("kind") or "")
            if owner_resource:
                self.dirty[owner_resource].add((key[0], ref.get("name") or ""))

    def _pod(self, new: Obj | None, old: Obj | None) -> None:
        obj = new or old
        assert obj is not None
        key = _key(obj)
        uid = obj["metadata"].get("uid") or ""
        self._owner_link("pods", new, old)
        old_node = ((old or {}).get("spec") or {}).get("nodeName")
        if new is None:
            self.pods.pop(key, None)
            self.sched.remove_pod(uid)
            self.pending.discard(key)
            self.unschedulable.discard(key)
            self.unstarted.discard(key)
            if old_node:
                self.by_node[old_node].discard(key)
                self.capacity_changed = True
            return
        old_uid = (old or {}).get("metadata", {}).get("uid")
        if old_uid and old_uid != uid:
            self.sched.remove_pod(old_uid)
        self.pods[key] = new
        node = (new.get("spec") or {}).get("nodeName")
        if old_node and old_node != node:
            self.by_node[old_node].discard(key)
        if node:
            self.by_node[node].add(key)
        self.sched.set_pod(new)
        if old_node and (old_node != node or (new.get("status") or {}).get("phase") in ("Succeeded", "Failed")):
            self.capacity_changed = True
        if needs_scheduling(new):
            if key not in self.unschedulable:
                self.pending.add(key)
        else:
            self.pending.discard(key)
            self.unschedulable.discard(key)
        phase = (new.get("status") or {}).get("phase") or "Pending"
        if node and phase == "Pending" and not new["metadata"].get("deletionTimestamp"):
            self.unstarted.add(key)
        else:
            self.unstarted.discard(key)

    def _node(self, new: Obj | None, old: Obj | None) -> None:
        self.capacity_changed = True
        if new is None:
            assert old is not None
            name = old["metadata"]["name"]
            self.sched.remove_node(name)
            self.dirty["__orphans__"].add(("", name))
        else:
            name = new["metadata"]["name"]
            self.sched.set_node(new)
            if not unschedulable_taint_in_step(new):
                self.dirty["__node_taints__"].add(("", name))  # the node lifecycle controller fixes it
            if old is None and self.by_node.get(name):
                self.sched.recount(self.pods.values())
            if old is None and not (new.get("status") or {}).get("conditions"):
                self.dirty["__node__"].add(("", name))  # the kubelet gives it conditions
            elif old is not None and node_is_ready(old) != node_is_ready(new):
                self.dirty["__node__"].add(("", name))  # its pods' readiness follows
        # every DaemonSet may want a pod there (or none any more)
        self.dirty["__daemonsets__"].add(("", name))


def tracker_for(cluster: Cluster) -> Tracker:
    """The cluster's one Tracker, created (and subscribed) on first use."""
    tracker = getattr(cluster, "_kubeops_tracker", None)
    if tracker is None:
        tracker = Tracker(cluster.store)
        cluster._kubeops_tracker = tracker  # type: ignore[attr-defined]
    return tracker
