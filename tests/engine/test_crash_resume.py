"""Crash safety through the real CLI: SIGKILL at every step boundary and inside every step, then resume.

Every step's side effect must happen exactly once and the run must end `done`. Also: a failure in step 3 runs
cleanup and exits 1, and `resume` finishes the run once the cause is fixed; a dry run changes nothing.
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

import pytest

REPO = Path(__file__).resolve().parents[2]
NAMES = ["a", "b", "c"]


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.state = tmp_path / "state"
        self.env = {
            **os.environ,
            "KUBEOPS_STATE_DIR": str(self.state),
            "KUBEOPS_ACTION_MODULES": "tests.engine.crash_actions",
            "KUBEOPS_LOG_FORMAT": "json",
            "PYTHONPATH": str(REPO),
        }
        self.n = 0

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        self.n += 1
        out = open(self.tmp / f"proc{self.n}.log", "wb")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(
            [sys.executable, "-c", "from kubeops.cli import main; main()", *args],
            env=self.env,
            cwd=self.tmp,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def call(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from kubeops.cli import main; main()", *args],
            env=self.env,
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def record(self) -> dict:
        (path,) = list((self.state / "runs").glob("*.json"))
        return json.loads(path.read_text())


def wait_for(what: Callable[[], bool], proc: subprocess.Popen[bytes] | None = None, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not what():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited early with {proc.returncode}")
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.005)


def kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.timeout(180)
def test_sigkill_inside_and_between_steps_then_resume_does_everything_exactly_once(tmp_path: Path) -> None:
    gates, log = tmp_path / "gates", tmp_path / "effects.log"
    gates.mkdir()
    steps = "".join(
        f"  - name: {n}\n    action: crash.effect\n    args: {{name: {n}, log: '{log}', gates: '{gates}'}}\n"
        for n in NAMES
    )
    playbook = tmp_path / "crashy.yaml"
    playbook.write_text(f"name: crashy\nsteps:\n{steps}", encoding="utf-8")
    cli = Cli(tmp_path)
    lines = lambda: log.read_text().splitlines() if log.exists() else []  # noqa: E731
    status = lambda name: next(s["status"] for s in cli.record()["steps"] if s["name"] == name)  # noqa: E731

    proc = cli.start("run", f"--playbook={playbook}")
    for index, name in enumerate(NAMES):
        # 1. inside the step, before its side effect
        wait_for(lambda n=name: (gates / f"{n}.entered").exists(), proc)
        kill(proc)
        assert status(name) == "running" and lines() == NAMES[:index]
        (gates / f"{name}.entered").unlink()
        proc = cli.start("resume") if index == 0 else cli.start("resume", f"--run={cli.record()['id']}")
        wait_for(lambda n=name: (gates / f"{n}.entered").exists(), proc)
        # 2. inside the step, after its side effect
        (gates / f"{name}.start").touch()
        wait_for(lambda n=name: (gates / f"{n}.effected").exists(), proc)
        kill(proc)
        assert lines() == NAMES[: index + 1]
        (gates / f"{name}.effected").unlink()
        proc = cli.start("resume", f"--run={cli.record()['id']}")
        wait_for(lambda n=name: (gates / f"{n}.effected").exists(), proc)
        # 3. at the boundary: the step is recorded done, the next has not acted
        (gates / f"{name}.end").touch()
        wait_for(lambda n=name: status(n) == "done")
        kill(proc)
        assert lines() == NAMES[: index + 1]
        proc = cli.start("resume", f"--run={cli.record()['id']}")
    assert proc.wait(timeout=60) == 0
    record = cli.record()
    assert record["status"] == "done"
    assert lines() == NAMES  # each side effect exactly once
    # every step was entered three times (killed before and after its effect, then finished); a step may count
    # one more when the kill at the previous step's boundary landed after it was marked running
    attempts = [s["attempts"] for s in record["steps"]]
    assert attempts[0] == 3 and all(a in (3, 4) for a in attempts[1:]), attempts
    assert all(s["intent"] == {"append": s["name"]} for s in record["steps"])
    # a done run says so and exits 0
    again = cli.call("resume", f"--run={record['id']}")
    assert again.returncode == 0 and "already done" in again.stdout


FAILING = """\
name: fails-at-three
steps:
  - name: one
    action: crash.append
    args: {{log: '{log}', text: one}}
  - name: two
    action: crash.append
    args: {{log: '{log}', text: two}}
  - name: three
    action: crash.require
    args: {{path: '{flag}'}}
  - name: four
    action: crash.append
    args: {{log: '{log}', text: four}}
cleanup:
  - name: undo
    action: crash.append
    args: {{log: '{log}', text: cleanup}}
"""


def test_failure_in_step_three_runs_cleanup_exits_1_and_resume_finishes(tmp_path: Path) -> None:
    log, flag = tmp_path / "log", tmp_path / "fixed"
    playbook = tmp_path / "fails.yaml"
    playbook.write_text(FAILING.format(log=log, flag=flag), encoding="utf-8")
    cli = Cli(tmp_path)
    first = cli.call("run", f"--playbook={playbook}")
    assert first.returncode == 1, first.stderr
    run_id = cli.record()["id"]
    assert f"invoke resume --run={run_id}" in first.stderr
    assert "required file" in first.stderr
    assert log.read_text().splitlines() == ["one", "two", "cleanup"]
    shown = cli.call("show", f"--run={run_id}")
    assert shown.returncode == 0 and "three [crash.require] failed" in shown.stdout
    listed = cli.call("runs")
    assert run_id in listed.stdout and "failed" in listed.stdout and "three" in listed.stdout

    flag.touch()
    second = cli.call("resume")
    assert second.returncode == 0, second.stderr
    assert log.read_text().splitlines() == ["one", "two", "cleanup", "four"]
    assert cli.record()["status"] == "done"


def test_dry_run_through_the_cli_changes_nothing(tmp_path: Path) -> None:
    log, flag = tmp_path / "log", tmp_path / "fixed"
    flag.touch()
    playbook = tmp_path / "fails.yaml"
    playbook.write_text(FAILING.format(log=log, flag=flag), encoding="utf-8")
    cli = Cli(tmp_path)
    proc = cli.call("run", f"--playbook={playbook}", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert not log.exists()
    assert not (cli.state / "runs").exists()
    assert f"one [crash.append]: would append 'one' to {log}" in proc.stdout
    assert "three [crash.require]: read: {}" in proc.stdout
    assert "undo [crash.append]: skipped" in proc.stdout
