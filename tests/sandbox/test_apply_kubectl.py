"""Server-side apply over the wire: real kubectl (1.33 and 1.27) applies, conflicts, forces, prunes and dry-runs
against the sandbox as against kube-apiserver, and raw requests get the API server's answers."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from typing import Any

import pytest
import yaml

from kubeops.sandbox.server import SANDBOX_TOKEN
from kubeops.sandbox.testing import kubectl_binary
from tests.k8s_sandbox import Sandbox, sandbox_maker  # noqa: F401  (provides `make_sandbox`)

SCENARIO = {"namespaces": ["apps"], "nodes": [{"name_prefix": "worker-", "count": 2, "role": "worker"}]}


def manifest(*, image: str = "nginx:1", replicas: int = 2, tier: bool = True, env_b: bool = True) -> str:
    env = [{"name": "A", "value": "1"}] + ([{"name": "B", "value": "2"}] if env_b else [])
    labels = {"app": "web", **({"tier": "front"} if tier else {})}
    return yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "apps",
                                                                    "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": image, "env": env}]}}}})


def kubectl(sb: Sandbox, version: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([kubectl_binary(version), f"--kubeconfig={sb.kubeconfig}", *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def deployment(sb: Sandbox) -> dict[str, Any]:
    return sb.get("/apis/apps/v1/namespaces/apps/deployments/web")


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_kubectl_server_side_apply_creates_updates_conflicts_and_prunes(make_sandbox: Any, version: str) -> None:
    sb = make_sandbox(SCENARIO)
    applied = kubectl(sb, version, "apply", "--server-side", "-f", "-", stdin=manifest())
    assert applied.returncode == 0, applied.stderr
    assert "deployment.apps/web serverside-applied" in applied.stdout

    def running() -> bool:
        pods = sb.get("/api/v1/namespaces/apps/pods?labelSelector=app%3Dweb")["items"]
        return len(pods) == 2 and all(p["status"].get("phase") == "Running" for p in pods)

    sb.wait_for(running, what="the controllers to roll the applied Deployment out")

    assert kubectl(sb, version, "apply", "--server-side", "-f", "-", stdin=manifest(image="nginx:2")).returncode == 0
    assert deployment(sb)["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"

    assert kubectl(sb, version, "scale", "deployment/web", "-n", "apps", "--replicas=4").returncode == 0
    refused = kubectl(sb, version, "apply", "--server-side", "-f", "-", stdin=manifest(image="nginx:2", replicas=3))
    assert refused.returncode != 0
    assert "Apply failed with 1 conflict: conflict with \"kubectl" in refused.stderr
    assert 'with subresource "scale" using apps/v1: .spec.replicas' in refused.stderr
    assert deployment(sb)["spec"]["replicas"] == 4

    forced = kubectl(sb, version, "apply", "--server-side", "--force-conflicts", "-f", "-",
                     stdin=manifest(image="nginx:2", replicas=3))
    assert forced.returncode == 0, forced.stderr
    assert deployment(sb)["spec"]["replicas"] == 3

    before = deployment(sb)
    dry = kubectl(sb, version, "apply", "--server-side", "--dry-run=server", "-f", "-",
                  stdin=manifest(image="nginx:3", replicas=3, tier=False))
    assert dry.returncode == 0 and "(server dry run)" in dry.stdout
    after = deployment(sb)  # the controllers may have written status meanwhile: compare what the apply would change
    assert after["spec"] == before["spec"] and after["metadata"]["labels"] == before["metadata"]["labels"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"

    pruned = kubectl(sb, version, "apply", "--server-side", "-f", "-",
                     stdin=manifest(image="nginx:2", replicas=3, tier=False, env_b=False))
    assert pruned.returncode == 0, pruned.stderr
    now = deployment(sb)
    assert now["metadata"]["labels"] == {"app": "web"}
    assert now["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]

    shown = yaml.safe_load(kubectl(sb, version, "get", "deployment/web", "-n", "apps", "-o", "yaml",
                                   "--show-managed-fields").stdout)
    managers = {(m["manager"], m["operation"], m.get("subresource", "")) for m in shown["metadata"]["managedFields"]}
    assert ("kubectl", "Apply", "") in managers
    assert ("kube-controller-manager", "Update", "status") in managers
    apply_entry = next(m for m in shown["metadata"]["managedFields"] if m["operation"] == "Apply")
    assert apply_entry["fieldsType"] == "FieldsV1" and apply_entry["apiVersion"] == "apps/v1"
    assert apply_entry["fieldsV1"]["f:spec"]["f:replicas"] == {}
    hidden = yaml.safe_load(kubectl(sb, version, "get", "deployment/web", "-n", "apps", "-o", "yaml").stdout)
    assert "managedFields" not in hidden["metadata"]


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_client_side_then_server_side_apply_conflicts_with_the_client_side_manager(make_sandbox: Any,
                                                                                   version: str) -> None:
    sb = make_sandbox(SCENARIO)
    assert kubectl(sb, version, "apply", "-f", "-", stdin=manifest()).returncode == 0
    refused = kubectl(sb, version, "apply", "--server-side", "-f", "-", stdin=manifest(replicas=3))
    assert refused.returncode != 0
    assert ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas'
            in refused.stderr)
    # the same values co-own; kubectl then moves its client-side fields to its own apply entry (a JSON patch of
    # managedFields the server takes as given)
    assert kubectl(sb, version, "apply", "--server-side", "-f", "-", stdin=manifest()).returncode == 0
    managers = {m["manager"] for m in deployment(sb)["metadata"]["managedFields"]}
    assert "kubectl-client-side-apply" not in managers and "kubectl" in managers


def request(sb: Sandbox, method: str, path: str, body: Any, content_type: str) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(sb.server.url + path, data=json.dumps(body).encode(), method=method, headers={
        "Authorization": f"Bearer {SANDBOX_TOKEN}", "Content-Type": content_type, "User-Agent": "my-operator/1.0"})
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


APPLY = "application/apply-patch+yaml"
CM_PATH = "/api/v1/namespaces/apps/configmaps/settings"


def cm(**data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": data}


def test_raw_apply_requests_get_the_api_servers_answers(make_sandbox: Any) -> None:
    sb = make_sandbox(SCENARIO)
    code, body = request(sb, "PATCH", CM_PATH, cm(a="1"), APPLY)
    assert code == 422 and body["reason"] == "Invalid"
    assert body["message"] == ('PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required '
                               "for apply patch")

    code, body = request(sb, "PATCH", CM_PATH + "?fieldManager=op&dryRun=All", cm(a="1"), APPLY)
    assert code == 201 and body["data"] == {"a": "1"}
    assert request(sb, "PATCH", CM_PATH + "?fieldManager=op", {"data": {"a": "2"}},
                   "application/merge-patch+json")[0] == 404  # the dry run stored nothing

    code, body = request(sb, "PATCH", CM_PATH + "?fieldManager=op", cm(a="1", b="2"), APPLY)
    assert code == 201
    assert [(m["manager"], m["operation"]) for m in body["metadata"]["managedFields"]] == [("op", "Apply")]
    code, body = request(sb, "PATCH", CM_PATH + "?fieldManager=op", cm(a="1", b="2"), APPLY)
    assert code == 200

    # an Update without fieldManager is recorded under the User-Agent's program name
    code, body = request(sb, "PATCH", CM_PATH, {"data": {"a": "9"}}, "application/merge-patch+json")
    assert code == 200
    assert ("my-operator", "Update") in [(m["manager"], m["operation"]) for m in body["metadata"]["managedFields"]]

    code, body = request(sb, "PATCH", CM_PATH + "?fieldManager=op", cm(a="1", b="2"), APPLY)
    assert code == 409 and body["reason"] == "Conflict"
    assert body["message"] == 'Apply failed with 1 conflict: conflict with "my-operator" using v1: .data.a'
    assert body["details"]["causes"] == [{"reason": "FieldManagerConflict", "field": ".data.a",
                                          "message": 'conflict with "my-operator" using v1'}]

    code, body = request(sb, "PATCH", CM_PATH + "?force=true", {"data": {"a": "1"}}, "application/merge-patch+json")
    assert code == 422 and "force: Forbidden: may not be specified for non-apply patch" in body["message"]

    code, body = request(sb, "PATCH", "/api/v1/namespaces/nope/configmaps/settings?fieldManager=op", cm(a="1"),
                         APPLY)
    assert code == 404 and body["message"] == 'namespaces "nope" not found'


def test_an_apply_to_the_status_subresource_owns_status_only(make_sandbox: Any) -> None:
    sb = make_sandbox(SCENARIO)
    dep = yaml.safe_load(manifest())
    path = "/apis/apps/v1/namespaces/apps/deployments/web"
    assert request(sb, "PATCH", path + "/status?fieldManager=op", dep, APPLY)[0] == 404  # no object, no create
    assert request(sb, "PATCH", path + "?fieldManager=op", dep, APPLY)[0] == 201
    status = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
              "spec": {"replicas": 9}, "status": {"conditions": [{"type": "Audited", "status": "True"}]}}
    code, body = request(sb, "PATCH", path + "/status?fieldManager=auditor", status, APPLY)
    assert code == 200, body
    assert body["spec"]["replicas"] == 2  # a status write leaves spec alone
    assert {"type": "Audited", "status": "True"} in body["status"]["conditions"]
    auditor = next(m for m in body["metadata"]["managedFields"] if m["manager"] == "auditor")
    assert auditor["subresource"] == "status" and list(auditor["fieldsV1"]) == ["f:status"]

    code, body = request(sb, "PATCH", path + "?fieldManager=" + "x" * 129, dep, APPLY)
    assert code == 422 and "fieldManager: Too long: may not be more than 128 bytes" in body["message"]
