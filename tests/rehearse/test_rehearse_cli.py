"""`kubeops snapshot`, `kubeops rehearse` and `--rehearse` on a domain task, as real subprocesses: the report on
stdout (text or JSON), the exit code the real run would have, the private sandbox gone afterwards, and the
original cluster untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)
KUBEOPS = [sys.executable, "-c", "from kubeops.cli import main; main()"]


def _run(orig, *args: str, tmpdir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBEOPS_INVENTORY_DIR": str(Path(str(orig.settings.inventory_path)).parent),
           "KUBEOPS_LOG_FORMAT": "json"}
    if tmpdir is not None:  # the rehearsal's private sandbox lives under TMPDIR: a folder only this test sees
        env["TMPDIR"] = str(tmpdir)
    return subprocess.run([*KUBEOPS, *args, "--cluster=prod"], capture_output=True, text=True, env=env,
                          timeout=150, check=False)


def _private_sandboxes(tmpdir: Path) -> set[str]:
    return {p.name for p in tmpdir.glob("kubeops-rehearse-*")}


def test_snapshot_then_rehearse_a_blocked_drain_exits_1_with_a_json_report(original_factory, tmp_path) -> None:
    orig = original_factory("pdb-blocked")
    snap = tmp_path / "prod.json.gz"
    taken = _run(orig, "snapshot", f"--output={snap}")
    assert taken.returncode == 0, taken.stderr
    assert "2 nodes" in taken.stdout and snap.exists()
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    mark = orig.mark()

    out = _run(orig, "rehearse", "--playbook=drain-node", "--param", "node=worker-0", "--param", "timeout_s=2",
               f"--snapshot={snap}", "--output=json", tmpdir=private_tmp)

    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert report["status"] == "failed" and report["failed_step"] == "drain"
    assert "PodDisruptionBudget apps/critical" in report["error"]
    assert [s["name"] for s in report["steps"]][:3] == ["node", "cordon", "drain"]
    assert orig.mutations(mark) == []
    assert _private_sandboxes(private_tmp) == set()  # the private sandbox's folder is gone
    events = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    steps = [e for e in events if str(e.get("event", "")).startswith("step.")]
    assert steps and all(e.get("rehearsal") is True for e in steps)  # no log line passes for a real eviction


def test_decommission_rehearse_takes_a_snapshot_itself_and_prints_the_report(original_factory) -> None:
    orig = original_factory("default")
    mark = orig.mark()
    out = _run(orig, "decommission", "--node=worker-1", "--rehearse", "--speed=5")
    assert out.returncode == 0, out.stderr
    assert "outcome: the run would succeed (exit 0)" in out.stdout
    assert "nodes cordoned: worker-1" in out.stdout and "evictions (" in out.stdout
    assert orig.mutations(mark) == []
    unknown = _run(orig, "decommission", "--node=nope", "--rehearse")
    assert unknown.returncode == 2 and "rejected" in unknown.stdout
    for flags in (["--speed=0"], ["--speed=fast"], ["--dry-run"]):
        bad = _run(orig, "decommission", "--node=worker-1", "--rehearse", *flags)
        assert bad.returncode == 2 and "error:" in bad.stderr, (flags, bad.stderr)
    assert orig.mutations(mark) == []
