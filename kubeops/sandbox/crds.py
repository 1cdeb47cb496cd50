"""CustomResourceDefinitions (apiextensions.k8s.io/v1), APIServices (apiregistration.k8s.io/v1) and the custom
resources a CRD defines.

Why: most real clusters carry CRDs (cert-manager, Karpenter, Prometheus operator...), and snapshots of them will
too; tools that list "all kinds" or back a cluster up meet them first. Like kube-apiserver:

- creating a CRD makes its served versions routable and discoverable at once (classic and aggregated discovery,
  so `kubectl get <plural>`, short names and categories work), namespaced or cluster scoped, with the ``status``
  subresource when a version declares it (spec and status then change separately, ``generation`` follows the
  spec) and ``scale`` when it maps ``.spec.replicas``; all served versions share the objects (no conversion);
- the CRD's status says ``NamesAccepted`` and ``Established`` (``kubectl wait --for condition=established``);
- deleting a CRD deletes its custom resources and stops serving them;
- each version's ``openAPIV3Schema`` governs its custom resources (`kubeops.sandbox.crdschema`): on every write
  unknown fields are pruned (refused or warned about per the request's ``fieldValidation``, see
  `kubeops.sandbox.fieldvalidation`), defaults filled in, and the result validated (422 Invalid with the API
  server's messages); the status subresource checks ``status`` against the status schema. The version in the
  request URL picks the schema. Objects loaded from a scenario or snapshot (no API request) are kept as stored
  and only defaulted, as kube-apiserver defaults what it reads from etcd. A CRD whose schema is missing or not
  structural is refused, naming the offending schema field;
- an APIService is stored with an ``Available`` condition: ``Local`` when it has no service, otherwise whether
  the Service exists (the sandbox proxies to no aggregated server).

Not done: conversion webhooks, CEL validation rules, additionalPrinterColumns (tables show Name and Age).
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

from kubeops.sandbox import crdschema, fieldvalidation
from kubeops.sandbox import status as st
from kubeops.sandbox.discovery import BUILTIN_RESOURCES, ResourceInfo, SubresourceInfo
from kubeops.sandbox.store import Cause, WatchEvent, clone, rfc3339

if TYPE_CHECKING:
    from kubeops.sandbox.cluster import Cluster

Obj = dict[str, Any]
CRD_GROUP = "apiextensions.k8s.io"
CRD_KEY = f"customresourcedefinitions.{CRD_GROUP}"
APISERVICE_GROUP = "apiregistration.k8s.io"
APISERVICE_KEY = f"apiservices.{APISERVICE_GROUP}"
_STATUS = ("get", "patch", "update")
_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes' version order: GA before beta before alpha, higher numbers first (sort ascending by this)."""
    m = _VERSION_RE.match(version)
    if m is None:
        return (3, 0, 0)
    level = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    return (level, -int(m.group(1)), -int(m.group(3) or 0))


def resource_info(crd: Obj) -> ResourceInfo:
    """What the CRD makes the server route and discover."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    served = [v for v in spec.get("versions") or () if v.get("served")]
    versions = tuple(sorted((str(v["name"]) for v in served), key=version_priority))
    subs: list[SubresourceInfo] = []
    declared = [v.get("subresources") or {} for v in served]
    if any("status" in d for d in declared):
        subs.append(SubresourceInfo("status", str(names.get("kind")), _STATUS))
    if any((d.get("scale") or {}).get("specReplicasPath") == ".spec.replicas" for d in declared):
        subs.append(SubresourceInfo("scale", "Scale", _STATUS, group="autoscaling", version="v1"))
    return ResourceInfo(
        plural=str(names.get("plural")), kind=str(names.get("kind")), group=str(spec.get("group")),
        versions=versions, namespaced=spec.get("scope") == "Namespaced",
        short_names=tuple(names.get("shortNames") or ()), categories=tuple(names.get("categories") or ()),
        subresources=tuple(subs), has_generation=True, singular=str(names.get("singular") or ""),
    )


def validate_crd(crd: Obj, old: Obj | None) -> list[Cause]:
    """The checks kube-apiserver makes that a user meets first (names, scope, versions, immutable group)."""
    causes: list[Cause] = []
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, plural, kind = spec.get("group"), names.get("plural"), names.get("kind")
    for path, value in (("spec.group", group), ("spec.names.plural", plural), ("spec.names.kind", kind)):
        if not value:
            causes.append(("FieldValueRequired", path, "Required value"))
    if causes:
        return causes
    name = (crd.get("metadata") or {}).get("name")
    if name != f"{plural}.{group}":
        causes.append(("FieldValueInvalid", "metadata.name",
                       f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'))
    if "." not in str(group):
        causes.append(("FieldValueInvalid", "spec.group", f'Invalid value: "{group}": should be a domain with at '
                                                          "least one dot"))
    if not _DNS_LABEL.match(str(plural)):
        causes.append(("FieldValueInvalid", "spec.names.plural", f'Invalid value: "{plural}": a lowercase RFC '
                                                                 "1123 label must consist of lower case "
                                                                 "alphanumeric characters or '-'"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(("FieldValueNotSupported", "spec.scope",
                       f'Unsupported value: "{spec.get("scope")}": supported values: "Cluster", "Namespaced"'))
    versions = spec.get("versions") or []
    if not versions:
        causes.append(("FieldValueRequired", "spec.versions", "Required value: must have exactly one version "
                                                              "marked as storage version"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(("FieldValueInvalid", "spec.versions", "Invalid value: must have exactly one version marked "
                                                             "as storage version"))
    elif not any(v.get("served") for v in versions):
        causes.append(("FieldValueInvalid", "spec.versions", "Invalid value: must serve at least one version"))
    for i, v in enumerate(versions):
        if not _VERSION_RE.match(str(v.get("name", ""))) and not _DNS_LABEL.match(str(v.get("name", ""))):
            causes.append(("FieldValueInvalid", f"spec.versions[{i}].name", f'Invalid value: "{v.get("name")}"'))
        schema = (v.get("schema") or {}).get("openAPIV3Schema") if isinstance(v.get("schema"), dict) else None
        causes.extend(crdschema.structural_errors(schema, f"spec.versions[{i}].schema.openAPIV3Schema"))
    if old is not None and (old.get("spec") or {}).get("group") != group:
        causes.append(("FieldValueInvalid", "spec.group", f'Invalid value: "{group}": field is immutable'))
    if old is not None and (old.get("spec") or {}).get("scope") != spec.get("scope"):
        causes.append(("FieldValueInvalid", "spec.scope", f'Invalid value: "{spec.get("scope")}": field is '
                                                          "immutable"))
    if any(f"{plural}.{group}" == r.key for r in BUILTIN_RESOURCES):
        causes.append(("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": a built-in resource'))
    return causes


class CustomResources:
    """Keeps the catalog in step with the CRDs: serve on create/update, clean up on delete."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.served: dict[str, ResourceInfo] = {}  # CRD name -> what it serves
        self._gone: list[ResourceInfo] = []
        self._lock = threading.Lock()
        # resource key -> (each version's openAPIV3Schema, the storage version, spec.preserveUnknownFields)
        self.schemas: dict[str, tuple[dict[str, Any], str, bool]] = {}
        self._hooked: set[str] = set()

    def stamp(self, crd: Obj, old: Obj | None) -> None:
        """Defaulter: the status a working apiextensions-apiserver writes (names accepted, established)."""
        spec = crd.get("spec") or {}
        now = rfc3339(self.cluster.clock.now())
        status = crd.setdefault("status", {})
        previous = {c.get("type"): c for c in status.get("conditions") or ()}
        conditions = []
        for type_, reason, message in (("NamesAccepted", "NoConflicts", "no conflicts found"),
                                       ("Established", "InitialNamesAccepted", "the initial names have been "
                                                                               "accepted")):
            before = previous.get(type_) or {}
            conditions.append({"type": type_, "status": "True", "reason": reason, "message": message,
                               "lastTransitionTime": before.get("lastTransitionTime") or now})
        status["conditions"] = conditions
        status["acceptedNames"] = {k: v for k, v in (spec.get("names") or {}).items()}
        storage = [v["name"] for v in spec.get("versions") or () if v.get("storage")]
        stored = list(status.get("storedVersions") or [])
        status["storedVersions"] = stored + [v for v in storage if v not in stored]

    def observe(self, ev: WatchEvent) -> None:
        if ev.resource != CRD_KEY:
            return
        name = ev.name
        catalog = self.cluster.catalog
        with self._lock:
            before = self.served.pop(name, None)
            if before is not None:
                self.schemas.pop(before.key, None)
            if ev.type == "DELETED":
                if before is not None:
                    self._gone.append(before)
                return
            info = resource_info(ev.obj)
            if before is not None and (before.versions != info.versions or before.key != info.key):
                catalog.remove(before.key)
            for version in info.versions:
                catalog.add_group(info.group, version, [])
            catalog.replace_or_add(info)
            self.served[name] = info
            self._remember_schemas(info, ev.obj)

    def _remember_schemas(self, info: ResourceInfo, crd: Obj) -> None:
        """Keep the CRD's schemas for its resources' writes; hook them into the store once per resource."""
        spec = crd.get("spec") or {}
        schemas: dict[str, Any] = {}
        storage = ""
        for v in spec.get("versions") or ():
            holder = v.get("schema")
            schemas[str(v.get("name"))] = holder.get("openAPIV3Schema") if isinstance(holder, dict) else None
            if v.get("storage"):
                storage = str(v.get("name"))
        self.schemas[info.key] = (schemas, storage, bool(spec.get("preserveUnknownFields")))
        if info.key not in self._hooked:
            self._hooked.add(info.key)
            store = self.cluster.store
            store.defaulters[info.key].append(lambda obj, old, key=info.key: self.prune_and_default(key, obj, old))
            store.validators[info.key].append(lambda obj, old, key=info.key: self.validate(key, obj, old))

    def _schema(self, key: str) -> crdschema.Schema | None:
        """The schema of the request's version (the storage version's outside a request)."""
        known = self.schemas.get(key)
        if known is None:
            return None
        schemas, storage, _ = known
        request = fieldvalidation.current()
        version = request.version if request is not None and request.version in schemas else storage
        return schemas.get(version)

    def prune_and_default(self, key: str, obj: Obj, old: Obj | None) -> None:
        """Defaulter of a custom resource: prune unknown fields (reported per fieldValidation), then default."""
        schema = self._schema(key)
        if schema is None:
            return
        request = fieldvalidation.current()
        if request is None:  # loaded (scenario, snapshot) or internal: kept as stored, defaulted as when read
            crdschema.apply_defaults(obj, schema)
            return
        if not self.schemas[key][2]:
            before = clone(obj) if request is not None and request.verb == "patch" else None
            unknown = crdschema.prune(obj, schema)
            fieldvalidation.report_unknown_fields(unknown, kind=str(obj.get("kind")), patched=before, obj=obj)
        crdschema.drop_nulls(obj, schema)
        crdschema.apply_defaults(obj, schema)

    def validate(self, key: str, obj: Obj, old: Obj | None) -> list[Cause]:
        """Validator of a custom resource: the whole object, or only ``status`` for the status subresource."""
        schema = self._schema(key)
        if schema is None:
            return []
        request = fieldvalidation.current()
        if request is not None and request.subresource == "status":
            status_schema = crdschema.status_schema(schema)
            if status_schema is None or "status" not in obj:
                return []
            before = (old or {}).get("status")
            causes = crdschema.validate(obj["status"], status_schema, old=before, root="status")
        else:
            causes = crdschema.validate(obj, schema, old=old)
        if old is None or not crdschema.list_errors(old, schema):  # duplicates already stored are tolerated
            causes += crdschema.list_errors(obj, schema)
        return causes

    def reconcile(self, cluster: Cluster, now: float) -> None:
        """Delete the custom resources of deleted CRDs, then stop serving them."""
        with self._lock:
            gone, self._gone = self._gone, []
        store = cluster.store
        for info in gone:
            for obj in list(store.iter(info.key)):
                meta = obj["metadata"]
                try:
                    store.delete(info.key, meta.get("namespace"), meta["name"], grace_period_s=0)
                except st.ApiError:  # already gone: nothing to do
                    continue
            if not any(i.key == info.key for i in self.served.values()):
                cluster.catalog.remove(info.key)


def stamp_apiservice(cluster: Cluster) -> Any:
    def stamp(obj: Obj, old: Obj | None) -> None:
        spec = obj.get("spec") or {}
        service = spec.get("service")
        now = rfc3339(cluster.clock.now())
        if not service:
            cond = {"status": "True", "reason": "Local", "message": "Local APIServices are always available"}
        elif cluster.store.try_get("services", service.get("namespace"), service.get("name", ""),
                                   copy=False) is None:
            cond = {"status": "False", "reason": "ServiceNotFound",
                    "message": f'service/{service.get("name")} in "{service.get("namespace")}" is not present'}
        else:
            cond = {"status": "True", "reason": "Passed", "message": "all checks passed"}
        status = obj.setdefault("status", {})
        before = next((c for c in status.get("conditions") or () if c.get("type") == "Available"), {})
        since = before.get("lastTransitionTime") if before.get("status") == cond["status"] else None
        status["conditions"] = [{"type": "Available", **cond, "lastTransitionTime": since or now}]

    return stamp


def validate_apiservice(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    name = (obj.get("metadata") or {}).get("name")
    if not spec.get("version"):
        causes.append(("FieldValueRequired", "spec.version", "Required value"))
    elif name != f"{spec['version']}.{spec.get('group') or ''}".rstrip("."):
        causes.append(("FieldValueInvalid", "metadata.name",
                       f'Invalid value: "{name}": must be spec.version+"."+spec.group'))
    for field in ("groupPriorityMinimum", "versionPriority"):
        if not isinstance(spec.get(field), int) or spec[field] <= 0:
            causes.append(("FieldValueInvalid", f"spec.{field}", f"Invalid value: {spec.get(field)}: must be "
                                                                 "positive and less than 1000000"))
    return causes


def install(cluster: Cluster) -> None:
    """Serve CRDs and APIServices, and the resources CRDs define."""
    crd_info = ResourceInfo(plural="customresourcedefinitions", kind="CustomResourceDefinition", group=CRD_GROUP,
                            versions=("v1",), namespaced=False, short_names=("crd", "crds"),
                            categories=("api-extensions",), has_generation=True,
                            subresources=(SubresourceInfo("status", "CustomResourceDefinition", _STATUS),))
    apiservice_info = ResourceInfo(plural="apiservices", kind="APIService", group=APISERVICE_GROUP,
                                   versions=("v1",), namespaced=False, categories=("api-extensions",),
                                   subresources=(SubresourceInfo("status", "APIService", _STATUS),))
    cluster.catalog.add_group(CRD_GROUP, "v1", [crd_info])
    cluster.catalog.add_group(APISERVICE_GROUP, "v1", [apiservice_info])
    custom = CustomResources(cluster)
    store = cluster.store
    store.validators[CRD_KEY].append(validate_crd)
    store.defaulters[CRD_KEY].append(custom.stamp)
    store.validators[APISERVICE_KEY].append(validate_apiservice)
    store.defaulters[APISERVICE_KEY].append(stamp_apiservice(cluster))
    store.subscribe(custom.observe)
    cluster.add_reconciler(custom)
