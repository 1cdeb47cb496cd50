"""An "original" cluster (a sandbox process, with moto when asked) reached through its own inventory, and the
helpers to compare a real run on it with a rehearsal on its snapshot: evictions and mutations from its
request log, Auto Scaling instances from its moto."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeops.sandbox.testing import SandboxProcess
from kubeops.settings import Settings, load_settings

MUTATING_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


@dataclass
class Original:
    sb: SandboxProcess
    settings: Settings

    def mark(self) -> int:
        return len(self.sb.requests())

    def mutations(self, since: int) -> list[dict[str, Any]]:
        """Requests after `since` that could change something: any method but GET, any mutating verb."""
        return [r for r in self.sb.requests()[since:]
                if r.get("method") not in ("GET", "HEAD") or r.get("verb") in MUTATING_VERBS]

    def evicted(self, since: int) -> set[str]:
        return {f"{r['namespace']}/{r['name']}" for r in self.sb.requests()[since:]
                if r.get("subresource") == "eviction" and r.get("status") in (200, 201) and not r.get("dry_run")}

    def settle(self, timeout_s: float = 30) -> None:
        """Wait until the cluster is at rest (every Deployment and StatefulSet Ready, no pod Pending on a node),
        so that a snapshot taken now is the state the real run starts from."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            workloads = [*self.sb.request("GET", "/apis/apps/v1/deployments")[1]["items"],
                         *self.sb.request("GET", "/apis/apps/v1/statefulsets")[1]["items"]]
            pods = self.sb.request("GET", "/api/v1/pods")[1]["items"]
            ready = all((w.get("status") or {}).get("readyReplicas", 0) >= (w["spec"].get("replicas") or 0)
                        for w in workloads)
            starting = any(p["spec"].get("nodeName") and p["status"].get("phase") == "Pending" for p in pods)
            if ready and not starting:
                time.sleep(0.3)
                return
            time.sleep(0.1)
        raise AssertionError("the original cluster did not settle")

    def groups(self) -> dict[str, Any]:
        """Every Auto Scaling group in moto: desired, min, max and instance ids with their states."""
        if not self.sb.aws_url:
            return {}
        import boto3

        asg = boto3.client("autoscaling", endpoint_url=self.sb.aws_url, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        out = {}
        for g in asg.describe_auto_scaling_groups()["AutoScalingGroups"]:
            out[g["AutoScalingGroupName"]] = {
                "desired": g["DesiredCapacity"], "min": g["MinSize"], "max": g["MaxSize"],
                "instances": {i["InstanceId"]: i["LifecycleState"] for i in g.get("Instances") or ()}}
        return out


@pytest.fixture
def original_factory(sandbox_factory: Callable[..., SandboxProcess], tmp_path: Path) -> Callable[..., Original]:
    def make(scenario: str | dict[str, Any], *, aws: bool = False) -> Original:
        sb = sandbox_factory(scenario, aws=aws)
        inventory = tmp_path / f"inventory-{sb.state_dir.name}"
        inventory.mkdir()
        doc: dict[str, Any] = {"name": "prod", "kube": {"kubeconfig": str(sb.kubeconfig), "context": "sandbox"},
                               "lock": {"namespace": "kube-system", "name": "kubeops-lock", "ttl_s": 30}}
        if aws:
            doc["aws"] = {"region": "us-east-1", "env_file": str(sb.state_dir / "env")}
        (inventory / "prod.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
        settings = load_settings("prod", inventory=inventory, state_dir=tmp_path / f"state-{sb.state_dir.name}")
        return Original(sb=sb, settings=settings)

    return make
