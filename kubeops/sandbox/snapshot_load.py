"""Build the sandbox from a snapshot of a real cluster: objects loaded verbatim, AWS groups recreated in moto.

Why: a rehearsal is only worth something if the emulator holds the same cluster: the same names, UIDs, labels,
owner references, node assignments, conditions, tolerations, affinity, topology spread, priorities and probes.
So objects go into the store as the snapshot has them (only ``resourceVersion`` is the store's own), and the
plug-ins treat them like any other object: controllers adopt pods through their owner references (by UID), the
scheduler places pods that are Pending, the kubelet keeps Running pods running, the PDB controller recomputes
budgets from the pods it sees.

Timing comes from the objects (`kubeops.sandbox.timing`): ``settings.timing = "spec"``, divided by ``speed``.

The snapshot document (``kubeops.io/snapshot/v1``, written by `kubeops.clients.snapshot`) has ``objects``
(resource -> list of objects, each with apiVersion and kind) and ``autoscaling_groups``. Each group becomes a
scenario group for the AWS link, which creates it in moto with one instance per snapshot node that was one of its
InService instances (the node keeps its name and addresses and adopts the new instance id), then tops it up to
the group's desired capacity; lifecycle hooks and suspended processes are recreated as well. CustomResourceDefinitions
are loaded first, so the sandbox serves their kinds and their custom resources load like any other object. Objects
of kinds the sandbox does not serve (custom resources whose CRD is not in the snapshot, say) and pods that were
terminating when the snapshot was taken are left out and counted in ``cluster.settings["not_loaded"]``. A namespace
whose snapshot holds no ``default`` ServiceAccount gets one at once; ``kube-root-ca.crt`` comes from the namespace
controllers (`kubeops.sandbox.namespaces`) where missing, and the snapshot's own copies are kept as they are.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeops.errors import InputError
from kubeops.sandbox.crds import CRD_KEY
from kubeops.sandbox.scenario import SYSTEM_NAMESPACES, Scenario

if TYPE_CHECKING:
    from kubeops.sandbox.cluster import Cluster

__all__ = ["SNAPSHOT_FORMAT", "apply", "read", "scenario"]

SNAPSHOT_FORMAT = "kubeops.io/snapshot/v1"
# load order: what others refer to first (namespaces, nodes, owners), pods last so owners exist when they arrive
_ORDER = ("namespaces", "priorityclasses.scheduling.k8s.io", "nodes", "deployments.apps", "replicasets.apps",
          "statefulsets.apps", "daemonsets.apps", "jobs.batch", "replicationcontrollers",
          "poddisruptionbudgets.policy", "services", "endpoints", "endpointslices.discovery.k8s.io",
          "leases.coordination.k8s.io", "pods")
_NODE_SPECIFIC_LABELS = ("kubernetes.io/hostname", "topology.kubernetes.io/zone",
                         "failure-domain.beta.kubernetes.io/zone", "topology.ebs.csi.aws.com/zone")
Obj = dict[str, Any]


def read(path: str | Path) -> Obj:
    """The snapshot document at `path` (``.gz`` allowed); an input error names the file when it is not one."""
    p = Path(path)
    try:
        raw = p.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        doc = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise InputError(f"{p}: not a readable snapshot ({exc})") from None
    if not isinstance(doc, dict) or (doc.get("header") or {}).get("format") != SNAPSHOT_FORMAT:
        raise InputError(f"{p}: header.format: expected {SNAPSHOT_FORMAT!r}",
                         hint="take one with `invoke snapshot`")
    return doc


def _instance_id(provider_id: str | None) -> str | None:
    if not provider_id or not provider_id.startswith("aws://"):
        return None
    tail = provider_id.rsplit("/", 1)[-1]
    return tail if tail.startswith("i-") else None


def _address(node: Obj, kind: str) -> str | None:
    return next((a.get("address") for a in (node.get("status") or {}).get("addresses") or ()
                 if a.get("type") == kind), None)


def _group_node_template(members: list[Obj]) -> Obj:
    """What a fresh instance of the group looks like as a Node: its first member's labels, taints and sizes."""
    if not members:
        return {}
    first = members[0]
    labels = {k: v for k, v in (first["metadata"].get("labels") or {}).items() if k not in _NODE_SPECIFIC_LABELS}
    status = first.get("status") or {}
    out: Obj = {"labels": labels, "capacity": dict(status.get("capacity") or {}),
                "allocatable": dict(status.get("allocatable") or {})}
    taints = [t for t in (first.get("spec") or {}).get("taints") or ()
              if not str(t.get("key", "")).startswith("node.kubernetes.io/")]
    if taints:
        out["taints"] = [{k: t[k] for k in ("key", "value", "effect") if k in t} for t in taints]
    return out


def scenario(doc: Obj, *, path: str = "<snapshot>", speed: float = 1.0, join_s: float = 120.0,
             exit_s: float | str | None = None, tick_ms: int = 50) -> Scenario:
    """The `Scenario` the cluster and its plug-ins are built with: settings, and the groups with their nodes.

    `join_s` is how long a new instance takes to become a Ready node in real time (divided by `speed`);
    `exit_s` overrides every pod's exit time after SIGTERM (seconds or ``"grace"``; default: from its preStop
    hook, `kubeops.sandbox.timing`)."""
    nodes = list((doc.get("objects") or {}).get("nodes") or ())
    by_instance = {iid: n for n in nodes if (iid := _instance_id((n.get("spec") or {}).get("providerID")))}
    region = next((str(lbl) for n in nodes if (lbl := (n["metadata"].get("labels") or {}).get(
        "topology.kubernetes.io/region"))), "us-east-1")
    kubelet = next((str(v) for n in nodes if (v := ((n.get("status") or {}).get("nodeInfo") or {}).get(
        "kubeletVersion"))), "v1.33.0")
    groups, declared = [], []
    for g in doc.get("autoscaling_groups") or ():
        members = []
        for inst in g.get("instances") or ():
            node = by_instance.get(inst.get("id"))
            if node is None or inst.get("state") not in (None, "InService"):
                continue
            members.append(node)
            zone = inst.get("zone") or (node["metadata"].get("labels") or {}).get("topology.kubernetes.io/zone")
            spec = {"name": node["metadata"]["name"], "autoscaling_group": g["name"]}
            if zone:
                spec["zone"] = zone
            ip = _address(node, "InternalIP")
            if ip:
                spec["internal_ip"] = ip  # the node keeps its address; only the instance id is moto's
            declared.append(spec)
        instance_type = next((i.get("instance_type") for i in g.get("instances") or () if i.get("instance_type")),
                             None) or "m5.large"
        groups.append({"name": g["name"], "min": int(g.get("min", 0)), "max": int(g.get("max", 0)),
                       "desired": int(g.get("desired", 0)),
                       "zones": list(g.get("zones") or ()) or [f"{region}a"], "instance_type": instance_type,
                       "node": _group_node_template(members),
                       "suspended_processes": list(g.get("suspended_processes") or ()),
                       "lifecycle_hooks": list(g.get("lifecycle_hooks") or ())})
    settings: Obj = {"timing": "spec", "speed": speed, "region": region, "kubelet_version": kubelet,
                     "tick_ms": tick_ms, "join_delay_s": join_s / max(speed, 1e-6), "aws_poll_s": 0.25,
                     "tokens": ["*"]}
    if exit_s is not None:
        settings["exit_s"] = exit_s
    header = doc.get("header") or {}
    return Scenario(name=f"snapshot:{header.get('cluster', '?')}", description=f"snapshot taken "
                    f"{header.get('taken_at', '?')}", path=path, settings=settings, faults={}, namespaces=(),
                    nodes=tuple(declared), autoscaling_groups=tuple(groups), workloads=(), services=(), objects=())


def apply(cluster: Cluster, doc: Obj) -> dict[str, int]:
    """Load the snapshot's objects verbatim into the cluster's store; returns how many of each were loaded."""
    store = cluster.store
    catalog = cluster.catalog
    by_key: dict[str, list[Obj]] = {}
    not_loaded: dict[str, int] = {}
    objects = doc.get("objects") or {}
    serves_crds = catalog.by_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition") is not None
    crds = [dict(o, metadata={k: v for k, v in (o.get("metadata") or {}).items() if k != "resourceVersion"})
            for items in objects.values() for o in items or ()
            if serves_crds and o.get("kind") == "CustomResourceDefinition"]
    loaded: dict[str, int] = {}
    if crds:
        # first, so the kinds they define are served (the CRD controller subscribes to the store) and their
        # custom resources below are recognised and loaded like any other object
        loaded[CRD_KEY] = store.load(CRD_KEY, crds)
    for items in objects.values():
        for obj in items or ():
            if serves_crds and obj.get("kind") == "CustomResourceDefinition":
                continue
            info = catalog.by_kind(str(obj.get("apiVersion") or ""), str(obj.get("kind") or ""))
            if info is None:
                kind = f"{obj.get('apiVersion')} {obj.get('kind')}"
                not_loaded[kind] = not_loaded.get(kind, 0) + 1
                continue
            if info.key == "pods" and (obj.get("metadata") or {}).get("deletionTimestamp"):
                # terminating when the snapshot was taken: gone by the time a run starts, replacement included
                not_loaded["terminating pods"] = not_loaded.get("terminating pods", 0) + 1
                continue
            obj = dict(obj)
            obj["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
            by_key.setdefault(info.key, []).append(obj)
    names = {n["metadata"]["name"] for n in by_key.get("namespaces", ())}
    for ns in SYSTEM_NAMESPACES:
        if ns not in names:
            by_key.setdefault("namespaces", []).append({"metadata": {"name": ns}})
    order = [*_ORDER, *sorted(k for k in by_key if k not in _ORDER)]
    for key in order:
        items = by_key.get(key)
        if not items:
            continue
        loaded[key] = store.load(key, items)
        if key == "namespaces":  # the ServiceAccount controller's, where the snapshot has none of its own
            carried = {(sa.get("metadata") or {}).get("namespace") for sa in by_key.get("serviceaccounts", ())
                       if (sa.get("metadata") or {}).get("name") == "default"}
            store.load("serviceaccounts", ({"metadata": {"name": "default", "namespace": n["metadata"]["name"]}}
                                           for n in items if n["metadata"]["name"] not in carried))
    cluster.settings["not_loaded"] = not_loaded
    return loaded
