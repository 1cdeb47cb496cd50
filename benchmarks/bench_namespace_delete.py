"""Namespace deletion speed: a namespace of N pods from DELETE to gone, beside deleting just its Deployment.

Why: the namespace controller lists and deletes every namespaced object and re-counts what is left while the
namespace is Terminating; it must not be what a run waits on. Side by side, in one run, on two identical sandboxes:
``DELETE /api/v1/namespaces/<ns>`` until a GET answers 404, and ``DELETE`` of the Deployment until its pods are
gone (the garbage collector and the kubelet simulation alone). Pods exit at once (no termination delay).

    python benchmarks/bench_namespace_delete.py [--pods 500 3000] [--nodes 60]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubeops.sandbox.testing import SandboxProcess  # noqa: E402


def scenario(pods: int, nodes: int) -> dict[str, Any]:
    return {"name": "bench-ns-delete", "settings": {"tick_ms": 50}, "namespaces": ["apps"],
            "nodes": [{"name_prefix": "worker-", "count": nodes, "role": "worker"}],
            "workloads": [{"kind": "Deployment", "name": "web", "namespace": "apps", "replicas": pods,
                           "labels": {"app": "web"}, "image": "nginx"}]}


def wait(predicate: Any, timeout_s: float = 300) -> float:
    began = time.perf_counter()
    while not predicate():
        if time.perf_counter() - began > timeout_s:
            raise TimeoutError("timed out")
        time.sleep(0.02)
    return time.perf_counter() - began


def running(sb: SandboxProcess) -> int:
    _, body = sb.request("GET", "/api/v1/namespaces/apps/pods?fieldSelector=status.phase%3DRunning")
    return len(body["items"])


def measure(pods: int, nodes: int, folder: Path, what: str) -> float:
    with SandboxProcess(scenario(pods, nodes), state_dir=folder / f"{what}-{pods}", start_timeout_s=300) as sb:
        wait(lambda: running(sb) == pods)
        began = time.perf_counter()
        if what == "namespace":
            code, _ = sb.request("DELETE", "/api/v1/namespaces/apps")
            assert code == 200, code
            wait(lambda: sb.request("GET", "/api/v1/namespaces/apps")[0] == 404)
        else:
            code, _ = sb.request("DELETE", "/apis/apps/v1/namespaces/apps/deployments/web")
            assert code == 200, code
            wait(lambda: not sb.request("GET", "/api/v1/namespaces/apps/pods")[1]["items"])
        return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, nargs="+", default=[500, 3000])
    parser.add_argument("--nodes", type=int, default=60)
    args = parser.parse_args()
    print(f"{'pods':>6}  {'delete namespace -> gone':>26}  {'delete deployment -> pods gone':>32}")
    with tempfile.TemporaryDirectory(prefix="bench-ns-") as tmp:
        for pods in args.pods:
            ns_s = measure(pods, args.nodes, Path(tmp), "namespace")
            dep_s = measure(pods, args.nodes, Path(tmp), "deployment")
            print(f"{pods:>6}  {ns_s:>24.2f} s  {dep_s:>30.2f} s")


if __name__ == "__main__":
    main()
