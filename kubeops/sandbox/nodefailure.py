"""A node that dies: its kubelet stops posting status, and the control plane reacts as kube-controller-manager does.

Why: a maintenance run must cope with another node failing under it (capacity shrinks, budgets tighten, pods
hang in Terminating). The fault is switched on through the sandbox API, never through the Kubernetes API:

    POST /sandbox/v1/node-faults {"node": "worker-1", "heartbeats": false}   # the node dies now
    POST /sandbox/v1/node-faults {"node": "worker-1", "heartbeats": true}    # its kubelet is back
    GET  /sandbox/v1/node-faults                                             # {"dead": {node: last heartbeat}}

Then, on the sandbox clock (``POST /sandbox/v1/clock`` fast-forwards it):

- after ``node_monitor_grace_period_s`` (scenario setting, default 50 as in 1.32+) without a heartbeat the node
  lifecycle controller sets Ready, MemoryPressure, DiskPressure and PIDPressure to ``Unknown`` (reason
  ``NodeStatusUnknown``, "Kubelet stopped posting node status.") and taints the node
  ``node.kubernetes.io/unreachable`` with NoSchedule and NoExecute; its pods' Ready goes False;
- the taint eviction controller deletes each pod on the node once its toleration of the NoExecute taint runs out:
  at once without one, after ``tolerationSeconds`` (every pod gets 300 s by default, as the DefaultToleration
  admission plugin adds; DaemonSet pods tolerate it for ever), with a ``TaintManagerEviction`` Event;
- with no kubelet to confirm, those pods stay Terminating (their controllers replace them elsewhere) and pods
  bound there never start, until the node is revived or deleted (then the pod GC removes them).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from kubeops.sandbox import events, heartbeats
from kubeops.sandbox import status as st
from kubeops.sandbox.store import parse_time, rfc3339

if TYPE_CHECKING:
    from kubeops.sandbox.cluster import Cluster

Obj = dict[str, Any]
UNREACHABLE = "node.kubernetes.io/unreachable"
DEFAULT_GRACE_S = 50.0
_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
_HEALTHY_REASON = {"MemoryPressure": "KubeletHasSufficientMemory", "DiskPressure": "KubeletHasNoDiskPressure",
                   "PIDPressure": "KubeletHasSufficientPID"}


class NodeMonitor:
    """The dead nodes (and when each last heartbeated), and the controllers reacting to them."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.dead = heartbeats.dead_nodes(cluster.store)
        self._revived: set[str] = set()
        self._lock = threading.Lock()
        self.grace_s = float(cluster.settings.get("node_monitor_grace_period_s", DEFAULT_GRACE_S))

    # ---- the sandbox endpoint ----------------------------------------------------------------------------

    def endpoint(self, cluster: Cluster, method: str, rest: str, body: Any) -> tuple[int, Obj]:
        if method == "GET":
            return 200, {"dead": dict(self.dead)}
        if method not in ("POST", "PUT") or not isinstance(body, dict) or not isinstance(body.get("node"), str):
            raise st.bad_request('node-faults: POST {"node": "<name>", "heartbeats": false|true}')
        name, beating = body["node"], body.get("heartbeats", False)
        if not isinstance(beating, bool):
            raise st.bad_request("node-faults: heartbeats must be true or false")
        cluster.store.get("nodes", None, name, copy=False)  # 404 for an unknown node
        with self._lock:
            if beating:
                if self.dead.pop(name, None) is not None:
                    self._revived.add(name)
            else:
                self.dead.setdefault(name, cluster.clock.now())
        cluster.tick()
        return 200, {"dead": dict(self.dead)}

    # ---- the controllers ---------------------------------------------------------------------------------

    def reconcile(self, cluster: Cluster, now: float) -> None:
        with self._lock:
            dead, revived = dict(self.dead), set(self._revived)
            self._revived.clear()
        for name in revived:
            self._revive(name, now)
        for name, since in dead.items():
            if now - since >= self.grace_s:
                self._mark_unknown(name, since, now)
            self._evict(name, now)

    def _mark_unknown(self, name: str, since: float, now: float) -> None:
        heartbeat, stamp = rfc3339(since), rfc3339(now)

        def write(node: Obj) -> Any:
            conditions = (node.get("status") or {}).get("conditions") or []
            ready = next((c for c in conditions if c.get("type") == "Ready"), {})
            taints = (node.get("spec") or {}).get("taints") or []
            has = {t.get("effect") for t in taints if t.get("key") == UNREACHABLE}
            if ready.get("status") == "Unknown" and has >= {"NoSchedule", "NoExecute"}:
                return False
            for c in conditions:
                if c.get("type") in _CONDITIONS and c.get("status") != "Unknown":
                    c.update(status="Unknown", reason="NodeStatusUnknown",
                             message="Kubelet stopped posting node status.", lastHeartbeatTime=heartbeat,
                             lastTransitionTime=stamp)
            node.setdefault("spec", {})["taints"] = taints + [
                {"key": UNREACHABLE, "effect": effect, "timeAdded": stamp}
                for effect in ("NoSchedule", "NoExecute") if effect not in has]
            return None

        try:
            self.cluster.store.modify("nodes", None, name, write)
        except st.ApiError:
            with self._lock:
                self.dead.pop(name, None)  # the node object is gone: nothing left to monitor

    def _evict(self, name: str, now: float) -> None:
        store = self.cluster.store
        node = store.try_get("nodes", None, name, copy=False)
        if node is None:
            return
        taint = next((t for t in (node.get("spec") or {}).get("taints") or ()
                      if t.get("key") == UNREACHABLE and t.get("effect") == "NoExecute"), None)
        if taint is None:
            return
        added = parse_time(taint["timeAdded"]) if taint.get("timeAdded") else now
        for pod in store.list("pods", field_selector=f"spec.nodeName={name}", copy=False).items:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            seconds = _tolerated_for(pod)
            if seconds is None or added + seconds > now:  # tolerated for ever, or not yet run out
                continue
            try:
                store.delete("pods", meta["namespace"], meta["name"], preconditions={"uid": meta["uid"]})
            except st.ApiError:
                continue
            events.recorder_for(store).emit(
                events.reference(pod, kind="Pod"), "TaintManagerEviction",
                f"Marking for deletion Pod {meta['namespace']}/{meta['name']}", component="taint-eviction-controller")

    def _revive(self, name: str, now: float) -> None:
        stamp = rfc3339(now)

        def write(node: Obj) -> Any:
            spec = node.setdefault("spec", {})
            spec["taints"] = [t for t in spec.get("taints") or () if t.get("key") != UNREACHABLE]
            if not spec["taints"]:
                del spec["taints"]
            for c in (node.get("status") or {}).get("conditions") or ():
                if c.get("type") == "Ready":
                    c.update(status="True", reason="KubeletReady", message="kubelet is posting ready status",
                             lastHeartbeatTime=stamp, lastTransitionTime=stamp)
                elif c.get("type") in _CONDITIONS:
                    reason = _HEALTHY_REASON[c["type"]]
                    c.update(status="False", reason=reason, lastHeartbeatTime=stamp, lastTransitionTime=stamp)
            return None

        try:
            self.cluster.store.modify("nodes", None, name, write)
        except st.ApiError:
            return


def _tolerated_for(pod: Obj) -> float | None:
    """Seconds the pod tolerates the unreachable NoExecute taint (the taint eviction controller's
    getMinTolerationTime): 0 without a matching toleration, the smallest tolerationSeconds among the matching
    ones, None (for ever) when none of them sets it."""
    seconds: list[float] = []
    matched = False
    for tol in (pod.get("spec") or {}).get("tolerations") or ():
        if tol.get("effect") not in (None, "", "NoExecute"):
            continue
        key, op = tol.get("key"), tol.get("operator") or "Equal"
        if (op == "Exists" and key in (None, "", UNREACHABLE)) or (op == "Equal" and key == UNREACHABLE):
            matched = True
            if tol.get("tolerationSeconds") is not None:
                seconds.append(max(0.0, float(tol["tolerationSeconds"])))
    if not matched:
        return 0.0
    return min(seconds) if seconds else None


def install(cluster: Cluster) -> None:
    monitor = NodeMonitor(cluster)
    cluster.add_reconciler(monitor)
    cluster.sandbox_endpoints["node-faults"] = monitor.endpoint
