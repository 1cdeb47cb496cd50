"""The app config: one YAML file per application, ``inventory/apps/<app>.yaml``, with per-cluster overrides.

Why compact: teams describe what differs between apps (image, ports, env, resources, probes, replicas), and
kubeops renders the rest the same way every time (`kubeops.apps.render`).

Overrides: ``clusters: {dev: {...}, staging: {...}, prod: {...}}`` hold any top-level field except ``name`` and
``clusters``. For the selected cluster they are applied over the base:

- a scalar or a list (``replicas``, ``image``, ``ports``) replaces the base value;
- a mapping (``env``, ``resources``, ``probes``, ``pod_annotations``, ``service``, ``rollout``) is merged one key
  deep: ``env: {LOG: debug}`` changes one variable; ``probes: {readiness: {...}}`` replaces that whole probe;
- ``null`` removes the key (``env: {DEBUG: null}``).

Every cluster's merged config is validated when the file is loaded, whichever cluster is selected, so a bad
``prod`` override fails a ``dev`` deploy too, before anything changes. Each error names the file, the line and the
field where the bad value was written (``clusters.prod.replicas`` for an override).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeops.apps import naming
from kubeops.errors import InputError, PlaybookError
from kubeops.quantity import parse_quantity
from kubeops.yamlsource import PathKey, YamlDocument, load_yaml

CONTROLLERS = ("Deployment", "ReplicationController")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
PROTOCOLS = ("TCP", "UDP", "SCTP")
PROBE_KINDS = ("readiness", "liveness", "startup")
PROBE_HANDLERS = ("http_get", "tcp_socket", "exec")
PROBE_TIMINGS = {  # field -> minimum
    "initial_delay_s": 0,
    "period_s": 1,
    "timeout_s": 1,
    "failure_threshold": 1,
    "success_threshold": 1,
}
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")
MAPPING_FIELDS = ("env", "resources", "probes", "pod_annotations", "service", "rollout")
FIELDS = (
    "name",
    "description",
    "role",
    "namespace",
    "image",
    "version",
    "controller",
    "replicas",
    "ports",
    "env",
    "resources",
    "probes",
    "pod_annotations",
    "service",
    "rollout",
    "clusters",
)
OVERRIDABLE = tuple(f for f in FIELDS if f not in ("name", "clusters"))
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_PORT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_ANNOTATION_KEY = re.compile(r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


@dataclass(frozen=True, slots=True)
class Port:
    """A Service port and the container port it sends to."""

    name: str | None
    port: int
    target_port: int | str
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class Probe:
    """One probe; exactly one of `http_get` (path, port), `tcp_socket` (port) or `exec` (command) is set."""

    handler: str
    path: str | None = None
    port: int | str | None = None
    command: tuple[str, ...] = ()
    timings: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """The role Service; its name defaults to the app's name."""

    name: str
    type: str = "ClusterIP"
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class RolloutConfig:
    """How a deploy steps: `surge` pods at a time, each step given `step_timeout_s` to become ready."""

    surge: int = 1
    step_timeout_s: float = 120.0


@dataclass(frozen=True, slots=True)
class AppConfig:
    """One app as it applies to one cluster (overrides merged)."""

    path: str
    name: str
    role: str
    image: str
    namespace: str = "default"
    version: str | None = None
    controller: str = "Deployment"
    replicas: int = 1
    ports: tuple[Port, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    requests: tuple[tuple[str, str], ...] = ()
    limits: tuple[tuple[str, str], ...] = ()
    probes: tuple[tuple[str, Probe], ...] = ()
    pod_annotations: tuple[tuple[str, str], ...] = ()
    service: ServiceConfig = field(default_factory=lambda: ServiceConfig(name=""))
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    cluster: str | None = None  # the cluster whose overrides were applied, if it had any
    clusters: tuple[str, ...] = ()  # clusters with overrides in the file


# --- finding and loading -------------------------------------------------------------------------------------------
def apps_dir(inventory: Path) -> Path:
    """Where app configs live: ``<inventory>/apps``."""
    return inventory / "apps"


def app_path(app: str, *, inventory: Path) -> Path:
    """`app` is a name (``inventory/apps/<app>.yaml``) or a path to a YAML file."""
    if app.endswith((".yaml", ".yml")) or "/" in app:
        return Path(app)
    folder = apps_dir(inventory)
    path = folder / f"{app}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        raise InputError(f"unknown app {app!r}: no file {path}", hint=f"known apps: {', '.join(known) or '(none)'}")
    return path


def load_app(app: str, *, inventory: Path, cluster: str | None = None) -> AppConfig:
    """Load, validate (every cluster's overrides too) and return the config of `app` for `cluster`."""
    return parse_app(load_yaml(app_path(app, inventory=inventory)), cluster=cluster)


def parse_app(doc: YamlDocument, *, cluster: str | None = None) -> AppConfig:
    """Validate a parsed app config and merge the overrides of `cluster` (None: the base only)."""
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error((), "an app config must be a mapping (name, role, image, ...)")
    _check_keys(doc, (), data, FIELDS)
    overrides = data.get("clusters") or {}
    if not isinstance(overrides, dict):
        raise doc.error(("clusters",), "must be a mapping of cluster name to overrides")
    for name, over in overrides.items():
        if not isinstance(over, dict):
            raise doc.error(("clusters", name), "must be a mapping of field to value")
        _check_keys(doc, ("clusters", name), over, OVERRIDABLE, what="overridable field")
    base = _View(doc, {k: v for k, v in data.items() if k != "clusters"}, {})
    result = _build(base, cluster=None, clusters=tuple(overrides))
    for name, over in overrides.items():
        merged = _build(_merge(base, over, ("clusters", name)), cluster=name, clusters=tuple(overrides))
        if name == cluster:
            result = merged
    return result


def _check_keys(doc: YamlDocument, key: PathKey, data: dict[str, Any], known: tuple[str, ...], what: str = "field"):
    for name in data:
        if name not in known:
            raise doc.error((*key, name), f"unknown {what}; expected one of: {', '.join(known)}")


# --- merging, remembering where each value was written ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _View:
    """Merged data plus, for values that came from an override, the path where they were written."""

    doc: YamlDocument
    data: dict[str, Any]
    origins: dict[PathKey, PathKey]

    def where(self, key: PathKey) -> PathKey:
        for cut in range(len(key), 0, -1):
            origin = self.origins.get(key[:cut])
            if origin is not None:
                return (*origin, *key[cut:])
        return key

    def error(self, key: PathKey, message: str, *, hint: str | None = None) -> PlaybookError:
        return self.doc.error(self.where(key), message, hint=hint)


def _merge(base: _View, over: dict[str, Any], prefix: PathKey) -> _View:
    data = dict(base.data)
    origins: dict[PathKey, PathKey] = {}
    for key, value in over.items():
        if key in MAPPING_FIELDS and isinstance(value, dict) and isinstance(data.get(key), dict):
            inner = dict(data[key])
            for sub, sub_value in value.items():
                if sub_value is None:
                    inner.pop(sub, None)
                else:
                    inner[sub] = sub_value
                    origins[(key, sub)] = (*prefix, key, sub)
            data[key] = inner
        elif value is None:
            data.pop(key, None)
        else:
            data[key] = value
            origins[(key,)] = (*prefix, key)
    return _View(base.doc, data, origins)


# --- validation ----------------------------------------------------------------------------------------------------
def _build(view: _View, *, cluster: str | None, clusters: tuple[str, ...]) -> AppConfig:
    data = view.data
    for required in ("name", "role", "image"):
        if data.get(required) in (None, ""):
            raise view.error((required,), "is required")
    name = _string(view, ("name",))
    if not naming.is_dns_label(name) or len(name) > naming.MAX_LABEL - 3:
        raise view.error(
            ("name",), f"{name!r} must be a DNS label: lower-case letters, digits and '-', at most 60 characters"
        )
    role = _string(view, ("role",))
    if not naming.is_label_value(role):
        raise view.error(("role",), f"{role!r} is not a valid label value (letters, digits, '-', '_', '.'; max 63)")
    image = _string(view, ("image",))
    if any(ch.isspace() for ch in image):
        raise view.error(("image",), f"{image!r} must not contain whitespace")
    namespace = _string(view, ("namespace",), default="default")
    if not naming.is_dns_label(namespace):
        raise view.error(("namespace",), f"{namespace!r} is not a valid namespace name (a DNS label)")
    version = _version(view, name)
    controller = _string(view, ("controller",), default="Deployment")
    if controller not in CONTROLLERS:
        raise view.error(("controller",), f"must be one of {', '.join(CONTROLLERS)}, got {controller!r}")
    replicas = _int(view, ("replicas",), default=1, minimum=0)
    ports = _ports(view)
    probes = _probes(view, ports)
    requests, limits = _resources(view)
    return AppConfig(
        path=view.doc.path,
        name=name,
        role=role,
        image=image,
        namespace=namespace,
        version=version,
        controller=controller,
        replicas=replicas,
        ports=ports,
        env=_env(view),
        requests=requests,
        limits=limits,
        probes=probes,
        pod_annotations=_annotations(view, ("pod_annotations",)),
        service=_service(view, name),
        rollout=_rollout(view),
        cluster=cluster,
        clusters=clusters,
    )


def _get(view: _View, key: PathKey) -> Any:
    value: Any = view.data
    for part in key:
        if isinstance(value, dict):
            value = value.get(part)  # type: ignore[arg-type]
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            return None
    return value


def _string(view: _View, key: PathKey, *, default: str | None = None) -> str:
    value = _get(view, key)
    if value is None and default is not None:
        return default
    if not isinstance(value, str) or not value:
        raise view.error(key, f"must be a non-empty string, got {value!r}")
    return value


def _int(view: _View, key: PathKey, *, default: int, minimum: int, maximum: int | None = None) -> int:
    value = _get(view, key)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise view.error(key, f"must be a whole number, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise view.error(key, f"must be {bound}, got {value}")
    return value


def _mapping(view: _View, key: PathKey) -> dict[str, Any]:
    value = _get(view, key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise view.error(key, f"must be a mapping, got {type(value).__name__}")
    return value


def _version(view: _View, name: str) -> str | None:
    value = _get(view, ("version",))
    if value is None:
        return None
    if isinstance(value, float):
        raise view.error(("version",), f"write the version as a quoted string: {value!r} is read as a number")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise view.error(("version",), f"must be a string, got {value!r}")
    try:
        naming.controller_name(name, str(value))
    except ValueError as exc:
        raise view.error(("version",), str(exc)) from None
    return str(value)


def _ports(view: _View) -> tuple[Port, ...]:
    raw = _get(view, ("ports",))
    if not isinstance(raw, list) or not raw:
        raise view.error(("ports",), "must be a non-empty list of ports (the role Service needs at least one)")
    ports: list[Port] = []
    seen_names: set[str] = set()
    seen_ports: set[tuple[int, str]] = set()
    for index, item in enumerate(raw):
        key: PathKey = ("ports", index)
        if isinstance(item, int) and not isinstance(item, bool):
            if not 1 <= item <= 65535:
                raise view.error(key, f"must be between 1 and 65535, got {item}")
            item = {"port": item}
        if not isinstance(item, dict):
            raise view.error(key, "must be a port number or a mapping with port, target_port, name, protocol")
        for sub in item:
            if sub not in ("name", "port", "target_port", "protocol"):
                raise view.error((*key, sub), "unknown field; expected one of: name, port, target_port, protocol")
        if "port" not in item:
            raise view.error(key, "port is required")
        port = item["port"] if not isinstance(raw[index], dict) else _int(
            view, (*key, "port"), default=0, minimum=1, maximum=65535
        )
        name = item.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > 15 or not _PORT_NAME.fullmatch(name)):
            raise view.error((*key, "name"), f"{name!r} must be a port name: lower-case letters, digits, '-', max 15")
        if name is None and len(raw) > 1:
            raise view.error((*key, "name"), "is required when the app has more than one port")
        if name in seen_names:
            raise view.error((*key, "name"), f"duplicate port name {name!r}")
        protocol = item.get("protocol", "TCP")
        if protocol not in PROTOCOLS:
            raise view.error((*key, "protocol"), f"must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        if (port, protocol) in seen_ports:
            raise view.error((*key, "port"), f"duplicate port {port}/{protocol}")
        target = item.get("target_port", port)
        if isinstance(target, bool) or not isinstance(target, int | str):
            raise view.error((*key, "target_port"), f"must be a port number or name, got {target!r}")
        if isinstance(target, int) and not 1 <= target <= 65535:
            raise view.error((*key, "target_port"), f"must be between 1 and 65535, got {target}")
        if isinstance(target, str) and not _PORT_NAME.fullmatch(target):
            raise view.error((*key, "target_port"), f"{target!r} is not a valid port name")
        if name:
            seen_names.add(name)
        seen_ports.add((port, protocol))
        ports.append(Port(name=name, port=port, target_port=target, protocol=protocol))
    return tuple(ports)


def _env(view: _View) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for name, value in _mapping(view, ("env",)).items():
        key: PathKey = ("env", name)
        if not _ENV_NAME.fullmatch(name):
            raise view.error(key, f"{name!r} is not a valid environment variable name")
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(value)
        elif not isinstance(value, str):
            raise view.error(key, f"must be a string, number or boolean, got {type(value).__name__}")
        out.append((name, value))
    return tuple(out)


def _resources(view: _View) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    raw = _mapping(view, ("resources",))
    parsed: dict[str, dict[str, tuple[str, Any]]] = {}
    for group, values in raw.items():
        if group not in ("requests", "limits"):
            raise view.error(("resources", group), "unknown field; expected one of: requests, limits")
        parsed[group] = {}
        for name, value in _mapping(view, ("resources", group)).items():
            key: PathKey = ("resources", group, name)
            if name not in RESOURCE_NAMES:
                raise view.error(key, f"unknown resource; expected one of: {', '.join(RESOURCE_NAMES)}")
            try:
                amount = parse_quantity(value)
            except ValueError as exc:
                raise view.error(key, str(exc)) from None
            if amount < 0:
                raise view.error(key, f"must not be negative, got {value!r}")
            parsed[group][name] = (str(value), amount)
        del values
    requests, limits = parsed.get("requests", {}), parsed.get("limits", {})
    for name, (text, amount) in requests.items():
        if name in limits and amount > limits[name][1]:
            raise view.error(
                ("resources", "requests", name), f"request {text} is above the limit {limits[name][0]}"
            )
    return (
        tuple((k, v[0]) for k, v in requests.items()),
        tuple((k, v[0]) for k, v in limits.items()),
    )


def _probes(view: _View, ports: tuple[Port, ...]) -> tuple[tuple[str, Probe], ...]:
    port_names = {p.name for p in ports if p.name} | {p.target_port for p in ports if isinstance(p.target_port, str)}
    out: list[tuple[str, Probe]] = []
    for kind, raw in _mapping(view, ("probes",)).items():
        key: PathKey = ("probes", kind)
        if kind not in PROBE_KINDS:
            raise view.error(key, f"unknown probe; expected one of: {', '.join(PROBE_KINDS)}")
        if not isinstance(raw, dict):
            raise view.error(key, "must be a mapping with one of http_get, tcp_socket, exec")
        for sub in raw:
            if sub not in PROBE_HANDLERS and sub not in PROBE_TIMINGS:
                known = ", ".join((*PROBE_HANDLERS, *PROBE_TIMINGS))
                raise view.error((*key, sub), f"unknown field; expected one of: {known}")
        handlers = [h for h in PROBE_HANDLERS if h in raw]
        if len(handlers) != 1:
            raise view.error(key, f"needs exactly one of {', '.join(PROBE_HANDLERS)}, got {len(handlers)}")
        handler = handlers[0]
        timings = tuple(
            (name, _int(view, (*key, name), default=0, minimum=minimum))
            for name, minimum in PROBE_TIMINGS.items()
            if name in raw
        )
        if handler == "exec":
            command = raw["exec"]
            if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
                raise view.error((*key, "exec"), "must be a non-empty list of strings (the command and its args)")
            out.append((kind, Probe(handler="exec", command=tuple(command), timings=timings)))
            continue
        spec = _mapping(view, (*key, handler))
        allowed = ("path", "port") if handler == "http_get" else ("port",)
        for sub in spec:
            if sub not in allowed:
                raise view.error((*key, handler, sub), f"unknown field; expected one of: {', '.join(allowed)}")
        port = spec.get("port")
        if isinstance(port, bool) or not isinstance(port, int | str):
            raise view.error((*key, handler, "port"), f"must be a port number or port name, got {port!r}")
        if isinstance(port, int) and not 1 <= port <= 65535:
            raise view.error((*key, handler, "port"), f"must be between 1 and 65535, got {port}")
        if isinstance(port, str) and port not in port_names:
            raise view.error(
                (*key, handler, "port"), f"names no port of the app: {port!r}", hint="use a number or a port name"
            )
        path = None
        if handler == "http_get":
            path = spec.get("path", "/")
            if not isinstance(path, str) or not path.startswith("/"):
                raise view.error((*key, handler, "path"), f"must be an absolute URL path, got {path!r}")
        out.append((kind, Probe(handler=handler, path=path, port=port, timings=timings)))
    return tuple(out)


def _annotations(view: _View, key: PathKey) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for name, value in _mapping(view, key).items():
        if len(name) > 253 or not _ANNOTATION_KEY.fullmatch(name):
            raise view.error((*key, name), f"{name!r} is not a valid annotation key")
        if not isinstance(value, str):
            raise view.error((*key, name), f"must be a string (quote it), got {value!r}")
        out.append((name, value))
    return tuple(out)


def _service(view: _View, app: str) -> ServiceConfig:
    raw = _mapping(view, ("service",))
    for sub in raw:
        if sub not in ("name", "type", "annotations"):
            raise view.error(("service", sub), "unknown field; expected one of: name, type, annotations")
    name = _string(view, ("service", "name"), default=app)
    if not naming.is_dns_1035_label(name):
        raise view.error(
            ("service", "name"), f"{name!r} is not a valid Service name (a DNS label starting with a letter)"
        )
    kind = _string(view, ("service", "type"), default="ClusterIP")
    if kind not in SERVICE_TYPES:
        raise view.error(("service", "type"), f"must be one of {', '.join(SERVICE_TYPES)}, got {kind!r}")
    return ServiceConfig(name=name, type=kind, annotations=_annotations(view, ("service", "annotations")))


def _rollout(view: _View) -> RolloutConfig:
    raw = _mapping(view, ("rollout",))
    for sub in raw:
        if sub not in ("surge", "step_timeout_s"):
            raise view.error(("rollout", sub), "unknown field; expected one of: surge, step_timeout_s")
    surge = _int(view, ("rollout", "surge"), default=1, minimum=1)
    timeout = raw.get("step_timeout_s", 120.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise view.error(("rollout", "step_timeout_s"), f"must be a positive number of seconds, got {timeout!r}")
    return RolloutConfig(surge=surge, step_timeout_s=float(timeout))


__all__ = [
    "AppConfig",
    "Port",
    "Probe",
    "RolloutConfig",
    "ServiceConfig",
    "app_path",
    "load_app",
    "parse_app",
]
