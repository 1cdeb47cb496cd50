"""Replace every node of a 10-node Auto Scaling group on the sandbox, with surge 1 and surge 3.

Why: a roll spends nearly all its time waiting on the cluster (instances launching, nodes joining, pods moving);
what kubeops adds around that (loading, checkpoints with fsync, references, logging) must stay small. Target:
engine overhead (total wall time minus time inside the steps' actions) under 2 %.

The run happens in this process (the engine's `run_playbook`, real checkpoints in a temporary state folder)
against a sandbox subprocess with AWS (moto + the AWS link). Also printed: this process's CPU time (user+sys) as a
share of wall time, an upper bound on everything kubeops itself computes, actions and client libraries included.
Prints a table; asserts outcomes (every instance replaced), never timings.

    python benchmarks/bench_replace.py [--nodes 10] [--surges 1,3] [--join-delay 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubeops.engine.api import run_playbook
from kubeops.settings import load_settings
from tests.aws_sandbox import GROUP, AwsSandbox, scenario


def parse(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def roll(env: AwsSandbox, surge: int) -> dict[str, Any]:
    settings = load_settings("sandbox", state_dir=env.root)
    before = sorted(i["InstanceId"] for i in env.group()["Instances"])
    cpu0, t0 = cpu_s(), time.perf_counter()
    record = run_playbook(
        "replace-group",
        settings=settings,
        params={"group": GROUP, "batch": surge, "allow_raise_max": True},
    )
    total = time.perf_counter() - t0
    cpu = cpu_s() - cpu0
    after = sorted(i["InstanceId"] for i in env.group()["Instances"])
    assert record["status"] == "done", record.get("error")
    assert set(after).isdisjoint(before) and len(after) == len(before), (before, after)
    inside = sum(parse(s["finished"]) - parse(s["started"]) for s in record["steps"] if s["status"] == "done")
    roll_step = next(s for s in record["steps"] if s["name"] == "roll")
    return {
        "surge": surge,
        "nodes": len(before),
        "batches": roll_step["outputs"]["batches"],
        "total_s": total,
        "in_actions_s": inside,
        "overhead_s": max(0.0, total - inside),
        "cpu_s": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--surges", default="1,3")
    parser.add_argument("--join-delay", type=float, default=2.0, help="seconds from InService to Node Ready")
    args = parser.parse_args()
    surges = [int(s) for s in args.surges.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-replace-") as tmp:
        root = Path(tmp)
        os.environ["KUBEOPS_STATE_DIR"] = str(root)  # what inventory/sandbox.yaml reads
        os.environ.setdefault("KUBEOPS_LOG_FORMAT", "json")
        spec = scenario(desired=args.nodes, max_size=args.nodes, replicas=args.nodes, join_delay_s=args.join_delay)
        from kubeops.engine.logging import configure_logging

        devnull = open(os.devnull, "w")  # noqa: SIM115 - for the whole benchmark
        configure_logging(log_format="json", stream=devnull)  # the events are still built and rendered
        env = AwsSandbox(root, spec).start()
        try:
            for surge in surges:
                env.wait_for(env.deployment_ready, "web Ready")
                rows.append(roll(env, surge))
        finally:
            env.stop()
    print(
        f"\nreplace-group on the sandbox: {args.nodes} nodes, join delay {args.join_delay:g} s, target overhead < 2 %"
    )
    header = (
        f"{'surge':>5} {'batches':>7} {'total s':>8} {'in actions s':>12} {'engine overhead':>16} {'kubeops CPU':>12}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        overhead = f"{r['overhead_s']:.3f} s {100 * r['overhead_s'] / r['total_s']:.2f}%"
        cpu = f"{100 * r['cpu_s'] / r['total_s']:.1f}%"
        print(
            f"{r['surge']:>5} {r['batches']:>7} {r['total_s']:>8.1f} {r['in_actions_s']:>12.1f} "
            f"{overhead:>16} {cpu:>12}"
        )


if __name__ == "__main__":
    main()
