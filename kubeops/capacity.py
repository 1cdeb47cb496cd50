"""Will the pods of a node fit elsewhere? A scheduler-shaped simulation, pure, over Kubernetes JSON dicts.

Why before any change: once a node is cordoned and half drained, finding out that the replacements cannot be
scheduled means Pending pods in production. The check places every pod that will be recreated (it has a
controller and is not a DaemonSet's, mirror or finished pod) onto the other nodes, biggest first, the way
kube-scheduler's filters would accept them: node schedulable and Ready, taints tolerated (NoSchedule and
NoExecute), nodeSelector and required node affinity, then CPU, memory and pod count against allocatable minus
the requests of the pods already bound there. It is conservative in one way on purpose: it ignores pod
(anti-)affinity and topology spread, which can only make things worse; the report says so.
"""

# Deliberately independent of kubeops/sandbox/scheduler.py and pdb.py (the sandbox plays the API server): sharing
# code would make this check agree with the sandbox's scheduler by construction, so the tests would prove nothing.

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from kubeops.drain import controller_ref, is_finished, pod_key
from kubeops.quantity import format_bytes, format_cpu, parse_quantity

__all__ = ["CapacityReport", "NodeRoom", "fit_reason", "pod_requests", "simulate"]

Obj = Mapping[str, Any]
_DEFAULT_MAX_PODS = 110
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"


def _milli(value: Any) -> int:
    return 0 if value is None else _milli_of(str(value))


def _bytes(value: Any) -> int:
    return 0 if value is None else _bytes_of(str(value))


# A cluster's requests repeat a handful of strings ("100m", "128Mi") over tens of thousands of pods: convert each once.
@lru_cache(maxsize=4096)
def _milli_of(text: str) -> int:
    return math.ceil(parse_quantity(text) * 1000)


@lru_cache(maxsize=4096)
def _bytes_of(text: str) -> int:
    return math.ceil(parse_quantity(text))


def pod_requests(pod: Obj) -> tuple[int, int]:
    """(millicores, bytes) the scheduler reserves: containers summed, at least the largest init container,
    plus pod overhead."""
    spec = pod.get("spec") or {}
    cpu = mem = 0
    for c in spec.get("containers") or ():
        req = (c.get("resources") or {}).get("requests") or {}
        cpu += _milli(req.get("cpu"))
        mem += _bytes(req.get("memory"))
    for c in spec.get("initContainers") or ():
        req = (c.get("resources") or {}).get("requests") or {}
        cpu, mem = max(cpu, _milli(req.get("cpu"))), max(mem, _bytes(req.get("memory")))
    overhead = spec.get("overhead") or {}
    return cpu + _milli(overhead.get("cpu")), mem + _bytes(overhead.get("memory"))


def _ready(node: Obj) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def _tolerates(tolerations: Iterable[Obj], taint: Obj) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol.get("effect") != taint.get("effect"):
            continue
        op = tol.get("operator") or "Equal"
        if not tol.get("key"):
            if op == "Exists":
                return True
            continue
        if tol.get("key") != taint.get("key"):
            continue
        if op == "Exists" or (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _expr_ok(expr: Obj, value: str | None) -> bool:
    op, values = expr.get("operator"), expr.get("values") or []
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and values:
        try:
            have, want = int(value), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def _affinity_ok(pod: Obj, node: Obj) -> bool:
    spec = pod.get("spec") or {}
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    node_aff = ((spec.get("affinity") or {}).get("nodeAffinity") or {})
    terms = (node_aff.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
    if not terms:
        return True
    for term in terms:  # terms ORed, expressions ANDed
        exprs, fields_ = term.get("matchExpressions") or [], term.get("matchFields") or []
        if not exprs and not fields_:
            continue
        if all(_expr_ok(e, labels.get(e.get("key"))) for e in exprs) and all(
            _expr_ok(f, meta.get("name") if f.get("key") == "metadata.name" else None) for f in fields_
        ):
            return True
    return False


@dataclass(slots=True)
class NodeRoom:
    """A candidate node and what is still free on it during the simulation."""

    node: Obj
    cpu_m: int
    mem: int
    pods: int

    @property
    def name(self) -> str:
        return str((self.node.get("metadata") or {}).get("name"))

    @classmethod
    def of(cls, node: Obj, bound: Iterable[Obj]) -> NodeRoom:
        alloc = (node.get("status") or {}).get("allocatable") or (node.get("status") or {}).get("capacity") or {}
        cpu, mem = _milli(alloc.get("cpu")), _bytes(alloc.get("memory"))
        pods = int(alloc["pods"]) if alloc.get("pods") is not None else _DEFAULT_MAX_PODS
        for pod in bound:
            if not is_finished(pod):
                pc, pm = pod_requests(pod)
                cpu, mem, pods = cpu - pc, mem - pm, pods - 1
        return cls(node=node, cpu_m=cpu, mem=mem, pods=pods)


def fit_reason(pod: Obj, room: NodeRoom) -> str | None:
    """Why the scheduler would refuse `room` for `pod` (kube-scheduler's wording), or None when it fits."""
    node = room.node
    tolerations = (pod.get("spec") or {}).get("tolerations") or ()
    if (node.get("spec") or {}).get("unschedulable") and not _tolerates(
        tolerations, {"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}
    ):
        return "node(s) were unschedulable"
    if not _ready(node):
        return "node(s) were not ready"
    for taint in (node.get("spec") or {}).get("taints") or ():
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(tolerations, taint):
            return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"
    if not _affinity_ok(pod, node):
        return "node(s) didn't match Pod's node affinity/selector"
    cpu, mem = pod_requests(pod)
    if room.pods < 1:
        return "Too many pods"
    if cpu > room.cpu_m:
        return "Insufficient cpu"
    if mem > room.mem:
        return "Insufficient memory"
    return None


@dataclass(slots=True)
class CapacityReport:
    """Outcome of the simulation: where each pod would go and what does not fit, with reasons."""

    node: str
    placed: dict[str, str] = field(default_factory=dict)  # pod key -> node
    unplaced: dict[str, str] = field(default_factory=dict)  # pod key -> "0/N nodes are available: ..."
    not_replaced: list[str] = field(default_factory=list)  # pods nothing will recreate (no controller)
    free_after: dict[str, dict[str, str]] = field(default_factory=dict)  # node -> {"cpu": .., "memory": ..}

    @property
    def fits(self) -> bool:
        return not self.unplaced

    def lines(self) -> list[str]:
        out = [f"{pod}: {why}" for pod, why in sorted(self.unplaced.items())]
        if self.not_replaced:
            out.append(f"not recreated by any controller (not placed): {', '.join(self.not_replaced)}")
        return out


def simulate(
    node_name: str, pods: Iterable[Obj], nodes: Iterable[Obj], bound: Mapping[str, list[Obj]]
) -> CapacityReport:
    """Place the recreatable pods of `node_name` on the other nodes.

    `pods` are the node's pods, `nodes` every node, `bound` the pods bound to each node (by name). Biggest
    requests first (first-fit decreasing) so a large pod is not crowded out by small ones that fit anywhere.
    """
    report = CapacityReport(node=node_name)
    rooms = [
        NodeRoom.of(n, bound.get(str(n["metadata"]["name"]), ()))
        for n in nodes
        if n["metadata"]["name"] != node_name
    ]
    movers: list[Obj] = []
    for pod in pods:
        ref = controller_ref(pod)
        meta = pod.get("metadata") or {}
        if is_finished(pod) or (ref is not None and ref.get("kind") == "DaemonSet"):
            continue
        if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
            continue
        if ref is None:
            report.not_replaced.append(pod_key(pod))
            continue
        movers.append(pod)
    movers.sort(key=lambda p: pod_requests(p), reverse=True)
    for pod in movers:
        reasons: Counter[str] = Counter()
        for room in rooms:
            why = fit_reason(pod, room)
            if why is None:
                cpu, mem = pod_requests(pod)
                room.cpu_m, room.mem, room.pods = room.cpu_m - cpu, room.mem - mem, room.pods - 1
                report.placed[pod_key(pod)] = room.name
                break
            reasons[why] += 1
        else:
            cpu, mem = pod_requests(pod)
            detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) or "no other nodes"
            report.unplaced[pod_key(pod)] = (
                f"requests cpu {format_cpu(cpu / 1000)} memory {format_bytes(mem)}; "
                f"0/{len(rooms)} nodes are available: {detail}"
            )
    for room in rooms:
        report.free_after[room.name] = {"cpu": format_cpu(room.cpu_m / 1000), "memory": format_bytes(room.mem)}
    return report
