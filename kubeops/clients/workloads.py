"""Workload helpers over `KubeClient.request`: versioned controllers, the role Service and its Endpoints.

Controllers are apps/v1 Deployments or core/v1 ReplicationControllers; both are read into one `Controller`
shape so the rollout logic does not care which. Every mutation here is idempotent (create answers "exists" on
409, delete answers "gone" on 404, scale sets an absolute count) and goes through `request`, which adds
``dryRun=All`` in dry-run mode.

The Service is created when missing and otherwise never written: a rollout must not touch it (or the load
balancer behind it). An existing Service whose selector differs from the rendered one is an error, not a fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubeops.errors import ActionError, Conflict, NotFound

if TYPE_CHECKING:
    from kubeops.clients.kube import KubeClient

Obj = dict[str, Any]
KINDS = ("Deployment", "ReplicationController")

__all__ = [
    "Controller",
    "EndpointAddress",
    "collection_path",
    "controller_of",
    "create_controller",
    "delete_controller",
    "endpoint_addresses",
    "ensure_service",
    "get_controller",
    "get_service",
    "list_controllers",
    "list_pods",
    "read_endpoints",
    "scale_controller",
]


def _collection(kind: str, namespace: str) -> str:
    if kind == "Deployment":
        return f"/apis/apps/v1/namespaces/{namespace}/deployments"
    if kind == "ReplicationController":
        return f"/api/v1/namespaces/{namespace}/replicationcontrollers"
    raise ValueError(f"unsupported controller kind {kind!r}")


def collection_path(kind: str, namespace: str) -> str:
    """The API path of a controller kind's collection in a namespace (to list or watch it)."""
    return _collection(kind, namespace)


@dataclass(frozen=True, slots=True)
class Controller:
    """What a rollout needs to know about one versioned controller."""

    kind: str
    name: str
    namespace: str
    replicas: int  # spec.replicas: what we asked for
    ready: int  # status.readyReplicas
    current: int  # status.replicas: pods that exist, terminating ones included
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    generation: int = 0
    observed_generation: int = 0
    uid: str = ""

    @property
    def settled(self) -> bool:
        """The controller has seen its latest spec (so `ready` describes it)."""
        return self.observed_generation >= self.generation

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


def _controller(obj: Obj, kind: str) -> Controller:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    return Controller(
        kind=kind,
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        replicas=1 if spec.get("replicas") is None else int(spec["replicas"]),  # the API's default is 1
        ready=int(status.get("readyReplicas") or 0),
        current=int(status.get("replicas") or 0),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        generation=int(meta.get("generation") or 0),
        observed_generation=int(status.get("observedGeneration") or 0),
        uid=meta.get("uid", ""),
    )


def controller_of(obj: Obj, kind: str) -> Controller:
    """A controller object (read, listed or watched) as a `Controller`."""
    return _controller(obj, kind)


def list_controllers(kube: KubeClient, *, namespace: str, label_selector: str) -> list[Controller]:
    """Deployments and ReplicationControllers matching `label_selector`, sorted by name."""
    found: list[Controller] = []
    for kind in KINDS:
        data = kube.request(
            "GET",
            _collection(kind, namespace),
            query={"labelSelector": label_selector},
            what=f"list {kind}s in {namespace}",
        )
        found.extend(_controller(item, kind) for item in data.get("items") or [])
    return sorted(found, key=lambda c: (c.name, c.kind))


def get_controller(kube: KubeClient, kind: str, namespace: str, name: str) -> Controller | None:
    """The controller, or None when it does not exist."""
    try:
        obj = kube.request("GET", f"{_collection(kind, namespace)}/{name}", what=f"read {kind} {namespace}/{name}")
    except NotFound:
        return None
    return _controller(obj, kind)


def create_controller(kube: KubeClient, manifest: Obj) -> tuple[Controller, bool]:
    """Create from `manifest`; (controller, True) when created, (existing, False) when it was already there.

    An existing controller is never modified: a version's template is immutable by convention.
    """
    kind = manifest["kind"]
    meta = manifest["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        what = f"create {kind} {namespace}/{name}"
        obj = kube.request("POST", _collection(kind, namespace), body=manifest, what=what)
    except Conflict:
        existing = get_controller(kube, kind, namespace, name)
        if existing is None:  # deleted between the two calls: let the caller retry
            raise
        return existing, False
    return _controller(obj, kind), True


def scale_controller(kube: KubeClient, kind: str, namespace: str, name: str, replicas: int) -> Controller:
    """Set spec.replicas to an absolute count (idempotent, so a resumed step may repeat it)."""
    obj = kube.request(
        "PATCH",
        f"{_collection(kind, namespace)}/{name}",
        body={"spec": {"replicas": replicas}},
        content_type="application/merge-patch+json",
        what=f"scale {kind} {namespace}/{name} to {replicas}",
    )
    return _controller(obj, kind)


def delete_controller(kube: KubeClient, kind: str, namespace: str, name: str) -> bool:
    """Delete with background propagation (its pods go too); False when it was already gone."""
    try:
        kube.request(
            "DELETE",
            f"{_collection(kind, namespace)}/{name}",
            query={"propagationPolicy": "Background"},
            what=f"delete {kind} {namespace}/{name}",
        )
    except NotFound:
        return False
    return True


def get_service(kube: KubeClient, namespace: str, name: str) -> Obj | None:
    """The Service object, or None."""
    try:
        return kube.request("GET", f"/api/v1/namespaces/{namespace}/services/{name}", what=f"read Service {name}")
    except NotFound:
        return None


def ensure_service(kube: KubeClient, manifest: Obj) -> tuple[str, Obj]:
    """("created", obj) or ("exists", obj); never modifies an existing Service.

    Raises ActionError when the existing Service selects something else: fixing a selector by hand is a decision
    for a person, because it moves live traffic.
    """
    meta = manifest["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    existing = get_service(kube, namespace, name)
    if existing is None:
        try:
            created = kube.request(
                "POST",
                f"/api/v1/namespaces/{namespace}/services",
                body=manifest,
                what=f"create Service {namespace}/{name}",
            )
            return "created", created
        except Conflict:
            existing = get_service(kube, namespace, name)
            if existing is None:
                raise
    check_service_selector(existing, manifest)
    return "exists", existing


def check_service_selector(existing: Obj, manifest: Obj) -> None:
    """Fail clearly when an existing Service does not select what the app config says."""
    want = manifest["spec"]["selector"]
    have = (existing.get("spec") or {}).get("selector") or {}
    if have != want:
        meta = manifest["metadata"]
        raise ActionError(
            f"Service {meta['namespace']}/{meta['name']} exists with selector {_labels(have)}, "
            f"but the app needs {_labels(want)}; kubeops does not change an existing Service",
            hint="fix the Service's selector (or the app's role/name/service.name) by hand, then deploy again",
        )


def _labels(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "(none)"


@dataclass(frozen=True, slots=True)
class EndpointAddress:
    """One address of a Service's Endpoints, with the pod behind it when the endpoint names one."""

    ip: str
    pod: str | None
    ready: bool


def read_endpoints(kube: KubeClient, namespace: str, name: str) -> list[EndpointAddress]:
    """Every address of the Service's Endpoints object (ready and not); empty when it has none or no object."""
    try:
        obj = kube.request("GET", f"/api/v1/namespaces/{namespace}/endpoints/{name}", what=f"read Endpoints {name}")
    except NotFound:
        return []
    return endpoint_addresses(obj)


def endpoint_addresses(obj: Obj | None) -> list[EndpointAddress]:
    """Every address (ready and not) of an Endpoints object read or watched; empty for None."""
    out: list[EndpointAddress] = []
    for subset in (obj or {}).get("subsets") or []:
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for address in subset.get(key) or []:
                ref = address.get("targetRef") or {}
                pod = ref.get("name") if ref.get("kind", "Pod") == "Pod" else None
                out.append(EndpointAddress(ip=address.get("ip", ""), pod=pod, ready=ready))
    return out


def list_pods(kube: KubeClient, *, namespace: str, label_selector: str) -> list[Obj]:
    """Pods matching a label selector in one namespace (the apps of one role are small: one page)."""
    data = kube.request(
        "GET",
        f"/api/v1/namespaces/{namespace}/pods",
        query={"labelSelector": label_selector},
        what=f"list pods {label_selector} in {namespace}",
    )
    return list(data.get("items") or [])
