"""Engine tasks through the real CLI (subprocess): exit codes, listings, JSON output, and a light task listing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Exit

from kubeops.errors import InputError, LockHeld, OutsideWindow, PlaybookError, StepFailed
from kubeops.tasks._common import exit_codes, parse_params

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "KUBEOPS_STATE_DIR": str(tmp_path / "state"),
        "KUBEOPS_LOG_FORMAT": "json",
        "PYTHONPATH": str(REPO),
        "KUBEOPS_ACTION_MODULES": "tests.engine.toy_default_actions",
    }

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from kubeops.cli import main; main()", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return call


def test_listing_tasks_imports_neither_kubernetes_nor_boto3() -> None:
    code = (
        "import sys; import kubeops.cli, kubeops.tasks; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('kubernetes', 'boto3', 'botocore', 'fabric', 'paramiko', 'urllib3', 'requests', 'structlog')); "
        "print(','.join(heavy))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    heavy = [m for m in proc.stdout.strip().split(",") if m]
    assert not [m for m in heavy if m.split(".")[0] in ("kubernetes", "boto3", "botocore")], heavy


def test_help_lists_engine_tasks(cli) -> None:  # type: ignore[no-untyped-def]
    proc = cli("--list")
    assert proc.returncode == 0
    for name in ("run", "validate", "runs", "show", "resume"):
        assert f"  {name} " in proc.stdout


def test_run_then_runs_and_show(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ran = cli("run", "--playbook=hello", "--param", "who=tests")
    assert ran.returncode == 0, ran.stderr
    assert "playbook hello on cluster sandbox: done" in ran.stdout
    events = [json.loads(line) for line in ran.stderr.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events if e["event"].startswith("run.")] == ["run.started", "run.done"]
    assert all({"run_id", "step", "action"} <= e.keys() for e in events)
    records = json.loads(cli("runs", "--json").stdout)
    assert len(records) == 1 and records[0]["params"]["who"] == "tests"
    run_id = records[0]["id"]
    table = cli("runs").stdout.splitlines()
    assert table[0].split() == ["ID", "PLAYBOOK", "CLUSTER", "STATUS", "STARTED", "STEP"]
    assert table[1].split()[:4] == [run_id, "hello", "sandbox", "done"]
    shown = json.loads(cli("show", f"--run={run_id}", "--json").stdout)
    assert shown["steps"][0]["outputs"]["message"].startswith("hello, tests")
    assert "greet [log] done attempts=1" in cli("show", f"--run={run_id}").stdout


def test_validate_ok(cli) -> None:  # type: ignore[no-untyped-def]
    proc = cli("validate", "--playbook=hello")
    assert proc.returncode == 0 and proc.stdout.startswith("ok: hello")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "--playbook=no-such"], "no playbook 'no-such' found"),
        (["run", "--playbook=hello", "--param", "who"], "--param expects name=value"),
        (["run", "--playbook=hello", "--param", "whom=x"], "has no parameter 'whom'"),
        (["run", "--playbook=hello", "--param", "wait_s=soon"], "parameter 'wait_s' must be number"),
        (["run", "--playbook=hello", "--cluster=nowhere"], "unknown cluster 'nowhere'"),
        (["run", "--playbook=hello", "--log-format=xml"], "--log-format must be"),
        (["show", "--run=20000101T000000Z-0000"], "no run '20000101T000000Z-0000'"),
        (["resume"], "no unfinished run for cluster 'sandbox'"),
    ],
)
def test_invalid_input_exits_2(cli, args: list[str], fragment: str) -> None:  # type: ignore[no-untyped-def]
    proc = cli(*args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert fragment in proc.stderr


def test_resuming_a_run_whose_process_is_alive_exits_3(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    runs = tmp_path / "state" / "runs"
    runs.mkdir(parents=True)
    record = {
        "version": 1,
        "id": "20260101T000000Z-abcd",
        "cluster": "sandbox",
        "status": "running",
        "dry_run": False,
        "playbook": {"name": "hello", "path": str(REPO / "playbooks" / "hello.yaml"), "hash": "x"},
        "params": {"who": "x", "wait_s": 0},
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": "2026-01-01T00:00:00Z",
        "steps": [],
    }
    (runs / "20260101T000000Z-abcd.json").write_text(json.dumps(record))
    proc = cli("resume", "--run=20260101T000000Z-abcd", "--force")
    assert proc.returncode == 3, proc.stderr
    assert f"still running as pid {os.getpid()}" in proc.stderr


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (StepFailed("x", step="s", run_id="r"), 1),
        (InputError("x"), 2),
        (PlaybookError("x", path="p", line=1, field="f"), 2),
        (LockHeld("x"), 3),
        (OutsideWindow("x"), 0),
    ],
)
def test_exit_code_mapping(error: Exception, code: int) -> None:
    with pytest.raises(Exit) as info, exit_codes():
        raise error
    assert info.value.code == code


def test_parse_params_keeps_equals_in_values() -> None:
    assert parse_params(["a=1", "sel=app=web", "empty="]) == {"a": "1", "sel": "app=web", "empty": ""}


def test_dash_h_means_help_for_every_task() -> None:
    """`-h` is never an automatic short flag, so `invoke deploy -h` prints help instead of wanting a value."""
    from kubeops.tasks import ns

    for name in ns.task_names:
        for argument in ns[name].get_arguments():
            assert "h" not in argument.nicknames, f"{name}: -h belongs to --{argument.name}"
