"""Hostile YAML: how fast bad files are refused, and that validation grows linearly with playbook size.

Targets: an alias bomb, a 5,000-deep nesting and an 11 MB file are each refused (exit 2 from the loader) in well
under a second; validating 10,000 steps takes about 10x validating 1,000 (linear, not quadratic), with each step
referring to the one before (the reference checker is part of what is measured).

    python benchmarks/bench_hostile.py [--small 1000] [--large 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BOMB = "name: bomb\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(ord('b') + i)}: &{chr(ord('b') + i)} [{', '.join(['*' + chr(ord('a') + i)] * 9)}]\n" for i in range(8)
) + "steps:\n  - {name: one, action: noop}\n"


def playbook_text(steps: int) -> str:
    """`steps` steps, each a log action whose message refers to the previous step's output."""
    lines = ["name: big", "params:", "  who: {type: string, default: world}", "steps:"]
    lines.append("  - {name: s0, action: log, args: {message: 'hello ${params.who}'}}")
    for i in range(1, steps):
        lines.append(f"  - {{name: s{i}, action: log, args: {{message: '${{steps.s{i - 1}.outputs.message}}'}}}}")
    return "\n".join(lines) + "\n"


def timed_load(path: Path) -> tuple[float, float, str]:
    """(seconds, peak MiB, outcome) of loading `path` as a playbook: timed without tracemalloc (it slows Python
    several times), then loaded again under tracemalloc for the peak memory."""
    from kubeops.actions.registry import default_registry
    from kubeops.errors import PlaybookError
    from kubeops.model.loader import load_playbook

    registry = default_registry()

    def load() -> str:
        try:
            return f"ok, {len(load_playbook(path, registry=registry).steps)} steps"
        except PlaybookError as exc:
            return "refused: " + exc.detail.split(";")[0]

    elapsed = float("inf")
    for _ in range(3):  # best of three: the machine is shared
        began = time.perf_counter()
        outcome = load()
        elapsed = min(elapsed, time.perf_counter() - began)
    tracemalloc.start()
    load()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return elapsed, peak, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=10000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kubeops-hostile-"))
    files = {
        "alias bomb (9^9 values)": BOMB,
        "nesting 5,000 deep": "a: " + "[" * 5000 + "]" * 5000 + "\n",
        "11 MB comment": "#" * 11_000_000 + "\n",
        f"{args.small:,} steps": playbook_text(args.small),
        f"{args.large:,} steps": playbook_text(args.large),
    }
    rows = []
    for label, text in files.items():
        path = tmp / (label.split()[0].replace(",", "") + ".yaml")
        path.write_text(text)
        seconds, peak, outcome = timed_load(path)
        rows.append((label, seconds, peak, outcome))
    print(f"{'file':<26} {'seconds':>8} {'peak MiB':>9}  outcome")
    for label, seconds, peak, outcome in rows:
        print(f"{label:<26} {seconds:>8.3f} {peak:>9.1f}  {outcome}")
    small, large = rows[-2][1], rows[-1][1]
    ratio = large / small if small else float("inf")
    print(f"\n{args.large:,} vs {args.small:,} steps: {ratio:.1f}x the time for {args.large / args.small:.0f}x the "
          f"steps, {small / args.small * 1e6:.0f} vs {large / args.large * 1e6:.0f} us per step "
          f"({'linear' if ratio < 2 * args.large / args.small else 'SUPERLINEAR'})")


if __name__ == "__main__":
    main()
