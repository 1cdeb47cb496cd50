"""A sandbox API server for the node/drain tests: a scenario (dict) served over HTTP on 127.0.0.1.

Used until every test can share `tests/conftest.py`'s sandbox fixtures; it only wires the sandbox's own public
pieces (`build_cluster`, `scenario.apply`, `SandboxServer`, the request log) together, and writes a kubeconfig
and an inventory so the CLI can be pointed at it with KUBEOPS_INVENTORY_DIR.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml


class Sandbox:
    """One running sandbox: `kubeconfig`, `inventory_dir`, `requests()`, `kubectl(...)`, `kube()`."""

    def __init__(self, scenario: dict[str, Any], folder: Path) -> None:
        from kubeops.sandbox import scenario as scenarios
        from kubeops.sandbox.cluster import build_cluster
        from kubeops.sandbox.faults import FaultConfig, Faults
        from kubeops.sandbox.requestlog import RequestLog
        from kubeops.sandbox.server import SANDBOX_TOKEN, SandboxServer

        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        loaded = scenarios.load(scenario)
        self.cluster = build_cluster(scenario=loaded)
        scenarios.apply(self.cluster, loaded)
        self.log_path = folder / "requests.jsonl"
        self.server = SandboxServer(self.cluster, request_log=RequestLog(self.log_path),
                                    faults=Faults(FaultConfig.from_dict(loaded.faults)))
        self.cluster.start()
        self.server.start()
        self.kubeconfig = folder / "kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sandbox", "cluster": {"server": self.server.url}}],
            "users": [{"name": "sandbox", "user": {"token": SANDBOX_TOKEN}}],
            "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": "sandbox"}}],
            "current-context": "sandbox",
        }))
        self.inventory_dir = folder / "inventory"
        self.inventory_dir.mkdir(exist_ok=True)
        (self.inventory_dir / "sandbox.yaml").write_text(yaml.safe_dump({
            "name": "sandbox",
            "kube": {"kubeconfig": str(self.kubeconfig), "context": "sandbox"},
        }))

    def settings(self, **kube: Any) -> Any:
        from kubeops.settings import load_settings

        return load_settings("sandbox", inventory=self.inventory_dir, state_dir=self.folder / "state")

    def kube(self, *, dry_run: bool = False) -> Any:
        from kubeops.clients.kube import KubeClient

        return KubeClient.from_settings(self.settings().kube, dry_run=dry_run)

    def requests(self) -> list[dict[str, Any]]:
        from kubeops.sandbox.requestlog import read_requests

        return read_requests(self.log_path)

    def mark(self) -> int:
        """How many requests were logged so far: `requests()[mark:]` are the ones after this point."""
        return len(self.requests())

    def kubectl(self, *args: str, binary: str = "kubectl") -> str:
        out = subprocess.run(
            [binary, f"--kubeconfig={self.kubeconfig}", *args], check=True, capture_output=True, text=True, timeout=120
        )
        return out.stdout

    def get(self, path: str) -> Any:
        return self.kube().request("GET", path, what="test read")

    def pods_on(self, node: str) -> list[dict[str, Any]]:
        items = self.get(f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}").get("items") or []
        return [p for p in items if not (p.get("metadata") or {}).get("deletionTimestamp")]

    def wait_for(self, predicate: Any, *, timeout_s: float = 30.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def stop(self) -> None:
        self.server.stop()
        self.cluster.stop()


@pytest.fixture(name="make_sandbox")
def sandbox_maker(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], Sandbox]]:
    """``make_sandbox(scenario)`` -> a running Sandbox (50 ms ticks, name "t" unless given); all stopped at the end.

    Import it into a test module (``from tests.k8s_sandbox import sandbox_maker  # noqa: F401``) to use it."""
    started: list[Sandbox] = []

    def make(scenario: dict[str, Any]) -> Sandbox:
        sb = Sandbox({"name": "t", "settings": {"tick_ms": 50}, **scenario}, tmp_path / f"sb{len(started)}")
        started.append(sb)
        return sb

    yield make
    for sb in started:
        sb.stop()


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True)


def token_kubeconfig(kubeconfig: Path, token: str, user: str, out: Path) -> Path:
    """Write to `out` the sandbox's kubeconfig with `user` (bearer `token`, e.g. a ServiceAccount's) as its only
    user and current context: how tests act as a least-privilege identity over the wire."""
    doc = yaml.safe_load(kubeconfig.read_text())
    doc["users"] = [{"name": user, "user": {"token": token}}]
    doc["contexts"] = [{"name": user, "context": {"cluster": "sandbox", "user": user}}]
    doc["current-context"] = user
    out.write_text(yaml.safe_dump(doc))
    return out


def clients_as(kubeconfig: Path, token: str, user: str, folder: Path) -> Any:
    """kubeops `Clients` for the sandbox acting as `user` (see `token_kubeconfig`), with its own inventory and state
    under `folder`."""
    from kubeops.clients.factory import Clients
    from kubeops.settings import load_settings

    folder.mkdir(parents=True, exist_ok=True)
    path = token_kubeconfig(kubeconfig, token, user, folder / f"{user}.kubeconfig")
    inventory = folder / "inventory"
    inventory.mkdir(exist_ok=True)
    spec = {"name": "sandbox", "kube": {"kubeconfig": str(path), "context": user}}
    (inventory / "sandbox.yaml").write_text(yaml.safe_dump(spec))
    return Clients(load_settings("sandbox", inventory=inventory, state_dir=folder / "state"))
