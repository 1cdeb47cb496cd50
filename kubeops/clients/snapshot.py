"""Read-only copy of a cluster for rehearsals: list/get on the Kubernetes API, describe on Auto Scaling.

Why a client module of its own: a snapshot must never change anything, so this module has no mutating call at
all (only ``GET`` through `KubeClient.request` and ``describe_*`` through `AwsClient._call`), and it must never
carry a secret, so what is dropped is decided here, at the edge, before anything is written:

- Secrets are never listed; ConfigMaps are never listed (their data is configuration, often credentials).
- ``env[].value`` of every container (``valueFrom`` references are kept: they name a key, never its value),
  the ``kubectl.kubernetes.io/last-applied-configuration`` annotation (a full copy of the manifest, env included)
  and ``metadata.managedFields`` are removed from every object.

The document (`SNAPSHOT_FORMAT`) is one JSON object: a ``header`` (format version, taken at, cluster, server
version, namespaces, what was dropped and why, counts) and ``objects`` (resource key -> list of objects, as the
API returned them, status included) and ``autoscaling_groups`` (for nodes with ``aws:///`` provider IDs: min,
max, desired, instances, suspended processes, lifecycle hooks, launch template or configuration reference).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from kubeops.clients.aws import instance_id_from_provider_id
from kubeops.errors import ClusterError, NotFound

if TYPE_CHECKING:
    from kubeops.clients.aws import AwsClient
    from kubeops.clients.kube import KubeClient

__all__ = ["DROPPED", "RESOURCES", "SNAPSHOT_FORMAT", "sanitize", "take_snapshot"]

SNAPSHOT_FORMAT = "kubeops.io/snapshot/v1"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
DROPPED = {
    "secrets": "never read: Secrets hold credentials",
    "configmaps": "never read: ConfigMap data is configuration and often credentials",
    "env values": "spec.containers[].env[].value (and init/ephemeral containers) removed; valueFrom kept",
    LAST_APPLIED: "annotation removed: a full copy of the manifest, env values included",
    "managedFields": "metadata.managedFields removed: field ownership, not state",
}

# (store key the sandbox uses, API path prefix, namespaced); the order is the order the sandbox loads them in.
RESOURCES: tuple[tuple[str, str, bool], ...] = (
    ("namespaces", "/api/v1/namespaces", False),
    ("priorityclasses.scheduling.k8s.io", "/apis/scheduling.k8s.io/v1/priorityclasses", False),
    ("customresourcedefinitions.apiextensions.k8s.io",
     "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", False),
    ("nodes", "/api/v1/nodes", False),
    ("deployments.apps", "/apis/apps/v1/deployments", True),
    ("replicasets.apps", "/apis/apps/v1/replicasets", True),
    ("statefulsets.apps", "/apis/apps/v1/statefulsets", True),
    ("daemonsets.apps", "/apis/apps/v1/daemonsets", True),
    ("jobs.batch", "/apis/batch/v1/jobs", True),
    ("replicationcontrollers", "/api/v1/replicationcontrollers", True),
    ("poddisruptionbudgets.policy", "/apis/policy/v1/poddisruptionbudgets", True),
    ("services", "/api/v1/services", True),
    ("endpoints", "/api/v1/endpoints", True),
    ("endpointslices.discovery.k8s.io", "/apis/discovery.k8s.io/v1/endpointslices", True),
    ("pods", "/api/v1/pods", True),
)
_OPTIONAL = {"customresourcedefinitions.apiextensions.k8s.io", "endpointslices.discovery.k8s.io"}
_PAGE = 500
Obj = dict[str, Any]


def _strip_env(spec: Obj) -> None:
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for container in spec.get(key) or ():
            for env in container.get("env") or ():
                env.pop("value", None)


def sanitize(obj: Obj) -> Obj:
    """Drop what `DROPPED` names from one object (in place) and return it; pod templates are cleaned too."""
    meta = obj.get("metadata") or {}
    meta.pop("managedFields", None)
    annotations = meta.get("annotations")
    if annotations and LAST_APPLIED in annotations:
        del annotations[LAST_APPLIED]
    spec = obj.get("spec")
    if isinstance(spec, dict):
        _strip_env(spec)
        template = spec.get("template")
        if isinstance(template, dict):
            tmeta = template.get("metadata") or {}
            tmeta.pop("managedFields", None)
            if isinstance(template.get("spec"), dict):
                _strip_env(template["spec"])
        job_template = spec.get("jobTemplate")
        if isinstance(job_template, dict):
            sanitize(job_template)
    return obj


def _pages(kube: KubeClient, path: str, what: str) -> Iterator[list[Obj]]:
    """The objects at `path`, one sanitized page at a time (so a writer can stream 60,000 pods)."""
    token: str | None = None
    while True:
        query: dict[str, Any] = {"limit": _PAGE}
        if token:
            query["continue"] = token
        page = kube.request("GET", path, query=query, what=what)
        kind = str(page.get("kind") or "")
        api_version = page.get("apiVersion")
        items = []
        for item in page.get("items") or ():
            # list items come without kind/apiVersion on the wire: put them back so each object stands alone
            if kind.endswith("List"):
                item.setdefault("kind", kind[:-4])
            if api_version:
                item.setdefault("apiVersion", api_version)
            items.append(sanitize(item))
        yield items
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return


CRD_KEY = "customresourcedefinitions.apiextensions.k8s.io"


def custom_resource_lists(crd: Obj) -> tuple[str, str, bool] | None:
    """(store key, API path prefix, namespaced) of the custom resources a CRD defines, read at its storage
    version when that is served (else the first served one); None when it serves no version."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    served = [v for v in spec.get("versions") or () if v.get("served")]
    if not served or not spec.get("group") or not names.get("plural"):
        return None
    version = next((v for v in served if v.get("storage")), served[0])["name"]
    group, plural = spec["group"], names["plural"]
    return f"{plural}.{group}", f"/apis/{group}/{version}/{plural}", spec.get("scope") == "Namespaced"


def _namespaced_path(prefix: str, namespace: str) -> str:
    head, _, plural = prefix.rpartition("/")
    return f"{head}/namespaces/{namespace}/{plural}"


def _server_version(kube: KubeClient) -> str:
    try:
        info = kube.request("GET", "/version", what="get server version")
    except NotFound:
        return ""
    return str(info.get("gitVersion") or "")


def _lock_lease(kube: KubeClient, lock: tuple[str, ...] | None) -> list[Obj]:
    """kubeops' lock Lease(s): ``lock`` is (namespace, name, ...), several names for a lock with concurrency N."""
    if lock is None:
        return []
    namespace, *names = lock
    out = []
    for name in names:
        try:
            lease = kube.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}",
                                 what=f"get lease {namespace}/{name}")
        except NotFound:
            continue
        out.append(sanitize(lease))
    return out


def _chunks(values: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


def describe_groups(aws: AwsClient, instance_ids: list[str]) -> list[Obj]:
    """The Auto Scaling groups these instances belong to, as `describe_*` calls return them (reads only)."""
    names: set[str] = set()
    for chunk in _chunks(sorted(set(instance_ids)), 50):
        answer = aws._call(aws.autoscaling.describe_auto_scaling_instances,
                           what="describe Auto Scaling instances", InstanceIds=chunk)
        names.update(i["AutoScalingGroupName"] for i in answer.get("AutoScalingInstances") or ())
    groups: list[Obj] = []
    for chunk in _chunks(sorted(names), 50):
        answer = aws._call(aws.autoscaling.describe_auto_scaling_groups,
                           what="describe Auto Scaling groups", AutoScalingGroupNames=chunk)
        for raw in answer.get("AutoScalingGroups") or ():
            name = raw["AutoScalingGroupName"]
            hooks = aws._call(aws.autoscaling.describe_lifecycle_hooks,
                              what=f"describe lifecycle hooks of {name!r}", AutoScalingGroupName=name)
            groups.append({
                "name": name,
                "min": int(raw.get("MinSize", 0)),
                "max": int(raw.get("MaxSize", 0)),
                "desired": int(raw.get("DesiredCapacity", 0)),
                "zones": list(raw.get("AvailabilityZones") or ()),
                "instances": [{"id": i["InstanceId"], "zone": i.get("AvailabilityZone"),
                               "state": i.get("LifecycleState"), "health": i.get("HealthStatus"),
                               "instance_type": i.get("InstanceType"),
                               "protected": bool(i.get("ProtectedFromScaleIn"))}
                              for i in raw.get("Instances") or ()],
                "suspended_processes": sorted(p["ProcessName"] for p in raw.get("SuspendedProcesses") or ()),
                "lifecycle_hooks": [{"name": h["LifecycleHookName"], "transition": h.get("LifecycleTransition"),
                                     "heartbeat_timeout_s": h.get("HeartbeatTimeout"),
                                     "default_result": h.get("DefaultResult")}
                                    for h in hooks.get("LifecycleHooks") or ()],
                "launch_template": raw.get("LaunchTemplate")
                or (raw.get("MixedInstancesPolicy") or {}).get("LaunchTemplate", {}).get(
                    "LaunchTemplateSpecification"),
                "launch_configuration": raw.get("LaunchConfigurationName"),
            })
    return sorted(groups, key=lambda g: g["name"])


def take_snapshot(
    kube: KubeClient,
    aws: AwsClient | None,
    *,
    cluster: str,
    namespaces: list[str] | None = None,
    lock: tuple[str, ...] | None = None,
    sink: Callable[[str, list[Obj]], None] | None = None,
) -> Obj:
    """The snapshot document of the cluster `kube` reaches (see the module docstring); reads only.

    `namespaces` limits namespaced resources (cluster-scoped ones are always read: nodes, namespaces, priority
    classes, CRDs); `lock` is the (namespace, name) of kubeops' lock Lease; `aws` None skips Auto Scaling.
    With `sink`, every page of objects goes to ``sink(resource, items)`` as it arrives (at least one call per
    resource read) and the returned document has no ``objects``: a writer streams a big cluster to disk."""
    taken = time.time()
    objects: dict[str, list[Obj]] = {}
    counts: dict[str, int] = {}
    instance_ids: list[str] = []
    skipped: dict[str, str] = {}

    def add(key: str, items: list[Obj]) -> None:
        counts[key] = counts.get(key, 0) + len(items)
        if key == "nodes":
            instance_ids.extend(iid for n in items
                                if (iid := instance_id_from_provider_id((n.get("spec") or {}).get("providerID"))))
        if sink is not None:
            sink(key, items)
        else:
            objects.setdefault(key, []).extend(items)

    crds: list[Obj] = []
    for key, prefix, namespaced in RESOURCES:
        paths = [(_namespaced_path(prefix, ns), f"list {key} in {ns}") for ns in namespaces] \
            if namespaced and namespaces else [(prefix, f"list {key}")]
        try:
            add(key, [])
            for path, what in paths:
                for items in _pages(kube, path, what):
                    if key == "namespaces" and namespaces:
                        items = [n for n in items if n["metadata"]["name"] in namespaces]
                    if key == CRD_KEY:
                        crds.extend(items)
                    add(key, items)
        except NotFound:
            if key not in _OPTIONAL:
                raise
            skipped[key] = "not served by this API server"
    # the custom resources of every CRD, so rehearsed playbooks (and their operators' objects) see them; a kind
    # that cannot be listed (not allowed, a broken conversion webhook) is named in the header, the rest is kept
    for crd in crds:
        where = custom_resource_lists(crd)
        if where is None:
            continue
        key, prefix, namespaced = where
        paths = [(_namespaced_path(prefix, ns), f"list {key} in {ns}") for ns in namespaces] \
            if namespaced and namespaces else [(prefix, f"list {key}")]
        try:
            pages = [items for path, what in paths for items in _pages(kube, path, what)]
        except ClusterError as exc:
            skipped[key] = f"could not be listed: {exc.message}"
            continue
        add(key, [])
        for items in pages:
            add(key, items)
    add("leases.coordination.k8s.io", _lock_lease(kube, lock))
    groups: list[Obj] = describe_groups(aws, instance_ids) if aws is not None and instance_ids else []
    doc: Obj = {
        "header": {
            "format": SNAPSHOT_FORMAT,
            "taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(taken)),
            "cluster": cluster,
            "server_version": _server_version(kube),
            "namespaces": list(namespaces) if namespaces else "all",
            "dropped": dict(DROPPED),
            "not_served": skipped,
            "source": "api",
            "counts": counts,
        },
        "autoscaling_groups": groups,
    }
    if sink is None:
        doc["objects"] = objects
    return doc
