"""A sandbox API server (three Ready nodes, controllers, kubelet, endpoints) and helpers to run `kubeops` against it.

Everything goes over HTTP: `kubeops deploy` runs as a real subprocess with its own inventory pointing at the
sandbox, and the tests read the cluster and the sandbox's request log (``requests.jsonl``) back over the wire.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

MUTATING = ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class AppsSandbox:
    """The running sandbox plus an inventory (with `apps/`) and a state dir for the subprocesses."""

    url: str
    root: Path
    inventory: Path
    state: Path
    log_path: Path

    # --- the API, read directly ------------------------------------------------------------------------------------
    def get(self, path: str) -> Any:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def send(self, method: str, path: str, body: Any) -> Any:
        """Write through the API; returns once the request log holds the write too (the sandbox logs a request
        just after answering it, so a `log_mark()` taken right after could otherwise count it as later)."""
        before = self.log_mark()
        request = urllib.request.Request(self.url + path, method=method, data=json.dumps(body).encode())
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        deadline = time.monotonic() + 5
        while not any(r["method"] == method and r["path"] == path for r in self.requests(before)):
            assert time.monotonic() < deadline, f"{method} {path} never reached the request log"
            time.sleep(0.01)
        return answer

    def controllers(self, app: str) -> dict[str, dict[str, Any]]:
        """name -> object for the app's Deployments and ReplicationControllers."""
        out = {}
        for path in (
            "/apis/apps/v1/namespaces/default/deployments",
            "/api/v1/namespaces/default/replicationcontrollers",
        ):
            for item in self.get(f"{path}?labelSelector=app%3D{app}")["items"]:
                out[item["metadata"]["name"]] = item
        return out

    def endpoint_pods(self, service: str) -> tuple[list[str], list[str]]:
        """(ready pod names, not-ready pod names) of the Service's Endpoints."""
        obj = self.get(f"/api/v1/namespaces/default/endpoints/{service}") or {}
        ready, not_ready = [], []
        for subset in obj.get("subsets") or []:
            ready += [a.get("targetRef", {}).get("name", a["ip"]) for a in subset.get("addresses") or []]
            not_ready += [a.get("targetRef", {}).get("name", a["ip"]) for a in subset.get("notReadyAddresses") or []]
        return sorted(ready), sorted(not_ready)

    def pod_versions(self, app: str) -> dict[str, str]:
        items = self.get(f"/api/v1/namespaces/default/pods?labelSelector=app%3D{app}")["items"]
        return {p["metadata"]["name"]: p["metadata"]["labels"].get("version", "") for p in items}

    # --- request log ---------------------------------------------------------------------------------------------
    def log_mark(self) -> int:
        return len(self.requests())

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines[since:] if line.strip()]

    def mutations(self, since: int = 0) -> list[dict[str, Any]]:
        """Requests since `since` that changed something (dry runs excluded).

        The cluster lock (a Lease the engine's guard takes for every run) is the run's business, not the deploy's,
        so Lease writes are left out.
        """
        return [
            r
            for r in self.requests(since)
            if r["method"] in MUTATING and not r.get("dry_run") and r.get("resource") != "leases"
        ]

    # --- apps and the CLI ----------------------------------------------------------------------------------------
    def write_app(self, name: str, text: str) -> Path:
        path = self.inventory / "apps" / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KUBEOPS_INVENTORY_DIR=str(self.inventory),
            KUBEOPS_STATE_DIR=str(self.state),
            KUBEOPS_LOG_FORMAT="json",
            KUBEOPS_CLUSTER="sandbox",
        )
        return env

    def kubeops(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_kubeops_bin(), *args],
            env=self.env(),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [_kubeops_bin(), *args],
            env=self.env(),
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )


def _kubeops_bin() -> str:
    candidate = Path(sys.executable).with_name("kubeops")
    return str(candidate) if candidate.exists() else "kubeops"


@dataclass
class EndpointSampler:
    """Samples a Service's Endpoints continuously on a thread; `empty` counts samples with no ready address."""

    sandbox: AppsSandbox
    service: str
    samples: int = 0
    empty: int = 0
    seen: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> EndpointSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _ = self.sandbox.endpoint_pods(self.service)
            self.samples += 1
            self.seen.update(ready)
            if not ready:
                self.empty += 1
            time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=10)


SCENARIO = {"name": "apps", "settings": {"tick_ms": 50}, "nodes": [{"name_prefix": "w-", "count": 3}]}


@pytest.fixture(scope="module")
def apps_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppsSandbox]:
    """One real sandbox process per test module (`kubeops.sandbox.testing.SandboxProcess`); apps differ per test."""
    from kubeops.sandbox.testing import SandboxProcess

    root = tmp_path_factory.mktemp("apps-sandbox")
    process = SandboxProcess(SCENARIO, state_dir=root / "sandbox").start()
    inventory = root / "inventory"
    (inventory / "apps").mkdir(parents=True)
    (inventory / "sandbox.yaml").write_text(
        f"name: sandbox\nkube:\n  kubeconfig: {process.kubeconfig}\n  context: sandbox\nlock:\n  ttl_s: 3\n"
    )
    try:
        yield AppsSandbox(
            url=process.api_url, root=root, inventory=inventory, state=root / "state", log_path=process.requests_path
        )
    finally:
        process.stop()
