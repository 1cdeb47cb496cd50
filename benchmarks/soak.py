"""Soak: decommission, replace-node, replace-group and a rolling deploy, round after round, each on a fresh sandbox
(+ moto) with ~10 % of Kubernetes API requests faulted (429, 500, 503, dropped connections, latency) and the
kubeops process SIGKILLed at random moments, resumed until the run ends, then checked against every invariant
(see tests/soak_harness.py). Prints kills, resumes, requests, faults injected and invariant violations (target 0).

Bounded: stops starting rounds after --minutes (a round in flight still ends, cut off at --minutes + 5) or once
--kills kills were made and every scenario ran at least once.

    python benchmarks/soak.py [--minutes 30] [--kills 100] [--kills-per-run 8] [--seed 1] [--scenarios a,b]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.soak_harness import SCENARIOS, soak_one, summary_json, table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--kills", type=int, default=100, help="stop once this many kills were made")
    parser.add_argument("--kills-per-run", type=int, default=8)
    parser.add_argument("--kill-window", type=float, default=6.0, help="a kill lands 0.4..this many s into a try")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--keep", action="store_true", help="keep the state folders (logs) of every round")
    args = parser.parse_args()
    names = [n for n in args.scenarios.split(",") if n]
    began = time.monotonic()
    stop_at = began + args.minutes * 60
    root = Path(tempfile.mkdtemp(prefix="kubeops-soak-"))
    outcomes = []
    for index, name in zip(itertools.count(), itertools.cycle(names)):
        done_all = index >= len(names)
        if time.monotonic() > stop_at or (done_all and sum(o.kills for o in outcomes) >= args.kills):
            break
        outcome = soak_one(name, root / f"{index:03d}-{name}", seed=args.seed * 1000 + index,
                           kills=args.kills_per_run, kill_window_s=args.kill_window, deadline=stop_at + 300)
        outcomes.append(outcome)
        print(f"[{(time.monotonic() - began) / 60:5.1f} min] {name}: {outcome.kills} kills, {outcome.resumes} "
              f"resumes, {outcome.faults} faults, {len(outcome.violations)} violations", flush=True)
        for text in outcome.violations:
            print(f"    VIOLATION: {text}", flush=True)
    print()
    print(table(outcomes))
    (root / "soak.json").write_text(summary_json(outcomes))
    print(f"\nstate and logs: {root}; {(time.monotonic() - began) / 60:.1f} min")
    return 1 if any(o.violations for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
