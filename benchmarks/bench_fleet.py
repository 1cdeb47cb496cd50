"""Deploy one app to a fleet of 10 sandboxes: one cluster after another (--parallel=1) vs five at once (--parallel=5).

Why: a fleet deploy spends nearly all its time waiting for each cluster's new pods to become ready; running
clusters side by side should divide the wall time by about the parallelism, with no cluster slower for it.
Each row is a real `kubeops deploy --cluster=c0,...,c9` subprocess (what a user runs) rolling every cluster to a
new version (2 replicas, surge 1, pods ready ~`--ready-delay` s after start). Same run, same sandboxes, rows side
by side; asserts outcomes (every cluster serves the new version, exit 0), never timings.

    python benchmarks/bench_fleet.py [--clusters 10] [--parallel 1,5,10] [--ready-delay 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubeops.sandbox.testing import SandboxProcess

SCENARIO = {"name": "fleet-bench", "settings": {"tick_ms": 100}, "nodes": [{"name_prefix": "w-", "count": 2}]}


def kubeops_bin() -> str:
    candidate = Path(sys.executable).with_name("kubeops")
    return str(candidate) if candidate.exists() else "kubeops"


def serving(process: SandboxProcess, app: str) -> str | None:
    """The one version serving `app` with every replica ready."""
    path = f"/apis/apps/v1/namespaces/default/deployments?labelSelector=app%3D{app}"
    with urllib.request.urlopen(process.api_url + path, timeout=10) as response:
        items = json.loads(response.read())["items"]
    if len(items) != 1 or items[0]["status"].get("readyReplicas", 0) != items[0]["spec"]["replicas"]:
        return None
    return str(items[0]["metadata"]["labels"]["version"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--parallel", default="1,5", help="comma-separated --parallel values, one row each")
    parser.add_argument("--ready-delay", type=float, default=1.0, help="seconds a new pod takes to become ready")
    args = parser.parse_args()
    levels = [int(x) for x in args.parallel.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        root = Path(tmp)
        inventory = root / "inventory"
        (inventory / "apps").mkdir(parents=True)
        names = [f"c{i}" for i in range(args.clusters)]
        processes: list[SandboxProcess] = []
        try:
            t0 = time.perf_counter()
            for name in names:
                process = SandboxProcess(SCENARIO, state_dir=root / f"sandbox-{name}")
                processes.append(process)
                process.start()
                (inventory / f"{name}.yaml").write_text(
                    f"name: {name}\nkube:\n  kubeconfig: {process.kubeconfig}\n  context: sandbox\nlock:\n  ttl_s: 10\n"
                )
            started_s = time.perf_counter() - t0
            (inventory / "apps" / "bench.yaml").write_text(
                "name: bench\nrole: bench\nimage: example/bench\nversion: '0'\nreplicas: 2\n"
                "ports: [{name: http, port: 80, target_port: 8080}]\nrollout: {surge: 1, step_timeout_s: 60}\n"
                f"pod_annotations: {{sandbox.kubeops.io/readiness-delay-s: '{args.ready_delay}'}}\n"
            )
            env = {**os.environ, "KUBEOPS_INVENTORY_DIR": str(inventory), "KUBEOPS_STATE_DIR": str(root / "state"),
                   "KUBEOPS_LOG_FORMAT": "json"}

            def deploy(version: str, parallel: int) -> float:
                t = time.perf_counter()
                result = subprocess.run(
                    [kubeops_bin(), "deploy", "--app=bench", f"--version={version}", f"--cluster={','.join(names)}",
                     f"--parallel={parallel}"],
                    env=env, capture_output=True, text=True, timeout=900,
                )
                wall = time.perf_counter() - t
                assert result.returncode == 0, result.stderr[-3000:]
                assert all(serving(p, "bench") == version for p in processes), result.stdout
                return wall

            deploy("0", max(levels))  # first rollout creates Services and controllers everywhere (not measured)
            rows = []
            for index, parallel in enumerate(levels, start=1):
                rows.append((parallel, deploy(str(index), parallel)))
        finally:
            for process in processes:
                process.stop()

    base = rows[0][1]
    print(f"fleet of {args.clusters} sandboxes (started in {started_s:.1f} s), app 2 replicas, surge 1, "
          f"pods ready {args.ready_delay:g} s after start; {os.cpu_count()} CPUs")
    header = f"{'mode':<28}{'wall s':>10}{'per cluster s':>16}{'vs first row':>14}"
    print(header)
    print("-" * len(header))
    for parallel, wall in rows:
        mode = "one after another" if parallel == 1 else f"--parallel={parallel}"
        print(f"{mode:<28}{wall:>10.1f}{wall / args.clusters:>16.2f}{base / wall:>13.2f}x")


if __name__ == "__main__":
    main()
