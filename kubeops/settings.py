"""Settings: everything a run needs to know about its cluster, built once from the inventory and passed down.

An inventory file, ``inventory/<cluster>.yaml``, describes one cluster: how to reach its Kubernetes API, its AWS
account, how to SSH to its nodes, where its lock lives and when it may be touched. Nothing below `kubeops.tasks`
reads environment variables or globals: it receives a `Settings`.

Values may use ``${VAR}`` and ``${VAR:-default}`` (environment) and ``~``; ``${KUBEOPS_STATE_DIR}`` always resolves,
to its default when unset, so the shipped sandbox inventory works on a fresh machine.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from kubeops.errors import InputError, PlaybookError
from kubeops.yamlsource import YamlDocument, load_yaml

DEFAULT_CLUSTER = "sandbox"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def default_state_dir() -> Path:
    """`$KUBEOPS_STATE_DIR`, else the XDG state folder: runs, checkpoints and the sandbox live there."""
    env = os.environ.get("KUBEOPS_STATE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "kubeops"


def project_root() -> Path:
    """The checkout that holds `inventory/` and `playbooks/` (the package's parent)."""
    return Path(__file__).resolve().parent.parent


def inventory_dir() -> Path:
    """`$KUBEOPS_INVENTORY_DIR`, else `inventory/` in the current directory, else the project's own."""
    env = os.environ.get("KUBEOPS_INVENTORY_DIR")
    if env:
        return Path(env).expanduser()
    local = Path.cwd() / "inventory"
    return local if local.is_dir() else project_root() / "inventory"


@dataclass(frozen=True, slots=True)
class KubeSettings:
    """How to reach the Kubernetes API."""

    kubeconfig: str | None = None  # None: $KUBECONFIG or ~/.kube/config, like kubectl
    context: str | None = None  # None: the kubeconfig's current context
    in_cluster: bool = False  # True inside a pod (CronJob runs): service account token
    request_timeout_s: float = 30.0  # one HTTP call; long waits use watches with their own timeouts
    max_retries: int = 5  # 429/5xx/dropped connections are retried this often, honouring Retry-After
    qps_concurrency: int = 10  # evictions in flight at once: bounded like kubectl's default client QPS
    scrape_concurrency: int = 16  # cAdvisor scrapes in flight at once (`stats --concurrency` overrides)
    # which kubelet endpoint usage is read from: cadvisor (/metrics/cadvisor) or resource (/metrics/resource,
    # ~25x smaller bodies, what metrics-server reads; the cheaper choice on big clusters). `stats --source` overrides.
    stats_source: str = "cadvisor"
    # Big decoded lists leave the cycle collector's view (gc.freeze): right for a run that ends, wrong for the
    # long-lived console, where anything frozen that later became cyclic garbage would never be freed.
    freeze_big_lists: bool = True


@dataclass(frozen=True, slots=True)
class AwsSettings:
    """How to reach AWS; unset fields fall back to boto3's standard credential and config chain."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None  # moto in the sandbox; None in production
    env_file: str | None = None  # a shell `KEY=value` file (the sandbox writes one) read for AWS_* values
    max_attempts: int = 8  # botocore retries for throttling, in "standard" mode


@dataclass(frozen=True, slots=True)
class SshSettings:
    """How to reach nodes over SSH; the key path is kept, never the key."""

    user: str | None = None
    port: int = 22
    key_filename: str | None = None
    gateway: str | None = None  # bastion "user@host:port"
    known_hosts: str | None = None  # None: ~/.ssh/known_hosts; host keys are always verified unless below
    strict_host_key_checking: bool = True
    connect_timeout_s: float = 10.0
    hosts: dict[str, str] = field(default_factory=dict)  # node name -> address, when not the node's InternalIP
    # name of an environment variable holding the passphrase of an encrypted key_filename (never the passphrase
    # itself: the inventory is a file people share and commit)
    key_passphrase_env: str | None = None


@dataclass(frozen=True, slots=True)
class LockSettings:
    """Where the cluster lock (a coordination.k8s.io/v1 Lease) lives and how long it outlives a dead holder."""

    namespace: str = "kube-system"
    name: str = "kubeops-lock"
    ttl_s: float = 60.0
    concurrency: int = 1


@dataclass(frozen=True, slots=True)
class WindowSettings:
    """A maintenance window: runs start and continue only inside it. Empty days = every day."""

    days: tuple[str, ...] = ()
    start: str | None = None  # "22:00"
    end: str | None = None  # "04:00" (crossing midnight is fine)
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """Where to tell a human; the URL itself is a secret and is never logged."""

    webhook_url: str | None = None
    webhook_url_env: str | None = None  # name of an environment variable holding the URL
    on_success: bool = False


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything one run needs, for one cluster."""

    cluster: str = DEFAULT_CLUSTER
    state_dir: Path = field(default_factory=default_state_dir)
    inventory_path: str | None = None
    kube: KubeSettings = field(default_factory=KubeSettings)
    aws: AwsSettings = field(default_factory=AwsSettings)
    ssh: SshSettings = field(default_factory=SshSettings)
    lock: LockSettings = field(default_factory=LockSettings)
    window: WindowSettings | None = None
    notify: NotifySettings = field(default_factory=NotifySettings)
    checkpoint_store: str = "file"  # "file" or "configmap" (in-cluster runs)
    params: dict[str, Any] = field(default_factory=dict)  # default playbook params for this cluster
    log_format: str = "auto"  # "auto" (console on a TTY, JSON otherwise), "console" or "json"
    lines: dict[str, int] = field(default_factory=dict, repr=False)  # "kube.kubeconfig" -> its inventory line

    def where(self, dotted_field: str) -> tuple[str, int | None]:
        """(inventory file, line) of a setting, so errors about it can point at it."""
        return self.inventory_path or "(inventory)", self.lines.get(dotted_field)


_GROUPS: dict[str, type] = {
    "kube": KubeSettings,
    "aws": AwsSettings,
    "ssh": SshSettings,
    "lock": LockSettings,
    "window": WindowSettings,
    "notify": NotifySettings,
}
_TOP_LEVEL = {"name", "description", "checkpoint_store", "params", *list(_GROUPS)}


def expand(value: str) -> str:
    """Expand ``${VAR}``, ``${VAR:-default}`` and a leading ``~``; `KUBEOPS_STATE_DIR` always has a value."""

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name == "KUBEOPS_STATE_DIR":
            return str(default_state_dir())
        return os.environ.get(name, default if default is not None else "")

    return os.path.expanduser(_ENV_REF.sub(repl, value))


def _coerce_group(doc: YamlDocument, key: str, raw: Any, cls: type) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise doc.error((key,), f"must be a mapping, got {type(raw).__name__}")
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in known:
            raise doc.error((key, name), f"unknown field; expected one of: {', '.join(sorted(known))}")
        default = getattr(cls(), name)
        if isinstance(value, str):
            value = expand(value)
        if isinstance(default, bool) and not isinstance(value, bool):
            raise doc.error((key, name), f"must be true or false, got {value!r}")
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if isinstance(default, int | float) and not isinstance(default, bool) and not is_number:
            raise doc.error((key, name), f"must be a number, got {value!r}")
        if isinstance(default, tuple):
            if not isinstance(value, list):
                raise doc.error((key, name), "must be a list")
            value = tuple(str(v) for v in value)
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise doc.error((key, name), "must be a mapping")
            value = {str(k): expand(str(v)) for k, v in value.items()}
        values[name] = value
    return cls(**values)


def load_settings(
    cluster: str = DEFAULT_CLUSTER,
    *,
    inventory: Path | None = None,
    state_dir: Path | None = None,
    log_format: str = "auto",
) -> Settings:
    """Build Settings for `cluster` from ``<inventory>/<cluster>.yaml``; an unknown cluster is an input error."""
    folder = inventory or inventory_dir()
    path = folder / f"{cluster}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        raise InputError(
            f"unknown cluster {cluster!r}: no inventory file {path}",
            hint=f"known clusters: {', '.join(known) or '(none)'}",
        )
    doc = load_yaml(path)
    data = doc.data or {}
    if not isinstance(data, dict):
        raise doc.error((), "an inventory must be a mapping")
    for key in data:
        if key not in _TOP_LEVEL:
            raise doc.error((key,), f"unknown field; expected one of: {', '.join(sorted(_TOP_LEVEL))}")
    groups = {key: _coerce_group(doc, key, data.get(key), cls) for key, cls in _GROUPS.items()}
    window = groups.pop("window") if data.get("window") else None
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise doc.error(("params",), "must be a mapping of parameter name to value")
    stats_source = groups["kube"].stats_source
    if stats_source not in ("cadvisor", "resource"):
        raise doc.error(("kube", "stats_source"), f"must be 'cadvisor' or 'resource', got {stats_source!r}")
    store = data.get("checkpoint_store", "file")
    if store not in ("file", "configmap"):
        raise doc.error(("checkpoint_store",), f"must be 'file' or 'configmap', got {store!r}")
    groups.pop("window", None)
    lines = {".".join(str(k) for k in key): line for key, line in doc.lines.items() if key}
    return Settings(
        lines=lines,
        cluster=cluster,
        state_dir=state_dir or default_state_dir(),
        inventory_path=str(path),
        window=window,
        checkpoint_store=store,
        params=dict(params),
        log_format=log_format,
        **groups,
    )


def read_env_file(path: str | None) -> dict[str, str]:
    """Read a shell `export KEY=value` file (as the sandbox writes); missing file -> empty."""
    if not path:
        return {}
    result: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        result[key.strip()] = value.strip().strip("'\"")
    return result


def require_file(path: str, *, what: str, field_name: str, source: str | None) -> None:
    """Fail early, as an input error, when a configured file (kubeconfig, key) is missing."""
    if not Path(path).exists():
        raise PlaybookError(f"{what} {path} does not exist", path=source or "(settings)", field=field_name)
