"""Playbook actions that measure: `cadvisor.pod_stats`, `cadvisor.node_stats`, `cadvisor.check`.

Why actions and not just a task: a playbook can measure before it moves anything (`cadvisor.check` stops or
flags a run when a node is already too busy to take more pods) and pass the numbers to later steps. None of
them mutates, so a dry run measures for real. `collect_*` are also what `invoke stats` calls.
"""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from kubeops.actions.context import StepContext
from kubeops.actions.registry import action
from kubeops.errors import ActionError, InputError, NotFound
from kubeops.metrics.report import NodeRow, PodRow, node_row, pod_rows, sort_pod_rows

SOURCE_OUTPUTS = ("source", "fallback_reason")


@dataclass(frozen=True, slots=True)
class NodeReport:
    """Everything `stats --node` shows for one node."""

    node: NodeRow
    pods: list[PodRow]
    fallback_reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node.to_dict(),
            "pods": [p.to_dict() for p in self.pods],
            "source": self.node.source,
            "fallback_reason": self.fallback_reason,
        }


def collect_reports(
    kube: Any, nodes: list[str] | None, *, interval_s: float, concurrency: int | None = None,
    source: str | None = None, with_pods: bool = True,
) -> list[NodeReport]:
    """Measure `nodes` (all nodes when None) over one shared interval and join usage with pod specs.

    `concurrency`: scrapes in flight at once (default: the cluster's `kube.scrape_concurrency`); `source`: the
    kubelet endpoint, ``cadvisor`` or ``resource`` (default: the cluster's `kube.stats_source`); `with_pods=False`
    leaves each report's pod rows empty, for callers that only read the node line (a node table of thousands of
    nodes would otherwise build a row for every pod of the cluster and print none of them). Pods are listed
    once for the whole cluster, or with a node field selector when only a few nodes are asked for.
    """
    from kubeops.clients.cadvisor import SCRAPE_SOURCES, sample_nodes
    from kubeops.clients.nodes import get_node, list_nodes
    from kubeops.clients.pods import list_pods

    if interval_s <= 0:
        raise InputError(f"interval_s must be positive, got {interval_s}")
    if source is not None and source not in SCRAPE_SOURCES:
        raise InputError(f"--source must be one of {', '.join(SCRAPE_SOURCES)}, got {source!r}")
    node_objs = [_named_node(kube, n, get_node) for n in nodes] if nodes else sorted(
        list_nodes(kube), key=lambda n: n["metadata"]["name"]
    )
    names = [n["metadata"]["name"] for n in node_objs]
    if concurrency is not None and concurrency < 1:
        raise InputError(f"concurrency must be at least 1, got {concurrency}")
    from kubeops.metrics.report import PodTally, pod_tally, report_fields

    keep = report_fields if with_pods else pod_tally  # only what the report reads, page by page

    def pods_to_report() -> list[Any]:
        if nodes and len(names) <= 3:  # a few named nodes: a field-selected list each beats listing every pod
            return [pod for name in names for pod in list_pods(kube, node=name, keep=keep)[0]]
        return list_pods(kube, keep=keep)[0]

    # the pods are listed while the nodes are sampled: the interval is mostly waiting, so the list comes for free
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stats-pods") as pool:
        listing = pool.submit(contextvars.copy_context().run, pods_to_report)
        samples = sample_nodes(kube, names, interval_s=interval_s, concurrency=concurrency, source=source)
        pods = listing.result()
    by_node: dict[str, list[Any]] = {n: [] for n in names}
    for pod in pods:
        bound = pod.node if isinstance(pod, PodTally) else (pod.get("spec") or {}).get("nodeName")
        if bound in by_node:
            by_node[bound].append(pod)
    reports = []
    for obj in node_objs:
        name = obj["metadata"]["name"]
        sample = samples[name]
        reports.append(
            NodeReport(
                node=node_row(obj, by_node[name], sample.usage, source=sample.source),
                pods=pod_rows(obj, by_node[name], sample.usage, source=sample.source) if with_pods else [],
                fallback_reason=sample.fallback_reason,
            )
        )
    return reports


def _named_node(kube: Any, name: str, get_node: Any) -> dict[str, Any]:
    """A node the user named; one that does not exist is bad input (nothing was measured or changed)."""
    try:
        return get_node(kube, name)
    except NotFound:
        raise InputError(f"node {name!r} not found", hint="`invoke stats` without --node lists the nodes") from None


@dataclass(frozen=True, slots=True)
class PodStatsParams:
    node: str = field(metadata={"help": "node whose pods to measure"})
    interval_s: float = field(default=5.0, metadata={"help": "seconds between the two cAdvisor samples"})
    sort: str = field(default="cpu", metadata={"help": "cpu, memory or name"})


@action(
    "cadvisor.pod_stats",
    params=PodStatsParams,
    mutates=False,
    outputs=("node", "pods", "source", "fallback_reason", "cpu_cores", "memory_bytes"),
)
def pod_stats(ctx: StepContext, p: PodStatsParams) -> dict[str, Any]:
    """Measure CPU and memory of every pod on a node (cAdvisor, or metrics-server as fallback)."""
    (report,) = collect_reports(ctx.kube, [p.node], interval_s=p.interval_s)
    try:
        rows = sort_pod_rows(report.pods, p.sort)
    except ValueError as exc:
        raise InputError(f"cadvisor.pod_stats: {exc}") from None
    ctx.log.info("cadvisor.pod_stats", node=p.node, pods=len(rows), source=report.node.source)
    return {
        "node": p.node,
        "pods": [r.to_dict() for r in rows],
        "source": report.node.source,
        "fallback_reason": report.fallback_reason,
        "cpu_cores": report.node.cpu_cores,
        "memory_bytes": report.node.memory_bytes,
    }


@dataclass(frozen=True, slots=True)
class NodeStatsParams:
    nodes: list[str] = field(default_factory=list, metadata={"help": "nodes to measure; empty = all nodes"})
    interval_s: float = field(default=5.0, metadata={"help": "seconds between the two cAdvisor samples"})


@action("cadvisor.node_stats", params=NodeStatsParams, mutates=False, outputs=("nodes", "by_node", "busiest"))
def node_stats(ctx: StepContext, p: NodeStatsParams) -> dict[str, Any]:
    """Measure every node's CPU and memory against its allocatable."""
    reports = collect_reports(ctx.kube, p.nodes or None, interval_s=p.interval_s, with_pods=False)
    rows = [r.node.to_dict() | {"fallback_reason": r.fallback_reason} for r in reports]
    busiest = max(reports, key=lambda r: max(r.node.cpu_share or 0, r.node.memory_share or 0), default=None)
    ctx.log.info("cadvisor.node_stats", nodes=len(rows))
    return {
        "nodes": rows,
        "by_node": {r["node"]: r for r in rows},
        "busiest": busiest.node.node if busiest else None,
    }


@dataclass(frozen=True, slots=True)
class CheckParams:
    nodes: list[str] = field(default_factory=list, metadata={"help": "nodes to check; empty = all nodes"})
    max_cpu_pct: float = field(default=80.0, metadata={"help": "highest allowed CPU usage, % of allocatable"})
    max_memory_pct: float = field(default=80.0, metadata={"help": "highest allowed memory usage, % of allocatable"})
    on_exceed: str = field(
        default="fail",
        metadata={"help": "fail: fail the step; skip: succeed with ok=false so later steps can `when:` on it"},
    )
    interval_s: float = field(default=5.0, metadata={"help": "seconds between the two cAdvisor samples"})


@action("cadvisor.check", params=CheckParams, mutates=False, outputs=("ok", "exceeded", "nodes"))
def check(ctx: StepContext, p: CheckParams) -> dict[str, Any]:
    """Fail (or flag with ok=false) when any node uses more than the allowed share of its allocatable."""
    mode: Literal["fail", "skip"]
    if p.on_exceed not in ("fail", "skip"):
        raise InputError(f"cadvisor.check: on_exceed must be 'fail' or 'skip', got {p.on_exceed!r}")
    mode = "fail" if p.on_exceed == "fail" else "skip"
    for name, value in (("max_cpu_pct", p.max_cpu_pct), ("max_memory_pct", p.max_memory_pct)):
        if not 0 < value <= 1000:
            raise InputError(f"cadvisor.check: {name} must be a percentage above 0, got {value}")
    reports = collect_reports(ctx.kube, p.nodes or None, interval_s=p.interval_s, with_pods=False)
    exceeded: list[str] = []
    nodes: dict[str, dict[str, Any]] = {}
    for r in reports:
        # one rounding for both the output and the message, so they never disagree (82.549 vs "82.6")
        cpu = round(100 * (r.node.cpu_share or 0.0), 2)
        mem = round(100 * (r.node.memory_share or 0.0), 2)
        nodes[r.node.node] = {"cpu_pct": cpu, "memory_pct": mem, "source": r.node.source}
        if cpu > p.max_cpu_pct:
            exceeded.append(f"{r.node.node}: CPU {cpu:.1f}% > {p.max_cpu_pct:g}%")
        if mem > p.max_memory_pct:
            exceeded.append(f"{r.node.node}: memory {mem:.1f}% > {p.max_memory_pct:g}%")
    if exceeded and mode == "fail":
        raise ActionError("usage above the allowed threshold: " + "; ".join(exceeded))
    if exceeded:
        ctx.log.warning("cadvisor.check.exceeded", exceeded=exceeded)
    return {"ok": not exceeded, "exceeded": exceeded, "nodes": nodes}


def render_stats(
    kube: Any, *, node: str | None, sort: str, output: str, interval_s: float, concurrency: int | None = None,
    source: str | None = None,
) -> str:
    """What `invoke stats` prints: a pod table for one node, a node table otherwise, or the same as JSON."""
    import json

    from kubeops.metrics.report import SORT_KEYS, render_node_table, render_pod_table

    if output not in ("table", "json"):
        raise InputError(f"--output must be 'table' or 'json', got {output!r}")
    if sort not in SORT_KEYS:
        raise InputError(f"--sort must be one of {', '.join(SORT_KEYS)}, got {sort!r}")
    reports = collect_reports(kube, [node] if node else None, interval_s=interval_s, concurrency=concurrency,
                              source=source, with_pods=bool(node))
    notes = [
        f"# {r.node.node}: source metrics.k8s.io ({r.fallback_reason})" for r in reports if r.fallback_reason
    ]
    if node:
        (report,) = reports
        rows = sort_pod_rows(report.pods, sort)
        if output == "json":
            return json.dumps(report.to_dict() | {"pods": [r.to_dict() for r in rows]}, indent=2)
        head = f"# node {node}: source {report.node.source}"
        return "\n".join([head, *notes, render_pod_table(rows)])
    nodes = [r.node for r in reports]
    if sort != "name":
        attr = "cpu_share" if sort == "cpu" else "memory_share"
        nodes.sort(key=lambda n: (-(getattr(n, attr) or -1.0), n.node))
    if output == "json":
        reasons = {r.node.node: r.fallback_reason for r in reports}
        return json.dumps([n.to_dict() | {"fallback_reason": reasons[n.node]} for n in nodes], indent=2)
    return "\n".join([*notes, render_node_table(nodes)])
