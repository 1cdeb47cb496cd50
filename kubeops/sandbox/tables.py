"""Server-side printing: ``meta.k8s.io/v1`` Table responses, so ``kubectl get`` looks like it does on a cluster.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the cells as given; columns
with priority 1 appear only with ``-o wide``. Column sets and cell logic follow kube-apiserver's printers for the
kinds people look at; everything else gets Name + Age like a custom resource.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeops.sandbox.selectors import selector_text
from kubeops.sandbox.store import Obj, parse_time

Column = tuple[str, str, int, str]  # name, type, priority, format


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m" if s % 60 == 0 else f"{m}m{s % 60}s"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h" if m % 60 == 0 else f"{h}h{m % 60}m"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d" if h % 24 == 0 else f"{h // 24}d{h % 24}h"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    if h < 24 * 365 * 8:
        dy = (h // 24) % 365
        return f"{h // 24 // 365}y" if dy == 0 else f"{h // 24 // 365}y{dy}d"
    return f"{h // 24 // 365}y"


def _age(obj: Obj, now: float) -> str:
    ts = obj.get("metadata", {}).get("creationTimestamp")
    return human_duration(now - parse_time(ts)) if ts else "<unknown>"


def _none(v: Any) -> Any:
    return "<none>" if v in (None, "", []) else v


def _node_row(o: Obj, now: float) -> list[Any]:
    status = o.get("status") or {}
    cond = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    ready = cond.get("Ready")
    text = "Ready" if ready == "True" else ("NotReady" if ready == "False" else "Unknown")
    if (o.get("spec") or {}).get("unschedulable"):
        text += ",SchedulingDisabled"
    labels = o.get("metadata", {}).get("labels") or {}
    roles = sorted({k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")
                    and "/" in k and k.split("/", 1)[1]} | ({labels["kubernetes.io/role"]}
                                                           if labels.get("kubernetes.io/role") else set()))
    info = status.get("nodeInfo") or {}
    addrs = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    return [o["metadata"]["name"], text, ",".join(roles) or "<none>", _age(o, now),
            info.get("kubeletVersion", ""), _none(addrs.get("InternalIP")), _none(addrs.get("ExternalIP")),
            info.get("osImage", "<unknown>"), info.get("kernelVersion", "<unknown>"),
            info.get("containerRuntimeVersion", "<unknown>")]


def _pod_row(o: Obj, now: float) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    containers = spec.get("containers") or []
    statuses = status.get("containerStatuses") or []
    reason = status.get("reason") or status.get("phase") or "Unknown"
    ready = restarts = 0
    for cs in statuses:
        restarts += int(cs.get("restartCount", 0))
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated"):
            t = state["terminated"]
            reason = t.get("reason") or (f"Signal:{t['signal']}" if t.get("signal") else
                                         f"ExitCode:{t.get('exitCode', 0)}")
        elif state.get("running") and cs.get("ready"):
            ready += 1
    if reason == "Running" and statuses and ready < len(containers) and \
            any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
        reason = "Running"
    if o.get("metadata", {}).get("deletionTimestamp"):
        reason = "Terminating" if status.get("reason") != "NodeLost" else "Unknown"
    gates = spec.get("readinessGates") or []
    return [o["metadata"]["name"], f"{ready}/{len(containers)}", reason, str(restarts), _age(o, now),
            _none(status.get("podIP")), _none(spec.get("nodeName")), _none(status.get("nominatedNodeName")),
            "<none>" if not gates else f"0/{len(gates)}"]


def _containers(o: Obj) -> tuple[str, str]:
    return _template_containers((o.get("spec") or {}).get("template") or {})


def _template_containers(template: Obj) -> tuple[str, str]:
    """The Containers and Images cells of a pod template: names and images, comma-joined."""
    cs = (template.get("spec") or {}).get("containers") or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def _selector_text(sel: Any) -> str:
    return selector_text(sel) or "<none>"


def _deploy_row(o: Obj, now: float) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers(o)
    return [o["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0), _age(o, now), names, images,
            _selector_text(spec.get("selector"))]


def _rs_row(o: Obj, now: float) -> list[Any]:
    """ReplicaSets and ReplicationControllers print the same columns."""
    spec, status = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers(o)
    return [o["metadata"]["name"], spec.get("replicas", 0), status.get("replicas", 0),
            status.get("readyReplicas", 0), _age(o, now), names, images, _selector_text(spec.get("selector"))]


def _sts_row(o: Obj, now: float) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers(o)
    return [o["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}", _age(o, now),
            names, images]


def _ds_row(o: Obj, now: float) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    names, images = _containers(o)
    sel = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    return [o["metadata"]["name"], status.get("desiredNumberScheduled", 0), status.get("currentNumberScheduled", 0),
            status.get("numberReady", 0), status.get("updatedNumberScheduled", 0),
            status.get("numberAvailable", 0), ",".join(f"{k}={v}" for k, v in sel.items()) or "<none>",
            _age(o, now), names, images, _selector_text(spec.get("selector"))]


def _svc_row(o: Obj, now: float) -> list[Any]:
    spec = o.get("spec") or {}
    ports = ",".join(f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/"
                     f"{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    ext = ",".join(spec.get("externalIPs") or []) or "<none>"
    return [o["metadata"]["name"], spec.get("type", "ClusterIP"), spec.get("clusterIP", "<none>"), ext,
            ports or "<none>", _age(o, now), _selector_text(spec.get("selector"))]


def _ns_row(o: Obj, now: float) -> list[Any]:
    return [o["metadata"]["name"], (o.get("status") or {}).get("phase", "Active"), _age(o, now)]


def _pdb_row(o: Obj, now: float) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    return [o["metadata"]["name"], spec.get("minAvailable", "N/A"), spec.get("maxUnavailable", "N/A"),
            status.get("disruptionsAllowed", 0), _age(o, now)]


def _event_row(o: Obj, now: float) -> list[Any]:
    inv = o.get("involvedObject") or {}
    last = o.get("lastTimestamp") or o.get("eventTime") or o["metadata"].get("creationTimestamp")
    return [human_duration(now - parse_time(last)) if last and len(last) == 20 else "<unknown>",
            o.get("type", ""), o.get("reason", ""), f"{(inv.get('kind') or '').lower()}/{inv.get('name', '')}",
            o.get("message", "")]


def _lease_row(o: Obj, now: float) -> list[Any]:
    return [o["metadata"]["name"], _none((o.get("spec") or {}).get("holderIdentity")), _age(o, now)]


def _cm_row(o: Obj, now: float) -> list[Any]:
    return [o["metadata"]["name"], len(o.get("data") or {}) + len(o.get("binaryData") or {}), _age(o, now)]


def _secret_row(o: Obj, now: float) -> list[Any]:
    return [o["metadata"]["name"], o.get("type", "Opaque"), len(o.get("data") or {}), _age(o, now)]


def _has_condition(o: Obj, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in (o.get("status") or {}).get("conditions")
               or ())


def _job_row(o: Obj, now: float) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    succeeded = int(status.get("succeeded") or 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif int(spec.get("parallelism") or 1) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    state = "Running"
    for kind in ("Complete", "Failed"):
        if _has_condition(o, kind):
            state = kind
            break
    else:
        if o["metadata"].get("deletionTimestamp"):
            state = "Terminating"
        else:
            state = next((k for k in ("SuccessCriteriaMet", "FailureTarget", "Suspended") if _has_condition(o, k)),
                         "Running")
    duration = ""
    if status.get("startTime"):
        end = parse_time(status["completionTime"]) if status.get("completionTime") else now
        duration = human_duration(end - parse_time(status["startTime"]))
    names, images = _template_containers(spec.get("template") or {})
    return [o["metadata"]["name"], state, completions, duration, _age(o, now), names, images,
            _selector_text(spec.get("selector"))]


def _cronjob_row(o: Obj, now: float) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    last = status.get("lastScheduleTime")
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    names, images = _template_containers(job_spec.get("template") or {})
    return [o["metadata"]["name"], spec.get("schedule", ""), _none(spec.get("timeZone")),
            "True" if spec.get("suspend") else "False", len(status.get("active") or []),
            human_duration(now - parse_time(last)) if last else "<none>", _age(o, now), names, images,
            _selector_text(job_spec.get("selector"))]


def _more(items: list[str], shown: int = 3) -> str:
    """kubectl's "a,b,c + 2 more..." for long address lists."""
    if not items:
        return "<none>"
    text = ",".join(items[:shown])
    return text + (f" + {len(items) - shown} more..." if len(items) > shown else "")


def _endpoints_row(o: Obj, now: float) -> list[Any]:
    pairs = []
    for subset in o.get("subsets") or []:
        ports = [p.get("port") for p in subset.get("ports") or []] or [None]
        for address in subset.get("addresses") or []:
            pairs += [f"{address.get('ip')}:{port}" if port is not None else str(address.get("ip")) for port in ports]
    return [o["metadata"]["name"], _more(pairs), _age(o, now)]


def _slice_row(o: Obj, now: float) -> list[Any]:
    ports = ",".join(str(p.get("port")) for p in o.get("ports") or [] if p.get("port") is not None) or "<unset>"
    addresses = [a for e in o.get("endpoints") or [] for a in e.get("addresses") or []]
    return [o["metadata"]["name"], o.get("addressType", ""), ports, _more(addresses) if addresses else "<unset>",
            _age(o, now)]


def _sa_row(o: Obj, now: float) -> list[Any]:
    return [o["metadata"]["name"], len(o.get("secrets") or []), _age(o, now)]


def _priority_row(o: Obj, now: float) -> list[Any]:
    return [o["metadata"]["name"], o.get("value", 0), bool(o.get("globalDefault")), _age(o, now),
            o.get("preemptionPolicy", "PreemptLowerPriority")]


def _role_row(o: Obj, now: float) -> list[Any]:
    return [o["metadata"]["name"], o["metadata"].get("creationTimestamp", "")]


def _binding_row(o: Obj, now: float) -> list[Any]:
    ref, subjects = o.get("roleRef") or {}, o.get("subjects") or []

    def names(kind: str) -> str:
        picked = [s for s in subjects if s.get("kind") == kind]
        if kind == "ServiceAccount":
            return ", ".join(f"{s.get('namespace', '')}/{s.get('name')}" for s in picked)
        return ", ".join(str(s.get("name")) for s in picked)

    return [o["metadata"]["name"], f"{ref.get('kind')}/{ref.get('name')}", _age(o, now), names("User"),
            names("Group"), names("ServiceAccount")]


def _revision_row(o: Obj, now: float) -> list[Any]:
    owner = next((r for r in o["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
    controller = "<none>"
    if owner:
        group = str(owner.get("apiVersion", "")).rpartition("/")[0]
        controller = f"{str(owner.get('kind')).lower()}{'.' + group if group else ''}/{owner.get('name')}"
    return [o["metadata"]["name"], controller, o.get("revision", 0), _age(o, now)]


_ACCESS = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}


def _modes(modes: list[str] | None) -> str:
    return ",".join(_ACCESS.get(m, m) for m in modes or [])


def _pvc_row(o: Obj, now: float) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    bound = status.get("phase") == "Bound"
    return [o["metadata"]["name"], "Terminating" if o["metadata"].get("deletionTimestamp") else status.get("phase",
            "Pending"), spec.get("volumeName", ""), (status.get("capacity") or {}).get("storage", "") if bound else "",
            _modes(status.get("accessModes")) if bound else "", _none(spec.get("storageClassName")),
            spec.get("volumeAttributesClassName") or "<unset>", _age(o, now), spec.get("volumeMode", "Filesystem")]


def _pv_row(o: Obj, now: float) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    claim = spec.get("claimRef") or {}
    return [o["metadata"]["name"], (spec.get("capacity") or {}).get("storage", ""), _modes(spec.get("accessModes")),
            spec.get("persistentVolumeReclaimPolicy", "Retain"),
            "Terminating" if o["metadata"].get("deletionTimestamp") else status.get("phase", "Pending"),
            f"{claim.get('namespace')}/{claim.get('name')}" if claim else "", spec.get("storageClassName", ""),
            spec.get("volumeAttributesClassName") or "<unset>", status.get("reason", ""), _age(o, now),
            spec.get("volumeMode", "Filesystem")]


def _default_row(o: Obj, now: float) -> list[Any]:
    return [o["metadata"]["name"], _age(o, now)]


def _c(name: str, priority: int = 0, typ: str = "string", fmt: str = "") -> Column:
    return (name, typ, priority, fmt)


_NAME = _c("Name", fmt="name")
_AGE = _c("Age", typ="string")
_WIDE_WORKLOAD = (_c("Containers", 1), _c("Images", 1), _c("Selector", 1))
_REPLICAS = ((_NAME, _c("Desired", typ="integer"), _c("Current", typ="integer"), _c("Ready", typ="integer"), _AGE,
              *_WIDE_WORKLOAD), _rs_row)

_BINDINGS = ((_NAME, _c("Role"), _AGE, _c("Users", 1), _c("Groups", 1), _c("ServiceAccounts", 1)), _binding_row)

PRINTERS: dict[str, tuple[tuple[Column, ...], Callable[[Obj, float], list[Any]]]] = {
    "nodes": ((_NAME, _c("Status"), _c("Roles"), _AGE, _c("Version"), _c("Internal-IP", 1), _c("External-IP", 1),
               _c("OS-Image", 1), _c("Kernel-Version", 1), _c("Container-Runtime", 1)), _node_row),
    "pods": ((_NAME, _c("Ready"), _c("Status"), _c("Restarts", typ="string"), _AGE, _c("IP", 1), _c("Node", 1),
              _c("Nominated Node", 1), _c("Readiness Gates", 1)), _pod_row),
    "deployments.apps": ((_NAME, _c("Ready"), _c("Up-to-date", typ="integer"), _c("Available", typ="integer"),
                          _AGE, *_WIDE_WORKLOAD), _deploy_row),
    "replicasets.apps": _REPLICAS,
    "replicationcontrollers": _REPLICAS,
    "statefulsets.apps": ((_NAME, _c("Ready"), _AGE, _c("Containers", 1), _c("Images", 1)), _sts_row),
    "daemonsets.apps": ((_NAME, _c("Desired", typ="integer"), _c("Current", typ="integer"),
                         _c("Ready", typ="integer"), _c("Up-to-date", typ="integer"),
                         _c("Available", typ="integer"), _c("Node Selector"), _AGE, *_WIDE_WORKLOAD), _ds_row),
    "services": ((_NAME, _c("Type"), _c("Cluster-IP"), _c("External-IP"), _c("Port(s)"), _AGE,
                  _c("Selector", 1)), _svc_row),
    "namespaces": ((_NAME, _c("Status"), _AGE), _ns_row),
    "poddisruptionbudgets.policy": ((_NAME, _c("Min Available"), _c("Max Unavailable"),
                                     _c("Allowed Disruptions", typ="integer"), _AGE), _pdb_row),
    "events": ((_c("Last Seen"), _c("Type"), _c("Reason"), _c("Object"), _c("Message")), _event_row),
    "leases.coordination.k8s.io": ((_NAME, _c("Holder"), _AGE), _lease_row),
    "configmaps": ((_NAME, _c("Data", typ="integer"), _AGE), _cm_row),
    "secrets": ((_NAME, _c("Type"), _c("Data", typ="integer"), _AGE), _secret_row),
    "jobs.batch": ((_NAME, _c("Status"), _c("Completions"), _c("Duration"), _AGE, *_WIDE_WORKLOAD), _job_row),
    "cronjobs.batch": ((_NAME, _c("Schedule"), _c("Timezone"), _c("Suspend", typ="boolean"),
                        _c("Active", typ="integer"), _c("Last Schedule"), _AGE, *_WIDE_WORKLOAD), _cronjob_row),
    "serviceaccounts": ((_NAME, _c("Secrets", typ="integer"), _AGE), _sa_row),
    "endpoints": ((_NAME, _c("Endpoints"), _AGE), _endpoints_row),
    "endpointslices.discovery.k8s.io": ((_NAME, _c("AddressType"), _c("Ports"), _c("Endpoints"), _AGE), _slice_row),
    "priorityclasses.scheduling.k8s.io": ((_NAME, _c("Value", typ="integer"), _c("Global-Default", typ="boolean"),
                                           _AGE, _c("PreemptionPolicy")), _priority_row),
    "roles.rbac.authorization.k8s.io": ((_NAME, _c("Created At", typ="date")), _role_row),
    "clusterroles.rbac.authorization.k8s.io": ((_NAME, _c("Created At", typ="date")), _role_row),
    "rolebindings.rbac.authorization.k8s.io": _BINDINGS,
    "clusterrolebindings.rbac.authorization.k8s.io": _BINDINGS,
    "controllerrevisions.apps": ((_NAME, _c("Controller"), _c("Revision", typ="integer"), _AGE), _revision_row),
    "persistentvolumeclaims": ((_NAME, _c("Status"), _c("Volume"), _c("Capacity"), _c("Access Modes"),
                                _c("StorageClass"), _c("VolumeAttributesClass"), _AGE, _c("VolumeMode", 1)),
                               _pvc_row),
    "persistentvolumes": ((_NAME, _c("Capacity"), _c("Access Modes"), _c("Reclaim Policy"), _c("Status"),
                           _c("Claim"), _c("StorageClass"), _c("VolumeAttributesClass"), _c("Reason"), _AGE,
                           _c("VolumeMode", 1)), _pv_row),
}


def _partial(obj: Obj) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def table(resource: str, objs: list[Obj], *, now: float, include_object: str = "Metadata",
          list_meta: dict[str, Any] | None = None, headers: bool = True) -> dict[str, Any]:
    columns, row_fn = PRINTERS.get(resource, ((_NAME, _AGE), _default_row))
    rows = []
    for o in objs:
        row: dict[str, Any] = {"cells": row_fn(o, now)}
        if include_object == "Object":
            row["object"] = o
        elif include_object != "None":
            row["object"] = _partial(o)
        rows.append(row)
    out: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta or {}}
    if headers:
        out["columnDefinitions"] = [
            {"name": n, "type": t, "format": f, "description": n, "priority": p} for n, t, p, f in columns
        ]
    else:
        out["columnDefinitions"] = []
    out["rows"] = rows
    return out
