"""The sandbox's resource catalogue and the discovery documents built from it.

Everything the server routes, the store keys objects by, and kubectl discovers comes from one table of
`ResourceInfo`s, so a resource cannot be routable yet undiscoverable (or the other way round).

Store keys: a resource is named ``plural`` for the core group and ``plural.group`` otherwise
(``"pods"``, ``"nodes"``, ``"deployments.apps"``, ``"poddisruptionbudgets.policy"``), like kube-apiserver's
etcd layout. Several versions of one group share objects (policy/v1 and v1beta1 PDBs are the same objects).

Extra groups (metrics.k8s.io is served by the semantics helper) are added with `Catalog.add_group`; see
`kubeops.sandbox.cluster.Cluster.register_api_group`, which also installs the read handler.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
READ_VERBS = ("get", "list", "watch")


@dataclass(frozen=True, slots=True)
class SubresourceInfo:
    """A subresource as discovery shows it; `group`/`version` set when its kind lives elsewhere (eviction)."""

    name: str
    kind: str
    verbs: tuple[str, ...]
    group: str = ""
    version: str = ""


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """One served resource: what discovery says about it and how the store treats its objects."""

    plural: str
    kind: str
    group: str
    versions: tuple[str, ...]
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[SubresourceInfo, ...] = ()
    categories: tuple[str, ...] = ()
    # generation bumps when anything but metadata/status changes (workloads, PDBs); pods have none in 1.33.
    has_generation: bool = False
    singular: str = ""

    @property
    def key(self) -> str:
        """Store key: ``pods`` or ``deployments.apps``."""
        return self.plural if not self.group else f"{self.plural}.{self.group}"

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def has_status(self) -> bool:
        return any(s.name == "status" for s in self.subresources)

    def api_version(self, version: str | None = None) -> str:
        v = version or self.versions[0]
        return v if not self.group else f"{self.group}/{v}"

    def subresource(self, name: str) -> SubresourceInfo | None:
        for sub in self.subresources:
            if sub.name == name:
                return sub
        return None


def _status(kind: str) -> SubresourceInfo:
    return SubresourceInfo("status", kind, ("get", "patch", "update"))


def _scale() -> SubresourceInfo:
    return SubresourceInfo("scale", "Scale", ("get", "patch", "update"), group="autoscaling", version="v1")


def _r(plural: str, kind: str, group: str, versions: Iterable[str], namespaced: bool = True, **kw: Any) -> ResourceInfo:
    return ResourceInfo(plural=plural, kind=kind, group=group, versions=tuple(versions), namespaced=namespaced, **kw)


_WORKLOAD = ("all",)

BUILTIN_RESOURCES: tuple[ResourceInfo, ...] = (
    # core/v1
    _r("namespaces", "Namespace", "", ["v1"], False, short_names=("ns",),
       verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
       subresources=(SubresourceInfo("finalize", "Namespace", ("update",)), _status("Namespace"))),
    _r("nodes", "Node", "", ["v1"], False, short_names=("no",),
       subresources=(_status("Node"), SubresourceInfo("proxy", "NodeProxyOptions",
                                                       ("create", "delete", "get", "patch", "update")))),
    _r("pods", "Pod", "", ["v1"], short_names=("po",), categories=_WORKLOAD,
       subresources=(_status("Pod"),
                     SubresourceInfo("eviction", "Eviction", ("create",), group="policy", version="v1"),
                     SubresourceInfo("binding", "Binding", ("create",)),
                     SubresourceInfo("log", "Pod", ("get",)))),
    _r("events", "Event", "", ["v1"], short_names=("ev",)),
    _r("services", "Service", "", ["v1"], short_names=("svc",), categories=_WORKLOAD,
       verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
       subresources=(_status("Service"),)),
    _r("endpoints", "Endpoints", "", ["v1"], short_names=("ep",)),
    _r("configmaps", "ConfigMap", "", ["v1"], short_names=("cm",)),
    _r("secrets", "Secret", "", ["v1"]),
    _r("serviceaccounts", "ServiceAccount", "", ["v1"], short_names=("sa",)),
    _r("replicationcontrollers", "ReplicationController", "", ["v1"], short_names=("rc",), categories=_WORKLOAD,
       has_generation=True, subresources=(_status("ReplicationController"), _scale())),
    _r("persistentvolumeclaims", "PersistentVolumeClaim", "", ["v1"], short_names=("pvc",),
       subresources=(_status("PersistentVolumeClaim"),)),
    _r("persistentvolumes", "PersistentVolume", "", ["v1"], False, short_names=("pv",),
       subresources=(_status("PersistentVolume"),)),
    # apps/v1
    _r("deployments", "Deployment", "apps", ["v1"], short_names=("deploy",), categories=_WORKLOAD,
       has_generation=True, subresources=(_status("Deployment"), _scale())),
    _r("replicasets", "ReplicaSet", "apps", ["v1"], short_names=("rs",), categories=_WORKLOAD,
       has_generation=True, subresources=(_status("ReplicaSet"), _scale())),
    _r("statefulsets", "StatefulSet", "apps", ["v1"], short_names=("sts",), categories=_WORKLOAD,
       has_generation=True, subresources=(_status("StatefulSet"), _scale())),
    _r("daemonsets", "DaemonSet", "apps", ["v1"], short_names=("ds",), categories=_WORKLOAD,
       has_generation=True, subresources=(_status("DaemonSet"),)),
    _r("controllerrevisions", "ControllerRevision", "apps", ["v1"]),
    # policy
    _r("poddisruptionbudgets", "PodDisruptionBudget", "policy", ["v1"], short_names=("pdb",),
       has_generation=True, subresources=(_status("PodDisruptionBudget"),)),
    # batch
    _r("jobs", "Job", "batch", ["v1"], categories=_WORKLOAD, has_generation=True, subresources=(_status("Job"),)),
    _r("cronjobs", "CronJob", "batch", ["v1"], short_names=("cj",), categories=_WORKLOAD, has_generation=True,
       subresources=(_status("CronJob"),)),
    # coordination, discovery, scheduling
    _r("leases", "Lease", "coordination.k8s.io", ["v1"]),
    _r("endpointslices", "EndpointSlice", "discovery.k8s.io", ["v1"]),
    _r("priorityclasses", "PriorityClass", "scheduling.k8s.io", ["v1"], False, short_names=("pc",)),
    # rbac
    _r("roles", "Role", "rbac.authorization.k8s.io", ["v1"]),
    _r("rolebindings", "RoleBinding", "rbac.authorization.k8s.io", ["v1"]),
    _r("clusterroles", "ClusterRole", "rbac.authorization.k8s.io", ["v1"], False),
    _r("clusterrolebindings", "ClusterRoleBinding", "rbac.authorization.k8s.io", ["v1"], False),
)

# Preferred version first; the order of /apis mirrors a real 1.33 server closely enough for kubectl.
BUILTIN_GROUPS: dict[str, tuple[str, ...]] = {
    "apps": ("v1",),
    "policy": ("v1",),
    "batch": ("v1",),
    "coordination.k8s.io": ("v1",),
    "discovery.k8s.io": ("v1",),
    "scheduling.k8s.io": ("v1",),
    "rbac.authorization.k8s.io": ("v1",),
}

VERSION_INFO: dict[str, str] = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-kubeops-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-04-23T00:00:00Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


@dataclass
class Catalog:
    """The resources this server knows, indexed the ways the router and the store need."""

    resources: list[ResourceInfo] = field(default_factory=lambda: list(BUILTIN_RESOURCES))
    groups: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(BUILTIN_GROUPS))

    def __post_init__(self) -> None:
        self._reindex()

    def _reindex(self) -> None:
        self._by_path: dict[tuple[str, str, str], ResourceInfo] = {}
        self._by_key: dict[str, ResourceInfo] = {}
        self._by_kind: dict[tuple[str, str], ResourceInfo] = {}
        for info in self.resources:
            self._by_key[info.key] = info
            self._by_kind[(info.group, info.kind)] = info
            for v in info.versions:
                self._by_path[(info.group, v, info.plural)] = info

    def add_group(self, group: str, version: str, resources: Iterable[ResourceInfo]) -> None:
        """Make a whole group version routable and discoverable (used for metrics.k8s.io)."""
        versions = self.groups.get(group, ())
        if version not in versions:
            self.groups[group] = (*versions, version)
        for info in resources:
            if info.key not in self._by_key:
                self.resources.append(info)
        self._reindex()

    def replace(self, info: ResourceInfo) -> None:
        """Swap the served resource with `info`'s key for `info` (a scenario knob changing what discovery says)."""
        self.resources = [info if r.key == info.key else r for r in self.resources]
        self._reindex()

    def replace_or_add(self, info: ResourceInfo) -> None:
        """Serve `info` (a CRD created or changed), replacing what was served under its key."""
        if info.key in self._by_key:
            self.replace(info)
        else:
            self.resources.append(info)
            self._reindex()

    def remove(self, key: str) -> None:
        """Stop serving a resource (a deleted CRD); its group goes too when nothing else serves it."""
        info = self._by_key.get(key)
        if info is None:
            return
        self.resources = [r for r in self.resources if r.key != key]
        if info.group and info.group not in BUILTIN_GROUPS:
            left = {v for r in self.resources if r.group == info.group for v in r.versions}
            kept = tuple(v for v in self.groups.get(info.group, ()) if v in left)
            if kept:
                self.groups[info.group] = kept
            else:
                self.groups.pop(info.group, None)
        self._reindex()

    def lookup(self, group: str, version: str, plural: str) -> ResourceInfo | None:
        return self._by_path.get((group, version, plural))

    def by_key(self, key: str) -> ResourceInfo:
        return self._by_key[key]

    def by_kind(self, api_version: str, kind: str) -> ResourceInfo | None:
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        return self._by_kind.get((group, kind))

    def has_group_version(self, group: str, version: str) -> bool:
        if not group:
            return version == "v1"
        return version in self.groups.get(group, ())

    # ---- classic discovery documents -------------------------------------------------------------------

    def api_versions(self) -> dict[str, Any]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
        }

    def _group_doc(self, group: str) -> dict[str, Any]:
        versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in self.groups[group]]
        return {"name": group, "versions": versions, "preferredVersion": versions[0]}

    def api_group_list(self) -> dict[str, Any]:
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [self._group_doc(g) for g in self.groups]}

    def api_group(self, group: str) -> dict[str, Any] | None:
        if group not in self.groups:
            return None
        return {"kind": "APIGroup", "apiVersion": "v1", **self._group_doc(group)}

    def resource_list(self, group: str, version: str) -> dict[str, Any]:
        out: list[dict[str, Any]] = []
        for info in self.resources:
            if info.group != group or version not in info.versions:
                continue
            entry: dict[str, Any] = {
                "name": info.plural,
                "singularName": info.singular_name,
                "namespaced": info.namespaced,
                "kind": info.kind,
                "verbs": list(info.verbs),
            }
            if info.short_names:
                entry["shortNames"] = list(info.short_names)
            if info.categories:
                entry["categories"] = list(info.categories)
            out.append(entry)
            for sub in info.subresources:
                sub_entry: dict[str, Any] = {
                    "name": f"{info.plural}/{sub.name}",
                    "singularName": "",
                    "namespaced": info.namespaced,
                    "kind": sub.kind,
                    "verbs": list(sub.verbs),
                }
                if sub.group:
                    sub_entry["group"] = sub.group
                    sub_entry["version"] = sub.version
                out.append(sub_entry)
        gv = version if not group else f"{group}/{version}"
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}

    # ---- aggregated discovery (what kubectl 1.30+ asks for first) ---------------------------------------

    def _aggregated_version(self, group: str, version: str) -> dict[str, Any]:
        resources = []
        for info in self.resources:
            if info.group != group or version not in info.versions:
                continue
            entry: dict[str, Any] = {
                "resource": info.plural,
                "responseKind": {"group": group, "version": version, "kind": info.kind},
                "scope": "Namespaced" if info.namespaced else "Cluster",
                "singularResource": info.singular_name,
                "verbs": list(info.verbs),
            }
            if info.short_names:
                entry["shortNames"] = list(info.short_names)
            if info.categories:
                entry["categories"] = list(info.categories)
            subs = []
            for sub in info.subresources:
                subs.append({
                    "subresource": sub.name,
                    "responseKind": {"group": sub.group or group, "version": sub.version or version,
                                     "kind": sub.kind},
                    "verbs": list(sub.verbs),
                })
            if subs:
                entry["subresources"] = subs
            resources.append(entry)
        return {"version": version, "resources": resources, "freshness": "Current"}

    def aggregated(self, *, legacy: bool) -> dict[str, Any]:
        """APIGroupDiscoveryList for ``/api`` (legacy=True) or ``/apis``."""
        if legacy:
            items = [{"metadata": {"name": ""}, "versions": [self._aggregated_version("", "v1")]}]
        else:
            items = [
                {"metadata": {"name": g}, "versions": [self._aggregated_version(g, v) for v in versions]}
                for g, versions in self.groups.items()
            ]
        return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
                "items": items}
