"""`SandboxProcess`: a real sandbox subprocess for tests, reached only over the wire like production.

    with SandboxProcess("default", state_dir=tmp_path / "sandbox") as sb:
        sb.kubectl("get", "nodes")            # the real kubectl 1.33 (or version="1.27")
        sb.set_faults(error_429_rate=1.0)     # switch faults on after setup
        sb.requests()                          # parsed requests.jsonl

A scenario may be a shipped name, a path, or a dict (written to ``scenario.yaml`` in the state folder).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from kubeops.sandbox.requestlog import read_requests

KUBECTL_DIR = Path("/usr/lib/google-cloud-sdk/bin")


def kubectl_binary(version: str | None = "1.33") -> str:
    """Path of kubectl for a minor version (``kubectl.1.33`` beside the real kubectl), or the default one."""
    candidates = []
    default = shutil.which("kubectl")
    if default:
        candidates.append(Path(os.path.realpath(default)).parent)
    candidates.append(KUBECTL_DIR)
    if version:
        for folder in candidates:
            path = folder / f"kubectl.{version}"
            if path.exists():
                return str(path)
        raise FileNotFoundError(f"kubectl {version} not found beside {default or KUBECTL_DIR}")
    if default:
        return default
    raise FileNotFoundError("kubectl not found on PATH")


class SandboxProcess:
    """Start ``python -m kubeops.sandbox`` (not detached), wait until healthy, stop (SIGTERM, then kill)."""

    def __init__(self, scenario: str | Path | dict[str, Any] = "default", *, state_dir: str | Path,
                 aws: bool = False, params: dict[str, Any] | None = None, faults: dict[str, Any] | None = None,
                 start_timeout_s: float = 90) -> None:
        self.state_dir = Path(state_dir)
        self.aws = aws
        self.scenario = scenario
        self.params = params or {}
        self.faults = faults or {}
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    # ---- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> SandboxProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        ref = self.scenario
        if isinstance(ref, dict):
            path = self.state_dir / "scenario.yaml"
            path.write_text(yaml.safe_dump(ref, sort_keys=False), encoding="utf-8")
            ref = path
        argv = [sys.executable, "-m", "kubeops.sandbox", "--scenario", str(ref), "--port", "0",
                "--state-dir", str(self.state_dir)]
        if not self.aws:
            argv.append("--no-aws")
        for k, v in self.params.items():
            argv += ["--param", f"{k}={v}"]
        for k, v in self.faults.items():
            argv += ["--fault", f"{k}={json.dumps(v)}"]
        info_path = self.state_dir / "sandbox.json"
        if info_path.exists():
            info_path.unlink()
        self._log = open(self.state_dir / "sandbox.log", "wb")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, "KUBEOPS_SANDBOX_PARENT_PID": str(os.getpid())}  # it exits if this process dies
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.state_dir / "sandbox.log").read_text(encoding="utf-8", errors="replace")
                raise RuntimeError(f"sandbox exited with {self.proc.returncode}:\n{log[-3000:]}")
            try:
                info = json.loads(info_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                time.sleep(0.05)
                continue
            if info.get("pid") == self.proc.pid:
                self.info = info
                if self._healthy():
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sandbox did not become healthy within {self.start_timeout_s} s")

    def _healthy(self) -> bool:
        try:
            return self.sandbox_call("GET", "health").get("ok") is True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "_log", None) is not None:
            self._log.close()
        self.proc = None

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- what tests use -----------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return str(self.info["api_url"])

    @property
    def aws_url(self) -> str | None:
        return self.info.get("aws_url")

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def requests_path(self) -> Path:
        return self.state_dir / "requests.jsonl"

    @property
    def env(self) -> dict[str, str]:
        """The variables of the state folder's ``env`` file."""
        out = {}
        for line in (self.state_dir / "env").read_text(encoding="utf-8").splitlines():
            if line.startswith("export "):
                key, _, value = line[len("export "):].partition("=")
                out[key] = value
        return out

    def requests(self) -> list[dict[str, Any]]:
        return read_requests(self.requests_path)

    def sandbox_call(self, method: str, what: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.api_url}/sandbox/v1/{what}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def set_faults(self, **settings: Any) -> dict[str, Any]:
        """Replace the fault settings (no arguments: faults off)."""
        return self.sandbox_call("POST", "faults", settings)

    def set_node_heartbeats(self, node: str, beating: bool) -> dict[str, Any]:
        """Stop (False) or restart (True) a node's kubelet heartbeats: the "node dies" fault."""
        return self.sandbox_call("POST", "node-faults", {"node": node, "heartbeats": beating})

    def tick(self) -> None:
        self.sandbox_call("POST", "tick", {})

    def advance_clock(self, seconds: float) -> None:
        self.sandbox_call("POST", "clock", {"advance_s": seconds})

    def request(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """A raw API call; returns (status, parsed JSON body or text)."""
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.api_url + path, data=data, method=method,
                                     headers={"Content-Type": content_type, **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw, code = resp.read(), resp.status
        except urllib.error.HTTPError as err:
            raw, code = err.read(), err.code
        try:
            return code, json.loads(raw)
        except ValueError:
            return code, raw.decode("utf-8", "replace")

    def kubectl(self, *args: str, version: str = "1.33", timeout_s: float = 120,
                check: bool = False) -> subprocess.CompletedProcess[str]:
        cmd = [kubectl_binary(version), "--kubeconfig", str(self.kubeconfig),
               "--cache-dir", str(self.state_dir / "kube-cache"), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=check,
                              env={**os.environ, "HOME": str(self.state_dir)})
