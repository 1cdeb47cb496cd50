"""Pod helpers over `KubeClient.request`: paginated listing, evictions, deletes, budgets and controllers.

Evictions go to policy/v1; a server that does not serve it (404 on the subresource itself, not on the pod)
is remembered on the client and asked through policy/v1beta1 from then on. Each eviction and delete carries
the pod's UID as a precondition, so a pod recreated under the same name (a StatefulSet's) is never removed
by mistake: the 409 that answers means "the pod we meant is gone".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from kubeops.clients.kube import gc_paused
from kubeops.errors import ClusterError, Conflict, NotFound

if TYPE_CHECKING:
    from kubeops.clients.kube import KubeClient

__all__ = [
    "delete_pod",
    "evict_pod",
    "get_controller",
    "list_budgets",
    "list_pods",
]

Obj = dict[str, Any]
PAGE = 500  # kubectl's chunk size


def _paged(
    kube: KubeClient, path: str, query: Mapping[str, Any], *, what: str, keep: Callable[[Obj], Any] | None = None
) -> tuple[list[Any], str]:
    items: list[Any] = []
    token: str | None = None
    version = ""
    # every page's objects stay alive: no point in the collector walking them page after page
    with gc_paused(freeze=kube.freeze_big_lists):
        while True:
            page = kube.request("GET", path, query={**query, "limit": PAGE, "continue": token}, what=what)
            found = page.get("items") or []
            items.extend(map(keep, found) if keep is not None else found)
            del found, page["items"]  # with `keep`, only the kept part of each page outlives the page
            meta = page.get("metadata") or {}
            version = meta.get("resourceVersion") or version
            token = meta.get("continue")
            if not token:
                return items, version


def list_pods(
    kube: KubeClient,
    *,
    node: str | None = None,
    namespace: str | None = None,
    label_selector: str | None = None,
    keep: Callable[[Obj], Any] | None = None,
) -> tuple[list[Any], str]:
    """Pods (on `node`, by the ``spec.nodeName`` field selector) and the list's resourceVersion, for watching.

    `keep` maps each pod, page by page, to the part the caller needs (e.g. `kubeops.metrics.report.report_fields`),
    so a cluster's 60,000 pods never sit in memory whole.
    """
    path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
    query: dict[str, Any] = {}
    if node:
        query["fieldSelector"] = f"spec.nodeName={node}"
    if label_selector:
        query["labelSelector"] = label_selector
    where = f" on node {node}" if node else ""
    return _paged(kube, path, query, what=f"list pods{where}", keep=keep)


def list_budgets(kube: KubeClient, *, namespace: str | None = None) -> list[Obj]:
    """PodDisruptionBudgets (policy/v1), all namespaces unless one is given."""
    path = f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets" if namespace else (
        "/apis/policy/v1/poddisruptionbudgets"
    )
    return _paged(kube, path, {}, what="list PodDisruptionBudgets")[0]


def _meta(pod: Mapping[str, Any]) -> tuple[str, str, str | None]:
    meta = pod.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta["name"]), meta.get("uid")


def _delete_options(pod: Mapping[str, Any], grace_period_s: int | None, dry_run: bool) -> Obj:
    options: Obj = {}
    uid = _meta(pod)[2]
    if uid:
        options["preconditions"] = {"uid": uid}
    if grace_period_s is not None and grace_period_s >= 0:
        options["gracePeriodSeconds"] = grace_period_s
    if dry_run:
        options["dryRun"] = ["All"]
    return options


def _pod_gone(error: ClusterError) -> bool:
    """A 404 about the pod itself or a 409 on our UID precondition: the pod we meant no longer exists."""
    if isinstance(error, Conflict):
        return True
    details = getattr(error, "details", None) or {}
    return isinstance(error, NotFound) and details.get("kind") == "pods"


def evict_pod(kube: KubeClient, pod: Mapping[str, Any], *, grace_period_s: int | None = None) -> bool:
    """Ask the eviction subresource to remove `pod`; False when it was already gone.

    Raises `TooManyRequests` when a PodDisruptionBudget refuses (never retried here: the drain decides), and
    other ClusterErrors once the client's retries of 5xx and dropped connections are spent.
    """
    ns, name, _ = _meta(pod)
    version = getattr(kube, "eviction_version", "v1")
    body = {
        "apiVersion": f"policy/{version}",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": ns},
        "deleteOptions": _delete_options(pod, grace_period_s, kube.dry_run),
    }
    path = f"/api/v1/namespaces/{ns}/pods/{name}/eviction"
    try:
        kube.request("POST", path, body=body, what=f"evict pod {ns}/{name}", retry_429=False)
    except ClusterError as error:
        if _pod_gone(error):
            return False
        if isinstance(error, NotFound) and version == "v1":
            # the subresource does not speak policy/v1 (Kubernetes < 1.22): fall back once and remember it
            kube.eviction_version = "v1beta1"
            return evict_pod(kube, pod, grace_period_s=grace_period_s)
        raise
    return True


def delete_pod(kube: KubeClient, pod: Mapping[str, Any], *, grace_period_s: int | None = None) -> bool:
    """Delete `pod` directly (no budget is consulted); False when it was already gone."""
    ns, name, _ = _meta(pod)
    body = {"apiVersion": "v1", "kind": "DeleteOptions", **_delete_options(pod, grace_period_s, kube.dry_run)}
    try:
        kube.request("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}", body=body, what=f"delete pod {ns}/{name}")
    except ClusterError as error:
        if _pod_gone(error) or isinstance(error, NotFound):
            return False
        raise
    return True


_CONTROLLER_PATHS = {
    "ReplicaSet": "/apis/apps/v1/namespaces/{ns}/replicasets/{name}",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets/{name}",
    "ReplicationController": "/api/v1/namespaces/{ns}/replicationcontrollers/{name}",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs/{name}",
}


def get_controller(kube: KubeClient, kind: str, namespace: str, name: str) -> Obj | None:
    """A pod's controller object, or None when it is gone or of a kind we do not know how to read."""
    template = _CONTROLLER_PATHS.get(kind)
    if template is None:
        return None
    try:
        return kube.request("GET", template.format(ns=namespace, name=name), what=f"get {kind} {namespace}/{name}")
    except NotFound:
        return None
