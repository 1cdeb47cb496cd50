"""Leases (the cluster lock) and ConfigMaps (in-cluster checkpoints) as plain JSON, through `KubeClient.request`.

Why raw JSON rather than the generated models: the lock needs the exact resourceVersion round trip (optimistic
concurrency: a PUT with a stale version answers 409, which is how two runs racing for the lock are told apart),
and MicroTime fields (``renewTime``) are kept as the server wrote them.

These helpers never send ``dryRun``: the lock and the checkpoints must be real even when the client that
builds them is asked to plan. Callers build a non-dry-run `KubeClient` for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubeops.errors import NotFound

if TYPE_CHECKING:
    from kubeops.clients.kube import KubeClient

Obj = dict[str, Any]

__all__ = [
    "create_configmap",
    "create_lease",
    "delete_lease",
    "get_configmap",
    "get_lease",
    "list_configmaps",
    "replace_configmap",
    "replace_lease",
]


_LEASES = ("lease", "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases")
_CONFIGMAPS = ("configmap", "/api/v1/namespaces/{namespace}/configmaps")


def _path(kind: tuple[str, str], namespace: str, name: str | None = None) -> str:
    base = kind[1].format(namespace=namespace)
    return base if name is None else f"{base}/{name}"


def _get(kube: KubeClient, kind: tuple[str, str], namespace: str, name: str) -> Obj | None:
    try:
        return kube.request("GET", _path(kind, namespace, name), what=f"read {kind[0]} {namespace}/{name}")
    except NotFound:
        return None


def _write(kube: KubeClient, method: str, kind: tuple[str, str], namespace: str, body: Obj) -> Obj:
    """POST (create: no name in the path) or PUT (replace) `body`; the server's answer."""
    name = body["metadata"]["name"]
    path, verb = (_path(kind, namespace), "create") if method == "POST" else (_path(kind, namespace, name), "update")
    return kube.request(method, path, body=body, what=f"{verb} {kind[0]} {namespace}/{name}")


def get_lease(kube: KubeClient, namespace: str, name: str) -> Obj | None:
    """The Lease, or None when there is none."""
    return _get(kube, _LEASES, namespace, name)


def create_lease(kube: KubeClient, namespace: str, body: Obj) -> Obj:
    """Create a Lease; `Conflict` (409 AlreadyExists) when another run created it first."""
    return _write(kube, "POST", _LEASES, namespace, body)


def replace_lease(kube: KubeClient, namespace: str, body: Obj) -> Obj:
    """PUT the Lease; `body.metadata.resourceVersion` must be the one read, else `Conflict` (someone wrote since)."""
    return _write(kube, "PUT", _LEASES, namespace, body)


def delete_lease(kube: KubeClient, namespace: str, name: str, *, resource_version: str | None = None) -> bool:
    """Delete the Lease (only if still at `resource_version` when given); False when it was already gone."""
    body: Obj = {"apiVersion": "v1", "kind": "DeleteOptions"}
    if resource_version:
        body["preconditions"] = {"resourceVersion": resource_version}
    try:
        kube.request("DELETE", _path(_LEASES, namespace, name), body=body, what=f"delete lease {namespace}/{name}")
    except NotFound:
        return False
    return True


def get_configmap(kube: KubeClient, namespace: str, name: str) -> Obj | None:
    """The ConfigMap, or None when there is none."""
    return _get(kube, _CONFIGMAPS, namespace, name)


def create_configmap(kube: KubeClient, namespace: str, body: Obj) -> Obj:
    """Create a ConfigMap; `Conflict` when it exists."""
    return _write(kube, "POST", _CONFIGMAPS, namespace, body)


def replace_configmap(kube: KubeClient, namespace: str, body: Obj) -> Obj:
    """PUT a ConfigMap (with the resourceVersion read, for optimistic concurrency, or without to overwrite)."""
    return _write(kube, "PUT", _CONFIGMAPS, namespace, body)


def list_configmaps(kube: KubeClient, namespace: str, *, label_selector: str) -> list[Obj]:
    """Every ConfigMap of `namespace` matching `label_selector`, following pagination."""
    items: list[Obj] = []
    token: str | None = None
    while True:
        page = kube.request(
            "GET",
            _path(_CONFIGMAPS, namespace),
            query={"labelSelector": label_selector, "limit": 500, "continue": token},
            what=f"list configmaps in {namespace}",
        )
        items.extend(page.get("items") or [])
        token = (page.get("metadata") or {}).get("continue") or None
        if not token:
            return items
