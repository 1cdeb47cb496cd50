"""`invoke stats` and `invoke redistribute` through the real CLI against a sandbox process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeops.sandbox.testing import SandboxProcess
from tests.actions.test_cadvisor_sandbox import scenario

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def hot(sandbox_factory: Callable[..., SandboxProcess], tmp_path: Path):  # type: ignore[no-untyped-def]
    """A sandbox where worker-0 runs six 500m pods and worker-1/2 are idle, and a CLI pointed at it."""
    sb = sandbox_factory(scenario())
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "sandbox.yaml").write_text(
        yaml.safe_dump({"name": "sandbox", "kube": {"kubeconfig": str(sb.kubeconfig), "context": "sandbox"}})
    )
    env = {**os.environ, "KUBEOPS_INVENTORY_DIR": str(inventory), "KUBEOPS_STATE_DIR": str(tmp_path / "state"),
           "KUBEOPS_LOG_FORMAT": "json", "PYTHONPATH": str(REPO)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", "from kubeops.cli import main; main()", *args], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)

    wait = cli("stats", "--node", "worker-0", "--interval", "0.2", "--output", "json")
    for _ in range(100):  # until the Deployment's six pods run
        if wait.returncode == 0 and len(json.loads(wait.stdout)["pods"]) == 7:
            break
        wait = cli("stats", "--node", "worker-0", "--interval", "0.2", "--output", "json")
    for node in ("worker-1", "worker-2"):
        sb.kubectl("uncordon", node)
        sb.kubectl("taint", "node", node, "node.kubernetes.io/unschedulable:NoSchedule-")
    return sb, cli


def test_stats_for_a_node_prints_pods_with_usage_share_requests_and_limits(hot: Any) -> None:
    _, cli = hot
    proc = cli("stats", "--node", "worker-0", "--interval", "1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "# node worker-0: source cadvisor"
    assert lines[1].split() == ["NAMESPACE", "POD", "CPU", "CPU%", "CPU", "REQ/LIM", "MEMORY", "MEM%", "MEM",
                                "REQ/LIM"]
    rows = [line.split() for line in lines[2:]]
    assert len(rows) == 7
    hot_rows = [r for r in rows if r[1].startswith("hot-")]
    for r in hot_rows:
        assert r[0] == "web"
        assert r[2] in ("495m", "496m", "497m", "498m", "499m", "500m", "501m", "502m", "503m", "504m", "505m")
        assert r[3] == "12.5%"
        assert r[4] == "100m/-"
        assert r[5].startswith("256.") and r[5].endswith("Mi")
        assert r[7] == "64Mi/512Mi"
    assert rows[-1][1] == "bare"  # sorted by CPU


def test_stats_sorted_by_name_and_as_json(hot: Any) -> None:
    _, cli = hot
    by_name = cli("stats", "--node", "worker-0", "--sort", "name", "--interval", "0.5")
    assert by_name.stdout.splitlines()[2].split()[1] == "bare"
    proc = cli("stats", "--node", "worker-0", "--output", "json", "--sort", "memory", "--interval", "0.5")
    doc = json.loads(proc.stdout)
    assert doc["source"] == "cadvisor"
    assert doc["node"]["allocatable_cpu"] == 4.0
    assert [p["pod"] for p in doc["pods"]][-1] == "bare"
    assert all(p["memory_bytes"] >= 256 * 2**20 for p in doc["pods"] if p["pod"].startswith("hot-"))


def test_stats_without_node_prints_one_line_per_node(hot: Any) -> None:
    _, cli = hot
    proc = cli("stats", "--interval", "0.5")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["NODE", "CPU", "CPU%"]
    names = [line.split()[0] for line in lines[1:]]
    # busiest first (default sort: CPU); the two quiet nodes may come in either order
    assert names[0] == "worker-0" and sorted(names[1:]) == ["worker-1", "worker-2"]
    assert lines[1].split()[-2:] == ["7", "cadvisor"]
    nodes = json.loads(cli("stats", "--output", "json", "--interval", "0.5").stdout)
    assert nodes[0]["node"] == "worker-0"
    assert nodes[0]["cpu_share"] == pytest.approx(3.3 / 4, rel=0.05)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--node", "nope"), "node 'nope' not found"),
        (("--sort", "size"), "--sort must be one of cpu, memory, name"),
        (("--output", "yaml"), "--output must be 'table' or 'json'"),
        (("--source", "summary"), "--source must be one of cadvisor, resource"),
    ],
)
def test_bad_flags_exit_2_with_a_clear_message(hot: Any, args: tuple[str, ...], message: str) -> None:
    _, cli = hot
    proc = cli("stats", *args, "--interval", "0.2")
    assert proc.returncode == 2
    assert message in proc.stderr


def test_stats_from_the_kubelet_resource_endpoint_match_cadvisor(hot: Any) -> None:
    sb, cli = hot
    mark = len(sb.requests())
    by_source = {}
    for source in ("cadvisor", "resource"):
        proc = cli("stats", "--node", "worker-0", "--output", "json", "--interval", "0.5", "--source", source)
        assert proc.returncode == 0, proc.stderr
        by_source[source] = json.loads(proc.stdout)
    assert by_source["resource"]["source"] == "resource"
    pods = {source: {p["pod"]: p for p in doc["pods"]} for source, doc in by_source.items()}
    assert sorted(pods["resource"]) == sorted(pods["cadvisor"])
    for name, row in pods["resource"].items():  # the same pods, the same usage, read from the smaller body
        assert row["cpu_cores"] == pytest.approx(pods["cadvisor"][name]["cpu_cores"], rel=0.02, abs=1e-4), name
        assert row["memory_bytes"] == pods["cadvisor"][name]["memory_bytes"], name
    scraped = [r["path"] for r in sb.requests()[mark:] if "/proxy/" in r["path"]]
    assert scraped.count("/api/v1/nodes/worker-0/proxy/metrics/resource") == 2
    assert scraped.count("/api/v1/nodes/worker-0/proxy/metrics/cadvisor") == 2


def test_redistribute_dry_run_evicts_nothing_then_the_real_run_does(hot: Any) -> None:
    sb, cli = hot
    mark = len(sb.requests())
    proc = cli("redistribute", "--dry-run", "--interval", "1")
    assert proc.returncode == 0, proc.stderr
    assert "dry run (nothing changed)" in proc.stdout
    assert "redistribute [k8s.redistribute]: would evict 3 pod(s)" in proc.stdout
    after = sb.requests()[mark:]
    assert [r["dry_run"] for r in after if r.get("subresource") == "eviction"] == [True, True, True]
    writes = [r for r in after if r["method"] in ("POST", "PUT", "PATCH", "DELETE") and not r.get("dry_run")]
    assert writes == []
    real = cli("redistribute", "--interval", "1", "--max-evictions", "2")
    assert real.returncode == 0, real.stderr
    evictions = [r for r in sb.requests() if r.get("subresource") == "eviction" and not r["dry_run"]]
    assert len(evictions) == 2
    assert all(r["status"] == 201 for r in evictions)
