"""Events kubeops records on the objects it acts on, so `kubectl describe node` tells what kubeops did and when.

Why Events: they are where an operator looks first (`kubectl describe`, `kubectl events`), next to the control
plane's own (NodeNotSchedulable, Killing, Scheduled...), and they expire by themselves. Each names the run, so a
node's history leads to the run's record (`kubeops runs`).

Best effort by design: an Event is a note, not the work; a cluster that refuses it (RBAC without ``events
create``, an API hiccup) must not fail a maintenance run at 3 a.m. `record` answers False then and the caller logs
it. Dry run is applied where it always is: the client sends ``dryRun=All``, so nothing is stored.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kubeops.errors import ClusterError

if TYPE_CHECKING:
    from kubeops.clients.kube import KubeClient

__all__ = ["COMPONENT", "node_ref", "record"]

COMPONENT = "kubeops"
RUN_ANNOTATION = "kubeops.io/run-id"


def node_ref(name: str) -> dict[str, str]:
    """A Node as Events refer to it: the name doubles as uid, as the kubelet and node controller write it (and
    as `kubectl describe node` searches)."""
    return {"kind": "Node", "name": name, "uid": name, "apiVersion": "v1"}


def record(
    kube: KubeClient,
    *,
    regarding: Mapping[str, Any],
    reason: str,
    message: str,
    run_id: str,
    action: str,
    type_: str = "Normal",
) -> bool:
    """Create a core/v1 Event about `regarding` (an ObjectReference); False when the API refused it."""
    namespace = regarding.get("namespace") or "default"
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{regarding.get('name', 'object')}.kubeops-", "namespace": namespace,
                     "annotations": {RUN_ANNOTATION: run_id}},
        "involvedObject": dict(regarding),
        "reason": reason,
        "message": message,
        "type": type_,
        "action": action,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": socket.gethostname()[:128],
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    try:
        kube.request("POST", f"/api/v1/namespaces/{namespace}/events", body=body, retry=False,
                     what=f"record event {reason} on {regarding.get('kind', '').lower()}/{regarding.get('name')}")
    except ClusterError:
        return False
    return True
