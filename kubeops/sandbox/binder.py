"""The scheduling loop: binds Pending pods to the node `SchedulingIndex` picks, or marks them Unschedulable.

The filters and the free-capacity index are pure and live in `scheduler` (drain and capacity checks share them);
this plug-in is the part that writes: it takes the pods the tracker marked dirty and binds them in batches, so
API requests interleave with a big start-up.
"""

from __future__ import annotations

from typing import Any

from kubeops.sandbox.scheduler import needs_scheduling
from kubeops.sandbox.store import Obj, rfc3339
from kubeops.sandbox.tracker import tracker_for

_BIND_BATCH = 2000  # pods bound per store-lock hold, so API requests interleave with a big start-up


class SchedulerReconciler:
    """Binds pending pods each tick; pods that fit nowhere get ``PodScheduled=False/Unschedulable`` and are
    retried when capacity changes (a node added, changed or freed)."""

    def __init__(self, tracker: Any) -> None:
        self.t = tracker
        self.store = tracker.store

    def reconcile(self, cluster: Any, now: float) -> None:
        t = self.t
        with self.store.lock:
            keys = t.pending
            t.pending = set()
            if t.capacity_changed:
                keys |= t.unschedulable
                t.unschedulable = set()
                t.capacity_changed = False
        if not keys:
            return
        order = sorted(keys, key=lambda k: ((t.pods.get(k) or {}).get("metadata", {}).get("creationTimestamp") or "",
                                            k))
        for i in range(0, len(order), _BIND_BATCH):
            with self.store.lock:
                for key in order[i:i + _BIND_BATCH]:
                    pod = t.pods.get(key)
                    if pod is None or not needs_scheduling(pod):
                        continue
                    node, message = t.sched.choose(pod)
                    if node is not None:
                        self._bind(pod, node, now)
                    else:
                        t.unschedulable.add(key)
                        self._unschedulable(pod, message, now)

    def _bind(self, pod: Obj, node: str, now: float) -> None:
        uid = pod["metadata"]["uid"]

        def write(o: Obj) -> Any:
            if o["metadata"].get("uid") != uid or (o.get("spec") or {}).get("nodeName"):
                return False
            o["spec"]["nodeName"] = node
            status = o.setdefault("status", {})
            conds = [c for c in status.get("conditions") or () if c.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                          "lastTransitionTime": rfc3339(now)})
            status["conditions"] = conds
            return None

        self.store.modify("pods", pod["metadata"].get("namespace"), pod["metadata"]["name"], write)

    def _unschedulable(self, pod: Obj, message: str, now: float) -> None:
        current = next((c for c in (pod.get("status") or {}).get("conditions") or ()
                        if c.get("type") == "PodScheduled"), None)
        if current is not None and current.get("status") == "False" and current.get("message") == message:
            return
        uid = pod["metadata"]["uid"]

        def write(o: Obj) -> Any:
            if o["metadata"].get("uid") != uid:
                return False
            status = o.setdefault("status", {})
            conds = [c for c in status.get("conditions") or () if c.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                          "lastTransitionTime": rfc3339(now), "reason": "Unschedulable", "message": message})
            status["conditions"] = conds
            status.setdefault("phase", "Pending")
            return None

        self.store.modify("pods", pod["metadata"].get("namespace"), pod["metadata"]["name"], write)


def install(cluster: Any) -> None:
    """Register the scheduler on the cluster (after the controllers, so new pods bind in the same tick)."""
    cluster.add_reconciler(SchedulerReconciler(tracker_for(cluster)))
