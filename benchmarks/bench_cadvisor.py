"""Parse ~20 MB of kubelet cAdvisor text with kubeops and with prometheus_client, in the same run.

Why: a busy node's `/metrics/cadvisor` is tens of megabytes and `stats`/`redistribute` scrape every node
twice; the target is at least 5x prometheus_client's text parser with the same numbers. Run:
`python benchmarks/bench_cadvisor.py [--mb 20]`. Prints a table; asserts agreement, never timing.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from kubeops.metrics.cadvisor import CPU_METRIC, MEMORY_METRIC, Scrape, parse_cadvisor

CAPTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "kubelet" / "cadvisor_metrics.txt"
POD_NAMES = (
    "dd-agent-q6hpw",
    "datadog-agent-jbm2k",
    "demo-app-success-c485bc67b-klj45",
    "fluentd-gcp-v2.0.10-9q9t4",
    "kube-proxy-gke-haissam-default-pool-be5066f1-wnvn",
)


def build_text(target_mb: float) -> str:
    """Repeat the GKE capture's series with varied pod names and cgroup ids until `target_mb`.

    HELP/TYPE lines are kept once per family (as a real kubelet does), so both parsers see valid text.
    """
    families: dict[str, list[str]] = {}
    headers: dict[str, list[str]] = {}
    current = ""
    for line in CAPTURE.read_text().splitlines():
        if line.startswith("# "):
            current = line.split()[2]
            headers.setdefault(current, []).append(line)
        elif line:
            families.setdefault(current, []).append(line)
    base_bytes = sum(len(x) + 1 for lines in families.values() for x in lines)
    copies = max(1, math.ceil(target_mb * 1e6 / base_bytes))
    out: list[str] = []
    for family, lines in families.items():
        out.extend(headers.get(family, []))
        for i in range(copies):
            for line in lines:
                varied = line
                for pod in POD_NAMES:
                    varied = varied.replace(pod, f"{pod}-r{i}")
                out.append(varied.replace('id="/', f'id="/r{i}/', 1) if i else varied)
    return "\n".join(out) + "\n"


def ours(text: str) -> dict[tuple[str, str, str], float]:
    return _values(parse_cadvisor(text.encode()))


def ours_streamed(text: str) -> dict[tuple[str, str, str], float]:
    """As the client feeds it: 64 KiB chunks off the HTTP response."""
    data = text.encode()
    step = 64 * 1024
    return _values(parse_cadvisor(data[i : i + step] for i in range(0, len(data), step)))


def _values(scrape: Scrape) -> dict[tuple[str, str, str], float]:
    values: dict[tuple[str, str, str], float] = {}
    for cg in scrape.cgroups.values():
        for cpu, value in cg._cpu_per_cpu.items():
            values[(CPU_METRIC, cg.id, cpu)] = value
        if cg.memory_working_set_bytes is not None:
            values[(MEMORY_METRIC, cg.id, "")] = cg.memory_working_set_bytes
    return values


def theirs(text: str) -> dict[tuple[str, str, str], float]:
    values: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (CPU_METRIC, MEMORY_METRIC):
                values[(sample.name, sample.labels["id"], sample.labels.get("cpu", ""))] = sample.value
    return values


def timed(fn, text: str, repeat: int) -> tuple[float, dict[tuple[str, str, str], float]]:  # type: ignore[no-untyped-def]
    best = math.inf
    result: dict[tuple[str, str, str], float] = {}
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(text)
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20.0, help="size of the generated text in MB")
    parser.add_argument("--repeat", type=int, default=3, help="runs of our parser (best is kept)")
    args = parser.parse_args()
    text = build_text(args.mb)
    mb = len(text.encode()) / 1e6
    ours_s, our_values = timed(ours, text, args.repeat)
    streamed_s, streamed_values = timed(ours_streamed, text, args.repeat)
    theirs_s, their_values = timed(theirs, text, 1)
    assert our_values == their_values, "parsers disagree"
    assert streamed_values == their_values, "streamed parse disagrees"
    print(f"cAdvisor text: {mb:.1f} MB, {text.count(chr(10))} lines, {len(our_values)} kept samples (identical)")
    print(f"{'parser':<34} {'seconds':>8} {'MB/s':>8} {'speedup':>8}")
    print(f"{'prometheus_client text parser':<34} {theirs_s:>8.3f} {mb / theirs_s:>8.1f} {1.0:>7.1f}x")
    print(f"{'kubeops.metrics.cadvisor':<34} {ours_s:>8.3f} {mb / ours_s:>8.1f} {theirs_s / ours_s:>7.1f}x")
    label = "kubeops (streamed, 64 KiB chunks)"
    print(f"{label:<34} {streamed_s:>8.3f} {mb / streamed_s:>8.1f} {theirs_s / streamed_s:>7.1f}x")
    verdict = "meets" if theirs_s / max(ours_s, streamed_s) >= 5 else "MISSES"
    print(f"target >= 5x: {verdict}")


if __name__ == "__main__":
    main()
