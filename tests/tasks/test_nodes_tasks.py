"""The node tasks' own input handling (flags -> playbook parameters), before any cluster is reached."""

from __future__ import annotations

import subprocess
import sys

import pytest
from invoke import Exit

from kubeops.tasks import nodes


def test_each_command_is_split_into_an_argument_list_like_a_shell_would_without_running_one() -> None:
    argv = nodes._split_commands(["apt-get -y upgrade", "touch '/tmp/a b; rm -rf /'"])
    assert argv == [["apt-get", "-y", "upgrade"], ["touch", "/tmp/a b; rm -rf /"]]


def test_an_unbalanced_quote_is_an_input_error() -> None:
    from kubeops.errors import InputError

    with pytest.raises(InputError, match="No closing quotation"):
        nodes._split_commands(["echo 'oops"])


def test_node_is_required_and_missing_it_exits_2() -> None:
    with pytest.raises(Exit) as exc:
        nodes._need(None)
    assert exc.value.code == 2


@pytest.mark.parametrize("task", ["decommission", "maintain", "drain", "cordon", "uncordon"])
def test_every_node_task_offers_dry_run_cluster_and_node(task: str) -> None:
    out = subprocess.run([sys.executable, "-c", "from kubeops.cli import main; main()", task, "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for flag in ("--node", "--dry-run", "--cluster"):
        assert flag in out.stdout
