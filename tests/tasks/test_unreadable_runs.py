"""A run record that is truncated or not JSON stays visible: `runs` lists it as unreadable with its path and why,
`show` and `resume` of it say where it is and what to do, and a bare `resume` skips it with a warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def kubeops(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBEOPS_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", "from kubeops.cli import main; main()", *args],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )


def test_unreadable_records_are_listed_and_explained(tmp_path: Path) -> None:
    (tmp_path / "fails.yaml").write_text(
        "name: fails\nsteps:\n  - {name: one, action: log, args: {message: hi}}\n"
        "  - {name: two, action: assert, args: {that: false}}\n"
    )
    for playbook in ("hello", "hello", str(tmp_path / "fails.yaml"), "hello"):
        kubeops(tmp_path, "run", f"--playbook={playbook}")
    runs = tmp_path / "state" / "runs"
    files = sorted(runs.glob("*.json"), key=lambda f: json.loads(f.read_text())["started"])  # ids: 1 s resolution
    assert len(files) == 4
    truncated, garbage, failed, fine = files
    truncated.write_bytes(truncated.read_bytes()[:200])  # a disk that filled up mid-write
    garbage.write_text("<<<<<<< merge conflict\n")  # a hand edit
    assert json.loads(failed.read_text())["status"] == "failed"

    listing = kubeops(tmp_path, "runs")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    for path, reason in ((truncated, "truncated: the JSON stops after 200 bytes"), (garbage, "not valid JSON")):
        assert any(line.split()[:1] == [path.stem] and "unreadable" in line for line in lines), listing.stdout
        assert f"unreadable {path.stem}: {path}: {reason}" in listing.stdout
    assert any(line.startswith(fine.stem) and " done " in line for line in lines)
    as_json = json.loads(kubeops(tmp_path, "runs", "--json").stdout)
    by_id = {e["id"]: e for e in as_json}
    assert [by_id[f.stem]["status"] for f in files] == ["unreadable", "unreadable", "failed", "done"]
    assert by_id[truncated.stem]["path"] == str(truncated)

    for command in ("show", "resume"):
        done = kubeops(tmp_path, command, f"--run={truncated.stem}")
        assert done.returncode == 2, done.stderr
        assert f"record {truncated} is unreadable (truncated" in done.stderr
        assert f"less {truncated}" in done.stderr and f"mv {truncated} {truncated}.corrupt" in done.stderr
        assert "Traceback" not in done.stderr

    # a bare resume continues the newest readable unfinished run and says what it skipped
    bare = kubeops(tmp_path, "resume")
    assert f"warning: skipped unreadable run record {truncated}" in bare.stderr
    assert f"skipped unreadable run record {garbage}" in bare.stderr
    assert json.loads(failed.read_text())["status"] == "failed"  # resumed, failed again at the same step
    assert "Traceback" not in bare.stderr
    assert json.loads(failed.read_text())["steps"][1]["attempts"] == 2

    # moving the file aside, as the hint says, takes it off the list
    truncated.rename(truncated.with_name(truncated.name + ".corrupt"))
    assert truncated.stem not in kubeops(tmp_path, "runs").stdout
