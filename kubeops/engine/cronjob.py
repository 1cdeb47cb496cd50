"""Schedules: a crontab entry or an in-cluster CronJob that runs one playbook unattended. Pure rendering.

Both run ``kubeops run-scheduled``, which resumes the previous invocation of the same schedule (same cluster,
playbook and parameters) when it is unfinished, and otherwise starts a new run; logs are JSON.

The crontab line ends with a marker comment ``# kubeops-schedule:<id>`` (the id hashes cluster, playbook and
parameters), so installing the same schedule again replaces its line instead of adding a second one.

The Kubernetes rendering is a CronJob (concurrencyPolicy Forbid, no Job retries: the next invocation resumes),
a ServiceAccount, a least-privilege ClusterRole for what the actions do to cluster objects, a Role in the lock
namespace for the Lease and the ConfigMap checkpoints, their bindings, and a ConfigMap holding the playbooks
and an in-cluster inventory (``kube.in_cluster: true``, ``checkpoint_store: configmap``). A webhook URL is never
put in the ConfigMap: the pod reads it from a Secret through an environment variable.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubeops.errors import InputError
from kubeops.settings import Settings

MARKER = "# kubeops-schedule:"
WEBHOOK_SECRET = "kubeops-notify"
WEBHOOK_SECRET_KEY = "webhook-url"
WEBHOOK_ENV = "KUBEOPS_WEBHOOK_URL"

# What the actions send to the API. Measured, not just read from the code: tests/engine/test_cronjob_rbac.py runs
# the scheduled playbooks on a sandbox that enforces RBAC under exactly these rules, checks that every permission
# granted here is used, and that removing any one rule makes a run fail with 403. Keep them in step.
CLUSTER_RULES: tuple[dict[str, Any], ...] = (
    # k8s.get_node/capacity_check/drain (get, list), k8s.wait_node_ready after a reboot (watch, maintain-node),
    # cordon/uncordon/label/annotate/taint (merge patch), k8s.delete_node (delete)
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch", "patch", "delete"]},
    # cadvisor.* and k8s.redistribute scrape /api/v1/nodes/<node>/proxy/metrics/cadvisor
    {"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]},
    # drain, redistribute, capacity_check, apps: list and watch pods; the drain deletes finished pods (and all of
    # them with --disable-eviction)
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
    # the drain reads the controllers of evicted pods (ReplicationController, ReplicaSet, StatefulSet) to wait for
    # their replacements (a Job's pods are not waited for, so Jobs are never read);
    # apps.rolling_update creates, scales (patch) and deletes versioned ReplicationControllers/Deployments, and
    # waits for each step by watching the new version (list + watch with a metadata.name field selector)
    {"apiGroups": [""], "resources": ["replicationcontrollers"],
     "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
    {"apiGroups": ["apps"], "resources": ["deployments"],
     "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
    {"apiGroups": ["apps"], "resources": ["replicasets", "statefulsets"], "verbs": ["get"]},
    # apps.*: the role Service (read, created when missing) and its Endpoints (read; rollouts and
    # apps.verify_endpoints watch them: list + watch with a metadata.name field selector)
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "create"]},
    {"apiGroups": [""], "resources": ["endpoints"], "verbs": ["get", "list", "watch"]},
    # what kubeops did, noted on the Nodes it acted on (cordoned, drained, rebooted, terminated, deleted): best
    # effort, a refused Event is logged and the run goes on
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    # drain and redistribute respect PodDisruptionBudgets
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": ["list"]},
    # the cAdvisor readers' fallback when the kubelet proxy is forbidden or unreachable: metrics-server
    # (the node's metrics by name, the pods' by one cluster-wide list)
    {"apiGroups": ["metrics.k8s.io"], "resources": ["nodes"], "verbs": ["get"]},
    {"apiGroups": ["metrics.k8s.io"], "resources": ["pods"], "verbs": ["list"]},
)
# The lock (kubeops.engine.lock) and the ConfigMap checkpoint store, in the lock's namespace only.
LOCK_NAMESPACE_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "create", "update"]},
)

_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def validate_cron(expr: str) -> str:
    """The expression, normalised to single spaces; InputError naming the bad field otherwise."""
    text = " ".join(expr.split())
    if text in _MACROS:
        return text
    parts = text.split(" ")
    if len(parts) != 5:
        raise InputError(
            f"--cron must have 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}: {expr!r}",
            hint='e.g. --cron="0 3 * * 1-5" for 03:00 on weekdays',
        )
    for value, (name, low, high, names) in zip(parts, _CRON_FIELDS, strict=True):
        for item in value.split(","):
            base, _, step = item.partition("/")
            if step and (not step.isdigit() or int(step) == 0):
                raise InputError(f"--cron {name} field {value!r}: step {step!r} must be a positive number")
            if base == "*":
                continue
            for bound in base.split("-", 1):
                low_name = bound.lower()
                number = names.index(low_name) + (low if name == "month" else 0) if low_name in names else None
                if number is None:
                    if not bound.isdigit():
                        raise InputError(f"--cron {name} field {value!r}: {bound!r} is not a number")
                    number = int(bound)
                if not low <= number <= high:
                    raise InputError(f"--cron {name} field {value!r}: {number} is outside {low}-{high}")
    return text


def schedule_id(*, cluster: str, playbook: str, params: Mapping[str, Any]) -> str:
    """Stable short id of a schedule: what the marker comment and object names carry."""
    key = json.dumps({"cluster": cluster, "playbook": playbook, "params": dict(params)}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:10]


def run_args(*, playbook: str, cluster: str, params: Mapping[str, Any], wait_for_lock: str | None) -> list[str]:
    """The `kubeops` arguments a schedule invokes."""
    args = ["run-scheduled", f"--playbook={playbook}", f"--cluster={cluster}", "--log-format=json"]
    for name, value in sorted(params.items()):
        args += ["--param", f"{name}={value}"]
    if wait_for_lock:
        args.append(f"--wait-for-lock={wait_for_lock}")
    return args


@dataclass(frozen=True, slots=True)
class CronEntry:
    """One crontab line and the id in its marker."""

    id: str
    line: str


def crontab_entry(
    *,
    cron: str,
    program: Sequence[str],
    args: Sequence[str],
    sid: str,
    log_file: Path,
    env: Mapping[str, str],
    workdir: Path,
) -> CronEntry:
    """A crontab line: log folder, cd, environment, the command, JSON logs appended to `log_file`, the marker."""
    parts = [f"{k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    command = " ".join([*parts, *(shlex.quote(p) for p in program), *(shlex.quote(a) for a in args)])
    shell = (
        f"mkdir -p {shlex.quote(str(log_file.parent))} && cd {shlex.quote(str(workdir))} && "
        f"{command} >> {shlex.quote(str(log_file))} 2>&1"
    )
    shell = shell.replace("%", "\\%")  # cron turns a bare % into a newline
    return CronEntry(id=sid, line=f"{validate_cron(cron)} {shell} {MARKER}{sid}")


def merge_crontab(current: str, entry: CronEntry) -> tuple[str, bool]:
    """The crontab text with `entry` replacing any line of the same schedule; (text, changed)."""
    marker = f"{MARKER}{entry.id}"
    lines = [line for line in current.splitlines() if not line.rstrip().endswith(marker)]
    kept = "\n".join(lines).rstrip("\n")
    text = (kept + "\n" if kept else "") + entry.line + "\n"
    return text, text != (current if current.endswith("\n") or not current else current + "\n")


def _dns_name(text: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:52].strip("-") or "kubeops"


def in_cluster_inventory(settings: Settings) -> dict[str, Any]:
    """The cluster's inventory as a pod needs it: in-cluster credentials, ConfigMap checkpoints, no secrets."""
    inv: dict[str, Any] = {
        "name": settings.cluster,
        "description": f"in-cluster runs of {settings.cluster} (rendered by `kubeops schedule --kubernetes`)",
        "kube": {"in_cluster": True},
        "lock": {
            "namespace": settings.lock.namespace,
            "name": settings.lock.name,
            "ttl_s": settings.lock.ttl_s,
            "concurrency": settings.lock.concurrency,
        },
        "checkpoint_store": "configmap",
    }
    aws = {k: v for k, v in (("region", settings.aws.region), ("profile", settings.aws.profile)) if v}
    if aws:
        inv["aws"] = aws
    ssh = {k: v for k, v in (("user", settings.ssh.user), ("port", settings.ssh.port)) if v}
    if ssh:
        inv["ssh"] = ssh
    if settings.window is not None:
        w = settings.window
        inv["window"] = {"days": list(w.days), "start": w.start, "end": w.end, "timezone": w.timezone}
        inv["window"] = {k: v for k, v in inv["window"].items() if v not in (None, [])}
    if settings.notify.webhook_url or settings.notify.webhook_url_env:
        inv["notify"] = {"webhook_url_env": WEBHOOK_ENV, "on_success": settings.notify.on_success}
    if settings.params:
        inv["params"] = dict(settings.params)
    return inv


def kubernetes_manifests(
    *,
    settings: Settings,
    playbook: str,
    playbook_files: Mapping[str, str],
    cron: str,
    params: Mapping[str, Any],
    image: str,
    namespace: str,
    timezone: str | None = None,
    wait_for_lock: str | None = None,
) -> list[dict[str, Any]]:
    """CronJob, ServiceAccount, ClusterRole(+Binding), Role(+Binding) and the playbooks ConfigMap."""
    sid = schedule_id(cluster=settings.cluster, playbook=playbook, params=params)
    base = _dns_name(f"kubeops-{playbook}")
    labels = {"app.kubernetes.io/name": "kubeops", "app.kubernetes.io/managed-by": "kubeops",
              "kubeops.io/schedule": sid}
    sa = f"{base}-runner"
    role = f"kubeops-runner-{sid}"
    lock_ns = settings.lock.namespace
    files_cm = f"{base}-files"
    data = {"inventory.yaml": yaml.safe_dump(in_cluster_inventory(settings), sort_keys=False)}
    items = [{"key": "inventory.yaml", "path": f"inventory/{settings.cluster}.yaml"}]
    for name in sorted(playbook_files):
        key = f"playbook.{name}.yaml"
        data[key] = playbook_files[name]
        items.append({"key": key, "path": f"playbooks/{name}.yaml"})
    env = [
        {"name": "KUBEOPS_STATE_DIR", "value": "/var/run/kubeops"},
        {"name": "KUBEOPS_INVENTORY_DIR", "value": "/etc/kubeops/inventory"},
        {"name": "KUBEOPS_PLAYBOOK_DIR", "value": "/etc/kubeops/playbooks"},
        {"name": "HOME", "value": "/var/run/kubeops"},
    ]
    if settings.notify.webhook_url or settings.notify.webhook_url_env:
        env.append({"name": WEBHOOK_ENV, "valueFrom": {"secretKeyRef": {
            "name": WEBHOOK_SECRET, "key": WEBHOOK_SECRET_KEY, "optional": True}}})
    container = {
        "name": "kubeops",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["kubeops"],
        "args": run_args(playbook=playbook, cluster=settings.cluster, params=params, wait_for_lock=wait_for_lock),
        "env": env,
        "volumeMounts": [
            {"name": "files", "mountPath": "/etc/kubeops", "readOnly": True},
            {"name": "state", "mountPath": "/var/run/kubeops"},
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "runAsUser": 65532, "capabilities": {"drop": ["ALL"]}},
    }
    cron_spec: dict[str, Any] = {
        "schedule": validate_cron(cron),
        "concurrencyPolicy": "Forbid",  # the cluster lock also guards against overlaps
        "startingDeadlineSeconds": 600,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 3,
        "jobTemplate": {
            "metadata": {"labels": labels},
            "spec": {
                "backoffLimit": 0,  # the next scheduled invocation resumes from the checkpoint instead
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": sa,
                        "restartPolicy": "Never",
                        "containers": [container],
                        "volumes": [
                            {"name": "files", "configMap": {"name": files_cm, "items": items}},
                            {"name": "state", "emptyDir": {}},
                        ],
                    },
                },
            },
        },
    }
    if timezone:
        cron_spec["timeZone"] = timezone
    meta = {"namespace": namespace, "labels": labels}
    subject = [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, **meta}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": role, "labels": labels}, "rules": [dict(r) for r in CLUSTER_RULES]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": role, "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
         "subjects": subject},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": role, "namespace": lock_ns, "labels": labels},
         "rules": [dict(r) for r in LOCK_NAMESPACE_RULES]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": role, "namespace": lock_ns, "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
         "subjects": subject},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": files_cm, **meta}, "data": data},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": base, **meta}, "spec": cron_spec},
    ]


def to_yaml(objects: Sequence[Mapping[str, Any]]) -> str:
    """A multi-document YAML stream for `kubectl apply -f`."""
    return "---\n" + "---\n".join(yaml.safe_dump(dict(o), sort_keys=False) for o in objects)
