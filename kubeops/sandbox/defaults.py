"""Defaulting and validation of built-in kinds, the subset kube-apiserver applies that clients can observe.

Installed into a `Store` by `install(store)`. Defaults matter for fidelity (kubectl prints them, schemas require
some of them); validation covers the mistakes a playbook or test can make, with the real messages.
"""

from __future__ import annotations

import ipaddress
import itertools
from typing import Any

from kubeops.sandbox.store import Cause, Obj, Store

_ip_counter = itertools.count(2)  # 10.96.0.1 is the `kubernetes` Service's, as on every cluster
_node_port_counter = itertools.count(0)


def _pod_spec(spec: dict[str, Any], *, pod: bool = True) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    if spec.get("serviceAccountName") is None and spec.get("serviceAccount") is None:
        spec["serviceAccountName"] = "default"
        spec["serviceAccount"] = "default"
    for c in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        if not isinstance(c, dict):
            continue
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        image = str(c.get("image", ""))
        c.setdefault("imagePullPolicy", "Always" if image.endswith(":latest") or ":" not in image else "IfNotPresent")
        c.setdefault("resources", {})
        for port in c.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
    if not pod:
        return
    # The DefaultTolerationSeconds admission plugin: 300 s for each of the two taints the pod does not already
    # tolerate (a DaemonSet's own tolerations, or a bare `operator: Exists`, keep theirs).
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(_tolerates_no_execute(t, key) for t in spec.get("tolerations") or []):
            spec.setdefault("tolerations", []).append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                                       "tolerationSeconds": 300})


def _tolerates_no_execute(tol: dict[str, Any], key: str) -> bool:
    if tol.get("effect") not in (None, "", "NoExecute"):
        return False
    if (tol.get("operator") or "Equal") == "Exists":
        return tol.get("key") in (None, "", key)
    return tol.get("key") == key


def _qos(spec: dict[str, Any]) -> str:
    containers = spec.get("containers") or []
    requests_any = limits_any = False
    guaranteed = bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        requests_any = requests_any or bool(req)
        limits_any = limits_any or bool(lim)
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and req[r] != lim[r]):
                guaranteed = False
    if guaranteed:
        return "Guaranteed"
    return "Burstable" if requests_any or limits_any else "BestEffort"


def default_pod(obj: Obj, old: Obj | None) -> None:
    if old is not None:
        return
    spec = obj.setdefault("spec", {})
    _pod_spec(spec)
    status = obj.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", _qos(spec))


def validate_pod(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    containers = spec.get("containers")
    if not containers:
        causes.append(("FieldValueRequired", "spec.containers", "Required value"))
    else:
        for i, c in enumerate(containers):
            if not c.get("name"):
                causes.append(("FieldValueRequired", f"spec.containers[{i}].name", "Required value"))
            if not c.get("image"):
                causes.append(("FieldValueRequired", f"spec.containers[{i}].image", "Required value"))
    return causes


def _template_default(tmpl: dict[str, Any]) -> None:
    _pod_spec(tmpl.setdefault("spec", {}), pod=False)
    tmpl.setdefault("metadata", {}).setdefault("creationTimestamp", None)


def _strategy(spec: dict[str, Any], key: str, rolling: dict[str, Any]) -> None:
    """Default an update strategy field by field: kubectl sends ``strategy: {}`` (a Go struct is never omitted),
    and the API server still makes it RollingUpdate with the kind's default parameters."""
    strategy = spec.get(key)
    if not isinstance(strategy, dict):
        strategy = spec[key] = {}
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        params = strategy.setdefault("rollingUpdate", {})
        for name, value in rolling.items():
            params.setdefault(name, value)


def default_workload(kind: str):  # type: ignore[no-untyped-def]
    def fn(obj: Obj, old: Obj | None) -> None:
        spec = obj.setdefault("spec", {})
        if kind != "DaemonSet":
            spec.setdefault("replicas", 1)
        if kind in ("Deployment", "StatefulSet", "DaemonSet"):
            spec.setdefault("revisionHistoryLimit", 10)
        if kind == "Deployment":
            spec.setdefault("progressDeadlineSeconds", 600)
            _strategy(spec, "strategy", {"maxUnavailable": "25%", "maxSurge": "25%"})
        if kind == "DaemonSet":
            _strategy(spec, "updateStrategy", {"maxUnavailable": 1, "maxSurge": 0})
        if kind == "StatefulSet":
            spec.setdefault("podManagementPolicy", "OrderedReady")
            _strategy(spec, "updateStrategy", {"partition": 0})
            spec.setdefault("persistentVolumeClaimRetentionPolicy",
                            {"whenDeleted": "Retain", "whenScaled": "Retain"})
        if kind == "ReplicationController":
            tmpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
            if not spec.get("selector") and tmpl_labels:
                spec["selector"] = dict(tmpl_labels)
        if isinstance(spec.get("template"), dict):
            _template_default(spec["template"])
        status = obj.setdefault("status", {}) if old is None else obj.get("status")
        if isinstance(status, dict):
            for name in _STATUS_COUNTS.get(kind, ()):
                status.setdefault(name, 0)
    return fn


# Status counters without `omitempty` in the Go types: the API server shows them as 0 on a fresh object (before
# any controller ran), and the official clients refuse the object when they are missing (the OpenAPI marks them
# required).
_STATUS_COUNTS: dict[str, tuple[str, ...]] = {
    "DaemonSet": ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady"),
    "ReplicaSet": ("replicas",),
    "ReplicationController": ("replicas",),
    "StatefulSet": ("replicas", "availableReplicas"),
}


def validate_workload(kind: str):  # type: ignore[no-untyped-def]
    def fn(obj: Obj, old: Obj | None) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        replicas = spec.get("replicas")
        if isinstance(replicas, int) and replicas < 0:
            causes.append(("FieldValueInvalid", "spec.replicas",
                           f"Invalid value: {replicas}: must be greater than or equal to 0"))
        if kind != "ReplicationController" and not spec.get("selector"):
            causes.append(("FieldValueRequired", "spec.selector", "Required value"))
        tmpl = spec.get("template")
        if not isinstance(tmpl, dict) or not (tmpl.get("spec") or {}).get("containers"):
            causes.append(("FieldValueRequired", "spec.template.spec.containers", "Required value"))
        else:
            sel = (spec.get("selector") or {})
            match = sel.get("matchLabels", sel) if kind != "ReplicationController" else sel
            labels = (tmpl.get("metadata") or {}).get("labels") or {}
            if isinstance(match, dict) and any(labels.get(k) != v for k, v in match.items()
                                                if isinstance(v, str)):
                causes.append(("FieldValueInvalid", "spec.template.metadata.labels",
                               f"Invalid value: {_go_map(labels)}: `selector` does not match template `labels`"))
        return causes
    return fn


def _go_map(m: dict[str, str]) -> str:
    inner = ", ".join(f'"{k}":"{v}"' for k, v in sorted(m.items()))
    return "map[string]string{" + inner + "}"


def default_namespace(obj: Obj, old: Obj | None) -> None:
    name = obj["metadata"]["name"]
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    if old is None:  # created with "kubernetes" always; later only the finalize subresource changes them
        finalizers = obj.setdefault("spec", {}).setdefault("finalizers", [])
        if "kubernetes" not in finalizers:
            finalizers.append("kubernetes")
    obj.setdefault("status", {}).setdefault("phase", "Active")


def default_service(obj: Obj, old: Obj | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] == "ExternalName":  # a DNS alias: no cluster IP, no ports allocated
        obj.setdefault("status", {}).setdefault("loadBalancer", {})
        return
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
        old_ports = {p.get("port"): p.get("nodePort") for p in ((old or {}).get("spec") or {}).get("ports") or []}
        for p in spec.get("ports") or []:
            if not p.get("nodePort"):
                p["nodePort"] = old_ports.get(p.get("port")) or 30000 + next(_node_port_counter) % 2768
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    if not spec.get("clusterIP") and old is None:
        n = next(_ip_counter)
        spec["clusterIP"] = str(ipaddress.IPv4Address("10.96.0.0") + n)
    elif old is not None:
        spec["clusterIP"] = (old.get("spec") or {}).get("clusterIP", spec.get("clusterIP"))
    if spec.get("clusterIP") and spec["clusterIP"] != "None":
        spec["clusterIPs"] = [spec["clusterIP"]]
    for p in spec.get("ports") or []:
        p.setdefault("protocol", "TCP")
        if p.get("targetPort") in (None, 0, ""):  # protobuf bodies carry an unset IntOrString as 0
            p["targetPort"] = p.get("port")
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


def default_pdb(obj: Obj, old: Obj | None) -> None:
    if old is None:
        obj.setdefault("status", {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                                  "expectedPods": 0})


def validate_pdb(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    if "minAvailable" in spec and "maxUnavailable" in spec:
        return [("FieldValueInvalid", "spec", "Invalid value: ...: minAvailable and maxUnavailable cannot be both "
                 "set")]
    return []


def default_secret(obj: Obj, old: Obj | None) -> None:
    obj.setdefault("type", "Opaque")


def default_node(obj: Obj, old: Obj | None) -> None:
    if old is None:
        status = obj.setdefault("status", {})
        if "capacity" in status:
            status.setdefault("allocatable", dict(status["capacity"]))


def install(store: Store) -> None:
    store.defaulters["pods"].append(default_pod)
    store.validators["pods"].append(validate_pod)
    for key, kind in (("deployments.apps", "Deployment"), ("replicasets.apps", "ReplicaSet"),
                      ("statefulsets.apps", "StatefulSet"), ("daemonsets.apps", "DaemonSet"),
                      ("replicationcontrollers", "ReplicationController")):
        store.defaulters[key].append(default_workload(kind))
        store.validators[key].append(validate_workload(kind))
    store.defaulters["namespaces"].append(default_namespace)
    store.defaulters["services"].append(default_service)
    store.defaulters["poddisruptionbudgets.policy"].append(default_pdb)
    store.validators["poddisruptionbudgets.policy"].append(validate_pdb)
    store.defaulters["nodes"].append(default_node)
    store.defaulters["secrets"].append(default_secret)
