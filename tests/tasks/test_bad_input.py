"""Bad input through the real CLI: one clear message (file, line, field where there is one), exit 2, no
traceback, and nothing run or recorded.

No cluster is needed: every case is refused before kubeops talks to one (the missing-kubeconfig case points at
a sandbox that was never started, which is what a user who forgot `invoke sandbox --detach` sees).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PLAYBOOK = """\
name: greet
params:
  node: {type: string, required: true}
  count: {type: integer, default: 1}
steps:
  - name: say
    action: log
    args: {message: "hello ${params.node}"}
"""


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "sandbox.yaml").write_text(
        "name: sandbox\nkube:\n  kubeconfig: ${KUBEOPS_STATE_DIR}/sandbox/kubeconfig\n  context: sandbox\n"
    )
    (inventory / "typo.yaml").write_text("name: typo\nkube:\n  kubeconfig: /nowhere/kubeconfig\n  contxt: x\n")
    (tmp_path / "greet.yaml").write_text(PLAYBOOK)
    (tmp_path / "tab.yaml").write_text("name: tab\nsteps:\n\t- name: a\n")
    (tmp_path / "indent.yaml").write_text("name: indent\nsteps:\n  - name: a\n     action: log\n")
    env = {
        **os.environ,
        "KUBEOPS_STATE_DIR": str(tmp_path / "state"),
        "KUBEOPS_INVENTORY_DIR": str(inventory),
        "KUBEOPS_LOG_FORMAT": "json",
        "PYTHONPATH": str(REPO),
    }

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from kubeops.cli import main; main()", *args],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )

    call.root = tmp_path  # type: ignore[attr-defined]
    return call


def runs_recorded(root: Path) -> list[Path]:
    return sorted((root / "state" / "runs").glob("*.json")) if (root / "state" / "runs").exists() else []


CASES = [
    # (args, what the one message must say)
    (["run", "--playbook=/nonexistent.yaml"], "/nonexistent.yaml: playbook: no playbook '/nonexistent.yaml' found"),
    (["run", "--playbook=tab.yaml"], "tab.yaml:3: invalid YAML: found character '\\t'"),
    (["run", "--playbook=indent.yaml"], "indent.yaml:4: invalid YAML"),
    (["run", "--playbook=greet.yaml", "--param", "node=a", "--param", "nope=1"],
     "greet.yaml: params: playbook 'greet' has no parameter 'nope'"),
    (["run", "--playbook=greet.yaml"], "greet.yaml:3: params.node: playbook 'greet' needs parameter 'node'"),
    (["run", "--playbook=greet.yaml", "--param", "node=a", "--param", "count=many"],
     "greet.yaml:4: params.count: parameter 'count' must be integer, got 'many'"),
    (["run", "--playbook=greet.yaml", "--param", "node"], "--param expects name=value, got 'node'"),
    (["run", "--playbook=greet.yaml", "--param", "node=a", "--cluster=nope"], "unknown cluster 'nope'"),
    (["run", "--playbook=greet.yaml", "--param", "node=a", "--cluster=typo"],
     "inventory/typo.yaml:4: kube.contxt: unknown field"),
    (["run"], "--playbook is required"),
    (["show"], "--run is required"),
    (["show", "--run=nope"], "no run 'nope'"),
    (["resume", "--run=nope"], "no run 'nope'"),
    (["resume", "--parallel=3"], "--parallel applies only to a fleet: `invoke resume --fleet=ID`"),
    (["resume", "--run=x", "--parallel=2", "--max-failures=1"], "--parallel and --max-failures apply only to a fleet"),
    (["drain"], "--node is required"),
    (["sandbox", "--scenario=nope"], "unknown scenario 'nope'"),
    (["scale-up", "--group=workers", "--count=abc"], "--count expects a whole number, got 'abc'"),
    (["replace-group", "--group=workers", "--batch=0"], "--batch expects a whole number of at least 1, got '0'"),
]


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_message_exit_2_and_nothing_recorded(cli, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    proc = cli(*args)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert message in errors[0], errors[0]
    assert runs_recorded(cli.root) == []


def test_a_missing_kubeconfig_says_so_and_how_to_fix_it(cli) -> None:  # type: ignore[no-untyped-def]
    """The sandbox inventory before `invoke sandbox --detach`: exit 2, the path, and 'start the sandbox'."""
    proc = cli("cordon", "--node=worker-0")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    error = proc.stderr[proc.stderr.index("error:"):]
    assert f"kubeconfig {cli.root / 'state' / 'sandbox' / 'kubeconfig'} does not exist" in error
    assert "start the sandbox (`invoke sandbox --detach`)" in error
    assert "nothing was changed" in error
    # and it points at the inventory line that named the file
    assert f"{cli.root / 'inventory' / 'sandbox.yaml'}:3: kube.kubeconfig:" in error


def test_bad_credentials_are_one_message_exit_2_and_no_change(tmp_path: Path, sandbox) -> None:  # type: ignore[no-untyped-def]
    """A kubeconfig whose token the API server does not accept (revoked, or another cluster's): exit 2, no write."""
    kubeconfig = tmp_path / "kubeconfig"
    text = Path(sandbox.kubeconfig).read_text()
    assert "kubeops-sandbox-token" in text
    kubeconfig.write_text(text.replace("kubeops-sandbox-token", "revoked-token-123"))
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "sandbox.yaml").write_text(f"name: sandbox\nkube:\n  kubeconfig: {kubeconfig}\n")
    env = {**os.environ, "KUBEOPS_STATE_DIR": str(tmp_path / "state"), "KUBEOPS_INVENTORY_DIR": str(inventory),
           "KUBEOPS_LOG_FORMAT": "json", "PYTHONPATH": str(REPO)}
    mark = len(sandbox.requests())
    proc = subprocess.run(
        [sys.executable, "-c", "from kubeops.cli import main; main()", "drain", "--node=worker-0"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    error = proc.stderr[proc.stderr.index("error:"):]
    assert "Unauthorized" in error and "check the credentials" in error
    assert "revoked-token-123" not in proc.stderr
    seen = sandbox.requests()[mark:]
    assert seen and all(r["status"] == 401 for r in seen)  # refused, and nothing else was even tried
    assert [r for r in seen if r["method"] != "GET"] == []


@pytest.mark.parametrize("task", ["run", "validate", "show", "schedule", "run-scheduled", "drain", "replace"])
def test_help_after_the_task_name_is_help_not_a_value(cli, task: str) -> None:  # type: ignore[no-untyped-def]
    proc = cli(task, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"Usage: kubeops [--core-opts] {task} [--options]"), proc.stdout[:300]
