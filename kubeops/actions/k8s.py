"""Kubernetes node actions: read, cordon/uncordon, label/annotate/taint, capacity check, drain, wait, delete.

Each mutating action has a dry-run plan built from the same client calls: in dry-run mode the client sends
them with ``dryRun=All``, so the plan is the API server's own verdict (a dry-run drain learns which budgets
would refuse) and nothing changes. Actions are idempotent: re-running one after a crash finds the work done
or half done and finishes it; `k8s.cordon` records whether the node was already cordoned before touching it,
so a later `k8s.uncordon` can leave alone a node someone else had cordoned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any

from kubeops.actions.context import StepContext
from kubeops.actions.registry import Plan, action
from kubeops.errors import ActionError, InputError, NotFound
from kubeops.progress import Progress, ticking

_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
DEFAULT_DRAIN_TIMEOUT_S = 3600.0  # used when neither the step nor the args set one


def _get(ctx: StepContext, node: str) -> dict[str, Any]:
    """The node, or an input error (exit 2) when it does not exist: nothing has been changed yet."""
    from kubeops.clients import nodes

    try:
        return nodes.get_node(ctx.kube, node)
    except NotFound:
        raise InputError(
            f"node {node!r} not found in cluster {ctx.settings.cluster!r}",
            hint="check the name with `kubectl get nodes`",
        ) from None


# --- k8s.get_node ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NodeParams:
    node: str = field(metadata={"help": "node name"})


def _node_facts(node: dict[str, Any]) -> dict[str, Any]:
    from kubeops.clients import nodes

    meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
    return {
        "node": meta.get("name"),
        "unschedulable": bool(spec.get("unschedulable")),
        "ready": nodes.node_is_ready(node),
        "labels": dict(meta.get("labels") or {}),
        "address": nodes.node_address(node),
        "provider_id": spec.get("providerID"),
        "instance_id": nodes.node_instance_id(node),
        "boot_id": (status.get("nodeInfo") or {}).get("bootID"),
    }


@action(
    "k8s.get_node",
    params=NodeParams,
    mutates=False,
    outputs=("node", "unschedulable", "ready", "labels", "address", "provider_id", "instance_id", "boot_id"),
)
def get_node(ctx: StepContext, p: NodeParams) -> dict[str, Any]:
    """Read a node; an unknown node fails the run as bad input before anything changes."""
    return _node_facts(_get(ctx, p.node))


# --- k8s.cordon / k8s.uncordon ----------------------------------------------------------------------------------
def _plan_cordon(ctx: StepContext, p: NodeParams) -> Plan:
    from kubeops.clients import nodes

    node = _get(ctx, p.node)
    before, changed = nodes.set_unschedulable(ctx.kube, p.node, True, node=node)  # dryRun=All: not applied
    was = bool((before.get("spec") or {}).get("unschedulable"))
    summary = f"cordon node {p.node}" if changed else f"leave node {p.node} as is (already cordoned)"
    return Plan(summary=summary, outputs={"node": p.node, "was_cordoned": was, "changed": changed})


@action("k8s.cordon", params=NodeParams, mutates=True, plan=_plan_cordon, outputs=("node", "was_cordoned", "changed"))
def cordon(ctx: StepContext, p: NodeParams) -> dict[str, Any]:
    """Mark the node unschedulable, remembering whether it already was (so cleanup leaves others' cordons)."""
    from kubeops.clients import nodes

    node = _get(ctx, p.node)
    if ctx.intent is not None and "was_cordoned" in ctx.intent:
        was = bool(ctx.intent["was_cordoned"])  # an earlier attempt saw the node before we touched it
    else:
        was = bool((node.get("spec") or {}).get("unschedulable"))
        ctx.record_intent({"was_cordoned": was})
    _, changed = nodes.set_unschedulable(ctx.kube, p.node, True, node=node)
    ctx.log.info("k8s.cordoned", node=p.node, was_cordoned=was, changed=changed)
    if changed:
        ctx.record_node_event(p.node, "Cordoned", f"Node {p.node} cordoned")
    return {"node": p.node, "was_cordoned": was, "changed": changed}


@dataclass(frozen=True, slots=True)
class UncordonParams:
    node: str = field(metadata={"help": "node name"})
    unless_was_cordoned: bool = field(
        default=False,
        metadata={"help": "pass the cordon step's was_cordoned: true leaves a node someone else cordoned alone"},
    )


def _plan_uncordon(ctx: StepContext, p: UncordonParams) -> Plan:
    from kubeops.clients import nodes

    if p.unless_was_cordoned:
        return Plan(
            summary=f"leave node {p.node} cordoned (it was cordoned before this run)",
            outputs={"node": p.node, "changed": False, "skipped": True},
        )
    node = _get(ctx, p.node)
    _, changed = nodes.set_unschedulable(ctx.kube, p.node, False, node=node)
    summary = f"uncordon node {p.node}" if changed else f"leave node {p.node} as is (already schedulable)"
    return Plan(summary=summary, outputs={"node": p.node, "changed": changed, "skipped": False})


@action(
    "k8s.uncordon", params=UncordonParams, mutates=True, plan=_plan_uncordon, outputs=("node", "changed", "skipped")
)
def uncordon(ctx: StepContext, p: UncordonParams) -> dict[str, Any]:
    """Make the node schedulable again, unless it was cordoned before this run started."""
    from kubeops.clients import nodes

    if p.unless_was_cordoned:
        ctx.log.info("k8s.uncordon_skipped", node=p.node, reason="node was cordoned before this run")
        return {"node": p.node, "changed": False, "skipped": True}
    node = _get(ctx, p.node)
    _, changed = nodes.set_unschedulable(ctx.kube, p.node, False, node=node)
    if changed:
        ctx.record_node_event(p.node, "Uncordoned", f"Node {p.node} uncordoned")
    return {"node": p.node, "changed": changed, "skipped": False}


# --- k8s.get_nodes / k8s.cordon_nodes / k8s.uncordon_nodes: several nodes at once -------------------------------
@dataclass(frozen=True, slots=True)
class NodesQuery:
    nodes: list[str] = field(default_factory=list, metadata={"help": "node names (give these or selector)"})
    selector: str | None = field(
        default=None, metadata={"help": "label selector, as `kubectl get nodes -l` takes (give this or nodes)"}
    )


def _check_names(action: str, names: list[str]) -> list[str]:
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise InputError(f"{action}: nodes must be a non-empty list of node names")
    return list(dict.fromkeys(n.strip() for n in names))  # a name given twice is one node


def _get_all(ctx: StepContext, action: str, names: list[str]) -> dict[str, dict[str, Any]]:
    """Every named node, read before anything changes; one input error naming all unknown ones otherwise."""
    from kubeops.clients import nodes

    found: dict[str, dict[str, Any]] = {}
    unknown: list[str] = []
    for name in _check_names(action, names):
        try:
            found[name] = nodes.get_node(ctx.kube, name)
        except NotFound:
            unknown.append(name)
    if unknown:
        which = f"node {unknown[0]!r}" if len(unknown) == 1 else "nodes " + ", ".join(repr(n) for n in unknown)
        raise InputError(
            f"{which} not found in cluster {ctx.settings.cluster!r}",
            hint="check the names with `kubectl get nodes`",
        )
    return found


@action("k8s.get_nodes", params=NodesQuery, mutates=False, outputs=("nodes", "count"))
def get_nodes(ctx: StepContext, p: NodesQuery) -> dict[str, Any]:
    """Resolve names or a label selector to existing nodes; an unknown name or an empty match is bad input."""
    from kubeops.clients import nodes
    from kubeops.errors import ClusterError

    selector = (p.selector or "").strip()
    if bool(selector) == bool(p.nodes):
        raise InputError("k8s.get_nodes: give either nodes or selector, not both and not neither")
    if not selector:
        names = list(_get_all(ctx, "k8s.get_nodes", p.nodes))
    else:
        try:
            listed = nodes.list_nodes(ctx.kube, label_selector=selector)
        except ClusterError as exc:
            if exc.status != 400:
                raise
            raise InputError(f"label selector {selector!r} is not valid: {exc.message}") from None
        names = sorted(str((n.get("metadata") or {}).get("name")) for n in listed)
        if not names:
            raise InputError(
                f"label selector {selector!r} matches no node in cluster {ctx.settings.cluster!r}",
                hint=f"check it with `kubectl get nodes -l '{selector}'`",
            )
    ctx.log.info("k8s.nodes_selected", nodes=names, selector=selector or None)
    return {"nodes": names, "count": len(names)}


@dataclass(frozen=True, slots=True)
class NodesParams:
    nodes: list[str] = field(metadata={"help": "node names"})


def _plan_cordon_nodes(ctx: StepContext, p: NodesParams) -> Plan:
    """Every node read first (an unknown one stops all, nothing changed), then the patches sent with dryRun=All."""
    from kubeops.clients import nodes

    found = _get_all(ctx, "k8s.cordon_nodes", p.nodes)
    before = {name: bool((node.get("spec") or {}).get("unschedulable")) for name, node in found.items()}
    changed = [name for name, node in found.items() if nodes.set_unschedulable(ctx.kube, name, True, node=node)[1]]
    same = [name for name in before if name not in changed]
    summary = f"cordon {len(changed)} node(s)" + (f", leave {len(same)} as is" if same else "")
    details = [f"cordon {name}" for name in changed] + [f"leave {name} as is" for name in same]
    return Plan(summary=summary, details=details,
                outputs={"nodes": list(before), "changed": changed, "was_cordoned": before})


@action("k8s.cordon_nodes", params=NodesParams, mutates=True, plan=_plan_cordon_nodes,
        outputs=("nodes", "was_cordoned", "changed"))
def cordon_nodes(ctx: StepContext, p: NodesParams) -> dict[str, Any]:
    """Cordon several nodes, all checked to exist first; remembers which were cordoned before this run."""
    from kubeops.clients import nodes

    found = _get_all(ctx, "k8s.cordon_nodes", p.nodes)  # every node read before any is touched
    recorded = (ctx.intent or {}).get("was_cordoned")
    if not isinstance(recorded, dict):  # first attempt: note the nodes as they are, before touching any
        recorded = {n: bool((node.get("spec") or {}).get("unschedulable")) for n, node in found.items()}
        ctx.record_intent({"was_cordoned": recorded})
    names = list(found)
    changed = [n for n, node in found.items() if nodes.set_unschedulable(ctx.kube, n, True, node=node)[1]]
    for name in changed:
        ctx.record_node_event(name, "Cordoned", f"Node {name} cordoned")
    ctx.log.info("k8s.nodes_cordoned", nodes=names, changed=changed)
    return {"nodes": names, "was_cordoned": {n: bool(recorded.get(n)) for n in names}, "changed": changed}


@dataclass(frozen=True, slots=True)
class UncordonNodesParams:
    nodes: list[str] = field(metadata={"help": "node names"})
    unless_was_cordoned: dict[str, bool] = field(
        default_factory=dict,
        metadata={"help": "pass the cordon_nodes step's was_cordoned: a node marked true (cordoned by someone else "
                          "before this run) is left cordoned"},
    )


def _uncordon_nodes(ctx: StepContext, p: UncordonNodesParams) -> tuple[list[str], list[str], list[str]]:
    """(nodes, changed, skipped): every node read first, those cordoned before this run left as they are."""
    from kubeops.clients import nodes

    found = _get_all(ctx, "k8s.uncordon_nodes", p.nodes)  # every node read before any is touched, skipped ones too
    skipped = [n for n in found if p.unless_was_cordoned.get(n) is True]
    changed = [n for n, node in found.items()
               if n not in skipped and nodes.set_unschedulable(ctx.kube, n, False, node=node)[1]]
    return list(found), changed, skipped


def _plan_uncordon_nodes(ctx: StepContext, p: UncordonNodesParams) -> Plan:
    names, changed, skipped = _uncordon_nodes(ctx, p)  # dryRun=All: not applied
    same = [n for n in names if n not in changed and n not in skipped]
    summary = f"uncordon {len(changed)} node(s)" + (f", leave {len(same)} as is" if same else "")
    if skipped:
        summary += f", leave {len(skipped)} cordoned (cordoned before this run)"
    details = ([f"uncordon {n}" for n in changed] + [f"leave {n} as is" for n in same]
               + [f"leave {n} cordoned (cordoned before this run)" for n in skipped])
    return Plan(summary=summary, details=details, outputs={"nodes": names, "changed": changed, "skipped": skipped})


@action("k8s.uncordon_nodes", params=UncordonNodesParams, mutates=True, plan=_plan_uncordon_nodes,
        outputs=("nodes", "changed", "skipped"))
def uncordon_nodes(ctx: StepContext, p: UncordonNodesParams) -> dict[str, Any]:
    """Make several nodes schedulable again, all checked to exist first (idempotent); with `unless_was_cordoned`
    from `k8s.cordon_nodes`, a node someone else had cordoned before this run stays cordoned, as `k8s.uncordon`
    does for one node."""
    names, changed, skipped = _uncordon_nodes(ctx, p)
    for name in changed:
        ctx.record_node_event(name, "Uncordoned", f"Node {name} uncordoned")
    if skipped:
        ctx.log.info("k8s.uncordon_skipped", nodes=skipped, reason="cordoned before this run")
    return {"nodes": names, "changed": changed, "skipped": skipped}


# --- k8s.label / k8s.annotate -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LabelParams:
    node: str = field(metadata={"help": "node name"})
    labels: dict[str, str] = field(default_factory=dict, metadata={"help": "labels to set"})
    remove: list[str] = field(default_factory=list, metadata={"help": "label keys to remove"})


@dataclass(frozen=True, slots=True)
class AnnotateParams:
    node: str = field(metadata={"help": "node name"})
    annotations: dict[str, str] = field(default_factory=dict, metadata={"help": "annotations to set"})
    remove: list[str] = field(default_factory=list, metadata={"help": "annotation keys to remove"})


def _metadata_change(ctx: StepContext, node: str, what: str, values: dict[str, str], remove: list[str]) -> bool:
    from kubeops.clients import nodes

    if not values and not remove:
        raise InputError(f"k8s.{'label' if what == 'labels' else 'annotate'}: nothing to set or remove")
    _get(ctx, node)
    wanted: dict[str, str | None] = {**dict(values), **{key: None for key in remove}}
    _, changed = nodes.patch_metadata(ctx.kube, node, what, wanted)
    return changed


def _plan_label(ctx: StepContext, p: LabelParams) -> Plan:
    changed = _metadata_change(ctx, p.node, "labels", p.labels, p.remove)
    summary = f"update labels of node {p.node}" if changed else f"leave labels of node {p.node} (already as asked)"
    return Plan(summary=summary, details=[f"{k}={v}" for k, v in p.labels.items()] + [f"{k}-" for k in p.remove],
                outputs={"node": p.node, "changed": changed})


@action("k8s.label", params=LabelParams, mutates=True, plan=_plan_label, outputs=("node", "changed"))
def label(ctx: StepContext, p: LabelParams) -> dict[str, Any]:
    """Set or remove node labels (idempotent)."""
    return {"node": p.node, "changed": _metadata_change(ctx, p.node, "labels", p.labels, p.remove)}


def _plan_annotate(ctx: StepContext, p: AnnotateParams) -> Plan:
    changed = _metadata_change(ctx, p.node, "annotations", p.annotations, p.remove)
    summary = f"update annotations of node {p.node}" if changed else f"leave annotations of node {p.node} as asked"
    return Plan(summary=summary, outputs={"node": p.node, "changed": changed})


@action("k8s.annotate", params=AnnotateParams, mutates=True, plan=_plan_annotate, outputs=("node", "changed"))
def annotate(ctx: StepContext, p: AnnotateParams) -> dict[str, Any]:
    """Set or remove node annotations (idempotent)."""
    return {"node": p.node, "changed": _metadata_change(ctx, p.node, "annotations", p.annotations, p.remove)}


# --- k8s.taint / k8s.untaint ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TaintParams:
    node: str = field(metadata={"help": "node name"})
    key: str = field(default="", metadata={"help": "taint key"})
    value: str = field(default="", metadata={"help": "taint value"})
    effect: str = field(default="NoSchedule", metadata={"help": "NoSchedule, PreferNoSchedule or NoExecute"})


@dataclass(frozen=True, slots=True)
class UntaintParams:
    node: str = field(metadata={"help": "node name"})
    key: str = field(default="", metadata={"help": "taint key"})
    effect: str | None = field(default=None, metadata={"help": "only this effect; default: every effect"})


def _check_taint(key: str, effect: str | None) -> None:
    if not key:
        raise InputError("a taint needs a key")
    if effect is not None and effect not in _EFFECTS:
        raise InputError(f"taint effect {effect!r} is not one of {', '.join(_EFFECTS)}")


def _taint(ctx: StepContext, p: TaintParams) -> bool:
    from kubeops.clients import nodes

    _check_taint(p.key, p.effect)
    _get(ctx, p.node)
    taint = {"key": p.key, "effect": p.effect, **({"value": p.value} if p.value else {})}
    return nodes.set_taints(ctx.kube, p.node, add=[taint])[1]


def _untaint(ctx: StepContext, p: UntaintParams) -> bool:
    from kubeops.clients import nodes

    _check_taint(p.key, p.effect)
    _get(ctx, p.node)
    return nodes.set_taints(ctx.kube, p.node, remove=[{"key": p.key, "effect": p.effect}])[1]


def _plan_taint(ctx: StepContext, p: TaintParams) -> Plan:
    changed = _taint(ctx, p)
    text = f"{p.key}={p.value}:{p.effect}"
    summary = f"taint node {p.node} with {text}" if changed else f"leave node {p.node} as is (already has {text})"
    return Plan(summary=summary, outputs={"node": p.node, "changed": changed})


def _plan_untaint(ctx: StepContext, p: UntaintParams) -> Plan:
    changed = _untaint(ctx, p)
    summary = f"remove taint {p.key} from node {p.node}" if changed else f"leave node {p.node} as is (no taint {p.key})"
    return Plan(summary=summary, outputs={"node": p.node, "changed": changed})


@action("k8s.taint", params=TaintParams, mutates=True, plan=_plan_taint, outputs=("node", "changed"))
def taint(ctx: StepContext, p: TaintParams) -> dict[str, Any]:
    """Add a taint (replacing one with the same key and effect)."""
    return {"node": p.node, "changed": _taint(ctx, p)}


@action("k8s.untaint", params=UntaintParams, mutates=True, plan=_plan_untaint, outputs=("node", "changed"))
def untaint(ctx: StepContext, p: UntaintParams) -> dict[str, Any]:
    """Remove a taint by key (and effect, when given)."""
    return {"node": p.node, "changed": _untaint(ctx, p)}


# --- k8s.capacity_check -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CapacityParams:
    node: str = field(metadata={"help": "node to be emptied"})
    fail_on_blocking_budgets: bool = field(
        default=True, metadata={"help": "fail when a PodDisruptionBudget can never allow the node's pods to go"}
    )


@action(
    "k8s.capacity_check",
    params=CapacityParams,
    mutates=False,
    outputs=("node", "fits", "placed", "unplaced", "not_replaced", "budgets"),
)
def capacity_check(ctx: StepContext, p: CapacityParams) -> dict[str, Any]:
    """Refuse before any change when the node's pods cannot be rescheduled or a budget would never allow it."""
    from kubeops.capacity import simulate
    from kubeops.clients import nodes, pods
    from kubeops.drain import budget_verdicts, controller_ref, is_finished

    _get(ctx, p.node)
    all_nodes = nodes.list_nodes(ctx.kube)
    all_pods, _ = pods.list_pods(ctx.kube)
    bound: dict[str, list[dict[str, Any]]] = {}
    for pod in all_pods:
        name = (pod.get("spec") or {}).get("nodeName")
        if name:
            bound.setdefault(name, []).append(pod)
    mine = bound.get(p.node, [])
    report = simulate(p.node, mine, all_nodes, bound)
    evictable = [
        pod for pod in mine
        if not is_finished(pod) and (controller_ref(pod) or {}).get("kind") != "DaemonSet"
    ]
    verdicts = budget_verdicts(pods.list_budgets(ctx.kube), evictable)
    never = [v for v in verdicts if v.never]
    outputs = {
        "node": p.node,
        "fits": report.fits,
        "placed": report.placed,
        "unplaced": report.unplaced,
        "not_replaced": report.not_replaced,
        "budgets": [v.describe() for v in verdicts],
    }
    problems = report.lines() if not report.fits else []
    if never and p.fail_on_blocking_budgets:
        problems += [v.describe() for v in never]
    if not report.fits or (never and p.fail_on_blocking_budgets):
        raise ActionError(
            f"capacity check refuses to empty node {p.node}: " + "; ".join(problems),
            hint="add capacity (scale the node group), relax the budgets or selectors, then run again; "
            "pod affinity and topology spread were not simulated",
        )
    ctx.log.info("k8s.capacity_ok", node=p.node, pods=len(report.placed), budgets=len(verdicts))
    return outputs


# --- k8s.drain ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class DrainFlags:
    """The `kubectl drain` flags, declared once for `k8s.drain` and `k8s.drain_nodes` (keyword-only, so each
    subclass can put its required node or nodes field after these defaults)."""

    pod_selector: str | None = field(default=None, metadata={"help": "only pods matching this label selector"})
    ignore_daemonsets: bool = field(default=False, metadata={"help": "skip DaemonSet pods instead of failing"})
    delete_emptydir_data: bool = field(default=False, metadata={"help": "allow removing pods with emptyDir data"})
    force: bool = field(default=False, metadata={"help": "allow removing pods no controller will recreate"})
    disable_eviction: bool = field(default=False, metadata={"help": "delete pods, bypassing PodDisruptionBudgets"})
    grace_period_s: int = field(default=-1, metadata={"help": "termination grace; -1 keeps each pod's own"})
    timeout_s: float | None = field(
        default=None, metadata={"help": "overall limit (one for all nodes); default: the step's timeout"}
    )
    wait_for_replacements: bool = field(
        default=False, metadata={"help": "also wait until the evicted pods' controllers are fully Ready again"}
    )
    cordon: bool = field(default=True, metadata={"help": "cordon the node(s) first, as kubectl drain does"})


@dataclass(frozen=True, slots=True)
class DrainParams(DrainFlags):
    node: str = field(metadata={"help": "node to drain"})


_DRAIN_OUTPUTS = ("node", "evicted", "deleted", "already_gone", "skipped", "warnings", "blocked", "was_cordoned")


def _select(ctx: StepContext, p: DrainParams) -> tuple[Any, str, dict[str, Any]]:
    from kubeops.clients import pods
    from kubeops.drain import DrainFilters, select_pods

    node = _get(ctx, p.node)
    listed, version = pods.list_pods(ctx.kube, node=p.node, label_selector=p.pod_selector)
    filters = DrainFilters(
        ignore_daemonsets=p.ignore_daemonsets, delete_emptydir_data=p.delete_emptydir_data, force=p.force
    )
    selection = select_pods(listed, filters)
    refusal = selection.error_message()
    if refusal:
        raise ActionError(f"node {p.node}: {refusal}", hint="nothing was evicted; adjust the drain flags")
    return selection, version, node


def _run(ctx: StepContext, p: DrainParams) -> dict[str, Any]:
    return run_drains(ctx, p, [p.node])[p.node]


def run_drains(ctx: StepContext, p: DrainParams, node_names: list[str]) -> dict[str, dict[str, Any]]:
    """Drain `node_names` at once with the flags of `p` (its `node` is ignored); outputs by node.

    Every node's pods are selected before anything is cordoned or evicted (one refusal stops all, nothing
    changed), then all nodes drain together under one deadline and one bound of `kube.qps_concurrency`
    evictions in flight (`kubeops.clients.drain.run_drains`): a budget that holds one node's pods does not
    hold the others. One error names every node that did not finish.
    """
    from dataclasses import replace

    from kubeops.clients import nodes
    from kubeops.clients.drain import run_drains as drain_all
    from kubeops.clients.drain import wait_for_replacements
    from kubeops.drain import pod_key

    chosen = {name: _select(ctx, replace(p, node=name)) for name in dict.fromkeys(node_names)}
    was_cordoned: dict[str, bool] = {}
    for name, (_, _, node) in chosen.items():
        was_cordoned[name] = bool((node.get("spec") or {}).get("unschedulable"))
        if p.cordon and not was_cordoned[name]:
            nodes.set_unschedulable(ctx.kube, name, True, node=node)
    timeout = p.timeout_s if p.timeout_s is not None else ctx.remaining_s(DEFAULT_DRAIN_TIMEOUT_S)
    deadline = time.monotonic() + float(timeout or 0)
    if ctx.deadline is not None:
        deadline = min(deadline, ctx.deadline)
    grace = None if p.grace_period_s < 0 else p.grace_period_s
    for name, (selection, _, _) in chosen.items():
        ctx.log.info("k8s.drain_started", node=name, evict=len(selection.evict), delete=len(selection.delete),
                     terminating=len(selection.terminating))
    outcomes = drain_all(
        ctx.kube, {name: (sel, version) for name, (sel, version, _) in chosen.items()}, deadline=deadline,
        grace_period_s=grace, disable_eviction=p.disable_eviction, concurrency=ctx.settings.kube.qps_concurrency,
        log=ctx.log,
    )
    results: dict[str, dict[str, Any]] = {}
    for name, (selection, _, _) in chosen.items():
        outcome = outcomes[name]
        results[name] = {
            "node": name,
            "evicted": outcome.evicted,
            "deleted": outcome.deleted,
            "already_gone": outcome.already_gone,
            "skipped": selection.skipped,
            "warnings": selection.warnings,
            "blocked": outcome.blocked,
            "was_cordoned": was_cordoned[name],
        }
    if ctx.kube.dry_run:
        return results
    failed = [outcomes[name].failure_message(name, timeout) for name in chosen if not outcomes[name].ok]
    if failed:
        raise ActionError(
            " || ".join(failed),
            hint="the node stays cordoned; fix the budget or wait, then resume the run",
        )
    if p.wait_for_replacements:
        removed = [
            pod
            for name, (selection, _, _) in chosen.items()
            for pod in selection.evict
            if pod_key(pod) in set(outcomes[name].evicted) | set(outcomes[name].deleted)
        ]
        late = wait_for_replacements(ctx.kube, removed, deadline=deadline, log=ctx.log)
        if late:
            which = f"node {next(iter(chosen))} is" if len(chosen) == 1 else f"nodes {', '.join(chosen)} are"
            raise ActionError(
                f"{which} drained, but these controllers are not fully Ready again: {', '.join(late)}",
                hint="check why their pods are Pending (`kubectl get pods -o wide`), then resume",
            )
    for name in chosen:
        done = outcomes[name]
        ctx.record_node_event(name, "Drained", f"Node {name} drained: {len(done.evicted)} pod(s) evicted, "
                              f"{len(done.deleted)} deleted")
    return results


def _plan_drain(ctx: StepContext, p: DrainParams) -> Plan:
    outputs = _run(ctx, p)  # the client is in dry-run mode: evictions go out with dryRun=All
    details = [f"evict {key}" for key in outputs["evicted"]] + [f"delete {key}" for key in outputs["deleted"]]
    for reason, keys in outputs["skipped"].items():
        details.append(f"skip ({reason}): {', '.join(keys)}")
    for key, info in outputs["blocked"].items():
        budgets = ", ".join(info["budgets"]) or "unnamed budget"
        details.append(f"BLOCKED {key} by PodDisruptionBudget {budgets}: {info['message']}")
    summary = f"drain node {p.node}: {len(outputs['evicted'])} eviction(s), {len(outputs['deleted'])} delete(s)"
    if outputs["blocked"]:
        summary += f"; {len(outputs['blocked'])} currently refused by a budget (retried until the timeout)"
    return Plan(summary=summary, details=details, outputs=outputs)


@action("k8s.drain", params=DrainParams, mutates=True, plan=_plan_drain, outputs=_DRAIN_OUTPUTS)
def drain(ctx: StepContext, p: DrainParams) -> dict[str, Any]:
    """Evict the node's pods like `kubectl drain`, waiting (by watch) until they are gone."""
    return _run(ctx, p)


@dataclass(frozen=True, slots=True)
class DrainNodesParams(DrainFlags):
    nodes: list[str] = field(metadata={"help": "nodes to drain together"})

    def one(self) -> DrainParams:
        """The shared flags as a single-node DrainParams (`node` is filled per node)."""
        flags = {f.name: getattr(self, f.name) for f in fields(DrainFlags)}
        return DrainParams(node="", **flags)


def _check_nodes(p: DrainNodesParams) -> None:
    if not p.nodes or not all(isinstance(n, str) and n for n in p.nodes):
        raise InputError("k8s.drain_nodes: nodes must be a non-empty list of node names")


def _plan_drain_nodes(ctx: StepContext, p: DrainNodesParams) -> Plan:
    _check_nodes(p)
    by_node = run_drains(ctx, p.one(), p.nodes)  # dry-run client: evictions go out with dryRun=All
    details = [f"{name}: evict {key}" for name, out in by_node.items() for key in out["evicted"]]
    details += [f"{name}: BLOCKED {key}" for name, out in by_node.items() for key in out["blocked"]]
    evictions = sum(len(out["evicted"]) for out in by_node.values())
    return Plan(
        summary=f"drain {len(by_node)} node(s) together: {evictions} eviction(s)",
        details=details,
        outputs=_drain_nodes_outputs(by_node),
    )


@action("k8s.drain_nodes", params=DrainNodesParams, mutates=True, plan=_plan_drain_nodes,
        outputs=("nodes", "by_node", "evicted"))
def drain_nodes(ctx: StepContext, p: DrainNodesParams) -> dict[str, Any]:
    """Drain several nodes at once under one eviction bound and one deadline (a held node holds no other)."""
    _check_nodes(p)
    return _drain_nodes_outputs(run_drains(ctx, p.one(), p.nodes))


def _drain_nodes_outputs(by_node: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"nodes": list(by_node), "by_node": by_node, "evicted": [k for o in by_node.values() for k in o["evicted"]]}


# --- k8s.wait_node_ready / k8s.delete_node ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WaitReadyParams:
    node: str = field(metadata={"help": "node name"})
    timeout_s: float = field(default=600.0, metadata={"help": "how long to wait"})
    new_boot_than: str | None = field(
        default=None, metadata={"help": "a bootID seen before a reboot: wait until the node reports another"}
    )


@action("k8s.wait_node_ready", params=WaitReadyParams, mutates=False, outputs=("node", "ready", "boot_id"))
def wait_node_ready(ctx: StepContext, p: WaitReadyParams) -> dict[str, Any]:
    """Wait (by watch) until the node reports Ready."""
    from kubeops.clients import nodes

    last = [_get(ctx, p.node)]
    timeout = min(p.timeout_s, ctx.remaining_s(p.timeout_s) or p.timeout_s)
    wanted = "Ready with a new bootID" if p.new_boot_than else "Ready"
    progress = Progress(ctx.log, "k8s.wait_node_ready.progress", timeout_s=timeout)
    with ticking(progress, lambda: f"waiting for node {p.node} to be {wanted} ({nodes.ready_text(last[0])})"):
        node = nodes.wait_ready(ctx.kube, p.node, timeout_s=timeout, new_boot_than=p.new_boot_than,
                                on_seen=lambda seen: last.__setitem__(0, seen))
    return {"node": p.node, "ready": True, "boot_id": _node_facts(node)["boot_id"]}


def _plan_delete_node(ctx: StepContext, p: NodeParams) -> Plan:
    from kubeops.clients import nodes

    existed = nodes.delete_node(ctx.kube, p.node)  # dryRun=All
    summary = f"delete node {p.node}" if existed else f"skip deleting node {p.node} (it does not exist)"
    return Plan(summary=summary, outputs={"node": p.node, "deleted": existed})


@action("k8s.delete_node", params=NodeParams, mutates=True, plan=_plan_delete_node, outputs=("node", "deleted"))
def delete_node(ctx: StepContext, p: NodeParams) -> dict[str, Any]:
    """Delete the Node object (idempotent: an absent node is success)."""
    from kubeops.clients import nodes

    if nodes.delete_node(ctx.kube, p.node):
        ctx.record_node_event(p.node, "Deleted", f"Node {p.node} deleted")
        return {"node": p.node, "deleted": True}
    return {"node": p.node, "deleted": False}
