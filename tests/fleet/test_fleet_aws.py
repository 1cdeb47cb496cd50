"""A fleet that changes AWS: `kubeops scale-up --cluster=c1,c2` against two sandboxes, each with its own moto.

What a user cares about: each cluster's run talks to that cluster's AWS account and no other (the group of c1
grows, c2's is untouched when c2 refuses), a cluster whose group is at its maximum is rejected with the group's
words while the others proceed, and the fleet's exit code and table say so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.aws_sandbox import GROUP, AwsSandbox, scenario

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, AwsSandbox]]]:
    root = tmp_path_factory.mktemp("fleet-aws")
    sandboxes: dict[str, AwsSandbox] = {}
    try:
        # c1 has room to grow; c2's group is already at its maximum
        for name, spec in (("c1", scenario(desired=2, max_size=4, replicas=2)),
                           ("c2", scenario(desired=2, max_size=2, replicas=2))):
            sandboxes[name] = AwsSandbox(root / name, spec).start()
        inventory = root / "inventory"
        inventory.mkdir()
        for name, env in sandboxes.items():
            files = env.root / "sandbox"
            (inventory / f"{name}.yaml").write_text(
                f"name: {name}\nkube:\n  kubeconfig: {files / 'kubeconfig'}\n  context: sandbox\n"
                f"aws:\n  region: us-east-1\n  env_file: {files / 'env'}\nlock:\n  ttl_s: 3\n"
            )
        yield root, sandboxes
    finally:
        for env in sandboxes.values():
            env.stop()


def kubeops(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(KUBEOPS_INVENTORY_DIR=str(root / "inventory"), KUBEOPS_STATE_DIR=str(root / "state"),
               KUBEOPS_LOG_FORMAT="json")
    return subprocess.run([sys.executable, "-c", "from kubeops.cli import main; main()", *args], env=env,
                          capture_output=True, text=True, timeout=200, check=False)


def test_scale_up_across_two_clusters_each_with_its_own_aws(two: tuple[Path, dict[str, AwsSandbox]]) -> None:
    root, sandboxes = two
    before = {name: env.group_state() for name, env in sandboxes.items()}

    result = kubeops(root, "scale-up", f"--group={GROUP}", "--count=1", "--cluster=c1,c2", "--parallel=2")

    assert result.returncode == 2, result.stderr[-3000:]  # c2 rejected (nothing changed there), none failed
    c1, c2 = sandboxes["c1"], sandboxes["c2"]
    after_c1 = c1.group_state()
    assert after_c1["desired"] == before["c1"]["desired"] + 1
    assert len(set(after_c1["instances"]) - set(before["c1"]["instances"])) == 1
    assert len(c1.ready_workers()) == 3  # the new node joined and is Ready when the command returned
    assert c2.group_state() == before["c2"]  # refused before any change
    assert "is at its maximum size (2)" in result.stdout + result.stderr
    (record,) = [json.loads(p.read_text()) for p in (root / "state" / "fleets").glob("fleet-*.json")]
    assert {c: m["status"] for c, m in record["members"].items()} == {"c1": "done", "c2": "rejected"}
    assert record["task"] == "scale-up"

    dry = kubeops(root, "scale-up", f"--group={GROUP}", "--count=1", "--cluster=c1", "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert c1.group_state() == after_c1  # a dry run against c1's AWS changes nothing there
