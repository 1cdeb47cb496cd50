"""What a drain does to each pod of a node, decided the way `kubectl drain` decides it (pure, no I/O).

Why pure: the filters are where a drain can hurt a workload (deleting a pod nobody will recreate, losing
emptyDir data), so they are tested on their own, and the capacity check and dry-run plan reuse them.

kubectl's filters, in its order: DaemonSet pods are never removed (an error unless `ignore_daemonsets`,
whatever their phase); mirror pods (static pods the kubelet owns) are skipped silently; pods with emptyDir
volumes need `delete_emptydir_data`; pods with no controller need `force` (nothing will recreate them);
finished pods (Succeeded/Failed) are removed without any of those flags. Pods already terminating are not
evicted again: a drain re-entered after a crash just waits for them, which is what makes it idempotent.

Also here: reading which PodDisruptionBudget blocked an eviction from the API server's 429 Status, and the
budget arithmetic the capacity check uses to tell "slow" budgets from ones that can never allow the drain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MIRROR_ANNOTATION",
    "BudgetVerdict",
    "DrainFilters",
    "DrainSelection",
    "blocking_budget_names",
    "budget_verdicts",
    "controller_ref",
    "is_finished",
    "pod_key",
    "select_pods",
    "selector_matches",
]

Obj = Mapping[str, Any]
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
_BUDGET_IN_MESSAGE = re.compile(r"disruption budget ([a-z0-9]([-a-z0-9.]*[a-z0-9])?)")

# kubectl's wording, so people searching for a message find the flag that overrides it
ERR_DAEMONSET = "cannot delete DaemonSet-managed Pods (set ignore_daemonsets / --ignore-daemonsets to ignore)"
ERR_EMPTYDIR = "cannot delete Pods with local storage (set delete_emptydir_data / --delete-emptydir-data)"
ERR_UNMANAGED = "cannot delete Pods that declare no controller (set force / --force to override)"


@dataclass(frozen=True, slots=True)
class DrainFilters:
    """The flags that widen what a drain may remove; all off is the safe default."""

    ignore_daemonsets: bool = False
    delete_emptydir_data: bool = False
    force: bool = False


@dataclass(slots=True)
class DrainSelection:
    """Every pod of the node, sorted into what the drain will do with it."""

    evict: list[Obj] = field(default_factory=list)  # running pods: evicted (or deleted with disable_eviction)
    delete: list[Obj] = field(default_factory=list)  # finished pods: deleted, no budget applies
    terminating: list[Obj] = field(default_factory=list)  # already being deleted: only waited for
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> pod keys (DaemonSet, mirror)
    warnings: dict[str, list[str]] = field(default_factory=dict)  # reason -> pod keys removed because of a flag
    errors: dict[str, list[str]] = field(default_factory=dict)  # reason -> pod keys that forbid the drain

    @property
    def removable(self) -> list[Obj]:
        """Pods this drain sends a request for (evictions and deletes)."""
        return [*self.evict, *self.delete]

    def error_message(self) -> str | None:
        """kubectl-style refusal naming every offending pod, or None when the drain may go ahead."""
        if not self.errors:
            return None
        parts = [f"{reason}: {', '.join(pods)}" for reason, pods in self.errors.items()]
        return "cannot drain: " + "; ".join(parts)


def pod_key(pod: Obj) -> str:
    """``namespace/name``: how pods are named in messages and outputs."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


def controller_ref(pod: Obj) -> Mapping[str, Any] | None:
    """The ownerReference marked `controller: true`, if any."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


def is_finished(pod: Obj) -> bool:
    """Succeeded or Failed: the pod holds no resources and no budget counts it."""
    return ((pod.get("status") or {}).get("phase")) in ("Succeeded", "Failed")


def _has_emptydir(pod: Obj) -> bool:
    return any("emptyDir" in (v or {}) for v in (pod.get("spec") or {}).get("volumes") or ())


def _add(bucket: dict[str, list[str]], reason: str, pod: Obj) -> None:
    bucket.setdefault(reason, []).append(pod_key(pod))


def select_pods(pods: Iterable[Obj], filters: DrainFilters) -> DrainSelection:
    """Sort a node's pods by what the drain does with each (kubectl's filter chain, in its order)."""
    sel = DrainSelection()
    for pod in pods:
        meta = pod.get("metadata") or {}
        ref = controller_ref(pod)
        if ref is not None and ref.get("kind") == "DaemonSet":
            if filters.ignore_daemonsets:
                _add(sel.skipped, "DaemonSet-managed", pod)
            else:
                _add(sel.errors, ERR_DAEMONSET, pod)
            continue
        if MIRROR_ANNOTATION in (meta.get("annotations") or {}):
            _add(sel.skipped, "mirror pod", pod)
            continue
        if meta.get("deletionTimestamp"):
            sel.terminating.append(pod)
            continue
        if is_finished(pod):
            sel.delete.append(pod)
            continue
        allowed = True
        if _has_emptydir(pod):
            if filters.delete_emptydir_data:
                _add(sel.warnings, "deleting Pods with local storage", pod)
            else:
                _add(sel.errors, ERR_EMPTYDIR, pod)
                allowed = False
        if ref is None:
            if filters.force:
                _add(sel.warnings, "deleting Pods that declare no controller", pod)
            else:
                _add(sel.errors, ERR_UNMANAGED, pod)
                allowed = False
        if allowed:
            sel.evict.append(pod)
    return sel


def blocking_budget_names(message: str, details: Mapping[str, Any] | None = None) -> list[str]:
    """Names of the PodDisruptionBudgets an eviction's 429 (or 500 for overlapping budgets) talks about.

    The API server puts them in ``details.causes[].message`` ("The disruption budget web needs 2 healthy pods
    and has 2 currently") and sometimes only in the message; both are read, each name once.
    """
    texts = [str(c.get("message") or "") for c in (details or {}).get("causes") or () if isinstance(c, Mapping)]
    texts.append(message)
    names: list[str] = []
    for text in texts:
        for match in _BUDGET_IN_MESSAGE.finditer(text):
            if match.group(1) not in names:
                names.append(match.group(1))
    return names


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector against labels; a missing selector matches nothing, an empty one everything."""
    if selector is None:
        return False
    for key, want in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != want:
            return False
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if op == "In" and (not present or labels[key] not in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


@dataclass(frozen=True, slots=True)
class BudgetVerdict:
    """How one PodDisruptionBudget will treat the drain of the node."""

    budget: str  # namespace/name
    pods_on_node: list[str]
    disruptions_allowed: int
    current_healthy: int
    desired_healthy: int
    expected_pods: int
    never: bool  # even with every pod healthy no eviction is allowed: the drain cannot finish

    def describe(self) -> str:
        base = (
            f"PodDisruptionBudget {self.budget} covers {len(self.pods_on_node)} pod(s) on the node "
            f"({', '.join(self.pods_on_node)}): {self.current_healthy} healthy, needs {self.desired_healthy}, "
            f"allows {self.disruptions_allowed} disruption(s) now"
        )
        if self.never:
            return base + "; it can never allow one (minAvailable too high / maxUnavailable 0)"
        return base


def budget_verdicts(budgets: Iterable[Obj], pods: Iterable[Obj]) -> list[BudgetVerdict]:
    """For each budget selecting some of `pods` (the node's evictable pods), how it will treat the drain.

    `never` uses the budget's status as the disruption controller wrote it: when the pods it expects, all
    healthy, still do not exceed what it desires, no replacement can ever unlock an eviction.
    """
    pods = list(pods)
    verdicts: list[BudgetVerdict] = []
    for pdb in budgets:
        meta = pdb.get("metadata") or {}
        ns = meta.get("namespace")
        selector = (pdb.get("spec") or {}).get("selector")
        covered = [
            pod_key(p)
            for p in pods
            if (p.get("metadata") or {}).get("namespace") == ns
            and selector_matches(selector, (p.get("metadata") or {}).get("labels") or {})
        ]
        if not covered:
            continue
        status = pdb.get("status") or {}
        expected = int(status.get("expectedPods") or 0)
        desired = int(status.get("desiredHealthy") or 0)
        verdicts.append(
            BudgetVerdict(
                budget=f"{ns}/{meta.get('name')}",
                pods_on_node=covered,
                disruptions_allowed=int(status.get("disruptionsAllowed") or 0),
                current_healthy=int(status.get("currentHealthy") or 0),
                desired_healthy=desired,
                expected_pods=expected,
                never=expected - desired < 1,
            )
        )
    return verdicts
