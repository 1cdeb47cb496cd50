"""`k8s.redistribute`: evict pods from the busiest nodes, by measured usage, so they reschedule on idle ones.

Like the descheduler's LowNodeUtilization (see kubeops.metrics.balance for the choice): only pods a controller
recreates, through the eviction API so PodDisruptionBudgets decide (a 429 skips that pod), each only when an
under-used node has room for it, at most `max_evictions` per run. Dry run measures for real and sends every
chosen eviction with ``dryRun=All``: the server checks budgets and nothing is evicted.

Resume: the pods already evicted are recorded as intent before each eviction, count toward the cap when the
step is re-entered, and usage is measured afresh, so a crash mid-way never evicts more than the cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubeops.actions.context import StepContext
from kubeops.actions.registry import Plan, action
from kubeops.errors import InputError, TooManyRequests
from kubeops.metrics.balance import BalancePlan, Thresholds, plan_moves

OUTPUTS = ("evicted", "blocked", "skipped", "bands", "shares", "reason", "planned")


@dataclass(frozen=True, slots=True)
class RedistributeParams:
    low_cpu_pct: float = field(default=20.0, metadata={"help": "a node below this CPU % (and memory %) may receive"})
    low_memory_pct: float = field(default=20.0, metadata={"help": "a node below this memory % may receive"})
    high_cpu_pct: float = field(default=50.0, metadata={"help": "a node above this CPU % sheds pods"})
    high_memory_pct: float = field(default=50.0, metadata={"help": "a node above this memory % sheds pods"})
    max_evictions: int = field(default=5, metadata={"help": "cap on evictions in one run"})
    interval_s: float = field(default=5.0, metadata={"help": "seconds between the two cAdvisor samples"})
    nodes: list[str] = field(default_factory=list, metadata={"help": "nodes to consider; empty = all nodes"})


def _thresholds(p: RedistributeParams) -> Thresholds:
    if p.max_evictions < 0:
        raise InputError(f"k8s.redistribute: max_evictions must be >= 0, got {p.max_evictions}")
    try:
        return Thresholds(p.low_cpu_pct, p.low_memory_pct, p.high_cpu_pct, p.high_memory_pct)
    except ValueError as exc:
        raise InputError(f"k8s.redistribute: {exc}") from None


def _measure_and_plan(ctx: StepContext, p: RedistributeParams, already: int) -> tuple[BalancePlan, dict[str, Any]]:
    from kubeops.clients.cadvisor import sample_nodes
    from kubeops.clients.nodes import get_node, list_nodes
    from kubeops.clients.pods import list_pods
    from kubeops.metrics.report import report_fields

    thresholds = _thresholds(p)
    kube = ctx.kube
    nodes = [get_node(kube, n) for n in p.nodes] if p.nodes else list_nodes(kube)
    names = [n["metadata"]["name"] for n in nodes]
    samples = sample_nodes(kube, names, interval_s=p.interval_s)
    pods, _ = list_pods(kube, keep=report_fields)  # what planning and eviction read, page by page
    by_node: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    index: dict[str, dict[str, Any]] = {}
    for pod in pods:
        bound = (pod.get("spec") or {}).get("nodeName")
        if bound in by_node:
            by_node[bound].append(pod)
            index[f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}"] = pod
    plan = plan_moves(
        nodes,
        by_node,
        {n: s.usage for n, s in samples.items()},
        thresholds,
        max_evictions=p.max_evictions,
        already_evicted=already,
    )
    return plan, index


def _evict_all(ctx: StepContext, plan: BalancePlan, index: dict[str, Any], done: list[str]) -> dict[str, Any]:
    from kubeops.clients.pods import evict_pod

    evicted: list[dict[str, Any]] = []
    blocked: dict[str, str] = {}
    for move in plan.moves:
        if not ctx.dry_run:
            ctx.record_intent({"evicted": [*done, move.key]})
        try:
            if evict_pod(ctx.kube, index[move.key]):
                evicted.append({"pod": move.key, "from": move.node, "to_room_on": move.target,
                                "cpu_cores": move.cpu_cores, "memory_bytes": move.memory_bytes})
                done.append(move.key)
                ctx.log.info("redistribute.evicted", pod=move.key, node=move.node, dry_run=ctx.dry_run)
        except TooManyRequests as exc:  # a PodDisruptionBudget said no: leave this pod, try the next
            blocked[move.key] = exc.message
            ctx.log.info("redistribute.blocked", pod=move.key, reason=exc.message)
        ctx.check_deadline()
    return {
        "evicted": evicted,
        "blocked": blocked,
        "skipped": plan.skipped,
        "bands": plan.bands,
        "shares": plan.shares,
        "reason": plan.reason,
        "planned": [m.key for m in plan.moves],
    }


def plan_redistribute(ctx: StepContext, p: RedistributeParams) -> Plan:
    """Dry run: measure, choose, and send the evictions with dryRun=All (budgets checked, nothing evicted)."""
    plan, index = _measure_and_plan(ctx, p, 0)
    if not ctx.kube.dry_run:  # the engine builds dry-run clients; refuse to evict for real from a plan
        raise InputError("k8s.redistribute: plan called with a client that is not in dry-run mode")
    outputs = _evict_all(ctx, plan, index, [])
    details = [f"evict {e['pod']} from {e['from']} (room on {e['to_room_on']})" for e in outputs["evicted"]]
    details += [f"blocked by a disruption budget: {k}: {v}" for k, v in outputs["blocked"].items()]
    details += [f"stays: {k}: {v}" for k, v in sorted(plan.skipped.items())]
    summary = (
        f"evict {len(outputs['evicted'])} pod(s)" if outputs["evicted"] else f"evict nothing: {plan.reason}"
    )
    return Plan(summary=summary, details=details, outputs=outputs)


@action("k8s.redistribute", params=RedistributeParams, mutates=True, plan=plan_redistribute, outputs=OUTPUTS)
def redistribute(ctx: StepContext, p: RedistributeParams) -> dict[str, Any]:
    """Evict pods from nodes above the high band so they land on nodes below the low band."""
    done = list((ctx.intent or {}).get("evicted") or [])
    plan, index = _measure_and_plan(ctx, p, len(done))
    plan.moves = [m for m in plan.moves if m.key not in done]
    outputs = _evict_all(ctx, plan, index, done)
    outputs["evicted_before_resume"] = done[: len(done) - len(outputs["evicted"])]
    return outputs
