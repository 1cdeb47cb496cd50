"""The sandbox process: it does not outlive a test harness that was killed before it could stop it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HARNESS = """
import sys, time
from kubeops.sandbox.testing import SandboxProcess
sb = SandboxProcess({"name": "orphan", "nodes": [{"name": "n1"}]}, state_dir=sys.argv[1]).start()
print(sb.info["pid"], flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_sandbox_exits_when_its_harness_is_killed(tmp_path: Path) -> None:
    harness = subprocess.Popen([sys.executable, "-c", HARNESS, str(tmp_path / "sandbox")], stdout=subprocess.PIPE,
                               text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        pid = int(harness.stdout.readline())  # type: ignore[union-attr]
        assert json.loads((tmp_path / "sandbox" / "sandbox.json").read_text())["pid"] == pid
        harness.send_signal(signal.SIGKILL)
        harness.wait(10)
        deadline = time.monotonic() + 30
        while _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGTERM)
                raise AssertionError("the sandbox outlived its killed harness")
            time.sleep(0.1)
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait(5)
