"""Sandbox scenarios: a YAML description of a cluster, validated with file/line/field errors, loaded into a store.

A scenario is a name from ``kubeops/sandbox/scenarios/`` (``default``, ``pdb-blocked``, ``large``,
``autoscaling``...), a path to a YAML file, or (in tests) a dict of the same shape. Top-level keys:

``name`` (str), ``description`` (str)
``params``: defaults for ``${name}`` placeholders used anywhere below; override with ``--param name=value``.
    A value that is exactly ``"${name}"`` takes the parameter's type (``count: ${nodes}`` stays an int).
``settings``: free-form knobs read by the simulation; known ones: ``tick_ms`` (reconcile period, 50),
    ``join_delay_s`` (AWS instance -> Ready node, 5), ``kubelet_version`` ("v1.33.0"), ``region`` ("us-east-1"),
    ``watch_history`` (events kept for watch resumption, 200000; older resourceVersions get 410 Gone),
    ``eviction_versions`` (Eviction versions served, [v1, v1beta1]; [v1beta1] answers policy/v1 with 404 like
    a server older than 1.22), ``tokens`` (bearer tokens accepted; default: only the one in the sandbox's own
    kubeconfig; ``["*"]`` accepts any; any other token gets 401 Unauthorized like a revoked one), ``token_users``
    ({token: user name or {user, groups}}), ``rbac`` (true: enforce RBAC; see kubeops/sandbox/rbac.py),
    ``events`` (false: record no Events), ``node_monitor_grace_period_s`` (a dead node goes Unknown after, 50),
    ``timing`` (``"spec"``: pods without the sandbox's timing annotations take their timing from probes,
    preStop hooks and grace periods), ``speed`` (divides every pod delay and minReadySeconds), ``exit_s``
    (seconds every pod takes to exit, or ``"grace"``); see `kubeops.sandbox.timing`.
``faults``: see `kubeops.sandbox.faults.FaultConfig` (``error_429_rate``, ``latency_ms``, ...).
``namespaces``: list of names (default, kube-system, kube-public, kube-node-lease always exist; namespaces used
    by workloads/services/objects are created too).
``nodes``: list of {``name`` | ``name_prefix`` + ``count``, ``labels``, ``annotations``, ``taints``
    ([{key, value, effect}]), ``capacity`` / ``allocatable`` ({cpu, memory, pods, ephemeral-storage}),
    ``zone`` (str or list: round robin), ``instance_type``, ``unschedulable``, ``ready`` (true),
    ``autoscaling_group``, ``role`` (adds ``node-role.kubernetes.io/<role>``), ``internal_ip`` (the Node's
    InternalIP address, e.g. 127.0.0.1 so SSH tests reach a local sshd; default 10.0.x.y, or the instance's
    private IP for a group member with AWS on), ``hostname`` (its Hostname address; default the node name)}.
``autoscaling_groups``: list of {``name``, ``min``, ``max``, ``desired``, ``zones``, ``instance_type``,
    ``node``: {labels, taints, capacity, allocatable, role}}. Nodes declared under ``nodes:`` with
    ``autoscaling_group: <name>`` are that group's initial instances (the loader creates them; the AWS link
    registers them as the group's instances in moto and keeps their names). With AWS on, the AWS link (semantics
    helper) tops the group up to ``desired`` in moto, one Node per further InService instance; with ``--no-aws``
    the loader itself creates the missing ``desired - declared`` Nodes ``<group>-<i>``.
    Every group member carries the label ``kubeops.io/autoscaling-group: <group>``.
``workloads``: list of {``kind``: Deployment | StatefulSet | DaemonSet | ReplicaSet | ReplicationController |
    Job | Pod | MirrorPod, ``name``, ``namespace`` (default), ``replicas`` (1; for Pod: that many pods
    ``<name>-<i>``), ``per_node`` (Pod only: that many pods on every matching node, named
    ``<name>-<node>-<i>``), ``labels`` ({app: name}), ``image``, ``node`` (Pod/MirrorPod: the node),
    ``node_selector``, ``tolerations``, ``resources`` ({requests, limits}), ``usage`` ({cpu, memory}),
    ``termination_delay_s``, ``termination_grace_s``, ``readiness_delay_s``, ``never_ready``, ``empty_dir``,
    ``priority_class``, ``pdb`` ({min_available | max_unavailable})}.
    Controller kinds become real apps/v1 (or core/batch) objects whose pod templates carry the simulation knobs as
    annotations (`ANNOTATIONS`); the semantics helper's controllers create their pods. Pod and MirrorPod are
    created directly, bound to their node and Running (Ready unless ``never_ready``/``readiness_delay_s``).
    Mirror pods carry ``kubernetes.io/config.mirror`` and an ownerReference to their Node.
``services``: list of {``name``, ``namespace``, ``selector``, ``ports`` ([{port, target_port, name, protocol}]),
    ``type``}.
``objects``: list of raw Kubernetes manifests, created through the store (validated like API requests).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubeops.errors import PlaybookError
from kubeops.yamlsource import PathKey, YamlDocument, load_yaml

if TYPE_CHECKING:
    from kubeops.sandbox.cluster import Cluster

SCENARIO_DIR = Path(__file__).with_name("scenarios")

ANNOTATIONS = {
    "termination_delay_s": "sandbox.kubeops.io/termination-delay-s",
    "readiness_delay_s": "sandbox.kubeops.io/readiness-delay-s",
    "never_ready": "sandbox.kubeops.io/never-ready",
    "cpu_usage": "sandbox.kubeops.io/cpu-usage",
    "memory_usage": "sandbox.kubeops.io/memory-usage",
}
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job", "Pod",
                  "MirrorPod")
_CONTROLLER_RESOURCE = {
    "Deployment": ("deployments.apps", "apps/v1"),
    "StatefulSet": ("statefulsets.apps", "apps/v1"),
    "DaemonSet": ("daemonsets.apps", "apps/v1"),
    "ReplicaSet": ("replicasets.apps", "apps/v1"),
    "ReplicationController": ("replicationcontrollers", "v1"),
    "Job": ("jobs.batch", "batch/v1"),
}
DEFAULT_CAPACITY = {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}

_TOP = ("name", "description", "params", "settings", "faults", "namespaces", "nodes", "autoscaling_groups",
        "workloads", "services", "objects")
_NODE_KEYS = ("name", "name_prefix", "count", "labels", "annotations", "taints", "capacity", "allocatable", "zone",
              "instance_type", "unschedulable", "ready", "autoscaling_group", "role", "internal_ip", "hostname")
_ASG_KEYS = ("name", "min", "max", "desired", "zones", "instance_type", "node")
_WL_KEYS = ("kind", "name", "namespace", "replicas", "per_node", "labels", "annotations", "image", "node",
            "node_selector", "tolerations", "resources", "usage", "termination_delay_s", "termination_grace_s",
            "readiness_delay_s", "never_ready", "empty_dir", "priority_class", "pdb")
_SVC_KEYS = ("name", "namespace", "selector", "ports", "type")


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario; the raw sections stay dicts (already checked) so plug-ins can read extra knobs."""

    name: str
    description: str
    path: str
    settings: dict[str, Any]
    faults: dict[str, Any]
    namespaces: tuple[str, ...]
    nodes: tuple[dict[str, Any], ...]  # expanded: one entry per node, with "name"
    autoscaling_groups: tuple[dict[str, Any], ...]
    workloads: tuple[dict[str, Any], ...]
    services: tuple[dict[str, Any], ...]
    objects: tuple[dict[str, Any], ...]
    params: dict[str, Any] = field(default_factory=dict)


# ---- parsing and validation ---------------------------------------------------------------------------------


def resolve(ref: str | Path) -> Path:
    """A scenario name (``default``) or a path to a YAML file."""
    p = Path(ref)
    if p.suffix in (".yaml", ".yml") or p.exists() or "/" in str(ref):
        return p
    candidate = SCENARIO_DIR / f"{ref}.yaml"
    if not candidate.exists():
        known = ", ".join(sorted(x.stem for x in SCENARIO_DIR.glob("*.yaml")))
        raise PlaybookError(f"unknown scenario {str(ref)!r} (shipped: {known})", path=str(ref))
    return candidate


def load(ref: str | Path | dict[str, Any], *, params: dict[str, str] | None = None) -> Scenario:
    doc = YamlDocument(path="<scenario>", data=ref, lines={}) if isinstance(ref, dict) else load_yaml(resolve(ref))
    return parse(doc, params=params)


def _substitute(value: Any, params: dict[str, Any], doc: YamlDocument, key: PathKey) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, params, doc, (*key, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, params, doc, (*key, i)) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        whole = re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", value)
        if whole:
            if whole.group(1) not in params:
                raise doc.error(key, f"unknown parameter {whole.group(1)!r} (declare it under params:)")
            return params[whole.group(1)]

        def repl(m: re.Match[str]) -> str:
            if m.group(1) not in params:
                raise doc.error(key, f"unknown parameter {m.group(1)!r} (declare it under params:)")
            return str(params[m.group(1)])

        return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", repl, value)
    return value


def _coerce(text: str, like: Any) -> Any:
    if isinstance(like, bool):
        return text.lower() in ("1", "true", "yes")
    if isinstance(like, int):
        return int(text)
    if isinstance(like, float):
        return float(text)
    return text


def _expect(doc: YamlDocument, key: PathKey, value: Any, typ: type | tuple[type, ...], what: str) -> Any:
    if isinstance(value, bool) and typ in (int, float, (int, float)):
        raise doc.error(key, f"expected {what}, got {value!r}")
    if not isinstance(value, typ):
        raise doc.error(key, f"expected {what}, got {type(value).__name__} {value!r}")
    return value


def _keys(doc: YamlDocument, key: PathKey, data: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for k in data:
        if k not in allowed:
            raise doc.error((*key, k), f"unknown key {k!r} (allowed: {', '.join(allowed)})")


def _str_map(doc: YamlDocument, key: PathKey, value: Any) -> dict[str, str]:
    _expect(doc, key, value, dict, "a mapping of strings")
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def _number(doc: YamlDocument, key: PathKey, value: Any, *, minimum: float = 0) -> float:
    _expect(doc, key, value, (int, float), "a number")
    if value < minimum:
        raise doc.error(key, f"must be >= {minimum:g}, got {value}")
    return float(value)


def _int(doc: YamlDocument, key: PathKey, value: Any, *, minimum: int = 0) -> int:
    _expect(doc, key, value, int, "an integer")
    if value < minimum:
        raise doc.error(key, f"must be >= {minimum}, got {value}")
    return int(value)


_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$")
_DNS = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _quantity_map(doc: YamlDocument, key: PathKey, value: Any) -> dict[str, str]:
    out = _str_map(doc, key, value)
    for k, v in out.items():
        if not _QUANTITY.match(v):
            raise doc.error((*key, k), f"{v!r} is not a Kubernetes quantity (e.g. 500m, 2, 4Gi)")
    return out


def _name(doc: YamlDocument, key: PathKey, value: Any) -> str:
    _expect(doc, key, value, str, "a name")
    if len(value) > 253 or not _DNS.match(value):
        raise doc.error(key, f"{value!r} is not a valid Kubernetes name (lowercase letters, digits, '-' and '.')")
    return value


def _ip(doc: YamlDocument, key: PathKey, value: Any) -> str:
    _expect(doc, key, value, str, "an IP address")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise doc.error(key, f"{value!r} is not an IP address") from None


def _taints(doc: YamlDocument, key: PathKey, value: Any) -> list[dict[str, str]]:
    _expect(doc, key, value, list, "a list of taints")
    out = []
    for i, t in enumerate(value):
        _expect(doc, (*key, i), t, dict, "a taint {key, value, effect}")
        _keys(doc, (*key, i), t, ("key", "value", "effect"))
        if "key" not in t:
            raise doc.error((*key, i), "a taint needs a key")
        effect = t.get("effect", "NoSchedule")
        if effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise doc.error((*key, i, "effect"), f"effect must be NoSchedule, PreferNoSchedule or NoExecute, "
                            f"got {effect!r}")
        taint = {"key": str(t["key"]), "effect": effect}
        if t.get("value") is not None:
            taint["value"] = str(t["value"])
        out.append(taint)
    return out


def parse(doc: YamlDocument, *, params: dict[str, str] | None = None) -> Scenario:
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error((), "a scenario must be a mapping with at least a name")
    _keys(doc, (), data, _TOP)
    declared = data.get("params") or {}
    _expect(doc, ("params",), declared, dict, "a mapping of parameter defaults")
    merged = dict(declared)
    for k, v in (params or {}).items():
        if k not in declared:
            raise PlaybookError(f"unknown scenario parameter {k!r} (declared: {', '.join(declared) or 'none'})",
                                path=doc.path, field=f"params.{k}")
        try:
            merged[k] = _coerce(str(v), declared[k])
        except ValueError:
            raise PlaybookError(f"parameter {k!r} expects {type(declared[k]).__name__}, got {v!r}",
                                path=doc.path, field=f"params.{k}") from None
    data = {k: (_substitute(v, merged, doc, (k,)) if k != "params" else v) for k, v in data.items()}
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise doc.error(("name",), "a scenario needs a name")
    settings = data.get("settings") or {}
    _expect(doc, ("settings",), settings, dict, "a mapping")
    if "eviction_versions" in settings:
        from kubeops.sandbox.eviction import served_versions

        try:
            served_versions(settings)
        except ValueError as exc:
            raise doc.error(("settings", "eviction_versions"), str(exc)) from None
    from kubeops.sandbox.rbac import check_settings

    for key, problem in check_settings(settings):
        raise doc.error(("settings", *key), problem)
    faults = data.get("faults") or {}
    _expect(doc, ("faults",), faults, dict, "a mapping")
    from kubeops.sandbox.faults import FaultConfig, FaultConfigError

    try:
        FaultConfig.from_dict(faults)
    except FaultConfigError as exc:
        raise doc.error(("faults",), str(exc)) from None
    namespaces = data.get("namespaces") or []
    _expect(doc, ("namespaces",), namespaces, list, "a list of names")
    for i, ns in enumerate(namespaces):
        _name(doc, ("namespaces", i), ns)

    asgs = _parse_asgs(doc, data.get("autoscaling_groups") or [])
    nodes = _parse_nodes(doc, data.get("nodes") or [], {a["name"] for a in asgs})
    workloads = _parse_workloads(doc, data.get("workloads") or [], {n["name"] for n in nodes})
    services = _parse_services(doc, data.get("services") or [])
    objects = data.get("objects") or []
    _expect(doc, ("objects",), objects, list, "a list of manifests")
    for i, obj in enumerate(objects):
        _expect(doc, ("objects", i), obj, dict, "a Kubernetes manifest")
        for f in ("apiVersion", "kind", "metadata"):
            if f not in obj:
                raise doc.error(("objects", i, f), f"a manifest needs {f}")
    return Scenario(name=name, description=str(data.get("description") or ""), path=doc.path,
                    settings=dict(settings), faults=dict(faults), namespaces=tuple(namespaces), nodes=tuple(nodes),
                    autoscaling_groups=tuple(asgs), workloads=tuple(workloads), services=tuple(services),
                    objects=tuple(objects), params=merged)


def _parse_asgs(doc: YamlDocument, raw: Any) -> list[dict[str, Any]]:
    _expect(doc, ("autoscaling_groups",), raw, list, "a list of groups")
    out = []
    for i, g in enumerate(raw):
        key: PathKey = ("autoscaling_groups", i)
        _expect(doc, key, g, dict, "a group")
        _keys(doc, key, g, _ASG_KEYS)
        name = _name(doc, (*key, "name"), g.get("name"))
        lo = _int(doc, (*key, "min"), g.get("min", 0))
        hi = _int(doc, (*key, "max"), g.get("max", max(lo, 1)))
        desired = _int(doc, (*key, "desired"), g.get("desired", lo))
        if not lo <= desired <= hi:
            raise doc.error((*key, "desired"), f"desired ({desired}) must be between min ({lo}) and max ({hi})")
        zones = g.get("zones") or ["us-east-1a"]
        _expect(doc, (*key, "zones"), zones, list, "a list of availability zones")
        tmpl = g.get("node") or {}
        _expect(doc, (*key, "node"), tmpl, dict, "a node template")
        _keys(doc, (*key, "node"), tmpl, ("labels", "taints", "capacity", "allocatable", "annotations", "role"))
        node = {
            "labels": _str_map(doc, (*key, "node", "labels"), tmpl.get("labels") or {}),
            "annotations": _str_map(doc, (*key, "node", "annotations"), tmpl.get("annotations") or {}),
            "taints": _taints(doc, (*key, "node", "taints"), tmpl.get("taints") or []),
            "capacity": _quantity_map(doc, (*key, "node", "capacity"), tmpl.get("capacity") or DEFAULT_CAPACITY),
            "allocatable": _quantity_map(doc, (*key, "node", "allocatable"), tmpl["allocatable"])
            if "allocatable" in tmpl else None,
            "role": tmpl.get("role"),
        }
        out.append({"name": name, "min": lo, "max": hi, "desired": desired, "zones": [str(z) for z in zones],
                    "instance_type": str(g.get("instance_type", "m5.large")), "node": node})
    return out


def _parse_nodes(doc: YamlDocument, raw: Any, asg_names: set[str]) -> list[dict[str, Any]]:
    _expect(doc, ("nodes",), raw, list, "a list of nodes")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, n in enumerate(raw):
        key: PathKey = ("nodes", i)
        _expect(doc, key, n, dict, "a node")
        _keys(doc, key, n, _NODE_KEYS)
        if ("name" in n) == ("name_prefix" in n):
            raise doc.error(key, "give either name or name_prefix (with count)")
        count = _int(doc, (*key, "count"), n.get("count", 1), minimum=1)
        zones = n.get("zone", "us-east-1a")
        zones = zones if isinstance(zones, list) else [zones]
        common = {
            "labels": _str_map(doc, (*key, "labels"), n.get("labels") or {}),
            "annotations": _str_map(doc, (*key, "annotations"), n.get("annotations") or {}),
            "taints": _taints(doc, (*key, "taints"), n.get("taints") or []),
            "capacity": _quantity_map(doc, (*key, "capacity"), n.get("capacity") or DEFAULT_CAPACITY),
            "allocatable": _quantity_map(doc, (*key, "allocatable"), n["allocatable"]) if "allocatable" in n
            else None,
            "instance_type": str(n.get("instance_type", "m5.large")),
            "unschedulable": bool(_expect(doc, (*key, "unschedulable"), n.get("unschedulable", False), bool,
                                          "true or false")),
            "ready": bool(_expect(doc, (*key, "ready"), n.get("ready", True), bool, "true or false")),
            "autoscaling_group": n.get("autoscaling_group"),
            "role": n.get("role"),
            "internal_ip": _ip(doc, (*key, "internal_ip"), n["internal_ip"]) if "internal_ip" in n else None,
            "hostname": _name(doc, (*key, "hostname"), n["hostname"]) if "hostname" in n else None,
        }
        if common["autoscaling_group"] is not None and common["autoscaling_group"] not in asg_names:
            raise doc.error((*key, "autoscaling_group"), f"no autoscaling group named "
                            f"{common['autoscaling_group']!r} in autoscaling_groups")
        if "name" in n:
            names = [_name(doc, (*key, "name"), n["name"])]
            if count != 1:
                raise doc.error((*key, "count"), "count needs name_prefix, not name")
        else:
            prefix = n["name_prefix"]
            _expect(doc, (*key, "name_prefix"), prefix, str, "a name prefix")
            width = len(str(count - 1))
            names = [_name(doc, (*key, "name_prefix"), f"{prefix}{j:0{width}d}") for j in range(count)]
        for j, name in enumerate(names):
            if name in seen:
                raise doc.error(key, f"node {name!r} is declared twice")
            seen.add(name)
            out.append({"name": name, "zone": str(zones[j % len(zones)]), **common})
    return out


def _parse_workloads(doc: YamlDocument, raw: Any, node_names: set[str]) -> list[dict[str, Any]]:
    _expect(doc, ("workloads",), raw, list, "a list of workloads")
    out = []
    seen: set[tuple[str, str, str]] = set()
    for i, w in enumerate(raw):
        key: PathKey = ("workloads", i)
        _expect(doc, key, w, dict, "a workload")
        _keys(doc, key, w, _WL_KEYS)
        kind = w.get("kind")
        if kind not in WORKLOAD_KINDS:
            raise doc.error((*key, "kind"), f"kind must be one of {', '.join(WORKLOAD_KINDS)}, got {kind!r}")
        name = _name(doc, (*key, "name"), w.get("name"))
        ns = _name(doc, (*key, "namespace"), w.get("namespace", "default"))
        ident = (kind, ns, name)
        if ident in seen:
            raise doc.error((*key, "name"), f"{kind} {ns}/{name} is declared twice")
        seen.add(ident)
        spec: dict[str, Any] = {"kind": kind, "name": name, "namespace": ns}
        spec["replicas"] = _int(doc, (*key, "replicas"), w.get("replicas", 1))
        spec["per_node"] = _int(doc, (*key, "per_node"), w["per_node"]) if "per_node" in w else None
        if spec["per_node"] is not None and kind != "Pod":
            raise doc.error((*key, "per_node"), "per_node is only for kind Pod (use a DaemonSet otherwise)")
        spec["labels"] = _str_map(doc, (*key, "labels"), w.get("labels") or {"app": name})
        spec["annotations"] = _str_map(doc, (*key, "annotations"), w.get("annotations") or {})
        spec["image"] = str(w.get("image", "registry.k8s.io/pause:3.9"))
        node = w.get("node")
        if kind == "MirrorPod" and node is None:
            raise doc.error((*key, "node"), "a MirrorPod needs the node it runs on")
        if node is not None:
            if kind not in ("Pod", "MirrorPod"):
                raise doc.error((*key, "node"), "node is only for Pod and MirrorPod (use node_selector)")
            if node not in node_names:
                raise doc.error((*key, "node"), f"no node named {node!r} in nodes")
        spec["node"] = node
        spec["node_selector"] = _str_map(doc, (*key, "node_selector"), w.get("node_selector") or {})
        tol = w.get("tolerations") or []
        _expect(doc, (*key, "tolerations"), tol, list, "a list of tolerations")
        spec["tolerations"] = tol
        res = w.get("resources") or {}
        _expect(doc, (*key, "resources"), res, dict, "{requests, limits}")
        _keys(doc, (*key, "resources"), res, ("requests", "limits"))
        spec["resources"] = {k: _quantity_map(doc, (*key, "resources", k), v) for k, v in res.items() if v}
        usage = w.get("usage") or {}
        _expect(doc, (*key, "usage"), usage, dict, "{cpu, memory}")
        _keys(doc, (*key, "usage"), usage, ("cpu", "memory"))
        spec["usage"] = _quantity_map(doc, (*key, "usage"), usage)
        for f in ("termination_delay_s", "readiness_delay_s"):
            spec[f] = _number(doc, (*key, f), w[f]) if f in w else None
        spec["termination_grace_s"] = _int(doc, (*key, "termination_grace_s"), w["termination_grace_s"]) \
            if "termination_grace_s" in w else None
        spec["never_ready"] = bool(_expect(doc, (*key, "never_ready"), w.get("never_ready", False), bool,
                                           "true or false"))
        spec["empty_dir"] = bool(_expect(doc, (*key, "empty_dir"), w.get("empty_dir", False), bool,
                                         "true or false"))
        spec["priority_class"] = w.get("priority_class")
        pdb = w.get("pdb")
        if pdb is not None:
            _expect(doc, (*key, "pdb"), pdb, dict, "{min_available | max_unavailable}")
            _keys(doc, (*key, "pdb"), pdb, ("min_available", "max_unavailable", "name"))
            if ("min_available" in pdb) == ("max_unavailable" in pdb):
                raise doc.error((*key, "pdb"), "give exactly one of min_available and max_unavailable")
            for f in ("min_available", "max_unavailable"):
                v = pdb.get(f)
                if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= 0) and not (
                        isinstance(v, str) and re.fullmatch(r"\d+%", v)):
                    raise doc.error((*key, "pdb", f), f"expected a count or a percentage like '50%', got {v!r}")
        spec["pdb"] = pdb
        out.append(spec)
    return out


def _parse_services(doc: YamlDocument, raw: Any) -> list[dict[str, Any]]:
    _expect(doc, ("services",), raw, list, "a list of services")
    out = []
    for i, s in enumerate(raw):
        key: PathKey = ("services", i)
        _expect(doc, key, s, dict, "a service")
        _keys(doc, key, s, _SVC_KEYS)
        ports = s.get("ports") or [{"port": 80}]
        _expect(doc, (*key, "ports"), ports, list, "a list of ports")
        norm = []
        for j, p in enumerate(ports):
            _expect(doc, (*key, "ports", j), p, dict, "{port, target_port, name, protocol}")
            _keys(doc, (*key, "ports", j), p, ("port", "target_port", "name", "protocol"))
            port = {"port": _int(doc, (*key, "ports", j, "port"), p.get("port"), minimum=1),
                    "protocol": str(p.get("protocol", "TCP"))}
            port["targetPort"] = p.get("target_port", port["port"])
            if p.get("name"):
                port["name"] = str(p["name"])
            norm.append(port)
        out.append({"name": _name(doc, (*key, "name"), s.get("name")),
                    "namespace": _name(doc, (*key, "namespace"), s.get("namespace", "default")),
                    "selector": _str_map(doc, (*key, "selector"), s.get("selector") or {}),
                    "ports": norm, "type": str(s.get("type", "ClusterIP"))})
    return out


# ---- building objects ---------------------------------------------------------------------------------------


def node_object(spec: dict[str, Any], *, kubelet_version: str, region: str, index: int, now_ts: str,
                provider_id: str | None = None, internal_ip: str | None = None) -> dict[str, Any]:
    """A Node as a kubelet registers it, Ready (unless spec ready=false)."""
    name = spec["name"]
    zone = spec.get("zone", f"{region}a")
    labels = {
        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux", "kubernetes.io/hostname": name,
        "topology.kubernetes.io/region": region, "topology.kubernetes.io/zone": zone,
        "node.kubernetes.io/instance-type": spec.get("instance_type", "m5.large"),
    }
    if spec.get("role"):
        labels[f"node-role.kubernetes.io/{spec['role']}"] = ""
    labels.update(spec.get("labels") or {})
    ip = spec.get("internal_ip") or internal_ip or f"10.0.{index // 250}.{index % 250 + 4}"
    capacity = dict(spec.get("capacity") or DEFAULT_CAPACITY)
    allocatable = dict(spec.get("allocatable") or capacity)
    ts = now_ts
    ready = spec.get("ready", True)

    def cond(typ: str, status: str, reason: str, msg: str) -> dict[str, str]:
        return {"type": typ, "status": status, "reason": reason, "message": msg, "lastHeartbeatTime": ts,
                "lastTransitionTime": ts}

    digest = hashlib.sha1(name.encode()).hexdigest()
    node: dict[str, Any] = {
        "metadata": {
            "name": name, "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                            "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                            **(spec.get("annotations") or {})},
        },
        "spec": {
            "podCIDR": f"100.{64 + (index // 256) % 64}.{index % 256}.0/24",
            "podCIDRs": [f"100.{64 + (index // 256) % 64}.{index % 256}.0/24"],
            "providerID": provider_id or f"aws:///{zone}/i-{digest[:17]}",
        },
        "status": {
            "capacity": capacity, "allocatable": allocatable,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory",
                     "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status") if ready else
                cond("Ready", "False", "KubeletNotReady", "container runtime network not ready"),
            ],
            "addresses": [{"type": "InternalIP", "address": ip},
                          {"type": "Hostname", "address": spec.get("hostname") or name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": digest[:32], "systemUUID": str(uuid.UUID(digest[:32])), "bootID": digest[8:40],
                "kernelVersion": "6.1.0-amazon", "osImage": "Amazon Linux 2023",
                "containerRuntimeVersion": "containerd://1.7.22", "kubeletVersion": kubelet_version,
                "kubeProxyVersion": kubelet_version, "operatingSystem": "linux", "architecture": "amd64",
            },
        },
    }
    if spec.get("taints"):
        node["spec"]["taints"] = [dict(t) for t in spec["taints"]]
    if spec.get("unschedulable"):
        node["spec"]["unschedulable"] = True
        node["spec"].setdefault("taints", []).append(
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": ts})
    return node


def _knob_annotations(w: dict[str, Any]) -> dict[str, str]:
    ann = dict(w.get("annotations") or {})
    if w.get("termination_delay_s") is not None:
        ann[ANNOTATIONS["termination_delay_s"]] = f"{w['termination_delay_s']:g}"
    if w.get("readiness_delay_s") is not None:
        ann[ANNOTATIONS["readiness_delay_s"]] = f"{w['readiness_delay_s']:g}"
    if w.get("never_ready"):
        ann[ANNOTATIONS["never_ready"]] = "true"
    usage = w.get("usage") or {}
    if usage.get("cpu"):
        ann[ANNOTATIONS["cpu_usage"]] = usage["cpu"]
    if usage.get("memory"):
        ann[ANNOTATIONS["memory_usage"]] = usage["memory"]
    return ann


def pod_spec(w: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": w["image"], "resources": w.get("resources") or {}}
    spec: dict[str, Any] = {"containers": [container]}
    if w.get("empty_dir"):
        spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
        container["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
    if w.get("node_selector"):
        spec["nodeSelector"] = dict(w["node_selector"])
    if w.get("tolerations"):
        spec["tolerations"] = [dict(t) for t in w["tolerations"]]
    if w.get("termination_grace_s") is not None:
        spec["terminationGracePeriodSeconds"] = w["termination_grace_s"]
    if w.get("priority_class"):
        spec["priorityClassName"] = w["priority_class"]
    return spec


def controller_object(w: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The apps/v1 (or core/batch) object for a controller workload: (store resource key, manifest)."""
    resource, api_version = _CONTROLLER_RESOURCE[w["kind"]]
    labels = dict(w["labels"])
    template = {"metadata": {"labels": labels, "annotations": _knob_annotations(w)}, "spec": pod_spec(w)}
    if not template["metadata"]["annotations"]:
        del template["metadata"]["annotations"]
    spec: dict[str, Any] = {"template": template}
    if w["kind"] == "ReplicationController":
        spec["selector"] = dict(labels)
    elif w["kind"] == "Job":
        template["spec"]["restartPolicy"] = "Never"
        spec["completions"] = w["replicas"]
        spec["parallelism"] = w["replicas"]
    else:
        spec["selector"] = {"matchLabels": dict(labels)}
    if w["kind"] in ("Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"):
        spec["replicas"] = w["replicas"]
    if w["kind"] == "StatefulSet":
        spec["serviceName"] = w["name"]
    obj = {"apiVersion": api_version, "kind": w["kind"],
           "metadata": {"name": w["name"], "namespace": w["namespace"], "labels": dict(labels)}, "spec": spec}
    return resource, obj


def _ready_status(pod: dict[str, Any], node_ip: str, index: int, *, ready: bool, now_ts: str) -> dict[str, Any]:
    ready_text = "True" if ready else "False"
    pod_ip = f"100.64.{(index >> 8) & 255}.{index & 255}"
    return {
        "phase": "Running",
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now_ts,
             "lastProbeTime": None},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now_ts, "lastProbeTime": None},
            {"type": "Ready", "status": ready_text, "lastTransitionTime": now_ts, "lastProbeTime": None},
            {"type": "ContainersReady", "status": ready_text, "lastTransitionTime": now_ts, "lastProbeTime": None},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now_ts, "lastProbeTime": None},
        ],
        "hostIP": node_ip, "hostIPs": [{"ip": node_ip}],
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
        "startTime": now_ts,
        "qosClass": pod["status"]["qosClass"],
        "containerStatuses": [{
            "name": c["name"], "image": c["image"], "imageID": f"{c['image']}@sha256:{'0' * 64}",
            "containerID": f"containerd://{index:032x}{n:032x}",
            "ready": ready, "started": True, "restartCount": 0, "state": {"running": {"startedAt": now_ts}},
        } for n, c in enumerate(pod["spec"]["containers"])],
    }


# ---- loading ------------------------------------------------------------------------------------------------


API_SERVER_IP = "10.96.0.1"  # the first address of the service range, as on every cluster


def _api_server_service(store: Any) -> None:
    """``default/kubernetes``: the Service (and its Endpoints and EndpointSlice) every cluster has for its API
    server; in-cluster clients reach the control plane through it. The address behind it is the sandbox's own."""
    if store.try_get("services", "default", "kubernetes", copy=False) is not None:
        return
    labels = {"component": "apiserver", "provider": "kubernetes"}
    store.create("services", {"metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
                              "spec": {"clusterIP": API_SERVER_IP, "type": "ClusterIP", "sessionAffinity": "None",
                                       "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                                  "targetPort": 6443}]}})
    port = {"name": "https", "port": 6443, "protocol": "TCP"}
    store.load("endpoints", [{
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [port]}]}])
    store.load("endpointslices.discovery.k8s.io", [{
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name":
                                                                              "kubernetes"}},
        "addressType": "IPv4", "ports": [port],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]}])


def apply(cluster: Cluster, scenario: Scenario) -> None:
    """Create the scenario's objects in the cluster's store (bulk paths for nodes and bare pods)."""
    from kubeops.sandbox.store import rfc3339

    store = cluster.store
    now_ts = rfc3339(cluster.clock.now())
    settings = scenario.settings
    kubelet_version = str(settings.get("kubelet_version", "v1.33.0"))
    region = str(settings.get("region", cluster.region))
    namespaces = list(SYSTEM_NAMESPACES)
    for ns in [*scenario.namespaces, *(w["namespace"] for w in scenario.workloads),
               *(s["namespace"] for s in scenario.services),
               *((o.get("metadata") or {}).get("namespace") for o in scenario.objects)]:
        if ns and ns not in namespaces:
            namespaces.append(ns)
    for ns in namespaces:
        if store.try_get("namespaces", None, ns, copy=False) is None:
            store.create("namespaces", {"metadata": {"name": ns}})
    store.load("serviceaccounts", ({"metadata": {"name": "default", "namespace": ns}} for ns in namespaces))
    _api_server_service(store)
    store.load("priorityclasses.scheduling.k8s.io", (
        {"metadata": {"name": n}, "value": v, "globalDefault": False, "preemptionPolicy": "PreemptLowerPriority",
         "description": "Used for system critical pods that must not be moved from their current node."}
        for n, v in (("system-node-critical", 2000001000), ("system-cluster-critical", 2000000000))))

    node_specs = list(scenario.nodes)
    if cluster.aws_url is None:
        for g in scenario.autoscaling_groups:
            declared = sum(1 for n in node_specs if n.get("autoscaling_group") == g["name"])
            for j in range(declared, g["desired"]):
                node_specs.append({"name": f"{g['name']}-{j}", "zone": g["zones"][j % len(g["zones"])],
                                   "instance_type": g["instance_type"], "autoscaling_group": g["name"],
                                   **{k: v for k, v in g["node"].items() if v is not None}})
    nodes = []
    for i, spec in enumerate(node_specs):
        node = node_object(spec, kubelet_version=kubelet_version, region=region, index=i, now_ts=now_ts)
        if spec.get("autoscaling_group"):
            node["metadata"]["labels"]["kubeops.io/autoscaling-group"] = spec["autoscaling_group"]
        nodes.append(node)
    store.load("nodes", nodes)
    node_ip = {n["metadata"]["name"]: n["status"]["addresses"][0]["address"] for n in nodes}
    node_by_name = {n["metadata"]["name"]: n for n in nodes}

    pods: list[dict[str, Any]] = []
    for w in scenario.workloads:
        if w["kind"] in _CONTROLLER_RESOURCE:
            resource, obj = controller_object(w)
            store.create(resource, obj)
        else:
            pods.extend(_bare_pods(w, nodes, node_by_name))
        if w.get("pdb"):
            pdb_spec: dict[str, Any] = {"selector": {"matchLabels": dict(w["labels"])}}
            if "min_available" in w["pdb"]:
                pdb_spec["minAvailable"] = w["pdb"]["min_available"]
            else:
                pdb_spec["maxUnavailable"] = w["pdb"]["max_unavailable"]
            store.create("poddisruptionbudgets.policy", {
                "metadata": {"name": w["pdb"].get("name", w["name"]), "namespace": w["namespace"]},
                "spec": pdb_spec})
    for index, pod in enumerate(pods):
        pod["metadata"]["creationTimestamp"] = now_ts
        ann = pod["metadata"].get("annotations") or {}
        delayed = float(ann.get(ANNOTATIONS["readiness_delay_s"], 0) or 0) > 0
        never = ann.get(ANNOTATIONS["never_ready"]) == "true"
        pod["status"] = _ready_status(pod, node_ip[pod["spec"]["nodeName"]], index, ready=not (delayed or never),
                                      now_ts=now_ts)
    store.load("pods", pods, defaulted=True)

    for s in scenario.services:
        store.create("services", {"metadata": {"name": s["name"], "namespace": s["namespace"]},
                                  "spec": {"selector": s["selector"], "ports": s["ports"], "type": s["type"]}})
    for obj in scenario.objects:
        info = cluster.catalog.by_kind(str(obj.get("apiVersion")), str(obj.get("kind")))
        if info is None:
            raise PlaybookError(f"the sandbox does not serve {obj.get('apiVersion')} {obj.get('kind')}",
                                path=scenario.path, field="objects")
        store.create(info.key, obj, namespace=(obj.get("metadata") or {}).get("namespace"))


def _bare_pods(w: dict[str, Any], nodes: list[dict[str, Any]], by_name: dict[str, dict[str, Any]]
               ) -> list[dict[str, Any]]:
    spec = pod_spec(w)
    ann = _knob_annotations(w)
    from kubeops.sandbox.defaults import default_pod

    if w["kind"] == "MirrorPod":
        node = by_name[w["node"]]
        digest = hashlib.md5(f"{w['namespace']}/{w['name']}".encode()).hexdigest()
        ann.update({"kubernetes.io/config.mirror": digest, "kubernetes.io/config.hash": digest,
                    "kubernetes.io/config.source": "file", "kubernetes.io/config.seen": "1970-01-01T00:00:00Z"})
        spec["nodeName"] = node["metadata"]["name"]
        spec.setdefault("tolerations", []).append({"operator": "Exists", "effect": "NoExecute"})
        spec["priorityClassName"] = spec.get("priorityClassName", "system-node-critical")
        spec["priority"] = 2000001000
        mirror = {"metadata": {
            "name": f"{w['name']}-{node['metadata']['name']}", "namespace": w["namespace"],
            "labels": dict(w["labels"]), "annotations": ann,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node["metadata"]["name"],
                                 "uid": node["metadata"]["uid"], "controller": True}]},
            "spec": spec}
        default_pod(mirror, None)
        return [mirror]
    from kubeops.sandbox.scheduler import placement_reason

    # where the scheduler could put it: untainted (or tolerated), schedulable, matching the nodeSelector
    eligible = [n for n in nodes if placement_reason({"spec": spec}, n) is None] if w.get("node") is None \
        else [by_name[w["node"]]]
    if not eligible:
        eligible = nodes
    placements: list[tuple[str, str]] = []
    if w.get("per_node") is not None:
        for n in eligible:
            for j in range(w["per_node"]):
                placements.append((f"{w['name']}-{n['metadata']['name']}-{j}", n["metadata"]["name"]))
    else:
        for j in range(w["replicas"]):
            name = w["name"] if w["replicas"] == 1 else f"{w['name']}-{j}"
            placements.append((name, eligible[j % len(eligible)]["metadata"]["name"]))
    # Default one template and share its (never mutated) nested values between the pods: 60,000 pods load fast.
    template: dict[str, Any] = {"metadata": {}, "spec": spec}
    default_pod(template, None)
    labels = dict(w["labels"])
    out = []
    for name, node_name in placements:
        meta: dict[str, Any] = {"name": name, "namespace": w["namespace"], "labels": labels}
        if ann:
            meta["annotations"] = ann
        out.append({"metadata": meta, "spec": {**template["spec"], "nodeName": node_name},
                    "status": template["status"]})
    return out
