"""Rehearsals: snapshot size and cost at scale, private sandbox start-up, and predicted against actual duration.

1. A snapshot of a 2,000-node x 30-pod sandbox (the shipped ``large`` scenario), streamed to a ``.json.gz`` as
   `invoke snapshot` does: seconds, file size (and as plain JSON), this process's peak memory growth.
2. Rehearse start-up: the private sandbox (a process) loading that snapshot until it answers, and one rehearsed
   drain of a node at that scale (wall time of the whole rehearsal).
3. Predicted against actual: a 3-worker sandbox whose pods take their timing from their specs (readiness probe
   ``initialDelaySeconds: 4, periodSeconds: 2``, preStop ``sleep 3``, a budget of ``maxUnavailable: 1``);
   `drain-node` is rehearsed on its snapshot at several speeds, then run for real on it; the predicted total is
   the rehearsal's duration times the speed.

Prints tables; asserts outcomes (the rehearsal and the real run agree), never timings.

    python benchmarks/bench_rehearse.py [--nodes 2000] [--pods-per-node 30] [--speeds 1,4,10]
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubeops.engine.api import run_playbook
from kubeops.rehearse.private import PrivateSandbox
from kubeops.rehearse.rehearsal import rehearse
from kubeops.rehearse.snapshot import take
from kubeops.sandbox.testing import SandboxProcess
from kubeops.settings import Settings, load_settings


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def settings_for(sb: SandboxProcess, root: Path) -> Settings:
    inventory = root / "inventory"
    inventory.mkdir(parents=True, exist_ok=True)
    (inventory / "bench.yaml").write_text(yaml.safe_dump({
        "name": "bench", "kube": {"kubeconfig": str(sb.kubeconfig), "context": "sandbox"}}), encoding="utf-8")
    return load_settings("bench", inventory=inventory, state_dir=root / "state", log_format="json")


def big(root: Path, nodes: int, per_node: int) -> list[dict[str, Any]]:
    rows = []
    with SandboxProcess("large", state_dir=root / "big", params={"nodes": nodes, "pods_per_node": per_node},
                        start_timeout_s=600) as sb:
        settings = settings_for(sb, root / "big-client")
        rss0, t0 = rss_mib(), time.perf_counter()
        gz_path = root / "big.json.gz"
        head = take(settings, aws=False, path=gz_path)  # what `invoke snapshot` does: streamed to the file
        taken = time.perf_counter() - t0
        peak = rss_mib() - rss0
        counts = head["header"]["counts"]
        raw_mib = len(gzip.decompress(gz_path.read_bytes())) / 2**20
        rows.append({"what": f"snapshot {counts['nodes']} nodes x {per_node} ({counts['pods']} pods)",
                     "seconds": f"{taken:.1f}",
                     "size": f"{gz_path.stat().st_size / 2**20:.1f} MiB .json.gz ({raw_mib:.0f} MiB as JSON)",
                     "memory": f"+{peak:.0f} MiB peak RSS"})
        with PrivateSandbox(gz_path) as private:
            rows.append({"what": "rehearse start-up (private sandbox loads the .gz)", "seconds":
                         f"{private.started_s:.1f}", "size": "", "memory": ""})
        t0 = time.perf_counter()
        first = sorted(n["metadata"]["name"] for n in
                       json.loads(gzip.decompress(gz_path.read_bytes()))["objects"]["nodes"])[7]
        report = rehearse(gz_path, "drain-node", params={"node": first, "force": True}, settings=settings)
        assert report.exit_code == 0, report.error
        rows.append({"what": f"rehearsed drain of {first} ({len(report.pods_removed)} pods)", "seconds":
                     f"{time.perf_counter() - t0:.1f} (start-up {report.startup_s:.1f})", "size": "", "memory": ""})
    return rows


TIMED = {
    "name": "timed",
    "settings": {"tick_ms": 50, "timing": "spec"},  # the original honours probes and preStop hooks too
    "namespaces": ["apps"],
    "nodes": [{"name_prefix": "worker-", "count": 3, "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"}}],
    "objects": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "apps"},
         "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "api"}}, "template": {
             "metadata": {"labels": {"app": "api"}},
             "spec": {"terminationGracePeriodSeconds": 10, "containers": [{
                 "name": "api", "image": "example/api:1",
                 "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "initialDelaySeconds": 4,
                                    "periodSeconds": 2},
                 "lifecycle": {"preStop": {"exec": {"command": ["sleep", "3"]}}}}]}}}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "api", "namespace": "apps"},
         "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "api"}}}},
    ],
}


def predicted_vs_actual(root: Path, speeds: list[float]) -> list[dict[str, Any]]:
    rows = []
    with SandboxProcess(TIMED, state_dir=root / "timed", start_timeout_s=120) as sb:
        settings = settings_for(sb, root / "timed-client")
        time.sleep(6)  # every api pod Ready (probe at 4 s)
        pods = [p for p in sb.request("GET", "/api/v1/namespaces/apps/pods")[1]["items"]]
        counts: dict[str, int] = {}
        for p in pods:
            counts[p["spec"]["nodeName"]] = counts.get(p["spec"]["nodeName"], 0) + 1
        node = max(sorted(counts), key=lambda n: counts[n])
        doc = take(settings, aws=False)
        params = {"node": node, "wait_for_replacements": True}
        reports = []
        for speed in speeds:
            reports.append(rehearse(doc, "drain-node", params=params, settings=settings, speed=speed))
        t0 = time.perf_counter()
        record = run_playbook("drain-node", settings=settings, params=params)
        actual = time.perf_counter() - t0
        real_drain = next(s for s in record["steps"] if s["name"] == "drain")
        from kubeops.rehearse.rehearsal import _seconds

        actual_drain = _seconds(real_drain["started"], real_drain["finished"])
        for speed, report in zip(speeds, reports, strict=True):
            assert report.status == record["status"] == "done"
            drain = next(s for s in report.steps if s.name == "drain")
            rows.append({"speed": f"x{speed:g}", "pods on node": counts[node],
                         "rehearsal wall s": f"{report.rehearsal_s:.1f}",
                         "predicted drain s": f"{drain.predicted_s:.1f}", "actual drain s": f"{actual_drain:.1f}",
                         "error": f"{(drain.predicted_s - actual_drain) / actual_drain * 100:+.0f}%",
                         "predicted total s": f"{report.predicted_total_s:.1f}", "actual total s": f"{actual:.1f}"})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    lines = [" | ".join(k.ljust(widths[k]) for k in keys), "-+-".join("-" * widths[k] for k in keys)]
    lines += [" | ".join(str(r[k]).ljust(widths[k]) for k in keys) for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=2000)
    ap.add_argument("--pods-per-node", type=int, default=30)
    ap.add_argument("--speeds", default="1,4,10")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rehearse-") as tmp:
        root = Path(tmp)
        print(table(big(root, args.nodes, args.pods_per_node)))
        print()
        print(table(predicted_vs_actual(root, [float(s) for s in args.speeds.split(",")])))


if __name__ == "__main__":
    main()
