"""A sandbox with RBAC on and AWS, where kubeops runs under the ServiceAccount `kubeops schedule --kubernetes`
ships, with that ServiceAccount's token (TokenRequest) in a kubeconfig, as the in-cluster CronJob would.

The shipped objects (ServiceAccount, ClusterRole, Role, bindings) come from `kubeops.engine.cronjob` itself and
are created through the API by the sandbox's admin; the runs go through the real CLI (`run-scheduled`, JSON
logs, ConfigMap checkpoints) and the sandbox's request log tells what the ServiceAccount asked for.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from kubeops.engine import cronjob
from kubeops.sandbox.testing import SandboxProcess
from kubeops.settings import load_settings
from tests.k8s_sandbox import token_kubeconfig

KUBEOPS = [sys.executable, "-c", "from kubeops.cli import main; main()"]
GROUP = "workers"
CLUSTER = "incluster"
NAMESPACE = "kubeops"
ADMIN = {"Authorization": "Bearer kubeops-sandbox-token"}

APP = """name: {name}
role: web
namespace: default
image: registry.example.com/{name}
version: "1"
controller: {controller}
replicas: 2
ports: [{{name: http, port: 80, target_port: 8080}}]
rollout: {{surge: 1, step_timeout_s: 30}}
"""


def scenario() -> dict[str, Any]:
    """Three group workers and one pod of every controller kind on each, so a drain meets them all."""
    spread = {"replicas": 4, "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}
    return {
        "name": "rbac-incluster",
        "settings": {"rbac": True, "join_delay_s": 1, "tick_ms": 50, "aws_poll_s": 0.2},
        "namespaces": ["apps", NAMESPACE],
        "autoscaling_groups": [{
            "name": GROUP, "min": 1, "max": 8, "desired": 4, "zones": ["us-east-1a"], "instance_type": "m5.large",
            "node": {"role": "worker", "capacity": {"cpu": "8", "memory": "32Gi"}},
        }],
        # an empty node for maintain-node's wait for Ready (it is made to die and come back)
        "nodes": [{"name": "spare", "taints": [{"key": "dedicated", "value": "spare", "effect": "NoSchedule"}]}],
        "workloads": [
            {"kind": "Deployment", "name": "web", "namespace": "apps", "pdb": {"max_unavailable": 1}, **spread},
            {"kind": "StatefulSet", "name": "db", "namespace": "apps", **spread},
            {"kind": "ReplicationController", "name": "legacy", "namespace": "apps", **spread},
            {"kind": "ReplicaSet", "name": "bare", "namespace": "apps", **spread},
            {"kind": "Job", "name": "batch", "namespace": "apps", **spread},
            {"kind": "Job", "name": "done", "namespace": "apps", **spread,
             "annotations": {"sandbox.kubeops.io/succeed-after-s": "0.2"}},
            {"kind": "DaemonSet", "name": "agent", "namespace": "apps"},
        ],
    }


class RbacSandbox:
    """The sandbox, the shipped RBAC objects, and an inventory whose kubeconfig holds the ServiceAccount's token."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sb = SandboxProcess(scenario(), state_dir=root / "sandbox", aws=True)

    # ---- setup ------------------------------------------------------------------------------------------------
    def start(self) -> RbacSandbox:
        self.sb.start()
        inventory = self.root / "inventory"
        (inventory / "apps").mkdir(parents=True, exist_ok=True)
        for name, controller in (("shop", "Deployment"), ("oldshop", "ReplicationController")):
            (inventory / "apps" / f"{name}.yaml").write_text(APP.format(name=name, controller=controller))
        admin_inventory = {"name": CLUSTER, "kube": {"kubeconfig": str(self.sb.kubeconfig), "context": "sandbox"},
                           "lock": {"ttl_s": 3}}
        (inventory / f"{CLUSTER}.yaml").write_text(yaml.safe_dump(admin_inventory))
        settings = load_settings(CLUSTER, inventory=inventory, state_dir=self.root / "state")
        self.manifests = cronjob.kubernetes_manifests(
            settings=settings, playbook="decommission-node", playbook_files={}, cron="@daily", params={},
            image="kubeops:test", namespace=NAMESPACE)
        for doc in self.manifests:
            if doc["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
                self.create(doc)
        sa = self.by_kind("ServiceAccount")["metadata"]["name"]
        self.user = f"system:serviceaccount:{NAMESPACE}:{sa}"
        code, answer = self.sb.request("POST", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{sa}/token",
                                       {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                        "spec": {"expirationSeconds": 86400}}, headers=ADMIN)
        assert code == 201, answer
        runner_kubeconfig = token_kubeconfig(self.sb.kubeconfig, answer["status"]["token"], "runner",
                                             self.root / "runner.kubeconfig")
        # What the CronJob's ConfigMap carries, with the token's kubeconfig instead of the pod's mounted token.
        shipped = cronjob.in_cluster_inventory(settings)
        shipped["kube"] = {"kubeconfig": str(runner_kubeconfig), "context": "runner"}
        shipped["aws"] = {"region": "us-east-1", "env_file": str(self.sb.state_dir / "env")}
        (inventory / f"{CLUSTER}.yaml").write_text(yaml.safe_dump(shipped))
        self.inventory = inventory
        return self

    def stop(self) -> None:
        self.sb.stop()

    def by_kind(self, kind: str) -> dict[str, Any]:
        return next(d for d in self.manifests if d["kind"] == kind)

    def create(self, doc: Mapping[str, Any]) -> None:
        api = doc["apiVersion"]
        plural = {"ServiceAccount": "serviceaccounts", "ClusterRole": "clusterroles", "Role": "roles",
                  "ClusterRoleBinding": "clusterrolebindings", "RoleBinding": "rolebindings"}[doc["kind"]]
        prefix = "/api/v1" if api == "v1" else f"/apis/{api}"
        namespace = doc["metadata"].get("namespace")
        path = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
        code, answer = self.sb.request("POST", path, dict(doc), headers=ADMIN)
        assert code == 201, answer

    def set_rules(self, kind: str, rules: Iterable[Mapping[str, Any]]) -> None:
        """Replace the shipped ClusterRole's or Role's rules (as an operator editing it would)."""
        doc = self.by_kind(kind)
        meta = doc["metadata"]
        plural = "clusterroles" if kind == "ClusterRole" else f"namespaces/{meta['namespace']}/roles"
        code, answer = self.sb.request("PATCH", f"/apis/rbac.authorization.k8s.io/v1/{plural}/{meta['name']}",
                                       {"rules": [dict(r) for r in rules]},
                                       content_type="application/merge-patch+json", headers=ADMIN)
        assert code == 200, answer

    # ---- the product --------------------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(KUBEOPS_STATE_DIR=str(self.root / "state"), KUBEOPS_LOG_FORMAT="json",
                   KUBEOPS_INVENTORY_DIR=str(self.inventory))
        return env

    def run(self, playbook: str, **params: Any) -> subprocess.CompletedProcess[str]:
        """`kubeops run-scheduled`, exactly as the CronJob's container runs it."""
        args = cronjob.run_args(playbook=playbook, cluster=CLUSTER, params=params, wait_for_lock="30s")
        return subprocess.run([*KUBEOPS, *args], capture_output=True, text=True, timeout=300, env=self.env(),
                              check=False)

    # ---- reading the cluster ------------------------------------------------------------------------------------
    def get(self, path: str) -> Any:
        code, body = self.sb.request("GET", path, headers=ADMIN)
        assert code == 200, (path, code, body)
        return body

    def pods_on(self, node: str) -> list[dict[str, Any]]:
        items = self.get(f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}")["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def workers(self) -> list[str]:
        nodes = self.get(f"/api/v1/nodes?labelSelector=kubeops.io%2Fautoscaling-group%3D{GROUP}")["items"]
        return sorted(n["metadata"]["name"] for n in nodes if _ready(n) and not n["spec"].get("unschedulable"))

    def used(self, since: int = 0) -> set[tuple[str, str, str, str]]:
        """(group, resource[/subresource], verb, namespace or "") the ServiceAccount was allowed to do."""
        out = set()
        for r in self.sb.requests()[since:]:
            if r.get("user") != self.user or r["status"] in (401, 403) or not r.get("resource"):
                continue
            resource = f"{r['resource']}/{r['subresource']}" if r.get("subresource") else r["resource"]
            verb = r["method"].lower() if r["verb"] == "proxy" else r["verb"]  # a proxy is authorized by method
            out.add((r.get("group", ""), resource, verb, r.get("namespace", "")))
        return out

    def denied(self, since: int = 0) -> list[dict[str, Any]]:
        return [r for r in self.sb.requests()[since:] if r.get("user") == self.user and r["status"] == 403]


def _ready(node: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))


def granted(rules: Iterable[Mapping[str, Any]]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}

