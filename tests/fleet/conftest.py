"""Three real sandbox processes, one inventory file each (``c1``, ``c2``, ``c3``) in one inventory folder with a
shared ``apps/``: the fleet tests drive `kubeops` as a subprocess against them and read the clusters back over HTTP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubeops.sandbox.testing import SandboxProcess

CLUSTERS = ("c1", "c2", "c3")
SCENARIO = {"name": "fleet", "settings": {"tick_ms": 50}, "nodes": [{"name_prefix": "w-", "count": 2}]}


def app_yaml(name: str, *, replicas: int = 2, timeout_s: float = 20, annotations: str = "", extra: str = "") -> str:
    """A small app; `annotations` go on every pod (the sandbox reads readiness-delay-s and never-ready)."""
    pod_annotations = f"pod_annotations: {{{annotations}}}\n" if annotations else ""
    return (
        f"name: {name}\nrole: frontend-{name}\nimage: example/{name}\nversion: '1'\nreplicas: {replicas}\n"
        f"ports: [{{name: http, port: 80, target_port: 8080}}]\n"
        f"rollout: {{surge: 1, step_timeout_s: {timeout_s}}}\n{pod_annotations}{extra}"
    )


@dataclass
class Cluster:
    name: str
    process: SandboxProcess

    def get(self, path: str) -> Any:
        try:
            with urllib.request.urlopen(self.process.api_url + path, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def controllers(self, app: str) -> dict[str, dict[str, Any]]:
        items = self.get(f"/apis/apps/v1/namespaces/default/deployments?labelSelector=app%3D{app}")["items"]
        return {item["metadata"]["name"]: item for item in items}

    def ready_version(self, app: str) -> str | None:
        """The one version serving the app with every replica ready, or None."""
        controllers = self.controllers(app)
        if len(controllers) != 1:
            return None
        (obj,) = controllers.values()
        if obj["status"].get("readyReplicas", 0) != obj["spec"]["replicas"]:
            return None
        return str(obj["metadata"]["labels"].get("version"))

    def mark(self) -> int:
        return len(self.process.requests())

    def mutations(self, since: int = 0) -> list[dict[str, Any]]:
        """Changes since `since` (dry runs and the lock's Lease writes left out)."""
        return [
            r for r in self.process.requests()[since:]
            if r["method"] in ("POST", "PUT", "PATCH", "DELETE") and not r.get("dry_run")
            and r.get("resource") != "leases"
        ]

    def deployments_created(self, since: int = 0) -> int:
        return sum(1 for r in self.mutations(since) if r["method"] == "POST" and r.get("resource") == "deployments")


@dataclass
class Fleet:
    root: Path
    inventory: Path
    state: Path
    clusters: dict[str, Cluster]

    def write_app(self, name: str, text: str) -> Path:
        path = self.inventory / "apps" / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KUBEOPS_INVENTORY_DIR": str(self.inventory),
            "KUBEOPS_STATE_DIR": str(self.state),
            "KUBEOPS_LOG_FORMAT": "json",
        }

    def argv(self, *args: str) -> list[str]:
        candidate = Path(sys.executable).with_name("kubeops")
        return [str(candidate) if candidate.exists() else "kubeops", *args]

    def kubeops(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), env=self.env(), cwd=self.root, capture_output=True, text=True,
                              timeout=timeout)

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), env=self.env(), cwd=self.root, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)

    def fleet_records(self) -> list[dict[str, Any]]:
        folder = self.state / "fleets"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("fleet-*.json"))] if folder.is_dir() else []

    def fleet_of(self, app: str) -> dict[str, Any]:
        (record,) = [r for r in self.fleet_records() if r["params"].get("app") == app]
        return record


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    inventory = root / "inventory"
    (inventory / "apps").mkdir(parents=True)
    started: list[SandboxProcess] = []
    try:
        clusters = {}
        for name in CLUSTERS:
            process = SandboxProcess(SCENARIO, state_dir=root / f"sandbox-{name}")
            started.append(process)
            process.start()
            (inventory / f"{name}.yaml").write_text(
                f"name: {name}\nkube:\n  kubeconfig: {process.kubeconfig}\n  context: sandbox\nlock:\n  ttl_s: 3\n"
            )
            clusters[name] = Cluster(name, process)
        yield Fleet(root=root, inventory=inventory, state=root / "state", clusters=clusters)
    finally:
        for process in started:
            process.stop()
