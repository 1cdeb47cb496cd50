"""Fidelity: the real kubectl (1.33) against the default scenario, output as on a cluster."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
import yaml

from kubeops.sandbox.testing import SandboxProcess, kubectl_binary

try:
    kubectl_binary("1.33")
except FileNotFoundError:  # .ci/run checks kubectl is installed; a dev box without it skips loudly
    pytest.skip("kubectl 1.33 is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    with SandboxProcess("default", state_dir=tmp_path_factory.mktemp("kubectl") / "sandbox") as proc:
        yield proc


def ok(sb: SandboxProcess, *args: str) -> str:
    r = sb.kubectl(*args)
    assert r.returncode == 0, f"kubectl {' '.join(args)} failed: {r.stderr}"
    return r.stdout


def test_get_nodes_prints_the_cluster_columns(sb: SandboxProcess) -> None:
    lines = ok(sb, "get", "nodes").splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"control-plane-0", "worker-0", "worker-1", "worker-2"}
    assert rows["worker-0"][1:3] == ["Ready", "worker"] and rows["control-plane-0"][2] == "control-plane"
    assert rows["worker-0"][4] == "v1.33.0"


def test_get_pods_all_namespaces_wide(sb: SandboxProcess) -> None:
    lines = ok(sb, "get", "pods", "-A", "-o", "wide").splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                                "NOMINATED", "NODE", "READINESS", "GATES"]
    rows = [line.split() for line in lines[1:]]
    mirror = next(r for r in rows if r[1] == "kube-apiserver-control-plane-0")
    assert mirror[0] == "kube-system" and mirror[3] == "Running" and mirror[7] == "control-plane-0"
    assert any(r[1] == "debug-shell" and r[0] == "default" for r in rows)
    assert all(re.match(r"\d+/\d+", r[2]) for r in rows)


def test_cordon_and_uncordon(sb: SandboxProcess) -> None:
    assert ok(sb, "cordon", "worker-1").strip() == "node/worker-1 cordoned"
    row = next(line for line in ok(sb, "get", "nodes").splitlines() if line.startswith("worker-1"))
    assert row.split()[1] == "Ready,SchedulingDisabled"
    assert json.loads(ok(sb, "get", "node", "worker-1", "-o", "json"))["spec"]["unschedulable"] is True
    assert ok(sb, "cordon", "worker-1").strip() == "node/worker-1 already cordoned"
    assert ok(sb, "uncordon", "worker-1").strip() == "node/worker-1 uncordoned"
    assert "unschedulable" not in json.loads(ok(sb, "get", "node", "worker-1", "-o", "json"))["spec"]


def test_get_yaml_round_trips(sb: SandboxProcess) -> None:
    node = yaml.safe_load(ok(sb, "get", "node", "worker-0", "-o", "yaml"))
    assert node["kind"] == "Node" and node["apiVersion"] == "v1"
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "worker-0"
    assert node["spec"]["providerID"].startswith("aws:///us-east-1a/i-")


def test_label_annotate_taint(sb: SandboxProcess) -> None:
    assert ok(sb, "label", "node", "worker-2", "pool=blue").strip() == "node/worker-2 labeled"
    assert ok(sb, "annotate", "node", "worker-2", "note=hi").strip() == "node/worker-2 annotated"
    assert ok(sb, "taint", "node", "worker-2", "dedicated=db:NoSchedule").strip() == "node/worker-2 tainted"
    node = json.loads(ok(sb, "get", "node", "worker-2", "-o", "json"))
    assert node["metadata"]["labels"]["pool"] == "blue" and node["metadata"]["annotations"]["note"] == "hi"
    assert {"key": "dedicated", "value": "db", "effect": "NoSchedule"} in node["spec"]["taints"]
    assert ok(sb, "get", "nodes", "-l", "pool=blue", "-o", "name").split() == ["node/worker-2"]
    ok(sb, "taint", "node", "worker-2", "dedicated=db:NoSchedule-")
    ok(sb, "label", "node", "worker-2", "pool-")
    node = json.loads(ok(sb, "get", "node", "worker-2", "-o", "json"))
    assert "pool" not in node["metadata"]["labels"] and not node["spec"].get("taints")


def test_scale_deployment(sb: SandboxProcess) -> None:
    assert ok(sb, "scale", "deployment", "web", "-n", "apps", "--replicas=5").strip() == \
        "deployment.apps/web scaled"
    dep = json.loads(ok(sb, "get", "deploy", "web", "-n", "apps", "-o", "json"))
    assert dep["spec"]["replicas"] == 5
    r = sb.kubectl("scale", "deployment", "web", "-n", "apps", "--replicas=3", "--current-replicas=9")
    assert r.returncode != 0 and "Expected replicas to be 9, was 5" in r.stderr


def test_delete_bare_pod(sb: SandboxProcess) -> None:
    out = ok(sb, "delete", "pod", "debug-shell", "--wait=true", "--timeout=60s")
    assert out.strip() == 'pod "debug-shell" deleted'
    r = sb.kubectl("get", "pod", "debug-shell")
    assert r.returncode == 1
    assert r.stderr.strip() == 'Error from server (NotFound): pods "debug-shell" not found'


def test_errors_read_like_a_real_server(sb: SandboxProcess) -> None:
    r = sb.kubectl("get", "node", "nope")
    assert r.stderr.strip() == 'Error from server (NotFound): nodes "nope" not found'
    r = sb.kubectl("get", "pods", "--field-selector", "spec.bogus=x")
    assert r.returncode == 1 and "field label not supported: spec.bogus" in r.stderr


def test_apply_server_dry_run_creates_nothing(sb: SandboxProcess, tmp_path) -> None:  # type: ignore[no-untyped-def]
    manifest = tmp_path / "cj.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "apps"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}}))
    assert ok(sb, "apply", "--dry-run=server", "-f", str(manifest)).strip() == \
        "cronjob.batch/nightly created (server dry run)"
    r = sb.kubectl("get", "cronjob", "nightly", "-n", "apps")
    assert r.returncode == 1 and "NotFound" in r.stderr
    assert ok(sb, "apply", "-f", str(manifest)).strip() == "cronjob.batch/nightly created"
    assert ok(sb, "apply", "-f", str(manifest)).strip() == "cronjob.batch/nightly unchanged"
    dry = [r for r in sb.requests() if r["dry_run"]]
    assert [(r["verb"], r["resource"], r["status"]) for r in dry] == [("create", "cronjobs", 201)]


def test_get_all_and_short_names(sb: SandboxProcess) -> None:
    out = ok(sb, "get", "deploy,sts,ds,pdb,svc", "-A")
    for needle in ("deployment.apps/web", "statefulset.apps/db", "daemonset.apps/kube-proxy",
                   "poddisruptionbudget.policy/web", "service/web"):
        assert needle in out




def test_a_token_the_server_does_not_know_is_refused_like_a_revoked_one(sb: SandboxProcess) -> None:
    """kubectl sends no bearer token over plain HTTP, so this is checked with a raw request as a client would."""
    import json
    import urllib.error
    import urllib.request

    def get(token: str) -> tuple[int, dict]:
        request = urllib.request.Request(f"{sb.api_url}/api/v1/nodes", headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    code, body = get("revoked-token")
    assert code == 401 and body["reason"] == "Unauthorized" and body["kind"] == "Status"
    code, body = get("kubeops-sandbox-token")  # the token in the sandbox's own kubeconfig
    assert code == 200 and body["kind"] == "NodeList"


def test_the_api_servers_own_service_is_there_as_on_every_cluster(sb: SandboxProcess) -> None:
    rows = [line.split() for line in ok(sb, "get", "svc", "kubernetes", "-n", "default").splitlines()]
    assert rows[1][:5] == ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    assert ok(sb, "get", "endpoints", "kubernetes", "-n", "default").splitlines()[1].split()[1] == "127.0.0.1:6443"
    other = json.loads(ok(sb, "get", "svc", "-A", "-o", "json"))["items"]
    ips = [s["spec"]["clusterIP"] for s in other]
    assert len(ips) == len(set(ips)) > 1  # no other Service was handed its address
