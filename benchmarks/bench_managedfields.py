"""What field ownership (metadata.managedFields) costs the sandbox's writes, side by side with the same writes
without a manager (the path the sandbox's kubelet and pod-creating controllers keep: they record nothing).

Rows: creating pods as an API client would (POST: an Update entry for the client), status writes as the workload
controllers make them (``kube-controller-manager`` status entry), and server-side applies of the same pods.
In-process store, no HTTP.

    python benchmarks/bench_managedfields.py [--pods 2000]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from table import print_table  # noqa: E402 (benchmarks/table.py, beside this script)

from kubeops.sandbox.cluster import build_cluster  # noqa: E402
from kubeops.sandbox.managedfields import Manager  # noqa: E402


def pod(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p-{i:06d}", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                                     "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}


def timed(fn: Any) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=2000)
    args = ap.parse_args()
    n = args.pods
    rows = []
    for label, manager in (("no manager (before)", None), ("Update by kubectl-create", Manager(
            "kubectl-create", "Update", "v1"))):
        store = build_cluster(scenario=None, plugins=()).store
        store.create("namespaces", {"metadata": {"name": "default"}})
        pods = [pod(i) for i in range(n)]
        create_s = timed(lambda s=store, m=manager, ps=pods: [s.create("pods", p, manager=m) for p in ps])
        status_manager = None if manager is None else Manager("kube-controller-manager", "Update", "v1", "status")

        def statuses(s: Any = store, m: Any = status_manager) -> None:
            for i in range(n):
                s.modify("pods", "default", f"p-{i:06d}",
                         lambda o: o.update(status={"phase": "Running", "conditions": [
                             {"type": "Ready", "status": "True"}]}), manager=m)

        status_s = timed(statuses)
        rows.append((label, f"{create_s * 1000:.0f}", f"{create_s / n * 1e6:.0f}", f"{status_s * 1000:.0f}",
                     f"{status_s / n * 1e6:.0f}"))
    store = build_cluster(scenario=None, plugins=()).store
    store.create("namespaces", {"metadata": {"name": "default"}})
    applier = Manager("kubectl", "Apply", "v1")
    configs = [pod(i) for i in range(n)]
    apply_s = timed(lambda: [store.apply("pods", "default", c["metadata"]["name"], copy.deepcopy(c), applier)
                             for c in configs])
    reapply_s = timed(lambda: [store.apply("pods", "default", c["metadata"]["name"], copy.deepcopy(c), applier)
                               for c in configs])
    rows.append(("server-side apply (create / no-op re-apply)", f"{apply_s * 1000:.0f}", f"{apply_s / n * 1e6:.0f}",
                 f"{reapply_s * 1000:.0f}", f"{reapply_s / n * 1e6:.0f}"))
    header = ("writes", f"{n} creates ms", "us/create", f"{n} 2nd writes ms", "us/write")
    print_table(f"{n} pods: created, then a second write each (status write, or the same apply again)", header, rows)


if __name__ == "__main__":
    main()
