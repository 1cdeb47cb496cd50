"""A sandbox with AWS (moto + the AWS link) laid out as the shipped `sandbox` inventory expects, plus the
`kubeops` command run as a real subprocess, so playbook tests go through the CLI, the engine and the wire.

Layout: ``<root>/sandbox/{kubeconfig,env,requests.jsonl}`` and ``<root>/runs/*.json``; every command runs with
``KUBEOPS_STATE_DIR=<root>``, which is what `inventory/sandbox.yaml` reads.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeops.sandbox.testing import SandboxProcess

KUBEOPS = [sys.executable, "-c", "from kubeops.cli import main; main()"]
GROUP = "workers"
LOCK_TTL_S = 3


def scenario(*, desired: int = 3, max_size: int = 6, replicas: int = 3, join_delay_s: float = 2) -> dict[str, Any]:
    """Workers from one Auto Scaling group, a control-plane node, and a web Deployment guarded by a budget."""
    return {
        "name": "aws-test",
        "settings": {"join_delay_s": join_delay_s, "tick_ms": 50, "aws_poll_s": 0.2},
        "namespaces": ["apps"],
        "autoscaling_groups": [
            {
                "name": GROUP,
                "min": 1,
                "max": max_size,
                "desired": desired,
                "zones": ["us-east-1a", "us-east-1b"],
                "instance_type": "m5.large",
                "node": {"role": "worker", "labels": {"pool": "general"}, "capacity": {"cpu": "4", "memory": "16Gi"}},
            }
        ],
        "nodes": [
            {
                "name": "control-plane-0",
                "role": "control-plane",
                "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
            }
        ],
        "workloads": [
            {
                "kind": "Deployment",
                "name": "web",
                "namespace": "apps",
                "replicas": replicas,
                "labels": {"app": "web"},
                "image": "nginx:1.27",
                "resources": {"requests": {"cpu": "200m", "memory": "128Mi"}},
                "pdb": {"max_unavailable": 1},
            }
        ],
    }


class AwsSandbox:
    """One running sandbox with AWS, and helpers to drive and inspect it."""

    def __init__(self, root: Path, spec: dict[str, Any]) -> None:
        self.root = root
        self.sb = SandboxProcess(spec, state_dir=root / "sandbox", aws=True)

    def start(self) -> AwsSandbox:
        # The shipped sandbox inventory, with a short lock TTL: a SIGKILLed run's lease expires in seconds, so
        # the crash tests can resume (with --wait-for-lock) without waiting the default 30 s each time.
        shipped = Path(__file__).resolve().parents[1] / "inventory" / "sandbox.yaml"
        inventory = self.root / "inventory"
        inventory.mkdir(parents=True, exist_ok=True)
        text = shipped.read_text(encoding="utf-8")
        (inventory / "sandbox.yaml").write_text(text.replace("ttl_s: 30", f"ttl_s: {LOCK_TTL_S}"), encoding="utf-8")
        self.sb.start()
        self.wait_for(self._group_exists, "the AWS link to create the group")
        self.wait_for(lambda: len(self.ready_workers()) == self.group()["DesiredCapacity"], "workers Ready")
        return self

    def _group_exists(self) -> bool:
        groups = self.boto("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])
        return bool(groups["AutoScalingGroups"])

    def stop(self) -> None:
        self.sb.stop()

    # --- the product, as a user runs it ------------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            KUBEOPS_STATE_DIR=str(self.root),
            KUBEOPS_LOG_FORMAT="json",
            KUBEOPS_INVENTORY_DIR=str(self.root / "inventory"),
        )
        return env

    def kubeops(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*KUBEOPS, *args], capture_output=True, text=True, timeout=timeout_s, env=self.env, check=False
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*KUBEOPS, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env
        )

    def runs(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted((self.root / "runs").glob("*.json")):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue  # being replaced atomically right now
        return out

    def kill_at(self, proc: subprocess.Popen[str], step: str, status: str, timeout_s: float = 120) -> str:
        """SIGKILL `proc` as soon as `step` reaches `status` (running/done) in the checkpoint; returns what was seen."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for record in self.runs():
                if record.get("pid") != proc.pid:  # earlier runs in this sandbox are long done
                    continue
                entry = next((s for s in record["steps"] if s["name"] == step), None)
                if not entry or entry["status"] not in (status, "done") or proc.poll() is not None:
                    continue
                # A quick last step can end the whole run between two looks; a kill after the final checkpoint
                # and before the process exits (lock release, summary) is a crash point as real as any.
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return entry["status"] if record.get("status") in (None, "running") else "run-done"
            if proc.poll() is not None:
                return "finished"
            time.sleep(0.005)
        proc.kill()
        proc.wait()
        raise AssertionError(f"step {step} never reached {status}")

    # --- AWS and Kubernetes, read directly ------------------------------------------------------------------
    def boto(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.sb.aws_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def group(self) -> dict[str, Any]:
        return self.boto("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])[
            "AutoScalingGroups"
        ][0]

    def group_state(self) -> dict[str, Any]:
        """What a replacement or a roll must leave as it found (desired, max, suspended) and the instances."""
        group = self.group()
        return {
            "desired": group["DesiredCapacity"],
            "max": group["MaxSize"],
            "suspended": sorted(p["ProcessName"] for p in group["SuspendedProcesses"]),
            "instances": sorted(i["InstanceId"] for i in group["Instances"]),
        }

    def ec2_state(self, instance_id: str) -> str:
        answer = self.boto("ec2").describe_instances(InstanceIds=[instance_id])
        return str(answer["Reservations"][0]["Instances"][0]["State"]["Name"])

    def get(self, path: str) -> Any:
        status, body = self.sb.request("GET", path)
        assert status == 200, (path, status, body)
        return body

    def nodes(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/nodes")["items"])

    def ready_workers(self) -> dict[str, str]:
        """Ready worker nodes: name -> instance id."""
        out = {}
        for node in self.nodes():
            provider = node.get("spec", {}).get("providerID", "")
            ready = any(
                c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", [])
            )
            in_group = node["metadata"].get("labels", {}).get("kubeops.io/autoscaling-group") == GROUP
            if provider.startswith("aws://") and ready and in_group:
                out[node["metadata"]["name"]] = provider.rsplit("/", 1)[-1]
        return out

    def deployment_ready(self, name: str = "web", namespace: str = "apps") -> bool:
        deploy = self.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        status = deploy.get("status", {})
        return status.get("readyReplicas") == deploy["spec"]["replicas"] == status.get("updatedReplicas")

    def requests(self) -> list[dict[str, Any]]:
        return self.sb.requests()

    @staticmethod
    def wait_for(check: Any, what: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.1)


def module_sandbox(folder: str, *, desired: int = 3, max_size: int = 6) -> Any:
    """A module-scoped fixture, ``env = module_sandbox("aws-replace")``: one AwsSandbox for the module's tests."""

    @pytest.fixture(scope="module")
    def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsSandbox]:
        sandbox = AwsSandbox(tmp_path_factory.mktemp(folder), scenario(desired=desired, max_size=max_size)).start()
        try:
            yield sandbox
        finally:
            sandbox.stop()

    return env
