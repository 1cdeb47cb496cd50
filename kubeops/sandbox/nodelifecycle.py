"""Node lifecycle: keeps the ``node.kubernetes.io/unschedulable:NoSchedule`` taint in step with spec.unschedulable.

Why: `kubectl cordon` only sets ``spec.unschedulable``; in a real cluster the node lifecycle controller then adds
the taint (and removes it after `kubectl uncordon` or a patch back to false). Tools that read taints, not the
flag, must see the same thing here. Like the real controller this happens asynchronously (next tick, ~50 ms).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubeops.sandbox.scheduler import TAINT_UNSCHEDULABLE, unschedulable_taint_in_step
from kubeops.sandbox.store import rfc3339
from kubeops.sandbox.tracker import Tracker, tracker_for

if TYPE_CHECKING:
    from kubeops.sandbox.cluster import Cluster

__all__ = ["NodeLifecycle", "install"]

Obj = dict[str, Any]
DIRTY = "__node_taints__"


class NodeLifecycle:
    """Reconciles the nodes the tracker marked (created, or spec.unschedulable / taints changed)."""

    def __init__(self, tracker: Tracker) -> None:
        self.t = tracker
        self.store = tracker.store

    def reconcile(self, cluster: Cluster, now: float) -> None:
        for _, name in self.t.take(DIRTY):
            self._sync(name, now)

    def _sync(self, name: str, now: float) -> None:
        def write(o: Obj) -> Any:
            if unschedulable_taint_in_step(o):
                return False
            spec = o.setdefault("spec", {})
            taints = [t for t in spec.get("taints") or ()
                      if not (t.get("key") == TAINT_UNSCHEDULABLE and t.get("effect") == "NoSchedule")]
            if spec.get("unschedulable"):
                taints.append({"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule", "timeAdded": rfc3339(now)})
            if taints:
                spec["taints"] = taints
            else:
                spec.pop("taints", None)
            return None

        self.store.modify("nodes", None, name, write)


def install(cluster: Cluster) -> None:
    """Register the node lifecycle controller; the tracker marks nodes whose taint is out of step."""
    cluster.add_reconciler(NodeLifecycle(tracker_for(cluster)))
