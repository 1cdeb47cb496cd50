"""Scenario files: shipped ones load, mistakes are reported with file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeops.errors import PlaybookError
from kubeops.sandbox import scenario as scenarios
from kubeops.sandbox.cluster import build_cluster


@pytest.mark.parametrize("name", ["default", "pdb-blocked", "large", "autoscaling"])
def test_shipped_scenarios_validate(name: str) -> None:
    s = scenarios.load(name)
    assert s.name == name and s.description


def test_large_is_parameterised() -> None:
    s = scenarios.load("large", params={"nodes": "7", "pods_per_node": "2"})
    assert len(s.nodes) == 7 and s.params == {"nodes": 7, "pods_per_node": 2}
    with pytest.raises(PlaybookError, match="unknown scenario parameter 'size'"):
        scenarios.load("large", params={"size": "1"})


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_unknown_key_names_file_line_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\nnodes:\n  - name: a\n    capacty: {cpu: '1'}\n")
    with pytest.raises(PlaybookError) as exc:
        scenarios.load(path)
    assert exc.value.path == str(path) and exc.value.line == 4 and exc.value.field == "nodes[0].capacty"
    assert "unknown key 'capacty'" in str(exc.value)


def test_bad_quantity_and_references(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\nnodes:\n  - name: a\n    capacity: {cpu: lots}\n")
    with pytest.raises(PlaybookError, match="'lots' is not a Kubernetes quantity") as exc:
        scenarios.load(path)
    assert exc.value.field == "nodes[0].capacity.cpu"
    path = _write(tmp_path, "name: x\nnodes: [{name: a}]\nworkloads:\n  - {kind: MirrorPod, name: m, node: b}\n")
    with pytest.raises(PlaybookError, match="no node named 'b'") as exc:
        scenarios.load(path)
    assert exc.value.line == 4 and exc.value.field == "workloads[0].node"
    path = _write(tmp_path, "name: x\nworkloads:\n  - {kind: Deployment, name: d, pdb: {}}\n")
    with pytest.raises(PlaybookError, match="exactly one of min_available and max_unavailable"):
        scenarios.load(path)
    path = _write(tmp_path, "name: x\nworkloads:\n  - {kind: CronJob, name: d}\n")
    with pytest.raises(PlaybookError, match="kind must be one of"):
        scenarios.load(path)


def test_unknown_scenario_name_lists_shipped_ones() -> None:
    with pytest.raises(PlaybookError, match="shipped: autoscaling, default, large, pdb-blocked"):
        scenarios.load("nope")


def test_bad_faults_block(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\nfaults:\n  error_429_rate: 3\n")
    with pytest.raises(PlaybookError, match="error_429_rate: expected a number between 0 and 1") as exc:
        scenarios.load(path)
    assert exc.value.field == "faults"


def test_loading_builds_nodes_pods_and_workload_objects() -> None:
    s = scenarios.load("default")
    cluster = build_cluster(scenario=s, plugins=())
    scenarios.apply(cluster, s)
    store = cluster.store
    nodes = {n["metadata"]["name"]: n for n in store.list("nodes").items}
    assert set(nodes) == {"control-plane-0", "worker-0", "worker-1", "worker-2"}
    assert nodes["worker-1"]["metadata"]["labels"]["topology.kubernetes.io/zone"] == "us-east-1b"
    assert nodes["worker-0"]["status"]["allocatable"]["cpu"] == "3920m"
    mirror = store.get("pods", "kube-system", "kube-apiserver-control-plane-0")
    assert mirror["metadata"]["annotations"]["kubernetes.io/config.mirror"]
    assert mirror["metadata"]["ownerReferences"][0]["kind"] == "Node"
    assert mirror["status"]["phase"] == "Running" and mirror["spec"]["nodeName"] == "control-plane-0"
    cache = store.get("pods", "apps", "cache-warmer")
    assert cache["spec"]["volumes"] == [{"name": "scratch", "emptyDir": {}}]
    web = store.get("deployments.apps", "apps", "web")
    ann = web["spec"]["template"]["metadata"]["annotations"]
    assert ann["sandbox.kubeops.io/termination-delay-s"] == "1"
    assert ann["sandbox.kubeops.io/cpu-usage"] == "120m"
    assert store.get("poddisruptionbudgets.policy", "apps", "web")["spec"]["minAvailable"] == 3
    assert store.get("services", "apps", "web")["spec"]["clusterIP"]


def test_without_aws_autoscaling_groups_get_their_nodes_from_the_loader() -> None:
    s = scenarios.load("autoscaling")
    cluster = build_cluster(scenario=s, plugins=())
    scenarios.apply(cluster, s)
    names = sorted(n["metadata"]["name"] for n in cluster.store.list("nodes").items)
    assert names == ["control-plane-0", "workers-0", "workers-1", "workers-2"]
    assert cluster.store.get("nodes", None, "workers-1")["metadata"]["labels"]["pool"] == "general"


def test_node_internal_ip_and_hostname_become_its_addresses(tmp_path: Path) -> None:
    s = scenarios.load({"name": "x", "nodes": [{"name": "ssh-target", "internal_ip": "127.0.0.1",
                                                 "hostname": "localhost"}, {"name": "plain"}]})
    cluster = build_cluster(scenario=s, plugins=())
    scenarios.apply(cluster, s)
    addresses = {n["metadata"]["name"]: {a["type"]: a["address"] for a in n["status"]["addresses"]}
                 for n in cluster.store.list("nodes").items}
    assert addresses["ssh-target"] == {"InternalIP": "127.0.0.1", "Hostname": "localhost"}
    assert addresses["plain"]["InternalIP"] != "127.0.0.1" and addresses["plain"]["Hostname"] == "plain"


def test_bad_internal_ip_names_the_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\nnodes:\n  - name: a\n    internal_ip: 300.1.1.1\n")
    with pytest.raises(PlaybookError) as exc:
        scenarios.load(path)
    assert exc.value.line == 4 and exc.value.field == "nodes[0].internal_ip"
    assert "not an IP address" in str(exc.value)


def test_bare_pods_are_placed_like_the_scheduler_would_not_on_tainted_nodes() -> None:
    s = scenarios.load("default")
    cluster = build_cluster(scenario=s, plugins=())
    scenarios.apply(cluster, s)
    placed = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in cluster.store.list("pods").items}
    assert placed["debug-shell"].startswith("worker-") and placed["cache-warmer"].startswith("worker-")
    assert placed["kube-apiserver-control-plane-0"] == "control-plane-0"  # mirror pods stay on their node
