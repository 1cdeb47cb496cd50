"""PodDisruptionBudget status, computed the way the disruption controller does.

Why it matters: the eviction subresource decides from ``status.disruptionsAllowed`` alone, and our drain
reads ``currentHealthy``/``desiredHealthy`` to explain a block, so the arithmetic follows
``pkg/controller/disruption``: minAvailable as an integer counts the matching pods; a percentage or
maxUnavailable scales against the replicas of the pods' controllers, rounding up; pods terminating or
recently evicted (``status.disruptedPods``, two minutes) are not healthy; a negative result is clamped
to 0. Pure functions over dicts; the reconciler that writes status lives in ``semantics``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "DELETION_TIMEOUT",
    "compute_status",
    "is_pod_ready",
    "matching_pods",
    "scaled_value",
]

Obj = dict[str, Any]
DELETION_TIMEOUT = timedelta(minutes=2)
# (kind, namespace, name) of a controller -> its desired replicas, or None when it does not exist
ScaleLookup = Callable[[str, str, str], "int | None"]


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    """The Ready condition is True (podutil.IsPodReady)."""
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def scaled_value(value: int | str, total: int, *, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: ints pass through, ``"50%"`` scales ``total``."""
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"invalid value for IntOrString: invalid value {text!r}") from None
    percent = int(text[:-1])
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against labels; None matches nothing."""
    if selector is None:
        return False
    for key, want in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != want:
            return False
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def matching_pods(pdb: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Pods of the PDB's namespace its selector picks (an empty policy/v1 selector picks them all)."""
    ns = pdb["metadata"].get("namespace")
    selector = (pdb.get("spec") or {}).get("selector")
    return [
        p
        for p in pods
        if p["metadata"].get("namespace") == ns
        and selector_matches(selector, p["metadata"].get("labels") or {})
    ]


def _parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _controller_ref(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in pod["metadata"].get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


def _expected_from_controllers(
    pods: Iterable[Mapping[str, Any]], scale_of: ScaleLookup
) -> tuple[int | None, str]:
    """Sum of the desired replicas of the pods' distinct controllers, or (None, why) like the real one."""
    seen: dict[tuple[str, str, str], int] = {}
    for pod in pods:
        ref = _controller_ref(pod)
        ns = pod["metadata"].get("namespace") or ""
        if ref is None:
            return None, f"found no controller ref for pod {pod['metadata']['name']!r}"
        key = (ref.get("kind") or "", ns, ref.get("name") or "")
        if key in seen:
            continue
        scale = scale_of(*key)
        if scale is None:
            return None, f"found no controllers for pod {pod['metadata']['name']!r}"
        seen[key] = scale
    return sum(seen.values()), ""


def _format_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def compute_status(
    pdb: Mapping[str, Any],
    pods: Iterable[Mapping[str, Any]],
    scale_of: ScaleLookup,
    *,
    now: datetime | None = None,
) -> Obj:
    """The PDB's new ``status`` given the pods its selector matches (already filtered)."""
    now = now or datetime.now(UTC)
    pods = list(pods)
    spec = pdb.get("spec") or {}
    old = pdb.get("status") or {}
    generation = pdb["metadata"].get("generation") or 1
    min_available = spec.get("minAvailable")
    max_unavailable = spec.get("maxUnavailable")
    error = ""
    expected = 0
    desired = 0
    if max_unavailable is not None:
        total, error = _expected_from_controllers(pods, scale_of)
        if total is not None:
            expected = total
            desired = max(0, expected - scaled_value(max_unavailable, expected, round_up=True))
    elif isinstance(min_available, int):
        expected, desired = len(pods), min_available
    elif min_available is not None:
        total, error = _expected_from_controllers(pods, scale_of)
        if total is not None:
            expected = total
            desired = scaled_value(min_available, expected, round_up=True)
    # neither set: expected and desired stay 0, so no disruption is allowed (as upstream)

    disrupted_old = old.get("disruptedPods") or {}
    disrupted: dict[str, str] = {}
    for pod in pods:
        name = pod["metadata"]["name"]
        if pod["metadata"].get("deletionTimestamp") or name not in disrupted_old:
            continue
        if _parse_time(disrupted_old[name]) + DELETION_TIMEOUT > now:
            disrupted[name] = disrupted_old[name]
    healthy = sum(
        1
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and p["metadata"]["name"] not in disrupted
        and is_pod_ready(p)
    )
    if error:
        allowed, expected, desired = 0, 0, 0
        condition = ("False", "SyncFailed", error)
    else:
        allowed = healthy - desired
        if expected <= 0 or allowed <= 0:
            allowed = 0
        condition = ("True", "SufficientPods", "") if allowed > 0 else ("False", "InsufficientPods", "")
    status: Obj = {
        "observedGeneration": generation,
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "conditions": [_condition(old, *condition, generation=generation, now=now)],
    }
    if disrupted:
        status["disruptedPods"] = disrupted
    return status


def _condition(
    old: Mapping[str, Any], status: str, reason: str, message: str, *, generation: int, now: datetime
) -> Obj:
    previous = next((c for c in old.get("conditions") or () if c.get("type") == "DisruptionAllowed"), None)
    changed = previous is None or previous.get("status") != status
    return {
        "type": "DisruptionAllowed",
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": _format_time(now) if changed else previous["lastTransitionTime"],
    }


def status_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` would change anything a reader sees (ignores nothing: conditions keep times)."""
    return dict(old or {}) != dict(new)
