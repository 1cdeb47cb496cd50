"""Which pods to move off overheated nodes, by measured usage: the descheduler's LowNodeUtilization (pure).

Why measured usage and not requests: a node whose pods asked for little but use a lot is the one that hurts.
Nodes are banded by their usage as a share of allocatable: *under* when every resource is below the low
band (and the node takes pods), *over* when any resource is above the high band. Nothing moves unless both
kinds exist. From the busiest over-node down, pods that a controller will recreate are picked (lowest
priority first, then biggest user) while the node is still over the band, each only if some under-node
could take it: its requests must fit the node's allocatable (the same filters as the capacity check) and
its usage must keep that node under the high band. A cap bounds the evictions of one run.

Budgets are not decided here: the eviction API says no (429) at eviction time and that pod is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from kubeops.capacity import NodeRoom, fit_reason, pod_requests
from kubeops.drain import MIRROR_ANNOTATION, controller_ref, is_finished, pod_key
from kubeops.metrics.cadvisor import NodeUsage
from kubeops.metrics.report import allocatable, node_row

Obj = Mapping[str, Any]
Band = Literal["under", "ok", "over"]
CRITICAL_PRIORITY_CLASSES = frozenset({"system-cluster-critical", "system-node-critical"})


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Bands in percent of allocatable; `low_*` below which a node may receive, `high_*` above which it sheds."""

    low_cpu_pct: float = 20.0
    low_memory_pct: float = 20.0
    high_cpu_pct: float = 50.0
    high_memory_pct: float = 50.0

    def __post_init__(self) -> None:
        for name in ("low_cpu_pct", "low_memory_pct", "high_cpu_pct", "high_memory_pct"):
            value = getattr(self, name)
            if not 0 <= value <= 100:
                raise ValueError(f"{name} must be between 0 and 100, got {value}")
        if self.low_cpu_pct > self.high_cpu_pct or self.low_memory_pct > self.high_memory_pct:
            raise ValueError("the low band must not be above the high band (low_*_pct <= high_*_pct)")


@dataclass(frozen=True, slots=True)
class Move:
    """One planned eviction: the pod, where it is, and the under-node that showed room for it."""

    namespace: str
    pod: str
    node: str
    target: str
    cpu_cores: float
    memory_bytes: float

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.pod}"


@dataclass(slots=True)
class BalancePlan:
    """The bands each node fell in, the moves chosen and why other pods stayed."""

    bands: dict[str, Band] = field(default_factory=dict)
    shares: dict[str, dict[str, float]] = field(default_factory=dict)  # node -> {"cpu": pct, "memory": pct}
    moves: list[Move] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # pod key -> reason
    reason: str = ""  # why nothing moves, when nothing does

    def to_dict(self) -> dict[str, Any]:
        return {
            "bands": dict(self.bands),
            "shares": {k: dict(v) for k, v in self.shares.items()},
            "moves": [asdict(m) for m in self.moves],
            "skipped": dict(self.skipped),
            "reason": self.reason,
        }


@dataclass(slots=True)
class _Node:
    obj: Obj
    name: str
    cpu: float  # measured cores
    mem: float  # measured bytes
    alloc_cpu: float
    alloc_mem: float
    room: NodeRoom

    def pct(self) -> tuple[float, float]:
        cpu = 100 * self.cpu / self.alloc_cpu if self.alloc_cpu > 0 else 0.0
        mem = 100 * self.mem / self.alloc_mem if self.alloc_mem > 0 else 0.0
        return cpu, mem


def plan_moves(
    nodes: list[Obj],
    pods_by_node: Mapping[str, list[Obj]],
    usage_by_node: Mapping[str, NodeUsage],
    thresholds: Thresholds,
    *,
    max_evictions: int,
    already_evicted: int = 0,
) -> BalancePlan:
    """Choose evictions that bring over-nodes back inside the band; see the module docstring."""
    plan = BalancePlan()
    state: dict[str, _Node] = {}
    for node in nodes:
        name = str(node["metadata"]["name"])
        usage = usage_by_node.get(name)
        if usage is None:
            continue
        row = node_row(node, pods_by_node.get(name, []), usage, source="")
        alloc_cpu, alloc_mem = allocatable(node)
        state[name] = _Node(
            node, name, row.cpu_cores or 0.0, row.memory_bytes or 0.0, alloc_cpu, alloc_mem,
            NodeRoom.of(node, pods_by_node.get(name, [])),
        )
    for name, n in state.items():
        cpu, mem = n.pct()
        plan.shares[name] = {"cpu": round(cpu, 2), "memory": round(mem, 2)}
        plan.bands[name] = _band(n, thresholds)
    sources = sorted((n for n in state.values() if plan.bands[n.name] == "over"), key=lambda n: -max(n.pct()))
    targets = [n for n in state.values() if plan.bands[n.name] == "under"]
    if not sources:
        plan.reason = "no node is above the high band"
        return plan
    if not targets:
        plan.reason = "no node is below the low band to take pods"
        return plan
    budget = max_evictions - already_evicted
    if budget <= 0:
        plan.reason = f"the cap of {max_evictions} evictions for this run is reached"
        return plan
    for source in sources:
        measured = {(p.namespace, p.pod): p for p in usage_by_node[source.name].pods}
        candidates: list[tuple[int, float, Obj, float, float]] = []
        for pod in pods_by_node.get(source.name, []):
            why = _not_movable(pod)
            if why:
                plan.skipped[pod_key(pod)] = why
                continue
            meta = pod["metadata"]
            use = measured.get((meta.get("namespace", ""), meta["name"]))
            if use is None or (use.cpu_cores is None and use.memory_bytes is None):
                plan.skipped[pod_key(pod)] = "no measured usage"
                continue
            cpu, mem = use.cpu_cores or 0.0, use.memory_bytes or 0.0
            weight = cpu / source.alloc_cpu if source.alloc_cpu else 0.0
            weight = max(weight, mem / source.alloc_mem if source.alloc_mem else 0.0)
            candidates.append((int((pod.get("spec") or {}).get("priority") or 0), -weight, pod, cpu, mem))
        candidates.sort(key=lambda c: (c[0], c[1], pod_key(c[2])))
        for _prio, _w, pod, cpu, mem in candidates:
            if _band(source, thresholds) != "over":
                break
            if len(plan.moves) >= budget:
                plan.skipped[pod_key(pod)] = f"cap of {max_evictions} evictions per run reached"
                continue
            target, why = _find_target(pod, cpu, mem, targets, thresholds)
            if target is None:
                plan.skipped[pod_key(pod)] = why
                continue
            req_m, req_b = pod_requests(pod)
            target.room.cpu_m -= req_m
            target.room.mem -= req_b
            target.room.pods -= 1
            target.cpu += cpu
            target.mem += mem
            source.cpu -= cpu
            source.mem -= mem
            meta = pod["metadata"]
            plan.moves.append(Move(meta.get("namespace", ""), meta["name"], source.name, target.name, cpu, mem))
    if not plan.moves and not plan.reason:
        plan.reason = "no pod on the busy nodes can move to a node below the low band"
    return plan


def _band(n: _Node, t: Thresholds) -> Band:
    cpu, mem = n.pct()
    if cpu > t.high_cpu_pct or mem > t.high_memory_pct:
        return "over"
    schedulable = not (n.obj.get("spec") or {}).get("unschedulable", False)
    if schedulable and cpu < t.low_cpu_pct and mem < t.low_memory_pct:
        return "under"
    return "ok"


def _not_movable(pod: Obj) -> str | None:
    meta = pod.get("metadata") or {}
    ref = controller_ref(pod)
    if is_finished(pod):
        return "finished"
    if meta.get("deletionTimestamp"):
        return "already terminating"
    if MIRROR_ANNOTATION in (meta.get("annotations") or {}):
        return "static (mirror) pod"
    if ref is None:
        return "no controller would recreate it"
    if ref.get("kind") == "DaemonSet":
        return "DaemonSet pod (would come back on the same node)"
    if (pod.get("spec") or {}).get("priorityClassName") in CRITICAL_PRIORITY_CLASSES:
        return "system-critical priority"
    return None


def _find_target(
    pod: Obj, cpu: float, mem: float, targets: list[_Node], t: Thresholds
) -> tuple[_Node | None, str]:
    reasons: list[str] = []
    for target in sorted(targets, key=lambda n: max(n.pct())):  # emptiest first
        why = fit_reason(pod, target.room)
        if why is not None:
            reasons.append(f"{target.name}: {why}")
            continue
        after_cpu = 100 * (target.cpu + cpu) / target.alloc_cpu if target.alloc_cpu else 100.0
        after_mem = 100 * (target.mem + mem) / target.alloc_mem if target.alloc_mem else 100.0
        if after_cpu > t.high_cpu_pct or after_mem > t.high_memory_pct:
            reasons.append(f"{target.name}: its usage would pass the high band")
            continue
        return target, ""
    return None, "no node below the low band has room (" + "; ".join(reasons) + ")"
