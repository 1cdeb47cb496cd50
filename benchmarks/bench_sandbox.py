"""Sandbox speed: start-up of a large scenario, a paginated list of every pod, request latency.

Targets: a scenario of 2,000 nodes x 30 pods starts in < 10 s (process spawn to a healthy API, all
pods served); a paginated list (limit 500) of all pods; p50/p99 latency of get and list requests over one
keep-alive connection, as a client sees them, in JSON and (three of them again) in protobuf.

    python benchmarks/bench_sandbox.py [--nodes 2000] [--pods-per-node 30] [--requests 300]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubeops.sandbox.testing import SandboxProcess  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def timed_get(conn: http.client.HTTPConnection, path: str, accept: str = "application/json") -> tuple[float, dict]:
    began = time.perf_counter()
    conn.request("GET", path, headers={"Accept": accept})
    resp = conn.getresponse()
    body = resp.read()
    elapsed = time.perf_counter() - began
    if resp.status != 200:
        raise RuntimeError(f"GET {path} -> {resp.status}: {body[:200]!r}")
    if resp.headers.get("Content-Type") != "application/json":
        return elapsed, {"bytes": len(body)}
    return elapsed, json.loads(body)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=2000)
    ap.add_argument("--pods-per-node", type=int, default=30)
    ap.add_argument("--requests", type=int, default=300, help="samples per latency row")
    args = ap.parse_args()
    expected_pods = args.nodes * args.pods_per_node
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        sb = SandboxProcess("large", state_dir=Path(tmp) / "sandbox", start_timeout_s=300,
                            params={"nodes": args.nodes, "pods_per_node": args.pods_per_node})
        began = time.perf_counter()
        sb.start()
        startup = time.perf_counter() - began
        try:
            host, port = sb.api_url.removeprefix("http://").split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=120)
            _, first = timed_get(conn, "/api/v1/pods?limit=1")
            served = 1 + int(first["metadata"].get("remainingItemCount", 0))
            rows.append(("start-up", f"{args.nodes} nodes x {args.pods_per_node} pods ({served} pods served)",
                         f"{startup:.2f} s (target < 10 s)"))

            began = time.perf_counter()
            token, pages, items = None, 0, 0
            while True:
                path = "/api/v1/pods?limit=500" + (f"&continue={token}" if token else "")
                _, page = timed_get(conn, path)
                pages += 1
                items += len(page["items"])
                token = page["metadata"].get("continue")
                if not token:
                    break
            listing = time.perf_counter() - began
            rows.append(("paginated list", f"{items} pods in {pages} pages of 500",
                         f"{listing:.2f} s ({items / listing:,.0f} pods/s)"))
            if items < expected_pods:
                print(f"warning: listed {items} pods, expected at least {expected_pods}", file=sys.stderr)

            node = f"node-{0:0{len(str(args.nodes - 1))}d}"
            pod = first["items"][0]["metadata"]
            cases = [
                ("get node", f"/api/v1/nodes/{node}"),
                ("get pod", f"/api/v1/namespaces/{pod['namespace']}/pods/{pod['name']}"),
                ("list pods on a node", f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}"),
                ("list nodes (limit 500)", "/api/v1/nodes?limit=500"),
                ("list deployments", "/apis/apps/v1/deployments"),
            ]
            # Side by side: the same reads answered in protobuf (Accept lists only protobuf, as client-go can ask).
            protobuf = "application/vnd.kubernetes.protobuf"
            cases += [(f"{label} [protobuf]", path) for label, path in cases[:3]]
            for label, path in cases:
                accept = protobuf if label.endswith("[protobuf]") else "application/json"
                samples = [timed_get(conn, path, accept)[0] * 1000 for _ in range(args.requests)]
                rows.append((f"latency: {label}", f"{args.requests} requests",
                             f"p50 {percentile(samples, 50):.2f} ms, p99 {percentile(samples, 99):.2f} ms, "
                             f"mean {statistics.fmean(samples):.2f} ms"))
            conn.close()
        finally:
            sb.stop()
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    header = ("measure", "workload", "result")
    width = [max(w, len(h)) for w, h in zip(width, header, strict=True)]
    print("  ".join(h.ljust(w) for h, w in zip(header, width, strict=True)))
    print("  ".join("-" * w for w in width))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
