"""CustomResourceDefinitions, their custom resources and APIServices, as kubectl (1.33 and 1.27) and a raw client
see them: discovery, `kubectl get <plural>|<short name>`, apply, status subresource, watch, CRD deletion, errors."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeops.sandbox.testing import SandboxProcess

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def crd(plural: str, kind: str, *, scope: str = "Namespaced", status: bool = True,
        versions: tuple[str, ...] = ("v1",)) -> dict[str, Any]:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.example.com"},
            "spec": {"group": "example.com", "scope": scope,
                     "names": {"plural": plural, "singular": kind.lower(), "kind": kind,
                               "shortNames": [plural[:2]], "categories": ["all"]},
                     "versions": [{"name": v, "served": True, "storage": i == 0,
                                   **({"subresources": {"status": {}}} if status else {}),
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "x-kubernetes-preserve-unknown-fields": True}}}
                                  for i, v in enumerate(versions)]}}


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    with SandboxProcess({"name": "crds", "nodes": [{"name": "worker-0"}]},
                        state_dir=tmp_path_factory.mktemp("crds")) as process:
        for definition in (crd("widgets", "Widget", versions=("v1", "v1beta1")),
                           crd("clusterthings", "ClusterThing", scope="Cluster", status=False)):
            code, body = process.request("POST", CRDS, definition)
            assert code == 201, body
        yield process


def test_a_crd_is_established_and_its_resources_are_discoverable(sb: SandboxProcess):
    code, body = sb.request("GET", f"{CRDS}/widgets.example.com")
    conditions = {c["type"]: c["status"] for c in body["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert body["status"]["acceptedNames"]["kind"] == "Widget" and body["status"]["storedVersions"] == ["v1"]
    code, group = sb.request("GET", "/apis/example.com")
    assert code == 200 and group["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1"]
    code, listing = sb.request("GET", "/apis/example.com/v1")
    resources = {r["name"]: r for r in listing["resources"]}
    assert resources["widgets"]["namespaced"] is True and resources["widgets"]["shortNames"] == ["wi"]
    assert "widgets/status" in resources and resources["clusterthings"]["namespaced"] is False
    for version in ("1.33", "1.27"):
        found = sb.kubectl("api-resources", "--api-group=example.com", version=version)
        assert found.returncode == 0, found.stderr
        assert "widgets" in found.stdout and "clusterthings" in found.stdout
        waited = sb.kubectl("wait", "--for=condition=established", "crd/widgets.example.com", version=version)
        assert waited.returncode == 0 and "condition met" in waited.stdout


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_kubectl_applies_and_gets_custom_resources(sb: SandboxProcess, version: str, tmp_path: Path):
    name = f"w-{version.replace('.', '-')}"
    manifest = tmp_path / "widget.yaml"
    manifest.write_text(f"apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: {name}}}\nspec: {{size: 3}}\n")
    # kubectl 1.27 validates custom resources and computes apply patches from /openapi/v2, which the sandbox does
    # not serve: with 1.27 the test creates without client-side validation and patches instead
    verb = ["apply"] if version == "1.33" else ["create", "--validate=false"]
    created = sb.kubectl(*verb, "-f", str(manifest), version=version)
    assert created.returncode == 0 and f"widget.example.com/{name} created" in created.stdout, created.stderr
    if version == "1.33":
        manifest.write_text(manifest.read_text().replace("size: 3", "size: 5"))
        changed = sb.kubectl("apply", "-f", str(manifest), version=version)
        assert changed.returncode == 0 and "configured" in changed.stdout, changed.stderr
    else:
        patched = sb.kubectl("patch", "widget", name, "--type=merge", "-p", '{"spec":{"size":5}}', version=version)
        assert patched.returncode == 0, patched.stderr
    got = json.loads(sb.kubectl("get", "wi", name, "-o", "json", version=version).stdout)
    assert got["spec"] == {"size": 5} and got["metadata"]["generation"] == 2
    assert name in sb.kubectl("get", "widgets", version=version).stdout
    assert name in sb.kubectl("get", "widgets.v1beta1.example.com", version=version).stdout  # shared storage
    thing = tmp_path / "thing.yaml"
    thing.write_text(f"apiVersion: example.com/v1\nkind: ClusterThing\nmetadata: {{name: t-{name}}}\n"
                     "status: {phase: kept}\n")
    assert sb.kubectl(*verb, "-f", str(thing), version=version).returncode == 0
    code, body = sb.request("GET", f"/apis/example.com/v1/clusterthings/t-{name}")
    assert code == 200 and body["status"] == {"phase": "kept"}  # no status subresource: status is plain data
    deleted = sb.kubectl("delete", "widget", name, version=version)
    assert deleted.returncode == 0 and "deleted" in deleted.stdout


def test_status_subresource_splits_spec_and_status_and_watch_sees_changes(sb: SandboxProcess):
    path = "/apis/example.com/v1/namespaces/default/widgets"
    code, body = sb.request("POST", path, {"apiVersion": "example.com/v1", "kind": "Widget",
                                           "metadata": {"name": "s"}, "spec": {"size": 1},
                                           "status": {"ready": True}})
    assert code == 201 and "status" not in body  # status is the status subresource's business
    rv = body["metadata"]["resourceVersion"]
    code, body = sb.request("PUT", f"{path}/s/status", {**body, "status": {"ready": True}, "spec": {"size": 9}})
    assert code == 200 and body["status"] == {"ready": True} and body["spec"] == {"size": 1}
    assert body["metadata"]["generation"] == 1
    code, body = sb.request("PATCH", f"{path}/s", {"spec": {"size": 2}, "status": {"ready": False}},
                            content_type="application/merge-patch+json")
    assert code == 200 and body["spec"] == {"size": 2} and body["status"] == {"ready": True}
    assert body["metadata"]["generation"] == 2
    with urllib.request.urlopen(f"{sb.api_url}{path}?watch=true&resourceVersion={rv}&timeoutSeconds=1",
                                timeout=10) as stream:
        events = [json.loads(line) for line in stream.read().splitlines() if line.strip()]
    assert [e["type"] for e in events] == ["MODIFIED", "MODIFIED"]
    assert events[-1]["object"]["apiVersion"] == "example.com/v1"


def test_deleting_a_crd_deletes_its_resources_and_stops_serving_them(sb: SandboxProcess):
    code, _ = sb.request("POST", CRDS, crd("gadgets", "Gadget"))
    assert code == 201
    code, _ = sb.request("POST", "/apis/example.com/v1/namespaces/default/gadgets",
                         {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}})
    assert code == 201
    code, _ = sb.request("DELETE", f"{CRDS}/gadgets.example.com")
    assert code == 200
    deadline = time.monotonic() + 5
    while sb.request("GET", "/apis/example.com/v1/namespaces/default/gadgets")[0] != 404:
        assert time.monotonic() < deadline, "still served after its CRD was deleted"
        time.sleep(0.05)
    code, listing = sb.request("GET", "/apis/example.com/v1")
    assert "gadgets" not in {r["name"] for r in listing["resources"]} and "widgets" in {
        r["name"] for r in listing["resources"]}
    code, _ = sb.request("POST", CRDS, crd("gadgets", "Gadget"))  # recreated: empty
    assert code == 201
    code, body = sb.request("GET", "/apis/example.com/v1/namespaces/default/gadgets")
    assert code == 200 and body["items"] == []


def test_an_invalid_crd_is_refused_with_the_fields_named(sb: SandboxProcess):
    bad = crd("doohickeys", "Doohickey")
    bad["metadata"]["name"] = "wrong.example.com"
    bad["spec"]["scope"] = "Everywhere"
    bad["spec"]["versions"][0]["storage"] = False
    code, body = sb.request("POST", CRDS, bad)
    assert code == 422 and body["reason"] == "Invalid"
    fields = {c["field"] for c in body["details"]["causes"]}
    assert fields == {"metadata.name", "spec.scope", "spec.versions"}
    assert sb.request("GET", "/apis/example.com/v1/doohickeys")[0] == 404


def test_apiservices_crud_with_availability(sb: SandboxProcess):
    path = "/apis/apiregistration.k8s.io/v1/apiservices"
    local = {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1.example.io"},
             "spec": {"group": "example.io", "version": "v1", "groupPriorityMinimum": 1000, "versionPriority": 15}}
    code, body = sb.request("POST", path, local)
    assert code == 201 and body["status"]["conditions"][0]["reason"] == "Local"
    remote = {**local, "metadata": {"name": "v1beta1.metrics.example.io"},
              "spec": {**local["spec"], "group": "metrics.example.io", "version": "v1beta1",
                       "service": {"name": "metrics", "namespace": "kube-system"}}}
    code, body = sb.request("POST", path, remote)
    assert code == 201
    assert body["status"]["conditions"][0] | {"lastTransitionTime": None} == {
        "type": "Available", "status": "False", "reason": "ServiceNotFound", "lastTransitionTime": None,
        "message": 'service/metrics in "kube-system" is not present'}
    listed = sb.kubectl("get", "apiservices")
    assert listed.returncode == 0 and "v1beta1.metrics.example.io" in listed.stdout
    code, _ = sb.request("DELETE", f"{path}/v1.example.io")
    assert code == 200 and sb.request("GET", f"{path}/v1.example.io")[0] == 404
    bad = {**local, "metadata": {"name": "nope"}}
    code, body = sb.request("POST", path, bad)
    assert code == 422 and "must be spec.version+\".\"+spec.group" in body["message"]


def test_kubectl_1_33_applies_a_crd_manifest_then_its_resources(sb: SandboxProcess, tmp_path: Path):
    import yaml

    definition = tmp_path / "crd.yaml"
    definition.write_text(yaml.safe_dump(crd("sprockets", "Sprocket")))
    applied = sb.kubectl("apply", "-f", str(definition))
    assert applied.returncode == 0 and "sprockets.example.com created" in applied.stdout, applied.stderr
    waited = sb.kubectl("wait", "--for=condition=established", "crd/sprockets.example.com")
    assert waited.returncode == 0, waited.stderr
    item = tmp_path / "sprocket.yaml"
    item.write_text("apiVersion: example.com/v1\nkind: Sprocket\nmetadata: {name: s1, namespace: default}\n")
    assert sb.kubectl("apply", "-f", str(item)).returncode == 0
    assert "s1" in sb.kubectl("get", "sprockets", "-A").stdout
