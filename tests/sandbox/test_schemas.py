"""Every object the sandbox serves validates against upstream's OpenAPI schemas (kubernetes-validate)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from kubeops.sandbox.testing import SandboxProcess

kubernetes_validate = pytest.importorskip("kubernetes_validate")

SCHEMA_VERSION = "1.33.0"
LISTS = [
    ("/api/v1/nodes", "v1", "Node"),
    ("/api/v1/pods", "v1", "Pod"),
    ("/api/v1/namespaces", "v1", "Namespace"),
    ("/api/v1/services", "v1", "Service"),
    ("/api/v1/endpoints", "v1", "Endpoints"),
    ("/api/v1/serviceaccounts", "v1", "ServiceAccount"),
    ("/apis/apps/v1/deployments", "apps/v1", "Deployment"),
    ("/apis/apps/v1/replicasets", "apps/v1", "ReplicaSet"),
    ("/apis/apps/v1/statefulsets", "apps/v1", "StatefulSet"),
    ("/apis/apps/v1/daemonsets", "apps/v1", "DaemonSet"),
    ("/apis/policy/v1/poddisruptionbudgets", "policy/v1", "PodDisruptionBudget"),
    ("/apis/scheduling.k8s.io/v1/priorityclasses", "scheduling.k8s.io/v1", "PriorityClass"),
]


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    with SandboxProcess("default", state_dir=tmp_path_factory.mktemp("schemas") / "sandbox") as proc:
        # let controllers and the kubelet simulation fill in status: every pod Running and Ready
        deadline = time.monotonic() + 60
        while not _all_pods_ready(proc):
            assert time.monotonic() < deadline, "default scenario pods did not all become Ready in 60 s"
            time.sleep(0.1)
        yield proc


def _all_pods_ready(sb: SandboxProcess) -> bool:
    items = sb.request("GET", "/api/v1/pods")[1]["items"]
    return len(items) >= 10 and all(
        p["status"].get("phase") == "Running"
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", ()))
        for p in items)


@pytest.mark.parametrize(("path", "api_version", "kind"), LISTS, ids=[k for _, _, k in LISTS])
def test_served_objects_validate(sb: SandboxProcess, path: str, api_version: str, kind: str) -> None:
    code, body = sb.request("GET", path)
    assert code == 200 and body["kind"] == f"{kind}List"
    if kind in ("Node", "Pod", "Namespace", "Deployment", "PodDisruptionBudget", "Service"):
        assert body["items"], f"the default scenario should serve some {kind}s"
    for item in body["items"]:
        obj = {**item, "apiVersion": api_version, "kind": kind}
        try:
            kubernetes_validate.validate(obj, SCHEMA_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{kind} {item['metadata'].get('namespace', '')}/{item['metadata']['name']}: "
                        f"{exc.message} at {'.'.join(str(p) for p in exc.path)}")
