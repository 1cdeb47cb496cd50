"""The private sandbox of one rehearsal: a temporary folder, ``python -m kubeops.sandbox --snapshot``, moto.

Why a child process (not an in-process server): the rehearsal runs the engine exactly as `invoke` does, over
HTTP, with the same clients; the sandbox's own reconcile thread and moto must not share the engine's process.
The child is told our pid (``KUBEOPS_SANDBOX_PARENT_PID``) so it exits, and stops its moto, even if we are
killed; `PrivateSandbox.stop` (called from ``with``) stops it and deletes the folder whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from kubeops.errors import KubeopsError
from kubeops.settings import AwsSettings, KubeSettings, Settings

__all__ = ["PrivateSandbox"]


class PrivateSandbox:
    """``with PrivateSandbox(snapshot_path, speed=...) as sb:``; ``sb.settings(...)`` reaches only it."""

    def __init__(self, snapshot_path: Path | None = None, *, speed: float = 1.0, join_s: float = 120.0,
                 exit_s: float | str | None = None, start_timeout_s: float = 300.0, keep: bool = False) -> None:
        self.snapshot_path = snapshot_path  # may be set after construction (a file written into `root`)
        self.speed = speed
        self.join_s = join_s
        self.exit_s = exit_s
        self.start_timeout_s = start_timeout_s
        self.keep = keep
        self.root = Path(tempfile.mkdtemp(prefix="kubeops-rehearse-"))
        self.state_dir = self.root / "sandbox"
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self.started_s = 0.0

    def start(self) -> PrivateSandbox:
        """Start the sandbox and its moto (always: every AWS call of the run must land in the private moto, even
        when the snapshot has no Auto Scaling groups) and wait until it answers."""
        if self.snapshot_path is None:
            raise KubeopsError("no snapshot to load")
        t0 = time.perf_counter()
        self.state_dir.mkdir(parents=True)
        argv = [sys.executable, "-m", "kubeops.sandbox", "--snapshot", str(self.snapshot_path), "--port", "0",
                "--state-dir", str(self.state_dir), "--speed", repr(self.speed), "--join-s", repr(self.join_s)]
        if self.exit_s is not None:
            argv += ["--exit-s", str(self.exit_s)]
        env = {**os.environ, "KUBEOPS_SANDBOX_PARENT_PID": str(os.getpid())}
        log = open(self.state_dir / "sandbox.log", "wb")  # noqa: SIM115 - the child owns it
        try:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env)
        finally:
            log.close()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.state_dir / "sandbox.log").read_text(encoding="utf-8", errors="replace")[-2000:]
                raise KubeopsError(f"the rehearsal sandbox exited with code {self.proc.returncode} while "
                                   f"loading the snapshot:\n{tail}")
            try:
                info = json.loads((self.state_dir / "sandbox.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                time.sleep(0.05)
                continue
            if info.get("pid") == self.proc.pid and self._healthy(info["api_url"]):
                self.info = info
                self.started_s = time.perf_counter() - t0
                return self
            time.sleep(0.05)
        raise KubeopsError(f"the rehearsal sandbox did not answer within {self.start_timeout_s:.0f} s")

    @staticmethod
    def _healthy(url: str) -> bool:
        try:
            with urllib.request.urlopen(url + "/sandbox/v1/health", timeout=2) as resp:
                return bool(json.loads(resp.read()).get("ok"))
        except (OSError, ValueError):
            return False

    def settings(self, source: Settings | None = None) -> Settings:
        """Settings that reach only the private sandbox; the real cluster's lock, params and log format kept."""
        env = {}
        for line in (self.state_dir / "env").read_text(encoding="utf-8").splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value
        base = source or Settings()
        return Settings(
            cluster=base.cluster,
            state_dir=self.root / "state",
            inventory_path=base.inventory_path,  # app configs are found beside it
            kube=KubeSettings(kubeconfig=str(self.state_dir / "kubeconfig"), context="sandbox"),
            # the endpoint is spelled out: without it boto3 would fall back to the real AWS endpoints
            aws=AwsSettings(region=env.get("AWS_REGION") or "us-east-1", env_file=str(self.state_dir / "env"),
                            endpoint_url=env["AWS_ENDPOINT_URL"]),
            lock=base.lock,
            # the real addresses and user, so recorded SSH commands name the host the real run would reach;
            # nothing connects with them: a rehearsal's SSH client records (`kubeops.rehearse.remote`)
            ssh=base.ssh,
            params=dict(base.params),
            log_format=base.log_format,
        )

    @property
    def requests_path(self) -> Path:
        return self.state_dir / "requests.jsonl"

    def stop(self) -> None:
        """Stop the sandbox (it stops its moto) and remove the folder; safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:  # it could not stop its moto: stop that one by its id too
                proc.kill()
                proc.wait(5)
                moto_pid = self.info.get("moto_pid")
                if moto_pid:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(int(moto_pid), signal.SIGTERM)
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivateSandbox:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
