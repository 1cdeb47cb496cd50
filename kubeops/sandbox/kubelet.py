"""The kubelet simulation: starts bound pods, makes them Ready, finishes graceful deletions, tends node conditions.

Why: drains, PDB arithmetic, rollouts and endpoint sampling all hinge on when a pod is Running, Ready and gone.
Per-pod knobs are annotations (seconds, floats allowed):
- ``sandbox.kubeops.io/readiness-delay-s``: Ready this long after the pod starts (default 0);
- ``sandbox.kubeops.io/never-ready``: ``"true"`` keeps the pod Running but never Ready;
- ``sandbox.kubeops.io/termination-delay-s``: how long the app takes to exit after SIGTERM; the pod disappears
  after ``min(this, grace period)`` (default 0: exits at once; grace 0 always removes at once);
- ``sandbox.kubeops.io/succeed-after-s``: the pod's containers exit 0 after this long (Job-like pods).
Pods on a node whose Ready condition is not True get ``Ready=False`` (as the node lifecycle controller does)
and recover when it is Ready again. Nodes created without conditions get healthy ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import ipaddress
import itertools
from typing import TYPE_CHECKING, Any

from kubeops.sandbox import heartbeats
from kubeops.sandbox.scheduler import node_is_ready
from kubeops.sandbox.status import ApiError
from kubeops.sandbox.store import parse_time, rfc3339
from kubeops.sandbox.timing import Timing, annotation_seconds
from kubeops.sandbox.tracker import Tracker, tracker_for

if TYPE_CHECKING:
    from kubeops.sandbox.cluster import Cluster

__all__ = [
    "ANN_NEVER_READY",
    "ANN_READINESS_DELAY",
    "ANN_SUCCEED_AFTER",
    "ANN_TERMINATION_DELAY",
    "Kubelet",
    "install",
    "node_conditions",
]

Obj = dict[str, Any]
Key = tuple[str, str]
ANN_READINESS_DELAY = "sandbox.kubeops.io/readiness-delay-s"
ANN_NEVER_READY = "sandbox.kubeops.io/never-ready"
ANN_TERMINATION_DELAY = "sandbox.kubeops.io/termination-delay-s"
ANN_SUCCEED_AFTER = "sandbox.kubeops.io/succeed-after-s"
_POD_NET = ipaddress.IPv4Address("10.64.0.0")
_BATCH = 2000  # pods started per lock hold, so API requests interleave with a big start-up


def _truthy(pod: Obj, name: str) -> bool:
    return str((pod["metadata"].get("annotations") or {}).get(name, "")).lower() in ("true", "1", "yes")


def node_conditions(ready: bool, now: float, *, reason: str = "") -> list[Obj]:
    """The four pressure conditions plus Ready, with the kubelet's reasons and messages."""
    stamp = rfc3339(now)

    def cond(ctype: str, status: str, why: str, message: str) -> Obj:
        return {"type": ctype, "status": status, "lastHeartbeatTime": stamp, "lastTransitionTime": stamp,
                "reason": why, "message": message}

    return [
        cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        cond("Ready", "True", "KubeletReady", "kubelet is posting ready status")
        if ready else
        cond("Ready", "False", reason or "KubeletNotReady",
             "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
             "message:Network plugin returns error: cni plugin not initialized"),
    ]


def _cid(uid: str, name: str) -> str:
    return hashlib.sha256(f"{uid}/{name}".encode()).hexdigest()


def _pod_condition(ctype: str, status: str, now: str, reason: str = "", message: str = "") -> Obj:
    c: Obj = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": now}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


class Kubelet:
    """See the module docstring; one instance per Cluster."""

    def __init__(self, tracker: Tracker, timing: Timing | None = None) -> None:
        self.t = tracker
        self.timing = timing or Timing()
        self.store = tracker.store
        self._ips = itertools.count(1)
        self._free_ips: list[int] = []
        self._ip_of: dict[str, int] = {}
        self._exits: list[tuple[float, int, str, str, str]] = []  # (due, seq, ns, name, uid)
        self._seq = itertools.count()
        self.store.deletion_handlers["pods"] = self._on_delete
        tracker.listeners["pods"].append(self._release_ip)
        tracker.listeners["pods"].append(self._adopt_loaded)

    # -- graceful deletion (called by the store under its lock) ----------------------------------------------
    def _on_delete(self, pod: Obj) -> None:
        meta = pod["metadata"]
        grace = float(meta.get("deletionGracePeriodSeconds") or 0)
        delay = self.timing.exit_s_of(pod)
        due = self.store.now() + min(delay, grace)
        heapq.heappush(self._exits, (due, next(self._seq), meta.get("namespace") or "", meta["name"], meta["uid"]))

    def _release_ip(self, event: Any) -> None:
        if event.type == "DELETED":
            n = self._ip_of.pop(event.obj["metadata"].get("uid") or "", None)
            if n is not None:
                self._free_ips.append(n)

    def _adopt_loaded(self, event: Any) -> None:
        """Pods created already Running (scenario bare pods) still become Ready after their delay."""
        if event.type != "ADDED":
            return
        pod = event.obj
        status = pod.get("status") or {}
        if status.get("phase") != "Running" or _is_ready(pod) or _truthy(pod, ANN_NEVER_READY):
            return
        delay = self.timing.readiness_s(pod)
        started = status.get("startTime")
        due = (parse_time(started) if started else self.store.now()) + delay
        self.t.later(due, "__ready__", (event.namespace, event.name))

    def _allocate_ip(self, uid: str) -> str:
        n = self._free_ips.pop() if self._free_ips else next(self._ips)
        self._ip_of[uid] = n
        return str(_POD_NET + n)

    # -- the loop ---------------------------------------------------------------------------------------------
    def reconcile(self, cluster: Cluster, now: float) -> None:
        self.t.fire_timers(now)
        self._finish_exits(now)
        self._tend_nodes(now)
        self._start_pods(now)
        for key in self.t.take("__ready__"):
            self._make_ready(key, now)
        for key in self.t.take("__succeed__"):
            self._succeed(key, now)

    def _finish_exits(self, now: float) -> None:
        later = []
        with self.store.lock:
            while self._exits and self._exits[0][0] <= now:
                _, seq, ns, name, uid = heapq.heappop(self._exits)
                pod = self.store.try_get("pods", ns, name, copy=False)
                if pod is not None and heartbeats.is_dead(self.store, (pod.get("spec") or {}).get("nodeName", "")):
                    later.append((now + 1.0, seq, ns, name, uid))  # no kubelet to confirm: stays Terminating
                    continue
                self.store.finish_deletion("pods", ns, name, uid=uid)
            for item in later:
                heapq.heappush(self._exits, item)

    def _tend_nodes(self, now: float) -> None:
        for _, name in self.t.take("__node__"):
            node = self.store.try_get("nodes", None, name, copy=False)
            if node is None:
                continue
            if not (node.get("status") or {}).get("conditions"):
                def add(o: Obj) -> None:
                    o.setdefault("status", {})["conditions"] = node_conditions(True, now)
                self.store.modify("nodes", None, name, add)
                continue
            self._sync_pod_readiness(name, node_is_ready(node), now)

    def _sync_pod_readiness(self, node: str, node_ready: bool, now: float) -> None:
        """NotReady node: its pods' Ready goes False; Ready again: restored if the pod itself is ready."""
        for pod in self.t.pods_on(node):
            if (pod.get("status") or {}).get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
                continue
            want = node_ready and self._self_ready(pod, now)
            if want != _is_ready(pod):
                self._set_ready(pod, want, now)

    def _self_ready(self, pod: Obj, now: float) -> bool:
        if _truthy(pod, ANN_NEVER_READY):
            return False
        started = (pod.get("status") or {}).get("startTime")
        delay = self.timing.readiness_s(pod)
        return not started or parse_time(started) + delay <= now + 1e-6

    def _start_pods(self, now: float) -> None:
        with self.store.lock:
            keys = sorted(self.t.unstarted)
        for i in range(0, len(keys), _BATCH):
            with self.store.lock:
                for key in keys[i:i + _BATCH]:
                    pod = self.t.pods.get(key)
                    if pod is None or key not in self.t.unstarted:
                        continue
                    node = self.t.sched.nodes.get(pod["spec"]["nodeName"])
                    if (node is None or not node_is_ready(node)
                            or heartbeats.is_dead(self.store, node["metadata"]["name"])):
                        continue  # no kubelet there (yet, or any more): stays Pending, as on a real cluster
                    with contextlib.suppress(ApiError):
                        self._start(pod, node, now)

    def _start(self, pod: Obj, node: Obj, now: float) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        stamp = rfc3339(now)
        delay = self.timing.readiness_s(pod)
        ready = not _truthy(pod, ANN_NEVER_READY) and delay <= 0
        host_ip = next((a.get("address") for a in (node.get("status") or {}).get("addresses") or ()
                        if a.get("type") == "InternalIP"), None) or "10.0.0.1"
        pod_ip = host_ip if (pod.get("spec") or {}).get("hostNetwork") else self._allocate_ip(uid)
        containers = (pod.get("spec") or {}).get("containers") or []
        unready = ", ".join(c["name"] for c in containers)
        statuses = [{
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": f"{c.get('image', '')}@sha256:{_cid('image', c.get('image', ''))}",
            "containerID": f"containerd://{_cid(uid, c['name'])}",
            "ready": ready,
            "started": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": stamp}},
        } for c in containers]
        init_statuses = [{
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": f"{c.get('image', '')}@sha256:{_cid('image', c.get('image', ''))}",
            "containerID": f"containerd://{_cid(uid, c['name'])}",
            "ready": True,
            "started": False,
            "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": stamp,
                                     "finishedAt": stamp, "containerID": f"containerd://{_cid(uid, c['name'])}"}},
        } for c in (pod.get("spec") or {}).get("initContainers") or []]
        old = pod.get("status") or {}
        scheduled = next((c for c in old.get("conditions") or () if c.get("type") == "PodScheduled"), None)
        conditions = [
            _pod_condition("PodReadyToStartContainers", "True", stamp),
            _pod_condition("Initialized", "True", stamp),
            _pod_condition("Ready", "True", stamp) if ready else
            _pod_condition("Ready", "False", stamp, "ContainersNotReady",
                           f"containers with unready status: [{unready}]"),
            _pod_condition("ContainersReady", "True", stamp) if ready else
            _pod_condition("ContainersReady", "False", stamp, "ContainersNotReady",
                           f"containers with unready status: [{unready}]"),
            scheduled or _pod_condition("PodScheduled", "True", stamp),
        ]
        status: Obj = {
            "phase": "Running",
            "conditions": conditions,
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": stamp,
            "containerStatuses": statuses,
            "qosClass": old.get("qosClass", "BestEffort"),
        }
        if init_statuses:
            status["initContainerStatuses"] = init_statuses

        def write(o: Obj) -> Any:
            if o["metadata"].get("uid") != uid or o["metadata"].get("deletionTimestamp"):
                return False
            o["status"] = status
            return None

        self.store.modify("pods", meta.get("namespace"), meta["name"], write)
        key = (meta.get("namespace") or "", meta["name"])
        if not ready and not _truthy(pod, ANN_NEVER_READY):
            self.t.later(now + delay, "__ready__", key)
        succeed = annotation_seconds(pod, ANN_SUCCEED_AFTER)
        if succeed is not None:
            self.t.later(now + succeed, "__succeed__", key)

    def _make_ready(self, key: Key, now: float) -> None:
        pod = self.store.try_get("pods", *key, copy=False)
        if pod is None or (pod.get("status") or {}).get("phase") != "Running":
            return
        if pod["metadata"].get("deletionTimestamp") or _is_ready(pod):
            return
        node = self.store.try_get("nodes", None, pod["spec"].get("nodeName") or "", copy=False)
        if node is None or not node_is_ready(node) or not self._self_ready(pod, now):
            return
        self._set_ready(pod, True, now)

    def _set_ready(self, pod: Obj, ready: bool, now: float) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        stamp = rfc3339(now)
        names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or ()]

        def write(o: Obj) -> Any:
            if o["metadata"].get("uid") != uid:
                return False
            status = o.setdefault("status", {})
            for c in status.get("conditions") or ():
                if c.get("type") in ("Ready", "ContainersReady"):
                    c["status"] = "True" if ready else "False"
                    c["lastTransitionTime"] = stamp
                    if ready:
                        c.pop("reason", None)
                        c.pop("message", None)
                    else:
                        c["reason"] = "ContainersNotReady"
                        c["message"] = f"containers with unready status: [{', '.join(names)}]"
            for cs in status.get("containerStatuses") or ():
                cs["ready"] = ready
            return None

        with contextlib.suppress(ApiError):
            self.store.modify("pods", meta.get("namespace"), meta["name"], write)

    def _succeed(self, key: Key, now: float) -> None:
        pod = self.store.try_get("pods", *key, copy=False)
        if pod is None or (pod.get("status") or {}).get("phase") != "Running":
            return
        uid = pod["metadata"]["uid"]
        stamp = rfc3339(now)

        def write(o: Obj) -> Any:
            if o["metadata"].get("uid") != uid:
                return False
            status = o["status"]
            status["phase"] = "Succeeded"
            for c in status.get("conditions") or ():
                if c.get("type") in ("Ready", "ContainersReady"):
                    c.update(status="False", lastTransitionTime=stamp, reason="PodCompleted")
                    c.pop("message", None)
            for cs in status.get("containerStatuses") or ():
                started = (cs.get("state") or {}).get("running", {}).get("startedAt", stamp)
                cs.update(ready=False, started=False, state={"terminated": {
                    "exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": stamp,
                    "containerID": cs.get("containerID")}})
            return None

        with contextlib.suppress(ApiError):
            self.store.modify("pods", key[0], key[1], write)


def _is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def install(cluster: Cluster) -> None:
    """Register the kubelet simulation and the graceful pod deletion handler."""
    cluster.add_reconciler(Kubelet(tracker_for(cluster), Timing(cluster.settings)))
