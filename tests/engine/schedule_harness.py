"""Test harness for scheduling tests: a real kubeops CLI subprocess against a sandbox, with its own inventory.

The inventory (cluster ``sb``) points at the sandbox's kubeconfig and keeps a short lock TTL; extra inventory
sections (window, notify, checkpoint_store) come from the test. Playbooks use the blocking `crash.effect`
action (tests/engine/crash_actions.py) so a test decides when each step proceeds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from kubeops.sandbox.testing import SandboxProcess

REPO = Path(__file__).resolve().parents[2]


class Harness:
    """Runs `kubeops` subprocesses on cluster ``sb`` (the sandbox) with a test-specific inventory."""

    def __init__(self, tmp: Path, sandbox: SandboxProcess | None, *, ttl_s: float = 3, **inventory: Any) -> None:
        self.tmp = tmp
        self.state = tmp / "state"
        self.gates = tmp / "gates"
        self.gates.mkdir(exist_ok=True)
        self.effects = tmp / "effects.log"
        self.inventory_dir = tmp / "inventory"
        self.inventory_dir.mkdir(exist_ok=True)
        doc: dict[str, Any] = {
            "name": "sb",
            "kube": {"kubeconfig": str(sandbox.kubeconfig) if sandbox else str(tmp / "no-kubeconfig")},
            "lock": {"namespace": "kube-system", "name": "kubeops-lock", "ttl_s": ttl_s},
            **inventory,
        }
        (self.inventory_dir / "sb.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
        self.env = {
            **os.environ,
            "KUBEOPS_STATE_DIR": str(self.state),
            "KUBEOPS_INVENTORY_DIR": str(self.inventory_dir),
            "KUBEOPS_CLUSTER": "sb",
            "KUBEOPS_ACTION_MODULES": "tests.engine.crash_actions",
            "KUBEOPS_LOG_FORMAT": "json",
            "PYTHONPATH": str(REPO),
            "PYTHONFAULTHANDLER": "1",  # a hung CLI killed with SIGABRT by `call` shows where it was
        }
        self.n = 0

    def playbook(self, names: list[str], *, name: str = "gated") -> Path:
        """A playbook of blocking `crash.effect` steps, one per name."""
        steps = "".join(
            f"  - name: {n}\n    action: crash.effect\n"
            f"    args: {{name: {n}, log: '{self.effects}', gates: '{self.gates}'}}\n"
            for n in names
        )
        path = self.tmp / f"{name}.yaml"
        path.write_text(f"name: {name}\nsteps:\n{steps}", encoding="utf-8")
        return path

    def open_gates(self, *names: str) -> None:
        for n in names:
            (self.gates / f"{n}.start").touch()
            (self.gates / f"{n}.end").touch()

    def start(self, *args: str) -> subprocess.Popen[str]:
        self.n += 1
        return subprocess.Popen(
            [sys.executable, "-c", "from kubeops.cli import main; main()", *args],
            env=self.env, cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def call(self, *args: str, timeout: float = 90, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = self.start(*args) if stdin is None else None
        if proc is None:
            return subprocess.run(
                [sys.executable, "-c", "from kubeops.cli import main; main()", *args],
                env=self.env, cwd=self.tmp, capture_output=True, text=True, timeout=timeout, input=stdin,
            )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            out, err = proc.communicate(timeout=30)
            gates = sorted(p.name for p in self.gates.iterdir())
            raise AssertionError(f"kubeops {' '.join(args)} hung (gates {gates}):\n{err[-6000:]}") from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def records(self) -> list[dict[str, Any]]:
        folder = self.state / "runs"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []

    def effects_done(self) -> list[str]:
        return self.effects.read_text().splitlines() if self.effects.exists() else []


def wait_for(what: Callable[[], bool], proc: subprocess.Popen[str] | None = None, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not what():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"process exited early with {proc.returncode}:\n{out}\n{err[-3000:]}")
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def kill(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


def finish(proc: subprocess.Popen[str], timeout: float = 90) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err
