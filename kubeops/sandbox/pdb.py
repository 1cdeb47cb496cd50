"""PodDisruptionBudget status, computed the way the disruption controller does.

Why it matters: the eviction subresource decides from ``status.disruptionsAllowed`` alone, and our drain
reads ``currentHealthy``/``desiredHealthy`` to explain a block, so the arithmetic follows
``pkg/controller/disruption``: minAvailable as an integer counts the matching pods; a percentage or
maxUnavailable scales against the replicas of the pods' controllers, rounding up; pods terminating or
recently evicted (``status.disruptedPods``, two minutes) are not healthy; a negative result is clamped
to 0. Pure functions over dicts, then `PdbController`, the reconciler that writes the status.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from kubeops.sandbox.tracker import OWNER_RESOURCES, controller_ref, tracker_for

__all__ = [
    "DELETION_TIMEOUT",
    "compute_status",
    "is_pod_ready",
    "matching_pods",
    "scaled_value",
]

Obj = dict[str, Any]
DELETION_TIMEOUT = timedelta(minutes=2)
# (kind, namespace, name) of a pod's controller -> (identity of the controller that owns the scale, its desired
# replicas), or None when it does not exist. A ReplicaSet of a Deployment answers with the Deployment, so the
# pods of old and new ReplicaSets are counted once, as upstream's finders do.
ScaleLookup = Callable[[str, str, str], "tuple[str, int] | None"]


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


def _expected_from_controllers(
    pods: Iterable[Mapping[str, Any]], scale_of: ScaleLookup
) -> tuple[int | None, str]:
    """Sum of the desired replicas of the pods' distinct controllers, or (None, why) like the real one."""
    seen: dict[str, int] = {}
    for pod in pods:
        ref = controller_ref(pod)
        ns = pod["metadata"].get("namespace") or ""
        if ref is None:
            return None, f"found no controller ref for pod {pod['metadata']['name']!r}"
        found = scale_of(ref.get("kind") or "", ns, ref.get("name") or "")
        if found is None:
            return None, f"found no controllers for pod {pod['metadata']['name']!r}"
        seen[found[0]] = found[1]
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


PDB_RESOURCE = "poddisruptionbudgets.policy"
_DIRTY = "__pdb__"


class PdbController:
    """Keeps each PDB's member pods from pod events and rewrites the status of PDBs whose members changed
    (the disruption controller). Also re-checks a PDB when a recorded disruption expires."""

    def __init__(self, tracker: Any) -> None:
        self.t = tracker
        self.store = tracker.store
        self.selectors: dict[str, dict[str, Any]] = {}  # "ns/name" -> selector (None matches nothing)
        self.by_ns: dict[str, set[str]] = {}
        self.members: dict[tuple[str, str], set[tuple[str, str]]] = {}
        tracker.listeners["pods"].append(self._on_pod)
        tracker.listeners[PDB_RESOURCE].append(self._on_pdb)
        with self.store.lock:
            for obj in self.store.iter(PDB_RESOURCE):
                self._track(obj)

    def _on_pod(self, event: Any) -> None:
        names = self.by_ns.get(event.namespace)
        if not names:
            return
        new = None if event.type == "DELETED" else event.obj
        for name in names:
            key = (event.namespace, name)
            selector = self.selectors.get(f"{event.namespace}/{name}")
            in_new = new is not None and selector_matches(selector, new["metadata"].get("labels") or {})
            in_old = event.old is not None and selector_matches(selector, event.old["metadata"].get("labels") or {})
            if in_new:
                self.members[key].add((event.namespace, event.name))
            elif in_old:
                self.members[key].discard((event.namespace, event.name))
            if in_new or in_old:
                self.t.dirty[_DIRTY].add(key)

    def _on_pdb(self, event: Any) -> None:
        if event.type == "DELETED":
            self.selectors.pop(f"{event.namespace}/{event.name}", None)
            self.by_ns.get(event.namespace, set()).discard(event.name)
            self.members.pop((event.namespace, event.name), None)
        else:
            self._track(event.obj)

    def _track(self, pdb: Obj) -> None:
        ns, name = pdb["metadata"]["namespace"], pdb["metadata"]["name"]
        selector = (pdb.get("spec") or {}).get("selector")
        key = (ns, name)
        if self.selectors.get(f"{ns}/{name}") != selector or key not in self.members:
            self.selectors[f"{ns}/{name}"] = selector
            self.by_ns.setdefault(ns, set()).add(name)
            self.members[key] = {k for k, p in self.t.pods.items()
                                 if k[0] == ns and selector_matches(selector, p["metadata"].get("labels") or {})}
        self.t.dirty[_DIRTY].add(key)

    def scale_of(self, kind: str, ns: str, name: str) -> tuple[str, int] | None:
        """Upstream's finders: a ReplicaSet owned by a Deployment answers with the Deployment's scale."""
        resource = OWNER_RESOURCES.get(kind)
        if resource is None or kind == "DaemonSet":
            return None
        obj = self.store.try_get(resource, ns, name, copy=False)
        if obj is None:
            return None
        if kind == "ReplicaSet":
            ref = controller_ref(obj)
            if ref is not None and ref.get("kind") == "Deployment":
                dep = self.store.try_get("deployments.apps", ns, ref.get("name") or "", copy=False)
                if dep is None:
                    return None
                return f"Deployment/{ns}/{ref.get('name')}", int((dep.get("spec") or {}).get("replicas", 1))
        return f"{kind}/{ns}/{name}", int((obj.get("spec") or {}).get("replicas", 1))

    def reconcile(self, cluster: Any, now: float) -> None:
        self.t.fire_timers(now)
        for ns, _ in self.t.take("__pdb_scale__"):
            with self.store.lock:
                for name in self.by_ns.get(ns, ()):
                    self.t.dirty[_DIRTY].add((ns, name))
        for key in self.t.take(_DIRTY):
            self.sync(key, now)

    def sync(self, key: tuple[str, str], now: float) -> None:
        """Recompute and write one PDB's status (no write when nothing changed)."""
        from kubeops.sandbox.status import ApiError

        with self.store.lock:
            pdb = self.store.try_get(PDB_RESOURCE, *key, copy=False)
            if pdb is None:
                return
            pods = [self.t.pods[k] for k in self.members.get(key, ()) if k in self.t.pods]
            when = datetime.fromtimestamp(now, UTC)
            status = compute_status(pdb, pods, self.scale_of, now=when)
            for stamp in (status.get("disruptedPods") or {}).values():
                self.t.later((_parse_time(stamp) + DELETION_TIMEOUT).timestamp() + 0.01, _DIRTY, key)
            if pdb.get("status") == status:
                return

            def write(o: Obj) -> None:
                o["status"] = status

            try:
                self.store.modify(PDB_RESOURCE, key[0], key[1], write)
            except ApiError:
                self.t.later(now + 0.5, _DIRTY, key)


def install(cluster: Any) -> None:
    """Register the disruption controller (PDB status) on the cluster."""
    cluster.add_reconciler(PdbController(tracker_for(cluster)))
