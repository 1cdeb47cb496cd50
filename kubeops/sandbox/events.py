"""The Events a real control plane records, so `kubectl events` and `kubectl describe` tell what happened.

Why: after a drain an operator reads `kubectl describe node` and `kubectl events`; a sandbox that records nothing
cannot show that kubeops' story (its own Events) fits the cluster's (cordon, kills, replacements). Recorded here,
worded like the upstream components (1.33):

- default-scheduler: ``Scheduled`` "Successfully assigned <ns>/<pod> to <node>" when a pod is bound;
- kubelet: ``Killing`` "Stopping container <c>" when a bound pod starts terminating (evicted, deleted);
  ``NodeNotSchedulable`` / ``NodeSchedulable`` on cordon / uncordon, ``NodeReady`` / ``NodeNotReady`` when the
  Ready condition changes ("Node <n> status is now: <reason>"; node-controller's when heartbeats stopped);
- replicaset-, replication-, job-, daemonset-controller: ``SuccessfulCreate`` "Created pod: <pod>" and (when the
  controller itself removes a pod) ``SuccessfulDelete`` "Deleted pod: <pod>"; statefulset-controller's
  "create Pod <pod> in StatefulSet <sts> successful";
- deployment-controller: ``ScalingReplicaSet`` "Scaled up|down replica set <rs> from <a> to <b>".

An eviction through the API records nothing itself (as upstream): the pod's kubelet ``Killing`` tells it.
Events are queued by a store subscriber and written on the next tick (never inside the store's commit), and
repeated ones are aggregated (``count``, ``lastTimestamp``) like client-go's recorder. Node events live in the
``default`` namespace, as upstream. ``events.k8s.io/v1`` serves the same Events (read only), converted.

Scenario settings: ``events: false`` records none (a cluster without an event sink); ``event_ttl_s`` (3600, on
the sandbox clock) is how long an Event is kept after it was last seen, as kube-apiserver's ``--event-ttl``.
"""

from __future__ import annotations

import os
import threading
import weakref
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kubeops.sandbox import heartbeats
from kubeops.sandbox import status as st
from kubeops.sandbox.discovery import ResourceInfo
from kubeops.sandbox.store import Store, WatchEvent, parse_time, rfc3339

if TYPE_CHECKING:
    from kubeops.sandbox.cluster import Cluster

Obj = dict[str, Any]
EVENTS_GROUP = "events.k8s.io"
DEFAULT_TTL_S = 3600.0
_SWEEP_EVERY_S = 60.0
_CREATE_COMPONENT = {
    "ReplicaSet": "replicaset-controller",
    "ReplicationController": "replication-controller",
    "Job": "job-controller",
    "DaemonSet": "daemonset-controller",
    "StatefulSet": "statefulset-controller",
}
_API_VERSION = {"ReplicaSet": "apps/v1", "ReplicationController": "v1", "Job": "batch/v1", "DaemonSet": "apps/v1",
                "StatefulSet": "apps/v1", "Deployment": "apps/v1", "Pod": "v1", "Node": "v1"}


def reference(obj: Obj, *, kind: str | None = None, field_path: str | None = None) -> Obj:
    """An ObjectReference to `obj` (``kind`` when the object does not carry its own)."""
    meta = obj.get("metadata") or {}
    kind = kind or obj.get("kind") or ""
    ref = {"kind": kind, "namespace": meta.get("namespace"), "name": meta.get("name"), "uid": meta.get("uid"),
           "apiVersion": obj.get("apiVersion") or _API_VERSION.get(kind, "v1"),
           "resourceVersion": meta.get("resourceVersion")}
    if field_path:
        ref["fieldPath"] = field_path
    return {k: v for k, v in ref.items() if v}


class Recorder:
    """Queues Events (any thread, any lock held) and writes them on `flush` (a reconciler, outside commits)."""

    def __init__(self, store: Store, *, enabled: bool = True) -> None:
        self.store = store
        self.enabled = enabled
        self._pending: list[tuple[Obj, str, str, str, str, str]] = []
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str, str, str], tuple[str, str]] = {}  # aggregation key -> (ns, event name)
        self._swept = 0.0

    def emit(self, involved: Obj, reason: str, message: str, *, component: str, host: str = "",
             type_: str = "Normal") -> None:
        if not self.enabled:
            return
        with self._lock:
            self._pending.append((involved, reason, message, component, host, type_))

    def flush(self, now: float) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for involved, reason, message, component, host, type_ in pending:
            self._write(involved, reason, message, component, host, type_, now)

    def _write(self, involved: Obj, reason: str, message: str, component: str, host: str, type_: str,
               now: float) -> None:
        namespace = involved.get("namespace") or "default"
        stamp = rfc3339(now)
        key = (str(involved.get("uid") or involved.get("name")), reason, message, component)
        known = self._seen.get(key)
        if known is not None:
            def bump(o: Obj) -> Any:
                o["count"] = int(o.get("count") or 1) + 1
                o["lastTimestamp"] = stamp
                return None

            try:
                self.store.modify("events", known[0], known[1], bump)
                return
            except st.ApiError:
                pass
            if self.store.try_get("events", known[0], known[1], copy=False) is not None:
                return
        name = f"{involved.get('name', 'object')}.{os.urandom(8).hex()}"
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved, "reason": reason, "message": message,
            "source": {"component": component, **({"host": host} if host else {})},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1, "type": type_, "eventTime": None,
            "reportingComponent": component, "reportingInstance": host,
        }
        try:
            self.store.create("events", event, namespace=namespace)
        except st.ApiError:
            return  # the namespace went away meanwhile
        self._seen[key] = (namespace, name)

    # ---- what the control plane does, read from committed changes ------------------------------------------

    def observe(self, ev: WatchEvent) -> None:
        if not self.enabled or ev.resource == "events":
            return
        if ev.resource == "pods":
            self._pod(ev)
        elif ev.resource == "nodes":
            self._node(ev)
        elif ev.resource == "replicasets.apps":
            self._replicaset(ev)

    def _pod(self, ev: WatchEvent) -> None:
        new, old = ev.obj, ev.old
        meta = new.get("metadata") or {}
        node = (new.get("spec") or {}).get("nodeName") or ""
        if ev.type == "ADDED":
            owner = _controller(new)
            if owner is not None and owner.get("kind") in _CREATE_COMPONENT:
                kind = owner["kind"]
                message = (f"create Pod {meta.get('name')} in StatefulSet {owner.get('name')} successful"
                           if kind == "StatefulSet" else f"Created pod: {meta.get('name')}")
                self.emit(_owner_ref(owner, meta.get("namespace")), "SuccessfulCreate", message,
                          component=_CREATE_COMPONENT[kind])
            return
        if old is None:
            return
        old_node = (old.get("spec") or {}).get("nodeName") or ""
        if node and not old_node:
            self.emit(reference(new, kind="Pod"), "Scheduled",
                      f"Successfully assigned {meta.get('namespace')}/{meta.get('name')} to {node}",
                      component="default-scheduler")
        terminating_now = bool(meta.get("deletionTimestamp")) or ev.type == "DELETED"
        if node and terminating_now and not (old.get("metadata") or {}).get("deletionTimestamp"):
            finished = (old.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            if finished or heartbeats.is_dead(self.store, node):
                return  # nothing left to stop, or no kubelet alive to stop it
            for container in (new.get("spec") or {}).get("containers") or ():
                self.emit(reference(new, kind="Pod", field_path=f"spec.containers{{{container.get('name')}}}"),
                          "Killing", f"Stopping container {container.get('name')}", component="kubelet", host=node)

    def _node(self, ev: WatchEvent) -> None:
        new, old = ev.obj, ev.old
        if ev.type != "MODIFIED" or old is None:
            return
        name = new["metadata"]["name"]
        # Node events carry the node's name as uid (upstream does; `kubectl describe node` searches that way).
        kubelet_ref = {"kind": "Node", "name": name, "uid": name, "apiVersion": "v1"}
        was = bool((old.get("spec") or {}).get("unschedulable"))
        now = bool((new.get("spec") or {}).get("unschedulable"))
        if was != now:
            reason = "NodeNotSchedulable" if now else "NodeSchedulable"
            self.emit(kubelet_ref, reason, f"Node {name} status is now: {reason}", component="kubelet", host=name)
        before, after = _ready(old), _ready(new)
        if before is None or after is None or before.get("status") == after.get("status"):
            return
        if after.get("status") == "True":
            self.emit(kubelet_ref, "NodeReady", f"Node {name} status is now: NodeReady", component="kubelet",
                      host=name)
        elif after.get("reason") == "NodeStatusUnknown":
            self.emit(kubelet_ref, "NodeNotReady", "Node is not ready", component="node-controller")
        else:
            self.emit(kubelet_ref, "NodeNotReady", f"Node {name} status is now: NodeNotReady", component="kubelet",
                      host=name)

    def _replicaset(self, ev: WatchEvent) -> None:
        owner = _controller(ev.obj)
        if owner is None or owner.get("kind") != "Deployment" or ev.type == "DELETED":
            return
        new = int((ev.obj.get("spec") or {}).get("replicas") or 0)
        old = 0 if ev.old is None else int((ev.old.get("spec") or {}).get("replicas") or 0)
        if new == old:
            return
        direction = "up" if new > old else "down"
        self.emit(_owner_ref(owner, ev.obj["metadata"].get("namespace")), "ScalingReplicaSet",
                  f"Scaled {direction} replica set {ev.obj['metadata']['name']} from {old} to {new}",
                  component="deployment-controller")

    def controller_deleted_pod(self, pod: Obj) -> None:
        """A controller removed one of its pods (scale down, surplus): its SuccessfulDelete."""
        owner = _controller(pod)
        if owner is None or owner.get("kind") not in _CREATE_COMPONENT:
            return
        meta = pod["metadata"]
        message = (f"delete Pod {meta['name']} in StatefulSet {owner.get('name')} successful"
                   if owner["kind"] == "StatefulSet" else f"Deleted pod: {meta['name']}")
        self.emit(_owner_ref(owner, meta.get("namespace")), "SuccessfulDelete", message,
                  component=_CREATE_COMPONENT[owner["kind"]])

    def reconcile(self, cluster: Cluster, now: float) -> None:
        self.flush(now)
        if now - self._swept >= _SWEEP_EVERY_S:
            self._swept = now
            self._expire(now - float(cluster.settings.get("event_ttl_s", DEFAULT_TTL_S)))

    def _expire(self, before: float) -> None:
        """Delete Events last seen before `before`: kube-apiserver's --event-ttl (1 h), so a long-running sandbox
        does not grow without end."""
        for event in list(self.store.iter("events")):
            stamp = event.get("lastTimestamp") or event["metadata"].get("creationTimestamp")
            if stamp and parse_time(stamp) < before:
                meta = event["metadata"]
                try:
                    self.store.delete("events", meta.get("namespace"), meta["name"])
                except st.ApiError:
                    continue
        self._seen = {k: v for k, v in self._seen.items()
                      if self.store.try_get("events", v[0], v[1], copy=False) is not None}


def _controller(obj: Obj) -> Obj | None:
    return next((r for r in (obj.get("metadata") or {}).get("ownerReferences") or () if r.get("controller")), None)


def _owner_ref(owner: Obj, namespace: str | None) -> Obj:
    return {k: v for k, v in {"kind": owner.get("kind"), "namespace": namespace, "name": owner.get("name"),
                              "uid": owner.get("uid"), "apiVersion": owner.get("apiVersion")}.items() if v}


def _ready(node: Obj) -> Obj | None:
    return next((c for c in (node.get("status") or {}).get("conditions") or () if c.get("type") == "Ready"), None)


_RECORDERS: weakref.WeakKeyDictionary[Store, Recorder] = weakref.WeakKeyDictionary()


def recorder_for(store: Store) -> Recorder:
    """The store's recorder (a disabled one when the events plug-in is not installed)."""
    recorder = _RECORDERS.get(store)
    if recorder is None:
        recorder = _RECORDERS[store] = Recorder(store, enabled=False)
    return recorder


# ---- events.k8s.io/v1, read only ------------------------------------------------------------------------------

def to_events_v1(event: Obj) -> Obj:
    """A core/v1 Event as events.k8s.io/v1 shows it (regarding, note, deprecated* fields).

    ``eventTime`` is required in events.k8s.io/v1, and the official clients refuse an Event without it
    (kubernetes-client/python's ``EventsV1Event`` raises on null). Events from client-go's legacy recorder carry
    none, so here it falls back to when the Event was first seen, as a MicroTime: a reader of this API always gets
    a time it can parse."""
    source = event.get("source") or {}
    out: Obj = {
        "kind": "Event", "apiVersion": f"{EVENTS_GROUP}/v1", "metadata": event["metadata"],
        "eventTime": event.get("eventTime") or _micro_time(event.get("firstTimestamp")
                                                            or event["metadata"].get("creationTimestamp")),
        "reportingController": event.get("reportingComponent") or
        source.get("component", ""), "reportingInstance": event.get("reportingInstance") or source.get("host", ""),
        "action": event.get("action") or event.get("reason"), "reason": event.get("reason"),
        "regarding": event.get("involvedObject") or {}, "note": event.get("message"), "type": event.get("type"),
        "deprecatedSource": source, "deprecatedFirstTimestamp": event.get("firstTimestamp"),
        "deprecatedLastTimestamp": event.get("lastTimestamp"), "deprecatedCount": event.get("count"),
    }
    if event.get("related"):
        out["related"] = event["related"]
    return out


def _micro_time(stamp: str | None) -> str | None:
    """An RFC 3339 time as a metav1.MicroTime (microseconds, UTC), as the API server writes one."""
    if not stamp:
        return None
    return datetime.fromtimestamp(parse_time(stamp), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _events_v1(cluster: Cluster, info: ResourceInfo, namespace: str | None, name: str | None,
               query: dict[str, str]) -> Obj:
    if name:
        return to_events_v1(cluster.store.get("events", namespace, name))
    result = cluster.store.list("events", namespace=namespace, label_selector=query.get("labelSelector"))
    return {"kind": "EventList", "apiVersion": f"{EVENTS_GROUP}/v1",
            "metadata": {"resourceVersion": result.resource_version},
            "items": [to_events_v1(e) for e in result.items]}


def install(cluster: Cluster) -> None:
    """Record the control plane's Events (unless ``settings.events`` is false); serve events.k8s.io/v1."""
    recorder = Recorder(cluster.store, enabled=cluster.settings.get("events", True) is not False)
    _RECORDERS[cluster.store] = recorder
    cluster.store.subscribe(recorder.observe)
    cluster.add_reconciler(recorder)
    info = ResourceInfo(plural="events", kind="Event", group=EVENTS_GROUP, versions=("v1",), namespaced=True,
                        short_names=("ev",), verbs=("get", "list"))
    cluster.register_api_group(EVENTS_GROUP, "v1", [info], _events_v1)
