"""Concurrent cAdvisor sampling against a real sandbox: every node's two scrapes overlap the other nodes'.

What a user cares about: `invoke stats` over many nodes costs about one interval, not one per node, and the
numbers are the same as when nodes are measured one at a time. Proved from the sandbox's request log (when each
scrape reached the server), never from timings of this test.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from kubeops.actions.cadvisor import collect_reports
from kubeops.clients.cadvisor import sample_nodes
from kubeops.clients.factory import Clients
from kubeops.errors import ClusterError, InputError
from kubeops.sandbox.testing import SandboxProcess
from kubeops.settings import load_settings

NODES = 8


@pytest.fixture
def env(sandbox_factory: Callable[..., SandboxProcess], tmp_path: Path):  # type: ignore[no-untyped-def]
    # every cAdvisor scrape takes 300 ms at the server, as across a slow API server proxy: one by one, 8 nodes
    # would spend 2 x 8 x 0.3 s scraping plus the interval
    sb = sandbox_factory("large", params={"nodes": NODES, "pods_per_node": 3},
                         faults={"latency_ms": 300, "path_prefix": "/api/v1/nodes/*/proxy"})
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "sandbox.yaml").write_text(
        yaml.safe_dump({"name": "sandbox", "kube": {"kubeconfig": str(sb.kubeconfig), "scrape_concurrency": 4}})
    )
    clients = Clients(load_settings("sandbox", inventory=inventory, state_dir=tmp_path / "state"))
    yield sb, clients
    clients.close()


def scrape_times(sb: SandboxProcess) -> dict[str, list[float]]:
    times: dict[str, list[float]] = defaultdict(list)
    for r in sb.requests():
        if r["path"].endswith("/proxy/metrics/cadvisor"):
            times[r["path"].split("/")[4]].append(r["ts"])
    return times


def test_all_nodes_sampled_together_with_right_usage(env) -> None:  # type: ignore[no-untyped-def]
    sb, clients = env
    names = [n["metadata"]["name"] for n in clients.kube.request("GET", "/api/v1/nodes", what="t")["items"]]
    assert clients.kube.scrape_concurrency == 4  # from the inventory's kube.scrape_concurrency
    samples = sample_nodes(clients.kube, names, interval_s=1.0)
    assert list(samples) == names
    for sample in samples.values():
        assert sample.source == "cadvisor"
        bulk = [p for p in sample.usage.pods if p.pod.startswith("app-")]
        assert len(bulk) == 3
        for pod in bulk:  # the scenario's declared usage (5m CPU, 10Mi memory a pod) plus the pause container
            assert pod.cpu_cores == pytest.approx(0.005, rel=0.1)
            assert pod.memory_bytes == pytest.approx(10 * 2**20, rel=0.1)
    times = scrape_times(sb)
    assert sorted(times) == sorted(names)
    for node, (first, second) in ((n, t) for n, t in times.items() if len(t) == 2):
        assert second - first >= 0.8, node  # each node waits its own interval (less client-side jitter)
    assert all(len(t) == 2 for t in times.values())
    # in flight together: 4 at a time, so the 16 scrapes span about one interval plus 4 latencies, where
    # one by one they would span the interval plus 15 latencies (5.5 s)
    span = max(t[1] for t in times.values()) - min(t[0] for t in times.values())
    assert span < 1.0 + 8 * 0.3, span


def test_reports_for_one_node_and_bad_concurrency(env) -> None:  # type: ignore[no-untyped-def]
    sb, clients = env
    name = clients.kube.request("GET", "/api/v1/nodes", what="t")["items"][0]["metadata"]["name"]
    (report,) = collect_reports(clients.kube, [name], interval_s=0.5, concurrency=1)
    assert report.node.node == name and report.node.source == "cadvisor"
    assert len([p for p in report.pods if p.pod.startswith("app-")]) == 3
    # one named node: its pods come from a field-selected list, not a list of every pod in the cluster
    pod_lists = [r for r in sb.requests() if r["path"] == "/api/v1/pods"]
    assert pod_lists and all("spec.nodeName" in (r["query"].get("fieldSelector") or "") for r in pod_lists)
    with pytest.raises(InputError, match="concurrency"):
        collect_reports(clients.kube, [name], interval_s=0.5, concurrency=0)


def test_an_unexpected_proxy_error_stops_the_workers_and_is_raised(env) -> None:  # type: ignore[no-untyped-def]
    sb, clients = env
    names = [n["metadata"]["name"] for n in clients.kube.request("GET", "/api/v1/nodes", what="t")["items"]]
    sb.set_faults(error_500_rate=1.0, path_prefix="/api/v1/nodes/*/proxy", max_faults=1, latency_ms=300)
    with pytest.raises(ClusterError) as info:
        sample_nodes(clients.kube, names, interval_s=0.5)
    assert info.value.status == 500  # not a metrics-server fallback: a 500 is not "no cAdvisor here"
    # the 4 workers stop once one failed: at most the 4 first scrapes and one more each, never all 8 nodes
    assert sum(len(t) for t in scrape_times(sb).values()) < NODES
