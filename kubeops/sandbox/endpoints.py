"""The endpoints and EndpointSlice controllers: which pod IPs a Service routes to, kept current from pod events.

Why: rolling deploys are judged by sampling a Service's endpoints while pods come and go, so the update must be
prompt (same tick as the pod change) and must follow upstream's rules: only pods with an IP count; Ready pods are
``addresses``, others ``notReadyAddresses`` (or ``addresses`` with ``publishNotReadyAddresses``); terminating pods
leave Endpoints at once, and stay in the EndpointSlice with ``ready: false, terminating: true``. Services without
a selector are left alone (their Endpoints are user-managed).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from kubeops.sandbox.pdb import is_pod_ready
from kubeops.sandbox.status import ApiError
from kubeops.sandbox.tracker import Tracker, tracker_for

if TYPE_CHECKING:
    from kubeops.sandbox.cluster import Cluster
    from kubeops.sandbox.store import WatchEvent

__all__ = ["EndpointsController", "build_endpoint_slice", "build_endpoints", "install"]

Obj = dict[str, Any]
Key = tuple[str, str]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice-controller.k8s.io"
_DIRTY = "__endpoints__"


def _labels_match(selector: dict[str, str], pod: Obj | None) -> bool:
    if pod is None:
        return False
    labels = pod["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def _resolve_port(svc_port: Obj, pod: Obj) -> int | None:
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for c in (pod.get("spec") or {}).get("containers") or ():
        for p in c.get("ports") or ():
            if p.get("name") == target:
                return int(p["containerPort"])
    return None


def _ports(service: Obj, pod: Obj) -> tuple[tuple[str, int, str], ...] | None:
    out = []
    for sp in (service.get("spec") or {}).get("ports") or ():
        port = _resolve_port(sp, pod)
        if port is None:
            return None
        out.append((sp.get("name") or "", port, sp.get("protocol") or "TCP"))
    return tuple(out)


def _address(pod: Obj) -> Obj:
    meta = pod["metadata"]
    addr: Obj = {"ip": pod["status"]["podIP"]}
    if (pod.get("spec") or {}).get("nodeName"):
        addr["nodeName"] = pod["spec"]["nodeName"]
    addr["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta["name"],
                         "uid": meta.get("uid")}
    return addr


def _port_objs(ports: tuple[tuple[str, int, str], ...]) -> list[Obj]:
    out = []
    for name, port, proto in ports:
        p: Obj = {"port": port, "protocol": proto}
        if name:
            p["name"] = name
        out.append(p)
    return out


def _ip_key(addr: Obj) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in addr["ip"].split("."))
    except ValueError:
        return (0,)


def build_endpoints(service: Obj, pods: list[Obj]) -> Obj:
    """The Endpoints object for a Service given the pods its selector matches."""
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    subsets: dict[tuple[tuple[str, int, str], ...], dict[str, list[Obj]]] = {}
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp") or not (pod.get("status") or {}).get("podIP"):
            continue
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        ports = _ports(service, pod)
        if ports is None:
            continue
        group = subsets.setdefault(ports, {"addresses": [], "notReadyAddresses": []})
        ready = publish or is_pod_ready(pod)
        group["addresses" if ready else "notReadyAddresses"].append(_address(pod))
    meta = service["metadata"]
    out_subsets = []
    for ports, group in sorted(subsets.items()):
        subset: Obj = {}
        for field in ("addresses", "notReadyAddresses"):
            if group[field]:
                subset[field] = sorted(group[field], key=_ip_key)
        subset["ports"] = _port_objs(ports)
        out_subsets.append(subset)
    ep: Obj = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
    }
    if meta.get("labels"):
        ep["metadata"]["labels"] = dict(meta["labels"])
    if out_subsets:
        ep["subsets"] = out_subsets
    return ep


def build_endpoint_slice(service: Obj, pods: list[Obj], zones: dict[str, str]) -> Obj:
    """One IPv4 EndpointSlice for the Service (terminating pods kept with their conditions)."""
    meta = service["metadata"]
    endpoints = []
    ports: tuple[tuple[str, int, str], ...] | None = None
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        status = pod.get("status") or {}
        if not status.get("podIP") or status.get("phase") in ("Succeeded", "Failed"):
            continue
        pod_ports = _ports(service, pod)
        if pod_ports is None:
            continue
        ports = ports or pod_ports
        terminating = bool(pod["metadata"].get("deletionTimestamp"))
        ready = is_pod_ready(pod)
        ep: Obj = {
            "addresses": [status["podIP"]],
            "conditions": {"ready": ready and not terminating, "serving": ready, "terminating": terminating},
            "targetRef": {"kind": "Pod", "namespace": meta["namespace"], "name": pod["metadata"]["name"],
                          "uid": pod["metadata"].get("uid")},
        }
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            ep["nodeName"] = node
            if zones.get(node):
                ep["zone"] = zones[node]
        endpoints.append(ep)
    suffix = hashlib.sha256(meta.get("uid", meta["name"]).encode()).hexdigest()[:5]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{meta['name']}-{suffix}",
            "namespace": meta["namespace"],
            "labels": {**(meta.get("labels") or {}), SERVICE_NAME_LABEL: meta["name"],
                       "endpointslice.kubernetes.io/managed-by": MANAGED_BY},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": meta["name"],
                                 "uid": meta.get("uid"), "controller": True, "blockOwnerDeletion": True}],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": _port_objs(ports or ()),
    }


class EndpointsController:
    """Keeps per-Service member sets from pod events; rewrites only the Services whose members changed."""

    def __init__(self, tracker: Tracker) -> None:
        self.t = tracker
        self.store = tracker.store
        self.selectors: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)  # ns -> svc -> selector
        self.members: dict[Key, set[Key]] = defaultdict(set)
        tracker.listeners["pods"].append(self._on_pod)
        tracker.listeners["services"].append(self._on_service)
        with self.store.lock:
            for svc in self.store.iter("services"):
                self._track_service(svc)

    def _on_pod(self, event: WatchEvent) -> None:
        ns = event.namespace
        new = None if event.type == "DELETED" else event.obj
        for svc, selector in self.selectors.get(ns, {}).items():
            now_in = _labels_match(selector, new)
            if now_in or _labels_match(selector, event.old):
                skey = (ns, svc)
                if now_in:
                    self.members[skey].add((ns, event.name))
                else:
                    self.members[skey].discard((ns, event.name))
                self.t.dirty[_DIRTY].add(skey)

    def _on_service(self, event: WatchEvent) -> None:
        if event.type == "DELETED":
            self.selectors[event.namespace].pop(event.name, None)
            self.members.pop((event.namespace, event.name), None)
            self.t.dirty["__endpoints_gone__"].add((event.namespace, event.name))
        else:
            self._track_service(event.obj)

    def _track_service(self, svc: Obj) -> None:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        selector = (svc.get("spec") or {}).get("selector")
        if not selector:
            self.selectors[ns].pop(name, None)
            self.members.pop((ns, name), None)
            return
        if self.selectors[ns].get(name) == selector and (ns, name) in self.members:
            self.t.dirty[_DIRTY].add((ns, name))
            return
        self.selectors[ns][name] = dict(selector)
        self.members[(ns, name)] = {k for k, p in self.t.pods.items() if k[0] == ns and _labels_match(selector, p)}
        self.t.dirty[_DIRTY].add((ns, name))

    def reconcile(self, cluster: Cluster, now: float) -> None:
        for ns, name in self.t.take("__endpoints_gone__"):
            with contextlib.suppress(ApiError):
                self.store.delete("endpoints", ns, name)
        for key in self.t.take(_DIRTY):
            with contextlib.suppress(ApiError):
                self._sync(key)

    def _sync(self, key: Key) -> None:
        with self.store.lock:
            svc = self.store.try_get("services", *key, copy=False)
            if svc is None or not (svc.get("spec") or {}).get("selector"):
                return
            pods = [self.t.pods[k] for k in self.members.get(key, ()) if k in self.t.pods]
            zones = {}
            for p in pods:
                node = (p.get("spec") or {}).get("nodeName")
                if node and node in self.t.sched.nodes:
                    zones[node] = ((self.t.sched.nodes[node]["metadata"].get("labels") or {})
                                   .get("topology.kubernetes.io/zone", ""))
            self._write("endpoints", build_endpoints(svc, pods), ("subsets", "metadata"))
            self._write("endpointslices.discovery.k8s.io", build_endpoint_slice(svc, pods, zones),
                        ("endpoints", "ports", "addressType"))

    def _write(self, resource: str, want: Obj, fields: tuple[str, ...]) -> None:
        meta = want["metadata"]
        current = self.store.try_get(resource, meta["namespace"], meta["name"], copy=False)
        if current is None:
            try:
                self.store.create(resource, want)
            except ApiError as exc:
                if exc.code != 403:  # 403: the namespace is being deleted; nothing new goes in
                    raise
            return
        if all(current.get(f) == want.get(f) for f in fields if f != "metadata") and \
                (current["metadata"].get("labels") or {}) == (meta.get("labels") or {}):
            return

        def write(o: Obj) -> None:
            for f in fields:
                if f == "metadata":
                    if meta.get("labels"):
                        o["metadata"]["labels"] = meta["labels"]
                elif f in want:
                    o[f] = want[f]
                else:
                    o.pop(f, None)
            if "labels" in meta:
                o["metadata"]["labels"] = meta["labels"]

        self.store.modify(resource, meta["namespace"], meta["name"], write)


def install(cluster: Cluster) -> None:
    """Register the endpoints controller (called by `kubeops.sandbox.controllers.install`)."""
    cluster.add_reconciler(EndpointsController(tracker_for(cluster)))
