"""Scale, measured as a user would, in one run and one table: stats, batched replacement, capacity and redistribute.

Rows (same run, side by side):
- `invoke stats` work (`collect_reports`) on a `large` sandbox of N nodes x 30 pods: one node vs all nodes, and the
  peak RSS growth of the all-nodes run, measured in a process of its own (bounded memory: bodies are parsed as
  they stream), for each kubelet endpoint (`--source=cadvisor`, the default, and `--source=resource`), with that
  process's and the sandbox's CPU (both share the machine's cores). Target: all <= 1.5x one.
- capacity_check and redistribute's planning on the largest sandbox: this process's CPU (time.process_time) for
  the lists (one per kind, in pages of 500) and the pure logic. Target: under 1 s each.
- replace-group of a 12-node Auto Scaling group with batch 4 vs three single-node `replace` runs (with AWS: moto +
  the AWS link). Target: batch-4 roll <= 1.3x the three single replaces.

    python benchmarks/bench_scale.py [--nodes 500,2000] [--interval 1] [--concurrency 16] [--sources cadvisor,resource]
                                     [--skip-replace] [--skip-stats]

Prints a table; asserts outcomes (every node measured, every instance replaced), never timings.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubeops.actions import k8s
from kubeops.actions.cadvisor import collect_reports
from kubeops.actions.context import StepContext
from kubeops.clients.factory import Clients
from kubeops.sandbox.testing import SandboxProcess
from kubeops.settings import Settings, load_settings


def process_cpu_s(pid: int) -> float:
    """User+system CPU seconds of another process (the sandbox), from /proc: where the other half of the time goes."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settings_for(sb: SandboxProcess, folder: Path, concurrency: int) -> Settings:
    inventory = folder / "inventory"
    inventory.mkdir(parents=True, exist_ok=True)
    kube = {"kubeconfig": str(sb.kubeconfig), "context": "sandbox", "scrape_concurrency": concurrency}
    (inventory / "sandbox.yaml").write_text(yaml.safe_dump({"name": "sandbox", "kube": kube}))
    return load_settings("sandbox", inventory=inventory, state_dir=folder / "state")


def stats_rows(n: int, args: argparse.Namespace, root: Path, rows: list[tuple[str, str, str, str]]) -> None:
    folder = root / f"large-{n}"
    with SandboxProcess("large", state_dir=folder / "sandbox", params={"nodes": n, "pods_per_node": 30},
                        start_timeout_s=900) as sb:
        settings = settings_for(sb, folder, args.concurrency)
        clients = Clients(settings)
        kube = clients.kube
        first = kube.request("GET", "/api/v1/nodes", query={"limit": 1}, what="first node")["items"][0]
        name = first["metadata"]["name"]
        assert sb.proc is not None
        # warm-up: a kubelet serves stats it already collected; the sandbox builds each pod's cgroup layout on its
        # first scrape, which would bill whichever row came first
        from kubeops.clients.cadvisor import sample_nodes

        sample_nodes(kube, [x["metadata"]["name"] for x in kube.request("GET", "/api/v1/nodes", what="nodes")["items"]],
                     interval_s=0.05, source="resource")
        for source in args.sources:
            t0 = time.perf_counter()
            (one,) = collect_reports(kube, [name], interval_s=args.interval, source=source)
            one_s = time.perf_counter() - t0
            assert one.node.source == source
            sandbox0 = process_cpu_s(sb.proc.pid)
            child = all_nodes_in_child(folder, source, args.interval)  # a fresh process: its own peak memory
            sandbox_cpu = process_cpu_s(sb.proc.pid) - sandbox0
            all_s, all_cpu, grew = child["wall_s"], child["cpu_s"], child["grew_mb"]
            assert child["reports"] == n and child["sources"] == [source], child
            verdict = "OK" if all_s <= 1.5 * one_s else "MISSED"
            rows.append((f"stats --source={source}, {n} nodes x 30 pods, interval {args.interval:g} s",
                         f"one node {one_s:.2f} s",
                         f"all nodes {all_s:.2f} s ({all_s / one_s:.2f}x; CPU: ours {all_cpu:.1f} s, sandbox "
                         f"{sandbox_cpu:.1f} s), peak RSS +{grew:.0f} MB",
                         f"<= 1.5x: {verdict}"))
        if n == max(args.nodes):
            capacity_rows(sb, settings, name, args, rows)
        clients.close()


_CHILD = """
import json, resource, sys, time
from pathlib import Path
from kubeops.actions.cadvisor import collect_reports
from kubeops.clients.factory import Clients
from kubeops.engine.logging import configure_logging
from kubeops.settings import load_settings

folder, source, interval = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
configure_logging(log_format="json", stream=open("/dev/null", "w"))
settings = load_settings("sandbox", inventory=folder / "inventory", state_dir=folder / "state")
kube = Clients(settings).kube
kube.request("GET", "/api/v1/nodes", query={"limit": 1}, what="connect")  # imports and a connection: not billed
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cpu0, t0 = time.process_time(), time.perf_counter()
reports = collect_reports(kube, None, interval_s=interval, source=source, with_pods=False)
wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "grew_mb": grew, "reports": len(reports),
                  "sources": sorted({r.node.source for r in reports})}))
"""


def all_nodes_in_child(folder: Path, source: str, interval: float) -> dict[str, Any]:
    """`invoke stats` over every node, in a process of its own: its peak RSS is that run's alone (in this process
    a second row would reuse the memory the first one freed and look smaller than it is)."""
    import json
    import subprocess

    done = subprocess.run([sys.executable, "-c", _CHILD, str(folder), source, str(interval)], capture_output=True,
                          text=True, check=True, timeout=1800)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def ctx_for(settings: Settings, *, dry_run: bool = False) -> StepContext:
    return StepContext(run_id="bench", step="s", action="bench", settings=settings,
                       clients=Clients(settings, dry_run=dry_run), log=structlog.get_logger(), dry_run=dry_run,
                       intent=None)


def capacity_rows(sb: SandboxProcess, settings: Settings, node: str, args: argparse.Namespace,
                  rows: list[tuple[str, str, str, str]]) -> None:
    from kubeops.clients.cadvisor import sample_nodes
    from kubeops.clients.nodes import list_nodes
    from kubeops.clients.pods import list_pods
    from kubeops.metrics.balance import Thresholds, plan_moves

    n = len(list_nodes(ctx_for(settings).kube))
    mark = len(sb.requests())
    ctx = ctx_for(settings)
    cpu0, t0 = time.process_time(), time.perf_counter()
    out = k8s.capacity_check(ctx, k8s.CapacityParams(node=node))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    lists = _lists(sb.requests()[mark:])
    assert out["fits"], out["unplaced"]
    rows.append((f"capacity_check, {n} nodes x 30 pods", f"our CPU {cpu:.2f} s (wall {wall:.2f} s)",
                 f"lists: {lists}", f"< 1 s CPU: {'OK' if cpu < 1 else 'MISSED'}"))

    kube = ctx.kube
    names = [x["metadata"]["name"] for x in list_nodes(kube)]
    samples = sample_nodes(kube, names, interval_s=args.interval)  # measuring is the scrape rows' business
    mark = len(sb.requests())
    cpu0, t0 = time.process_time(), time.perf_counter()
    nodes = list_nodes(kube)
    pods, _ = list_pods(kube)
    by_node: dict[str, list[dict[str, Any]]] = {x: [] for x in names}
    for pod in pods:
        bound = (pod.get("spec") or {}).get("nodeName")
        if bound in by_node:
            by_node[bound].append(pod)
    plan = plan_moves(nodes, by_node, {k: s.usage for k, s in samples.items()}, Thresholds(), max_evictions=5)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    lists = _lists(sb.requests()[mark:])
    rows.append((f"redistribute planning, {n} nodes x 30 pods", f"our CPU {cpu:.2f} s (wall {wall:.2f} s)",
                 f"lists: {lists}; {len(plan.moves)} move(s)", f"< 1 s CPU: {'OK' if cpu < 1 else 'MISSED'}"))


def _lists(requests: list[dict[str, Any]]) -> str:
    kinds: dict[str, int] = {}
    for r in requests:
        if r.get("verb") == "list":
            kinds[r["resource"]] = kinds.get(r["resource"], 0) + 1
    return ", ".join(f"{k} {v} page(s)" for k, v in sorted(kinds.items()))


def replace_rows(root: Path, rows: list[tuple[str, str, str, str]]) -> None:
    from kubeops.engine.api import run_playbook
    from tests.aws_sandbox import GROUP, AwsSandbox, scenario

    os.environ["KUBEOPS_STATE_DIR"] = str(root / "aws")
    spec = scenario(desired=12, max_size=16, replicas=3, join_delay_s=2)
    # pods on every node that take 2 s to stop: each drain costs real time, as in production
    spec["workloads"].append({"kind": "Deployment", "name": "bulk", "namespace": "apps", "replicas": 36,
                              "labels": {"app": "bulk"}, "image": "nginx:1.27", "termination_delay_s": 2,
                              "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}}})
    env = AwsSandbox(root / "aws", spec).start()
    try:
        settings = load_settings("sandbox", state_dir=root / "aws")
        env.wait_for(lambda: len(env.ready_workers()) == 12, "12 workers Ready", timeout_s=300)
        env.wait_for(lambda: env.deployment_ready("bulk") and env.deployment_ready(), "workloads Ready", 120)
        singles = []
        for _ in range(3):
            env.wait_for(lambda: len(env.ready_workers()) == 12 and env.deployment_ready("bulk"), "settled", 120)
            node = sorted(env.ready_workers())[0]
            t0 = time.perf_counter()
            record = run_playbook("replace-node", settings=settings, params={"node": node})
            singles.append(time.perf_counter() - t0)
            assert record["status"] == "done", record.get("error")
        env.wait_for(lambda: len(env.ready_workers()) == 12 and env.deployment_ready("bulk"), "settled", 120)
        before = set(env.group_state()["instances"])
        t0 = time.perf_counter()
        record = run_playbook("replace-group", settings=settings, params={"group": GROUP, "batch": 4})
        batch_s = time.perf_counter() - t0
        assert record["status"] == "done", record.get("error")
        after = set(env.group_state()["instances"])
        assert len(after) == 12 and after.isdisjoint(before)
    finally:
        env.stop()
    three = sum(singles)
    verdict = "OK" if batch_s <= 1.3 * three else "MISSED"
    rows.append(("replace-group, 12 nodes, batch 4 vs 3 single replaces",
                 f"3 x replace {three:.1f} s ({', '.join(f'{s:.1f}' for s in singles)})",
                 f"batch 4: {batch_s:.1f} s ({batch_s / three:.2f}x)", f"<= 1.3x: {verdict}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="500,2000", help="sandbox sizes for the stats rows")
    parser.add_argument("--interval", type=float, default=1.0, help="stats interval (the issue measured 1 s)")
    parser.add_argument("--concurrency", type=int, default=16, help="kube.scrape_concurrency")
    parser.add_argument("--sources", default="cadvisor,resource",
                        help="kubelet endpoints to measure stats from, side by side (cadvisor, resource)")
    parser.add_argument("--skip-replace", action="store_true")
    parser.add_argument("--skip-stats", action="store_true")
    args = parser.parse_args()
    args.nodes = [int(x) for x in args.nodes.split(",")]
    args.sources = args.sources.split(",")
    from kubeops.engine.logging import configure_logging

    devnull = open(os.devnull, "w")  # noqa: SIM115 - for the whole benchmark
    configure_logging(log_format="json", stream=devnull)
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = Path(tmp)
        if not args.skip_stats:
            for n in args.nodes:
                stats_rows(n, args, root, rows)
        if not args.skip_replace:
            replace_rows(root, rows)
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print(f"\nscale benchmark (scrape concurrency {args.concurrency}, {os.cpu_count()} CPUs)")
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
