"""Engine speed: CLI start-up (`kubeops --help`, `invoke --list`) and per-step overhead with checkpoint fsync.

Targets: start-up < 0.35 s (median of several runs); < 5 ms per step for a no-op action with the
checkpoint written (temp file, fsync, rename, fsync folder) when the step starts and when it ends.

    python benchmarks/bench_engine.py [--runs 7] [--steps 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs + 1):
        began = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times[1:])  # the first run warms the page cache and .pyc files


def per_step(steps: int, *, fsync: bool) -> tuple[float, float]:
    """(ms per step, total s) for a playbook of `steps` no-op steps, file store with or without fsync."""
    from kubeops.actions.registry import default_registry
    from kubeops.engine.file_store import FileCheckpointStore
    from kubeops.engine.logging import configure_logging
    from kubeops.engine.runner import Runner
    from kubeops.model.loader import load_playbook
    from kubeops.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="kubeops-bench-"))
    try:
        text = "name: bench\nsteps:\n" + "".join(f"  - {{name: s{i}, action: noop}}\n" for i in range(steps))
        (tmp / "bench.yaml").write_text(text)
        registry = default_registry()
        playbook = load_playbook(tmp / "bench.yaml", registry=registry)
        settings = Settings(cluster="bench", state_dir=tmp / "state")
        runner = Runner(
            settings=settings, registry=registry, store=FileCheckpointStore(settings.state_dir, fsync=fsync)
        )
        with open(os.devnull, "w") as sink:
            configure_logging(log_format="json", stream=sink)  # the real pipeline, redaction included
            began = time.perf_counter()
            record = runner.start(playbook, params={})
            total = time.perf_counter() - began
        assert record["status"] == "done"
        return total / steps * 1000, total
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def durable_write_ms(size: int, count: int = 100) -> float:
    """The disk's own price for one checkpoint-style write (temp, fsync, rename, fsync folder) of `size` bytes."""
    folder = Path(tempfile.mkdtemp(prefix="kubeops-disk-"))
    data = b"x" * size
    try:
        began = time.perf_counter()
        for _ in range(count):
            fd = os.open(folder / ".r.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            os.replace(folder / ".r.tmp", folder / "r.json")
            dir_fd = os.open(folder, os.O_RDONLY)
            os.fsync(dir_fd)
            os.close(dir_fd)
        return (time.perf_counter() - began) / count * 1000
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    kubeops = shutil.which("kubeops") or ""
    invoke = shutil.which("invoke") or ""
    rows: list[tuple[str, str, str, str]] = []
    for label, cmd in (
        (
            "kubeops --help",
            [kubeops, "--help"]
            if kubeops
            else [sys.executable, "-c", "from kubeops.cli import main; main()", "--help"],
        ),
        ("invoke --list", [invoke, "--list"] if invoke else [sys.executable, "-m", "invoke", "--list"]),
        ("python -c 'pass' (floor)", [sys.executable, "-c", "pass"]),
    ):
        seconds = wall(cmd, args.runs)
        target = "" if "floor" in label else "< 0.35 s"
        ok = "" if not target else ("ok" if seconds < 0.35 else "SLOW")
        rows.append((label, f"{seconds:.3f} s", target, ok))
    for fsync in (True, False):
        ms, total = per_step(args.steps, fsync=fsync)
        if fsync:
            fsync_on_ms = ms
        label = f"engine, {args.steps} no-op steps, fsync={'on' if fsync else 'off'}"
        target = "< 5 ms/step" if fsync else ""
        rows.append((label, f"{ms:.2f} ms/step ({total:.2f} s)", target, ("ok" if ms < 5 else "SLOW") if fsync else ""))
    disk = durable_write_ms(300 * args.steps // 2)  # a record of half the playbook, the average size
    rows.append(("disk floor: 2 durable writes per step", f"{2 * disk:.2f} ms/step", "(reference)", ""))
    rows.append(("engine (fsync=on) minus disk floor", f"{fsync_on_ms - 2 * disk:.2f} ms/step", "", ""))
    widths = [max(len(r[i]) for r in [("measure", "median", "target", ""), *rows]) for i in range(4)]
    print(f"{'measure':<{widths[0]}}  {'median':<{widths[1]}}  {'target':<{widths[2]}}")
    print("-" * (sum(widths) + 6))
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
