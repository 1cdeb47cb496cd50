"""Drain a node holding 100 pods (grace 0): kubeops next to `kubectl drain` (1.33), each on an identical sandbox.

Targets (from the issue): at most half kubectl's wall time, and no more API requests than kubectl.

Both run as a user would run them, as a fresh process: `kubeops drain --node=worker-0 --grace-period=0` and
`kubectl drain worker-0 --ignore-daemonsets --grace-period=0`. Requests are counted from each sandbox's request
log (every request the client sent, reads included). We also time our drain inside an already running process
(the library call a playbook makes), which is what a multi-step playbook pays per drain.

Run: python benchmarks/bench_drain.py [--pods 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubeops.sandbox.testing import SandboxProcess, kubectl_binary  # noqa: E402


def scenario(pods: int) -> dict[str, Any]:
    """worker-0 holds every replica; worker-1..3 are held by a taint until the drain starts (then released)."""
    return {
        "name": "bench-drain",
        "settings": {"tick_ms": 50},
        "namespaces": ["apps"],
        "nodes": [
            {"name": "worker-0", "capacity": {"cpu": "64", "memory": "256Gi", "pods": "250"}},
            {"name_prefix": "worker-h", "count": 3, "capacity": {"cpu": "64", "memory": "256Gi", "pods": "250"},
             "taints": [{"key": "hold", "effect": "NoSchedule"}]},
        ],
        "workloads": [
            {"kind": "DaemonSet", "name": "agent", "namespace": "kube-system", "tolerations": [{"operator": "Exists"}]},
            {"kind": "Deployment", "name": "web", "namespace": "apps", "replicas": pods,
             "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}},
        ],
    }


def prepare(folder: Path, pods: int) -> SandboxProcess:
    sb = SandboxProcess(scenario(pods), state_dir=folder).start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        _, body = sb.request("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dworker-0")
        running = [p for p in body.get("items", []) if (p.get("status") or {}).get("phase") == "Running"]
        if len(running) >= pods:
            break
        time.sleep(0.2)
    else:
        raise SystemExit(f"sandbox did not place {pods} pods on worker-0 in time")
    for i in range(3):
        sb.request("PATCH", f"/api/v1/nodes/worker-h{i}", {"spec": {"taints": None}},
                   content_type="application/merge-patch+json")
    return sb


def write_inventory(sb: SandboxProcess, folder: Path) -> Path:
    inv = folder / "inventory"
    inv.mkdir(parents=True, exist_ok=True)
    (inv / "sandbox.yaml").write_text(yaml.safe_dump({
        "name": "sandbox", "kube": {"kubeconfig": str(sb.kubeconfig), "context": "sandbox"},
    }))
    return inv


def pods_left(sb: SandboxProcess) -> int:
    _, body = sb.request("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dworker-0")
    return sum(1 for p in body.get("items", []) if not p["metadata"]["name"].startswith("agent-"))


def count_since(sb: SandboxProcess, mark: int, agent: str) -> int:
    return sum(1 for r in sb.requests()[mark:] if agent in (r.get("user_agent") or ""))


def run_kubectl(folder: Path, pods: int) -> tuple[float, int, int]:
    sb = prepare(folder, pods)
    try:
        mark = len(sb.requests())
        cmd = [kubectl_binary("1.33"), "--kubeconfig", str(sb.kubeconfig), "--cache-dir", str(folder / "cache"),
               "drain", "worker-0", "--ignore-daemonsets", "--grace-period=0", "--timeout=300s"]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HOME": str(folder)})
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"kubectl drain failed: {done.stderr[-2000:]}")
        time.sleep(0.3)  # let the log flush
        return wall, count_since(sb, mark, "kubectl"), pods_left(sb)
    finally:
        sb.stop()


def run_kubeops_cli(folder: Path, pods: int) -> tuple[float, int, int]:
    sb = prepare(folder, pods)
    try:
        inv = write_inventory(sb, folder)
        env = {**os.environ, "KUBEOPS_INVENTORY_DIR": str(inv), "KUBEOPS_STATE_DIR": str(folder / "state"),
               "KUBEOPS_LOG_FORMAT": "json"}
        mark = len(sb.requests())
        cmd = [sys.executable, "-c", "from kubeops.cli import main; main()", "drain", "--node=worker-0",
               "--grace-period=0"]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"kubeops drain failed: {done.stderr[-2000:]}")
        time.sleep(0.3)
        return wall, count_since(sb, mark, "kubeops"), pods_left(sb)
    finally:
        sb.stop()


def run_kubeops_library(folder: Path, pods: int) -> tuple[float, int, int]:
    """The drain step alone, in a process that already runs (clients built, modules imported)."""
    import structlog

    from kubeops.actions import k8s
    from kubeops.actions.context import StepContext
    from kubeops.clients.factory import Clients
    from kubeops.settings import load_settings

    sb = prepare(folder, pods)
    try:
        inv = write_inventory(sb, folder)
        settings = load_settings("sandbox", inventory=inv, state_dir=folder / "state")
        clients = Clients(settings)
        ctx = StepContext(run_id="bench", step="drain", action="k8s.drain", settings=settings, clients=clients,
                          log=structlog.get_logger())
        clients.kube.request("GET", "/version", what="warm up")  # connection pool and imports, as in a run
        mark = len(sb.requests())
        start = time.perf_counter()
        k8s.drain(ctx, k8s.DrainParams(node="worker-0", ignore_daemonsets=True, grace_period_s=0, timeout_s=300))
        wall = time.perf_counter() - start
        clients.close()
        time.sleep(0.3)
        return wall, count_since(sb, mark, "kubeops"), pods_left(sb)
    finally:
        sb.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    results: dict[str, list[tuple[float, int, int]]] = {"kubectl drain (1.33)": [], "kubeops drain (CLI)": [],
                                                         "kubeops k8s.drain (in-process)": []}
    runners = {"kubectl drain (1.33)": run_kubectl, "kubeops drain (CLI)": run_kubeops_cli,
               "kubeops k8s.drain (in-process)": run_kubeops_library}
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
        for r in range(args.rounds):
            for name, fn in runners.items():  # interleaved, so load on the machine hits each alike
                results[name].append(fn(Path(tmp) / f"{r}-{len(results[name])}-{name.split()[0]}", args.pods))
    base_wall = statistics.median(w for w, _, _ in results["kubectl drain (1.33)"])
    base_req = statistics.median(n for _, n, _ in results["kubectl drain (1.33)"])
    print(f"\nDrain of a node with {args.pods} pods (grace 0), median of {args.rounds} rounds\n")
    print(f"{'client':34} {'wall s':>8} {'vs kubectl':>11} {'requests':>9} {'vs kubectl':>11} {'pods left':>10}")
    for name, rows in results.items():
        wall = statistics.median(w for w, _, _ in rows)
        req = statistics.median(n for _, n, _ in rows)
        left = max(n for _, _, n in rows)
        print(f"{name:34} {wall:8.2f} {wall / base_wall:10.2f}x {req:9.0f} {req / base_req:10.2f}x {left:10d}")
    print("\ntargets: kubeops wall time <= 0.5x kubectl, requests <= 1.0x kubectl")


if __name__ == "__main__":
    main()
