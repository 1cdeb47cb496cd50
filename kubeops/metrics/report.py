"""Usage next to requests, limits and allocatable: the rows `invoke stats` prints (pure, no I/O).

Why separate from the parser: the same rows feed the table, `--output json` and the `cadvisor.*` actions'
outputs, and they join two worlds (measured cgroups and the pod specs the API server holds).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

from kubeops.capacity import pod_requests
from kubeops.drain import MIRROR_ANNOTATION, is_finished
from kubeops.metrics.cadvisor import NodeUsage
from kubeops.quantity import format_bytes, format_cpu, parse_quantity

Obj = Mapping[str, Any]
SortKey = Literal["cpu", "memory", "name"]
SORT_KEYS: tuple[str, ...] = ("cpu", "memory", "name")


@dataclass(frozen=True, slots=True)
class PodRow:
    """One pod: measured usage, its share of the node's allocatable, and what it asked for."""

    namespace: str
    pod: str
    node: str
    cpu_cores: float | None
    memory_bytes: float | None
    cpu_share: float | None  # of the node's allocatable, 0..1
    memory_share: float | None
    cpu_request: float
    cpu_limit: float | None  # None: at least one container has no limit
    memory_request: float
    memory_limit: float | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One node: measured usage against allocatable, and how much its pods requested."""

    node: str
    source: str
    cpu_cores: float | None
    memory_bytes: float | None
    allocatable_cpu: float
    allocatable_memory: float
    cpu_share: float | None
    memory_share: float | None
    cpu_requests: float
    memory_requests: float
    pods: int
    schedulable: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def allocatable(node: Obj) -> tuple[float, float]:
    """(cores, bytes) the scheduler may hand out on `node`."""
    status = node.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    return float(parse_quantity(str(alloc.get("cpu", 0)))), float(parse_quantity(str(alloc.get("memory", 0))))


def report_fields(pod: Obj) -> dict[str, Any]:
    """The part of a pod that usage reports and redistribution read (names, owner, requests, limits, phase).

    Why: a listed pod is kilobytes of JSON (status, conditions, tolerations...); kept whole for 60,000 pods it is
    hundreds of MB. Lists made for a report keep only this, page by page.
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    slim_meta = {k: meta[k] for k in ("name", "namespace", "uid", "ownerReferences", "deletionTimestamp")
                 if k in meta}
    annotations = meta.get("annotations") or {}
    if MIRROR_ANNOTATION in annotations:  # a static pod: never moved
        slim_meta["annotations"] = {MIRROR_ANNOTATION: annotations[MIRROR_ANNOTATION]}
    slim_spec: dict[str, Any] = {k: spec[k] for k in ("nodeName", "priority", "priorityClassName", "overhead",
                                                      "nodeSelector", "affinity", "tolerations") if k in spec}
    for kind in ("containers", "initContainers"):
        if kind in spec:
            slim_spec[kind] = [{"name": c.get("name"), "resources": c.get("resources") or {}} for c in spec[kind]]
    return {"metadata": slim_meta, "spec": slim_spec, "status": {"phase": status.get("phase")}}


def pod_limits(pod: Obj) -> tuple[float | None, float | None]:
    """Summed container limits (cores, bytes); None for a resource some container leaves unlimited."""
    cpu: float | None = 0.0
    mem: float | None = 0.0
    containers = (pod.get("spec") or {}).get("containers") or ()
    for c in containers:
        lim = (c.get("resources") or {}).get("limits") or {}
        cpu = None if cpu is None or "cpu" not in lim else cpu + float(parse_quantity(str(lim["cpu"])))
        mem = None if mem is None or "memory" not in lim else mem + float(parse_quantity(str(lim["memory"])))
    if not containers:
        return None, None
    return cpu, mem


def pod_rows(node: Obj, pods: Iterable[Obj], usage: NodeUsage, *, source: str) -> list[PodRow]:
    """A row for every live pod bound to `node`, measured or not (a pod not measured shows no usage)."""
    alloc_cpu, alloc_mem = allocatable(node)
    measured = {(p.namespace, p.pod): p for p in usage.pods}
    name = str((node.get("metadata") or {}).get("name", ""))
    rows: list[PodRow] = []
    for pod in pods:
        if is_finished(pod):
            continue
        meta = pod.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        use = measured.get(key)
        cpu = use.cpu_cores if use else None
        mem = use.memory_bytes if use else None
        req_m, req_b = pod_requests(pod)
        lim_cpu, lim_mem = pod_limits(pod)
        rows.append(
            PodRow(
                namespace=key[0],
                pod=key[1],
                node=name,
                cpu_cores=cpu,
                memory_bytes=mem,
                cpu_share=_share(cpu, alloc_cpu),
                memory_share=_share(mem, alloc_mem),
                cpu_request=req_m / 1000,
                cpu_limit=lim_cpu,
                memory_request=float(req_b),
                memory_limit=lim_mem,
                source=source,
            )
        )
    return rows


class PodTally(NamedTuple):
    """All a node's row reads of one pod: where it runs, whether it still holds resources, what it requested."""

    node: str
    live: bool
    cpu_request_m: int
    memory_request: int


def pod_tally(pod: Obj) -> PodTally:
    """`pod` as its `PodTally`, computed as the list page is read.

    Why: a table of nodes alone needs no pod's names, owners or tolerations; kept as `report_fields` a listed pod
    still holds about 2 KB (60,000 pods: 120 MB), as a tally about a tenth of that."""
    cpu, mem = pod_requests(pod)
    return PodTally(str((pod.get("spec") or {}).get("nodeName") or ""), not is_finished(pod), cpu, mem)


def node_row(node: Obj, pods: Iterable[Obj | PodTally], usage: NodeUsage, *, source: str) -> NodeRow:
    """The node's totals; usage is the root cgroup when measured, else the sum of its pods (given whole, as
    `report_fields`, or as `PodTally`s)."""
    alloc_cpu, alloc_mem = allocatable(node)
    tallies = [p if isinstance(p, PodTally) else pod_tally(p) for p in pods]
    live = [t for t in tallies if t.live]
    cpu = usage.cpu_cores
    if cpu is None:
        cpu = _sum(p.cpu_cores for p in usage.pods)
    mem = usage.memory_bytes
    if mem is None:
        mem = _sum(p.memory_bytes for p in usage.pods)
    return NodeRow(
        node=str((node.get("metadata") or {}).get("name", "")),
        source=source,
        cpu_cores=cpu,
        memory_bytes=mem,
        allocatable_cpu=alloc_cpu,
        allocatable_memory=alloc_mem,
        cpu_share=_share(cpu, alloc_cpu),
        memory_share=_share(mem, alloc_mem),
        cpu_requests=sum(t.cpu_request_m for t in live) / 1000,
        memory_requests=float(sum(t.memory_request for t in live)),
        pods=len(live),
        schedulable=not (node.get("spec") or {}).get("unschedulable", False),
    )


def sort_pod_rows(rows: list[PodRow], by: str) -> list[PodRow]:
    """Busiest first for cpu/memory (unmeasured last), alphabetical for name."""
    if by not in SORT_KEYS:
        raise ValueError(f"cannot sort by {by!r}: choose one of {', '.join(SORT_KEYS)}")
    if by == "name":
        return sorted(rows, key=lambda r: (r.namespace, r.pod))
    attr = "cpu_cores" if by == "cpu" else "memory_bytes"
    return sorted(rows, key=lambda r: (-(getattr(r, attr) or -1.0), r.namespace, r.pod))


def render_pod_table(rows: list[PodRow]) -> str:
    """Fixed-width table of pods, as `invoke stats --node=x` prints it."""
    header = ("NAMESPACE", "POD", "CPU", "CPU%", "CPU REQ/LIM", "MEMORY", "MEM%", "MEM REQ/LIM")
    body = [
        (
            r.namespace,
            r.pod,
            _cpu(r.cpu_cores),
            _pct(r.cpu_share),
            f"{format_cpu(r.cpu_request)}/{_cpu(r.cpu_limit)}",
            _mem(r.memory_bytes),
            _pct(r.memory_share),
            f"{format_bytes(r.memory_request)}/{_mem(r.memory_limit)}",
        )
        for r in rows
    ]
    return _table(header, body)


def render_node_table(rows: list[NodeRow]) -> str:
    """Fixed-width table with one line per node, as `invoke stats` prints it."""
    header = ("NODE", "CPU", "CPU%", "CPU REQ", "MEMORY", "MEM%", "MEM REQ", "PODS", "SOURCE")
    body = [
        (
            r.node + ("" if r.schedulable else " (cordoned)"),
            f"{_cpu(r.cpu_cores)}/{format_cpu(r.allocatable_cpu)}",
            _pct(r.cpu_share),
            format_cpu(r.cpu_requests),
            f"{_mem(r.memory_bytes)}/{format_bytes(r.allocatable_memory)}",
            _pct(r.memory_share),
            format_bytes(r.memory_requests),
            str(r.pods),
            r.source,
        )
        for r in rows
    ]
    return _table(header, body)


def _table(header: tuple[str, ...], body: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in [header, *body]]
    return "\n".join(lines)


def _share(value: float | None, total: float) -> float | None:
    return None if value is None or total <= 0 else value / total


def _sum(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return math.fsum(present) if present else None


def _cpu(value: float | None) -> str:
    return "-" if value is None else format_cpu(value)


def _mem(value: float | None) -> str:
    return "-" if value is None else format_bytes(value)


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.1f}%"
