"""A CRD's openAPIV3Schema over the wire, as real kubectl (1.33 and 1.27) users meet it: invalid custom resources
refused with the API server's text, unknown fields refused by default (kubectl sends fieldValidation=Strict),
warned about with --validate=warn, pruned with --validate=false, defaults in `kubectl get -o yaml`, the status
subresource checked against the status schema, and a non-structural schema refused at CRD creation."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeops.sandbox.testing import SandboxProcess

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"
SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {"type": "object", "required": ["replicas"], "properties": {
            "replicas": {"type": "integer", "minimum": 0, "maximum": 10},
            "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
            "containers": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "port": {"type": "integer", "maximum": 65535}}}}}},
        "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
    },
}
CRD = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
       "metadata": {"name": "widgets.example.com"},
       "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                              "schema": {"openAPIV3Schema": SCHEMA}}]}}


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    state = tmp_path_factory.mktemp("crd-schema")
    with SandboxProcess({"name": "crd-schema", "nodes": [{"name": "worker-0"}]}, state_dir=state) as process:
        manifest = state / "crd.yaml"
        manifest.write_text(yaml.safe_dump(CRD))
        applied = process.kubectl("apply", "-f", str(manifest))
        assert applied.returncode == 0, applied.stderr
        yield process


def widget(tmp_path: Path, name: str, spec: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: {name}}}\nspec: {spec}\n")
    return str(path)


def stored(sb: SandboxProcess, name: str) -> dict[str, Any] | None:
    code, body = sb.request("GET", f"{WIDGETS}/{name}")
    return body if code == 200 else None


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_an_invalid_custom_resource_is_refused_with_the_api_servers_text(sb: SandboxProcess, tmp_path: Path,
                                                                         version: str):
    name = f"bad-{version.replace('.', '-')}"
    applied = sb.kubectl("apply", "-f", widget(tmp_path, name, '{replicas: "three"}'), version=version)
    assert applied.returncode != 0
    assert (f'The Widget "{name}" is invalid: spec.replicas: Invalid value: "string": spec.replicas in body must '
            'be of type integer: "string"') in applied.stderr
    nested = sb.kubectl("create", "-f", widget(tmp_path, name, "{replicas: 11, containers: [{name: a, port: 70000}]}"),
                        version=version)
    assert nested.returncode != 0
    assert "spec.containers[0].port: Invalid value: 70000: spec.containers[0].port in body should be less than or " \
           "equal to 65535" in nested.stderr
    assert "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10" in nested.stderr
    assert stored(sb, name) is None


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_unknown_fields_are_refused_by_default_warned_or_pruned(sb: SandboxProcess, tmp_path: Path, version: str):
    name = f"extra-{version.replace('.', '-')}"
    manifest = widget(tmp_path, name, "{replicas: 2, colour: blue}")
    strict = sb.kubectl("apply", "-f", manifest, version=version)
    assert strict.returncode != 0
    assert ('Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field '
            '"spec.colour"') in strict.stderr
    assert stored(sb, name) is None
    ignored = sb.kubectl("apply", "--validate=false", "-f", manifest, version=version)
    assert ignored.returncode == 0 and "created" in ignored.stdout, ignored.stderr
    assert "colour" not in ignored.stderr
    assert stored(sb, name)["spec"] == {"replicas": 2, "mode": "fast"}  # pruned, defaulted
    warned = sb.kubectl("apply", "--validate=warn", "-f", widget(tmp_path, name, "{replicas: 3, colour: red}"),
                        version=version)
    assert warned.returncode == 0, warned.stderr
    assert 'Warning: unknown field "spec.colour"' in warned.stderr
    assert stored(sb, name)["spec"] == {"replicas": 3, "mode": "fast"}
    patched = sb.kubectl("apply", "-f", widget(tmp_path, name, "{replicas: 4, colour: red}"), version=version)
    assert patched.returncode != 0 and 'strict decoding error: unknown field "spec.colour"' in patched.stderr
    assert stored(sb, name)["spec"]["replicas"] == 3


def test_defaults_show_in_kubectl_get_and_a_pruned_write_changes_nothing(sb: SandboxProcess, tmp_path: Path):
    manifest = widget(tmp_path, "defaulted", "{replicas: 1}")
    assert sb.kubectl("apply", "-f", manifest).returncode == 0
    got = yaml.safe_load(sb.kubectl("get", "widget", "defaulted", "-o", "yaml").stdout)
    assert got["spec"] == {"replicas": 1, "mode": "fast"} and got["metadata"]["generation"] == 1
    again = sb.kubectl("replace", "--validate=false", "-f", widget(tmp_path, "defaulted", "{replicas: 1, x: 1}"))
    assert again.returncode == 0, again.stderr
    after = stored(sb, "defaulted")
    assert after["metadata"]["generation"] == 1 and after["spec"] == {"replicas": 1, "mode": "fast"}


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_the_status_subresource_is_checked_against_the_status_schema(sb: SandboxProcess, tmp_path: Path,
                                                                     version: str):
    name = f"st-{version.replace('.', '-')}"
    assert sb.kubectl("apply", "-f", widget(tmp_path, name, "{replicas: 1}"), version=version).returncode == 0
    bad = sb.kubectl("patch", "widget", name, "--subresource=status", "--type=merge", "-p",
                     '{"status": {"phase": 3}}', version=version)
    assert bad.returncode != 0
    assert (f'The Widget "{name}" is invalid: status.phase: Invalid value: "integer": phase in body must be of type '
            'string: "integer"') in bad.stderr
    good = sb.kubectl("patch", "widget", name, "--subresource=status", "--type=merge", "-p",
                      '{"status": {"phase": "Ready", "junk": 1}}', version=version)
    assert good.returncode == 0, good.stderr
    assert stored(sb, name)["status"] == {"phase": "Ready"}


def test_a_raw_client_gets_a_warning_header_and_a_bad_directive_is_refused(sb: SandboxProcess):
    body = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "raw"},
            "spec": {"replicas": 1, "extra": True}}
    request = urllib.request.Request(sb.api_url + WIDGETS, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # no fieldValidation: Warn, like kube-apiserver
        assert response.status == 201
        assert response.headers["Warning"] == '299 - "unknown field \\"spec.extra\\""'
        assert json.loads(response.read())["spec"] == {"replicas": 1, "mode": "fast"}
    code, status = sb.request("POST", f"{WIDGETS}?fieldValidation=Loud", {**body, "metadata": {"name": "raw2"}})
    assert code == 422 and status["message"] == ('CreateOptions.meta.k8s.io "" is invalid: fieldValidation: '
                                                 'Unsupported value: "Loud": supported values: "", "Ignore", '
                                                 '"Strict", "Warn"')
    code, status = sb.request("PATCH", f"{WIDGETS}/raw?fieldValidation=Strict", {"spec": {"bogus": 1}},
                              content_type="application/merge-patch+json")
    assert code == 422 and status["details"]["causes"][0]["field"] == "patch"
    assert status["message"].endswith('strict decoding error: unknown field "spec.bogus"')


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_a_crd_with_a_non_structural_schema_is_refused(sb: SandboxProcess, tmp_path: Path, version: str):
    plural = f"gizmos{version.replace('.', '')}"
    crd = json.loads(json.dumps(CRD))
    crd["metadata"]["name"] = f"{plural}.example.com"
    crd["spec"]["names"] = {"plural": plural, "singular": plural[:-1], "kind": f"Gizmo{version.replace('.', '')}"}
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["list"] = {
        "type": "array"}
    manifest = tmp_path / "gizmo-crd.yaml"
    manifest.write_text(yaml.safe_dump(crd))
    applied = sb.kubectl("apply", "-f", str(manifest), version=version)
    assert applied.returncode != 0
    assert ('spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[list].items: Required value: must '
            "be specified") in applied.stderr
    assert sb.request("GET", f"{CRDS}/{plural}.example.com")[0] == 404
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["list"]["items"] = {
        "type": "string"}
    manifest.write_text(yaml.safe_dump(crd))
    fixed = sb.kubectl("apply", "-f", str(manifest), version=version)
    assert fixed.returncode == 0 and "created" in fixed.stdout, fixed.stderr


def test_a_snapshot_loads_custom_resources_as_stored_and_only_defaults_them():
    from kubeops.sandbox import snapshot_load
    from kubeops.sandbox.cluster import build_cluster

    stored_long_ago = {"apiVersion": "example.com/v1", "kind": "Widget",
                       "metadata": {"name": "old", "namespace": "default"},
                       "spec": {"replicas": 50, "retired": "field"}}
    doc = {"header": {"format": snapshot_load.SNAPSHOT_FORMAT, "cluster": "prod"},
           "objects": {"customresourcedefinitions.apiextensions.k8s.io": [CRD],
                       "widgets.example.com": [stored_long_ago]}}
    cluster = build_cluster(scenario=snapshot_load.scenario(doc), plugins=("crds",))
    snapshot_load.apply(cluster, doc)
    loaded = cluster.store.get("widgets.example.com", "default", "old")
    assert loaded["spec"] == {"replicas": 50, "retired": "field", "mode": "fast"}


def test_a_tightened_schema_applies_to_changed_fields_only(sb: SandboxProcess):
    crd = json.loads(json.dumps(CRD))
    crd["metadata"]["name"] = "tightens.example.com"
    crd["spec"]["names"] = {"plural": "tightens", "singular": "tighten", "kind": "Tighten"}
    assert sb.request("POST", CRDS, crd)[0] == 201
    path = "/apis/example.com/v1/namespaces/default/tightens"
    code, _ = sb.request("POST", path, {"apiVersion": "example.com/v1", "kind": "Tighten", "metadata": {"name": "t"},
                                        "spec": {"replicas": 8}})
    assert code == 201
    code, current = sb.request("GET", f"{CRDS}/tightens.example.com")
    current["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["replicas"][
        "maximum"] = 5
    assert sb.request("PUT", f"{CRDS}/tightens.example.com", current)[0] == 200
    code, body = sb.request("PATCH", f"{path}/t", {"spec": {"mode": "slow"}},
                            content_type="application/merge-patch+json")
    assert code == 200 and body["spec"] == {"replicas": 8, "mode": "slow"}  # 8 was stored before: left alone
    code, body = sb.request("PATCH", f"{path}/t", {"spec": {"replicas": 7}},
                            content_type="application/merge-patch+json")
    assert code == 422 and body["message"] == ('Tighten.example.com "t" is invalid: spec.replicas: Invalid value: 7: '
                                               'spec.replicas in body should be less than or equal to 5')


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_server_side_apply_refuses_an_undeclared_field_whatever_the_validation(sb: SandboxProcess, tmp_path: Path,
                                                                              version: str):
    name = f"ssa-{version.replace('.', '-')}"
    manifest = widget(tmp_path, name, "{replicas: 2, colour: blue}")
    for flag in ("--validate=strict", "--validate=false"):  # apply is strict whatever the directive, as upstream
        applied = sb.kubectl("apply", "--server-side", flag, "-f", manifest, version=version)
        assert applied.returncode != 0
        assert (f"Error from server: failed to create typed patch object (default/{name}; example.com/v1, "
                "Kind=Widget): .spec.colour: field not declared in schema") in applied.stderr
        assert stored(sb, name) is None
    fine = sb.kubectl("apply", "--server-side", "-f", widget(tmp_path, name, "{replicas: 2}"), version=version)
    assert fine.returncode == 0, fine.stderr
    assert stored(sb, name)["spec"] == {"replicas": 2, "mode": "fast"}
