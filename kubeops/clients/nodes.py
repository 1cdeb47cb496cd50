"""Node helpers over `KubeClient.request`: read, cordon, label, annotate, taint, delete, wait Ready by watch.

Every mutation is a JSON merge patch (or a DELETE) sent through the client's one mutation path, so dry-run
mode turns each into a server-side ``dryRun=All`` call: the server validates it and nothing changes. Taint
edits carry the node's resourceVersion, so two tools editing taints at once conflict instead of losing one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from kubeops.clients.aws import instance_id_from_provider_id
from kubeops.clients.kube import gc_paused
from kubeops.errors import ActionError, Conflict, NotFound

if TYPE_CHECKING:
    from kubeops.clients.kube import KubeClient

__all__ = [
    "delete_node",
    "get_node",
    "list_nodes",
    "node_address",
    "node_instance_id",
    "node_is_ready",
    "patch_metadata",
    "ready_text",
    "set_taints",
    "set_unschedulable",
    "wait_ready",
]

Obj = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"


def _path(name: str) -> str:
    return f"/api/v1/nodes/{name}"


def get_node(kube: KubeClient, name: str) -> Obj:
    """The node as JSON; `NotFound` when it does not exist."""
    return kube.request("GET", _path(name), what=f"get node {name}")


def list_nodes(kube: KubeClient, *, label_selector: str | None = None) -> list[Obj]:
    """Every node, or those matching `label_selector` (clusters have thousands at most: one page of 500 at a time)."""
    items: list[Obj] = []
    token: str | None = None
    with gc_paused(freeze=kube.freeze_big_lists):
        while True:
            query = {"limit": 500, "continue": token, **({"labelSelector": label_selector} if label_selector else {})}
            page = kube.request("GET", "/api/v1/nodes", query=query, what="list nodes")
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items


def node_is_ready(node: Mapping[str, Any]) -> bool:
    """The Ready condition is True."""
    for cond in (node.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def node_address(node: Mapping[str, Any]) -> str | None:
    """InternalIP, else Hostname, else ExternalIP: where SSH and people reach the node."""
    addresses = {a.get("type"): a.get("address") for a in (node.get("status") or {}).get("addresses") or ()}
    return addresses.get("InternalIP") or addresses.get("Hostname") or addresses.get("ExternalIP")


def node_instance_id(node: Mapping[str, Any]) -> str | None:
    """The EC2 instance id from ``spec.providerID`` (``aws:///us-east-1a/i-0abc``), or None off AWS."""
    return instance_id_from_provider_id(str((node.get("spec") or {}).get("providerID") or ""))


def _merge_patch(kube: KubeClient, name: str, patch: Obj, *, what: str) -> Obj:
    return kube.request("PATCH", _path(name), body=patch, content_type=MERGE_PATCH, what=what)


def set_unschedulable(kube: KubeClient, name: str, value: bool, *, node: Obj | None = None) -> tuple[Obj, bool]:
    """Cordon (True) or uncordon (False); returns (node before, whether a change was sent).

    `node` is the node as just read by the caller, saving a GET; the patch only touches one field anyway.
    """
    node = node if node is not None else get_node(kube, name)
    if bool((node.get("spec") or {}).get("unschedulable")) == value:
        return node, False
    verb = "cordon" if value else "uncordon"
    # null removes the field, as kubectl uncordon leaves it
    _merge_patch(kube, name, {"spec": {"unschedulable": True if value else None}}, what=f"{verb} node {name}")
    return node, True


def patch_metadata(kube: KubeClient, name: str, field: str, values: Mapping[str, str | None]) -> tuple[Obj, bool]:
    """Set (or, with None, remove) labels or annotations; returns (node before, whether a change was sent)."""
    node = get_node(kube, name)
    current = (node.get("metadata") or {}).get(field) or {}
    wanted = {k: v for k, v in values.items() if current.get(k) != v and not (v is None and k not in current)}
    if not wanted:
        return node, False
    _merge_patch(kube, name, {"metadata": {field: wanted}}, what=f"set {field} on node {name}")
    return node, True


def _same_taint(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return a.get("key") == b.get("key") and a.get("effect") == b.get("effect")


def _removes(gone: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    if taint.get("key") != gone.get("key"):
        return False
    return not gone.get("effect") or taint.get("effect") == gone["effect"]


def set_taints(
    kube: KubeClient,
    name: str,
    *,
    add: list[Obj] | None = None,
    remove: list[Obj] | None = None,
    attempts: int = 5,
) -> tuple[Obj, bool]:
    """Add (replacing same key+effect) and remove taints with optimistic concurrency; (node before, changed).

    A removal without an effect removes every taint with that key, like ``kubectl taint node n key-``.
    """
    for _ in range(attempts):
        node = get_node(kube, name)
        before = list((node.get("spec") or {}).get("taints") or [])
        taints = list(before)
        for gone in remove or ():
            taints = [t for t in taints if not _removes(gone, t)]
        for new in add or ():
            taints = [t for t in taints if not _same_taint(t, new)] + [new]
        if taints == before:
            return node, False
        patch = {
            "metadata": {"resourceVersion": node["metadata"].get("resourceVersion")},
            "spec": {"taints": taints or None},
        }
        try:
            _merge_patch(kube, name, patch, what=f"set taints on node {name}")
            return node, True
        except Conflict:
            continue  # someone else changed the node in between: re-read and re-apply
    raise ActionError(f"could not update taints of node {name}: it kept changing ({attempts} conflicts)")


def delete_node(kube: KubeClient, name: str) -> bool:
    """Delete the Node object; False when it was already gone (idempotent)."""
    try:
        kube.request("DELETE", _path(name), what=f"delete node {name}")
    except NotFound:
        return False
    return True


def ready_text(node: Mapping[str, Any]) -> str:
    """Say "Ready=False (KubeletNotReady)": the node's Ready condition in a few words, for messages."""
    ready = next((c for c in (node.get("status") or {}).get("conditions") or () if c.get("type") == "Ready"), {})
    reason = ready.get("reason")
    return f"Ready={ready.get('status', 'Unknown')}" + (f" ({reason})" if reason else "")


def _boot_id(node: Mapping[str, Any]) -> str | None:
    return ((node.get("status") or {}).get("nodeInfo") or {}).get("bootID")


def wait_ready(
    kube: KubeClient,
    name: str,
    *,
    timeout_s: float,
    new_boot_than: str | None = None,
    on_seen: Callable[[Obj], None] | None = None,
) -> Obj:
    """Block until the node is Ready (and, after a reboot, reports a bootID other than `new_boot_than`).

    Watches the one node rather than polling, re-watching from the last version on a dropped stream; raises
    ActionError naming the last condition seen when `timeout_s` passes. `on_seen` gets every state of the node
    read or watched (for progress reports).
    """
    seen = on_seen or (lambda _node: None)
    deadline = time.monotonic() + timeout_s

    def done(node: Mapping[str, Any]) -> bool:
        fresh = new_boot_than is None or (_boot_id(node) not in (None, new_boot_than))
        return node_is_ready(node) and fresh

    node = get_node(kube, name)
    last = node
    seen(last)
    version = node["metadata"].get("resourceVersion")
    while not done(last):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            ready = next(
                (c for c in (last.get("status") or {}).get("conditions") or () if c.get("type") == "Ready"), {}
            )
            why = ready.get("message") or ready.get("reason") or "no reason given"
            raise ActionError(
                f"node {name} did not become Ready within {timeout_s:.0f}s "
                f"(Ready={ready.get('status', 'Unknown')}: {why})"
            )
        query = {"fieldSelector": f"metadata.name={name}", "resourceVersion": version}
        expired = False
        for event in kube.watch("/api/v1/nodes", query=query, timeout_s=min(remaining, 300), what=f"watch node {name}"):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                expired = True
                break
            version = (obj.get("metadata") or {}).get("resourceVersion") or version
            if kind == "DELETED":
                raise ActionError(f"node {name} was deleted while waiting for it to become Ready")
            if kind in ("ADDED", "MODIFIED"):
                last = obj
                seen(last)
                if done(last):
                    break
        if expired:
            last = get_node(kube, name)
            seen(last)
            version = last["metadata"].get("resourceVersion")
    return last
