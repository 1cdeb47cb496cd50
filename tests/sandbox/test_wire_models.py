"""Every kind the sandbox serves reads with the official Python client's models, and carries every field the
upstream OpenAPI (kubernetes-validate's v1.33 schemas) marks required: the objects a real cluster would show."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeops.sandbox.testing import SandboxProcess

kubernetes = pytest.importorskip("kubernetes")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

NS = "walk"
LABELS = {"app": "walk"}
TEMPLATE = {"metadata": {"labels": LABELS}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
SELECTOR = {"matchLabels": LABELS}
T = "2026-01-01T00:00:00Z"

# One object for every kind the default scenario does not already have, created over the wire as a user would.
OBJECTS: list[tuple[str, dict[str, Any]]] = [
    ("/api/v1/namespaces", {"metadata": {"name": NS}}),
    (f"/api/v1/namespaces/{NS}/configmaps", {"metadata": {"name": "cm"}, "data": {"k": "v"}}),
    (f"/api/v1/namespaces/{NS}/secrets", {"metadata": {"name": "s"}, "stringData": {"k": "v"}}),
    (f"/api/v1/namespaces/{NS}/serviceaccounts", {"metadata": {"name": "sa"}}),
    (f"/api/v1/namespaces/{NS}/replicationcontrollers",
     {"metadata": {"name": "rc"}, "spec": {"replicas": 1, "selector": LABELS, "template": TEMPLATE}}),
    (f"/api/v1/namespaces/{NS}/persistentvolumeclaims",
     {"metadata": {"name": "pvc"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                            "resources": {"requests": {"storage": "1Gi"}}}}),
    ("/api/v1/persistentvolumes",
     {"metadata": {"name": "pv"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                                           "hostPath": {"path": "/data"}}}),
    (f"/api/v1/namespaces/{NS}/events",
     {"metadata": {"name": "ev"}, "involvedObject": {"kind": "Pod", "namespace": NS, "name": "p"},
      "reason": "Started", "message": "Started container c", "type": "Normal", "count": 1,
      "firstTimestamp": T, "lastTimestamp": T, "source": {"component": "kubelet"}}),
    (f"/api/v1/namespaces/{NS}/endpoints",
     {"metadata": {"name": "ep"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}),
    (f"/apis/apps/v1/namespaces/{NS}/replicasets",
     {"metadata": {"name": "rs"}, "spec": {"replicas": 1, "selector": SELECTOR, "template": TEMPLATE}}),
    (f"/apis/apps/v1/namespaces/{NS}/controllerrevisions",
     {"metadata": {"name": "rev-1"}, "revision": 1, "data": {"spec": {"template": TEMPLATE}}}),
    (f"/apis/batch/v1/namespaces/{NS}/jobs",
     {"metadata": {"name": "job"}, "spec": {"template": {**TEMPLATE, "spec": {**TEMPLATE["spec"],
                                                                             "restartPolicy": "Never"}}}}),
    (f"/apis/batch/v1/namespaces/{NS}/cronjobs",
     {"metadata": {"name": "cj"}, "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {
         **TEMPLATE, "spec": {**TEMPLATE["spec"], "restartPolicy": "Never"}}}}}}),
    (f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases",
     {"metadata": {"name": "lease"}, "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15}}),
    (f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices",
     {"metadata": {"name": "slice"}, "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}],
      "ports": [{"port": 80}]}),
    (f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles",
     {"metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
    (f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings",
     {"metadata": {"name": "rb"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
      "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": NS}]}),
    ("/apis/rbac.authorization.k8s.io/v1/clusterroles",
     {"metadata": {"name": "walk-cr"}, "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]}),
    ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
     {"metadata": {"name": "walk-crb"},
      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "walk-cr"},
      "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": NS}]}),
]



def _crd(plural: str, kind: str) -> dict[str, Any]:
    return {"metadata": {"name": f"{plural}.walk.example.com"},
            "spec": {"group": "walk.example.com", "scope": "Namespaced",
                     "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
                     "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                         "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}


def _apiservice(group: str) -> dict[str, Any]:
    return {"metadata": {"name": f"v1.{group}"},
            "spec": {"group": group, "version": "v1", "groupPriorityMinimum": 1000, "versionPriority": 15}}


# Extension kinds, created after the rest: a CRD, then one of its custom resources, and an APIService.
EXTENSIONS: list[tuple[str, dict[str, Any]]] = [
    ("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", _crd("widgets", "Widget")),
    (f"/apis/walk.example.com/v1/namespaces/{NS}/widgets",
     {"apiVersion": "walk.example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}),
    ("/apis/apiregistration.k8s.io/v1/apiservices", _apiservice("walk.example.com")),
]

# Fresh objects as a create answers them (dry run: no controller has touched them yet).
FRESH: list[tuple[str, dict[str, Any]]] = [
    *[(path, {**body, "metadata": {"name": body["metadata"]["name"] + "-fresh"}}) for path, body in OBJECTS],
    (f"/apis/apps/v1/namespaces/{NS}/daemonsets",
     {"metadata": {"name": "ds"}, "spec": {"selector": SELECTOR, "template": TEMPLATE}}),
    (f"/apis/apps/v1/namespaces/{NS}/statefulsets",
     {"metadata": {"name": "sts"}, "spec": {"serviceName": "sts", "selector": SELECTOR, "template": TEMPLATE}}),
    (f"/apis/apps/v1/namespaces/{NS}/deployments",
     {"metadata": {"name": "deploy"}, "spec": {"selector": SELECTOR, "template": TEMPLATE}}),
    (f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets",
     {"metadata": {"name": "pdb"}, "spec": {"selector": SELECTOR, "minAvailable": 1}}),
    (f"/api/v1/namespaces/{NS}/pods", {"metadata": {"name": "pod", "labels": LABELS}, "spec": TEMPLATE["spec"]}),
    (f"/api/v1/namespaces/{NS}/services",
     {"metadata": {"name": "svc"}, "spec": {"selector": LABELS, "ports": [{"port": 80}]}}),
    ("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", _crd("gadgets", "Gadget")),
    ("/apis/apiregistration.k8s.io/v1/apiservices", _apiservice("fresh.example.com")),
]

# Groups the official client has no model for (nor upstream a schema), each with the reason it is not walked.
NO_MODEL_GROUPS = {"metrics.k8s.io": "metrics-server's types are not in the official client nor the upstream schemas",
                   "walk.example.com": "a custom resource (from a CRD) has no official model: its schema is the CRD's"}
# Groups the sandbox serves as JSON only: its protobuf descriptors are k8s.io/api's, which do not hold
# apiextensions-apiserver's nor kube-aggregator's types (a real API server has them; custom resources are JSON only).
NO_PROTOBUF_GROUPS = {"apiextensions.k8s.io", "apiregistration.k8s.io", *NO_MODEL_GROUPS}


def model_name(group: str, version: str, kind: str) -> str:
    """The official client's model for a kind: `V1Pod`, but `<Group><Version><Kind>` where two groups define the
    same kind (core/v1 Event is `CoreV1Event`, events.k8s.io/v1 Event `EventsV1Event`, authentication.k8s.io/v1
    TokenRequest `AuthenticationV1TokenRequest`), as its generator disambiguates the OpenAPI definition names."""
    plain = version.capitalize() + kind
    grouped = (group.split(".")[0] or "core").capitalize() + plain
    return grouped if hasattr(kubernetes.client.models, grouped) else plain


def schema_of(defs: dict[str, Any], group: str, version: str, kind: str) -> dict[str, Any]:
    """The upstream definition of a kind, found by its x-kubernetes-group-version-kind (CRDs and APIServices live
    outside io.k8s.api)."""
    gvk = {"group": group, "version": version, "kind": kind}
    found = [d for d in defs.values() if gvk in d.get("x-kubernetes-group-version-kind", [])]
    assert len(found) == 1, (gvk, len(found))
    return found[0]


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    with SandboxProcess("default", state_dir=tmp_path_factory.mktemp("models") / "sandbox") as proc:
        for path, body in OBJECTS + EXTENSIONS:
            code, out = proc.request("POST", path, body)
            assert code == 201, (path, out)
        proc.tick()
        yield proc


@pytest.fixture(scope="module")
def definitions() -> dict[str, Any]:
    path = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema/v1.33.0-local/_definitions.json"
    return json.loads(path.read_text())["$defs"]


def _served(sb: SandboxProcess) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(group, version, base path, APIResource) of every listable resource discovery shows."""
    code, groups = sb.request("GET", "/apis")
    assert code == 200
    gvs = [("", "v1", "/api/v1")] + [(g["name"], v["version"], f"/apis/{v['groupVersion']}")
                                     for g in groups["groups"] for v in g["versions"]]
    out = []
    for group, version, base in gvs:
        code, resources = sb.request("GET", base)
        assert code == 200
        out += [(group, version, base, r) for r in resources["resources"]
                if "/" not in r["name"] and "list" in r["verbs"]]
    return out


def _missing_required(value: Any, schema: dict[str, Any], defs: dict[str, Any], path: str) -> list[str]:
    ref = schema.get("$ref")
    if ref:
        schema = defs[ref.rsplit("/", 1)[-1]]
    if isinstance(value, dict) and "properties" in schema:
        missing = [f"{path}.{name}" for name in schema.get("required", []) if value.get(name) is None]
        for key, sub in value.items():
            if key in schema["properties"] and sub is not None:
                missing += _missing_required(sub, schema["properties"][key], defs, f"{path}.{key}")
        return missing
    if isinstance(value, list) and "items" in schema:
        return [m for i, item in enumerate(value)
                for m in _missing_required(item, schema["items"], defs, f"{path}[{i}]")]
    return []


def test_every_served_kind_deserializes_with_the_official_models(sb: SandboxProcess,
                                                                 definitions: dict[str, Any]) -> None:
    client = kubernetes.client.ApiClient()
    deserialize = client._ApiClient__deserialize
    seen, skipped, problems = set(), set(), []
    for group, version, base, res in _served(sb):
        if group in NO_MODEL_GROUPS:
            skipped.add(group)
            continue
        kind = res["kind"]
        model = model_name(group, version, kind)
        code, listed = sb.request("GET", f"{base}/{res['name']}")
        assert code == 200, (base, res["name"], listed)
        if not listed["items"]:
            problems.append(f"{res['name']}: no object to check")
        try:
            deserialize(listed, model + "List")
        except (ValueError, TypeError) as exc:
            problems.append(f"{model}List: {exc}")
        schema = schema_of(definitions, group, version, kind)
        for item in listed["items"]:
            meta = item["metadata"]
            where = f"namespaces/{meta['namespace']}/" if res["namespaced"] else ""
            code, obj = sb.request("GET", f"{base}/{where}{res['name']}/{meta['name']}")
            assert code == 200, obj
            try:
                deserialize(obj, model)
            except (ValueError, TypeError) as exc:
                problems.append(f"{model} {meta['name']}: {exc}")
            problems += [f"{kind} {meta['name']}: {m} is required"
                         for m in _missing_required(obj, schema, definitions, "")]
        seen.add(res["name"])
    assert problems == [], "\n".join(problems)
    assert skipped == set(NO_MODEL_GROUPS)
    assert {"pods", "nodes", "daemonsets", "replicationcontrollers", "statefulsets", "events", "leases",
            "customresourcedefinitions", "apiservices"} <= seen


@pytest.mark.parametrize("path,body", FRESH, ids=[f"{p.rsplit('/', 1)[-1]}" for p, _ in FRESH])
def test_a_fresh_object_deserializes_before_any_controller_ran(sb: SandboxProcess, definitions: dict[str, Any],
                                                              path: str, body: dict[str, Any]) -> None:
    code, obj = sb.request("POST", path + "?dryRun=All", body)
    assert code == 201, obj
    group, _, version = obj["apiVersion"].rpartition("/")
    kubernetes.client.ApiClient()._ApiClient__deserialize(obj, model_name(group, version, obj["kind"]))
    schema = schema_of(definitions, group, version, obj["kind"])
    assert _missing_required(obj, schema, definitions, "") == []


def _as_protobuf_carries_it(value: Any, key: str = "") -> Any:
    """The JSON a protobuf round trip keeps: no nulls, no singular "" and no plain omitempty zeros."""
    from kubeops.sandbox import protobuf

    if isinstance(value, dict):
        keep_empty = key in ("labels", "annotations", "data", "stringData", "selector", "nodeSelector",
                             "matchLabels")
        return {k: v if keep_empty else _as_protobuf_carries_it(v, k) for k, v in value.items()
                if v is not None and (keep_empty or v != "")
                and not (k in protobuf._OMIT_ZERO and v in (0, False))}
    if isinstance(value, list):
        return [_as_protobuf_carries_it(v) for v in value]
    return value


def test_every_served_object_reads_the_same_in_protobuf(sb: SandboxProcess) -> None:
    import urllib.request

    from kubeops.sandbox import protobuf

    checked, different = 0, []
    for group, _version, base, res in _served(sb):
        if group in NO_PROTOBUF_GROUPS:
            continue
        _code, listed = sb.request("GET", f"{base}/{res['name']}")
        for item in listed["items"]:
            meta = item["metadata"]
            where = f"namespaces/{meta['namespace']}/" if res["namespaced"] else ""
            path = f"{base}/{where}{res['name']}/{meta['name']}"
            for _attempt in range(5):  # controllers keep writing (heartbeats): compare one resourceVersion
                req = urllib.request.Request(sb.api_url + path, headers={"Accept": protobuf.MEDIA_TYPE})
                with urllib.request.urlopen(req, timeout=10) as resp:
                    assert resp.headers["Content-Type"] == protobuf.MEDIA_TYPE
                    decoded = protobuf.decode(resp.read())
                _code, as_json = sb.request("GET", path)
                if decoded["metadata"]["resourceVersion"] == as_json["metadata"]["resourceVersion"]:
                    break
            if decoded != _as_protobuf_carries_it(as_json):
                different.append(path)
            checked += 1
    assert different == [] and checked > 40


# Kinds served only as a create's answer or a subresource (no list): each read as a client would get it.
# pods/eviction and pods/binding answer a Status, not their kind, so they have no model to check here.
ANSWERS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", f"/api/v1/namespaces/{NS}/serviceaccounts/sa/token", {"spec": {"audiences": ["walk"]}}),
    ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
     {"spec": {"resourceAttributes": {"namespace": NS, "verb": "get", "resource": "pods"}}}),
    ("POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", {"spec": {"namespace": NS}}),
    ("GET", f"/api/v1/namespaces/{NS}/replicationcontrollers/rc/scale", None),
    ("GET", f"/apis/apps/v1/namespaces/{NS}/replicasets/rs/scale", None),
]


@pytest.mark.parametrize("verb,path,body", ANSWERS, ids=[p.split("/", 3)[-1] for _, p, _ in ANSWERS])
def test_every_create_only_and_subresource_kind_deserializes(
    sb: SandboxProcess, definitions: dict[str, Any],
    verb: str, path: str, body: dict[str, Any] | None,
) -> None:
    code, obj = sb.request(verb, path, body)
    assert code in (200, 201), obj
    group, _, version = obj["apiVersion"].rpartition("/")
    kubernetes.client.ApiClient()._ApiClient__deserialize(obj, model_name(group, version, obj["kind"]))
    assert _missing_required(obj, schema_of(definitions, group, version, obj["kind"]), definitions, "") == []
