"""The ``pods/eviction`` subresource (policy/v1 and policy/v1beta1), as kube-apiserver's EvictionREST does it.

Why exact: ``kubectl drain`` and our own drain branch on the status code and print the message, so these follow
``pkg/registry/core/pod/storage/eviction.go``: 404 for a missing pod; pods that are not Running (Pending,
Succeeded, Failed) or already terminating skip the budget check; more than one matching PDB is a 500; an
unready pod may go when the budget is already met (or ``unhealthyPodEvictionPolicy: AlwaysAllow``); otherwise a
PDB whose status is stale or has ``disruptionsAllowed == 0`` answers 429 with the real message and a
``DisruptionBudget`` cause. A permitted eviction decrements ``disruptionsAllowed`` and records the pod in
``disruptedPods`` in the same critical section (the store lock), so two concurrent evictions cannot both pass,
then deletes the pod gracefully with the eviction's DeleteOptions. ``dryRun`` changes nothing.

Scenario setting ``eviction_versions`` (default ``[v1, v1beta1]``): the Eviction versions the subresource
accepts. ``[v1beta1]`` imitates a server older than 1.22: a policy/v1 Eviction answers 404 and discovery lists
the subresource as policy/v1beta1 (what ``kubectl drain`` reads to choose), so clients' fallbacks can be tested.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kubeops.sandbox import status as st
from kubeops.sandbox.pdb import PDB_RESOURCE, is_pod_ready, selector_matches
from kubeops.sandbox.store import rfc3339

if TYPE_CHECKING:
    from kubeops.sandbox.cluster import Cluster

__all__ = ["EVICTION_BLOCKED_MESSAGE", "EVICTION_VERSIONS", "evict", "install", "served_versions"]

Obj = dict[str, Any]
EVICTION_BLOCKED_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."
MULTIPLE_PDBS_MESSAGE = (
    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
)
MAX_DISRUPTED_PODS = 2000
EVICTION_VERSIONS = ("v1", "v1beta1")  # newest first: discovery shows the first one served


def served_versions(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """The scenario's ``eviction_versions`` in preference order; ValueError names what is wrong."""
    raw = settings.get("eviction_versions", list(EVICTION_VERSIONS))
    if not isinstance(raw, list | tuple) or not raw:
        raise ValueError(f"eviction_versions must be a non-empty list of {', '.join(EVICTION_VERSIONS)}")
    unknown = [v for v in raw if v not in EVICTION_VERSIONS]
    if unknown:
        raise ValueError(f"eviction_versions: {unknown[0]!r} is not one of {', '.join(EVICTION_VERSIONS)}")
    return tuple(v for v in EVICTION_VERSIONS if v in raw)


def _success() -> tuple[int, Obj]:
    body = st.success()
    body["code"] = 201
    return 201, body


def _too_many(message: str, cause: str, retry_after_s: int = 0) -> st.ApiError:
    details: Obj = {"causes": [{"reason": "DisruptionBudget", "message": cause}]}
    headers = {}
    if retry_after_s:
        details["retryAfterSeconds"] = retry_after_s
        headers["Retry-After"] = str(retry_after_s)
    return st.ApiError(429, "TooManyRequests", message, details=details, headers=headers)


def _can_ignore_pdb(pod: Obj) -> bool:
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    return phase in ("Succeeded", "Failed", "Pending") or bool(pod["metadata"].get("deletionTimestamp"))


def _delete_options(body: Obj) -> Obj:
    opts = body.get("deleteOptions") or {}
    return opts if isinstance(opts, dict) else {}


def evict(cluster: Cluster, namespace: str | None, name: str, body: Obj, dry_run: bool) -> tuple[int, Obj]:
    """Handle ``POST .../pods/{name}/eviction``; see the module docstring."""
    store = cluster.store
    ns = namespace or "default"
    opts = _delete_options(body)
    dry_run = dry_run or "All" in (opts.get("dryRun") or [])
    api_version = str(body.get("apiVersion") or "")
    if api_version.startswith("policy/") and api_version.split("/", 1)[1] not in served_versions(cluster.settings):
        raise st.not_found_path()  # as an old server answers a version it does not know
    body_name = (body.get("metadata") or {}).get("name")
    if body_name and body_name != name:
        raise st.bad_request(f"name in URL does not match name in Eviction object: {name} != {body_name}")
    with store.lock:
        pod = store.try_get("pods", ns, name, copy=False)
        if pod is None:
            raise st.not_found("", "pods", name)
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != pod["metadata"].get("uid"):
            raise st.conflict("", "pods", name, f"Precondition failed: UID in precondition: {pre['uid']}, "
                              f"UID in object meta: {pod['metadata'].get('uid')}")
        if not _can_ignore_pdb(pod):
            pdbs = [p for p in store.iter(PDB_RESOURCE, ns)
                    if selector_matches((p.get("spec") or {}).get("selector"), pod["metadata"].get("labels") or {})]
            if len(pdbs) > 1:
                raise st.ApiError(500, "InternalError", MULTIPLE_PDBS_MESSAGE)
            if pdbs:
                _check_and_decrement(cluster, pod, pdbs[0], dry_run)
        _delete(cluster, ns, name, opts, dry_run)
    return _success()


def _check_and_decrement(cluster: Cluster, pod: Obj, pdb: Obj, dry_run: bool) -> None:
    spec, status = pdb.get("spec") or {}, pdb.get("status") or {}
    pdb_name = pdb["metadata"]["name"]
    current = int(status.get("currentHealthy") or 0)
    desired = int(status.get("desiredHealthy") or 0)
    if not is_pod_ready(pod):
        if spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow":
            return
        if current >= desired and desired > 0:
            return
    if int(status.get("observedGeneration") or 0) < int(pdb["metadata"].get("generation") or 1):
        raise _too_many(EVICTION_BLOCKED_MESSAGE,
                        f"The disruption budget {pdb_name} is still being processed by the server.", 10)
    allowed = int(status.get("disruptionsAllowed") or 0)
    if allowed < 0:
        raise st.ApiError(403, "Forbidden", f'poddisruptionbudgets.policy "{pdb_name}" is forbidden: '
                          "pdb disruptions allowed is negative")
    if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_PODS:
        raise st.ApiError(403, "Forbidden", f'poddisruptionbudgets.policy "{pdb_name}" is forbidden: '
                          "DisruptedPods map too big - too many evictions not confirmed by PDB controller")
    if allowed == 0:
        raise _too_many(EVICTION_BLOCKED_MESSAGE,
                        f"The disruption budget {pdb_name} needs {desired} healthy pods and has {current} currently")
    if dry_run:
        return
    pod_name = pod["metadata"]["name"]
    stamp = rfc3339(cluster.clock.now())

    def decrement(o: Obj) -> None:
        s = o.setdefault("status", {})
        s["disruptionsAllowed"] = int(s.get("disruptionsAllowed") or 0) - 1
        s.setdefault("disruptedPods", {})[pod_name] = stamp
        if s["disruptionsAllowed"] == 0:
            for c in s.get("conditions") or ():
                if c.get("type") == "DisruptionAllowed" and c.get("status") != "False":
                    c.update(status="False", reason="InsufficientPods", lastTransitionTime=stamp)

    cluster.store.modify(PDB_RESOURCE, pdb["metadata"]["namespace"], pdb_name, decrement)


def _delete(cluster: Cluster, ns: str, name: str, opts: Obj, dry_run: bool) -> None:
    grace = opts.get("gracePeriodSeconds")
    cluster.store.delete(
        "pods", ns, name,
        grace_period_s=int(grace) if grace is not None else None,
        propagation_policy=opts.get("propagationPolicy"),
        preconditions=opts.get("preconditions") or None,
        dry_run=dry_run,
    )


def install(cluster: Cluster) -> None:
    """Serve POST pods/{name}/eviction (both policy versions route here; discovery shows the newest served)."""
    cluster.subresources[("pods", "eviction")] = evict
    version = served_versions(cluster.settings)[0]
    pods = cluster.catalog.by_key("pods")
    subs = tuple(dataclasses.replace(s, version=version) if s.name == "eviction" else s for s in pods.subresources)
    cluster.catalog.replace(dataclasses.replace(pods, subresources=subs))
