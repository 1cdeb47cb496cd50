"""The protobuf <-> JSON converter and the Status encoder, pure (no server)."""

from __future__ import annotations

import copy

import pytest

from kubeops.sandbox import protobuf, wire
from kubeops.sandbox import status as st

T = "2026-03-04T05:06:07Z"

OBJECTS = [
    {"kind": "Pod", "apiVersion": "v1",
     "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web", "empty": ""},
                  "creationTimestamp": T, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                               "name": "web", "uid": "u-1", "controller": True}],
                  "managedFields": [{"manager": "kubectl", "operation": "Update", "time": T,
                                     "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:containers": {}}}}]},
     "spec": {"nodeName": "worker-0", "terminationGracePeriodSeconds": 0,
              "securityContext": {"runAsUser": 0, "runAsNonRoot": False},
              "containers": [{"name": "c", "image": "nginx", "command": ["nginx", ""],
                              "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1"}},
                              "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
                              "livenessProbe": {"tcpSocket": {"port": 8080}}}],
              "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]},
     "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": T}],
                "containerStatuses": [{"name": "c", "ready": True, "restartCount": 0, "image": "nginx",
                                       "imageID": "", "started": True,
                                       "state": {"running": {"startedAt": T}}}]}},
    {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1", "metadata": {"name": "worker-0"},
     "spec": {"holderIdentity": "worker-0", "leaseDurationSeconds": 40, "renewTime": "2026-03-04T05:06:07.123456Z"}},
    {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s"}, "type": "Opaque",
     "data": {"password": "czNjcjN0", "blank": ""}},
    {"kind": "PodDisruptionBudget", "apiVersion": "policy/v1", "metadata": {"name": "p", "generation": 3},
     "spec": {"maxUnavailable": "25%", "selector": {"matchExpressions": [{"key": "app", "operator": "In",
                                                                         "values": ["web", "api"]}]}},
     "status": {"disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 2,
                "observedGeneration": 3}},
    {"kind": "ControllerRevision", "apiVersion": "apps/v1", "metadata": {"name": "ds-1"}, "revision": 2,
     "data": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}},
    {"kind": "DeploymentList", "apiVersion": "apps/v1",
     "metadata": {"resourceVersion": "42", "continue": "tok", "remainingItemCount": 7},
     "items": [{"metadata": {"name": "a"}, "spec": {"replicas": 0, "selector": {"matchLabels": {"a": "b"}},
                                                     "template": {"metadata": {"labels": {"a": "b"}}}}}]},
    {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": 'pods "x" not found',
     "reason": "NotFound", "details": {"name": "x", "kind": "pods"}, "code": 404},
    {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {},
     "spec": {"resourceAttributes": {"namespace": "apps", "verb": "patch", "resource": "deployments",
                                     "group": "apps", "subresource": "scale"}},
     "status": {"allowed": True, "reason": "RBAC: allowed by RoleBinding"}},
    {"kind": "Eviction", "apiVersion": "policy/v1", "metadata": {"name": "web-1", "namespace": "shop"},
     "deleteOptions": {"gracePeriodSeconds": 0, "dryRun": ["All"], "preconditions": {"uid": "u-1"}}},
    {"kind": "DeleteOptions", "apiVersion": "apps/v1", "propagationPolicy": "Foreground", "gracePeriodSeconds": 30},
    {"kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": {"name": "r"},
     "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]}]},
]


def _without_empty_strings(value):  # what the converter drops on purpose: singular "" (Go omitempty), not map values
    if isinstance(value, dict):
        return {k: v if k in ("labels", "data") else _without_empty_strings(v) for k, v in value.items() if v != ""}
    if isinstance(value, list):
        return [_without_empty_strings(v) for v in value]
    return value


@pytest.mark.parametrize("obj", OBJECTS, ids=[o["kind"] for o in OBJECTS])
def test_round_trip_keeps_every_field(obj: dict) -> None:
    data = protobuf.encode(copy.deepcopy(obj))
    assert data is not None and data.startswith(b"k8s\x00")
    assert protobuf.decode(data) == _without_empty_strings(obj)


def test_decodes_bytes_built_by_hand_from_the_wire_format() -> None:
    # runtime.Unknown{typeMeta{apiVersion "v1", kind "Namespace"}, raw=Namespace{metadata{name "x"}}}
    type_meta = b"\x0a\x02v1" + b"\x12\x09Namespace"
    namespace = b"\x0a\x03" + b"\x0a\x01x"
    body = b"k8s\x00" + b"\x0a" + bytes([len(type_meta)]) + type_meta + b"\x12" + bytes([len(namespace)]) + namespace
    assert protobuf.decode(body) == {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "x"}}


def test_go_zero_time_and_plain_zero_flags_read_as_absent() -> None:
    pod = protobuf.encode({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p", "generation": 0},
                           "spec": {"hostNetwork": False, "containers": [{"name": "c", "stdin": False,
                                                                          "ports": [{"containerPort": 80,
                                                                                     "hostPort": 0}]}]}})
    assert protobuf.decode(pod) == {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"},
                                    "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}}
    assert protobuf._format_time(-62135596800, 0) is None


def test_durations_read_and_write_like_go() -> None:
    for text, nanos in (("1h2m3.5s", 3_723_500_000_000), ("1m0s", 60_000_000_000), ("300ms", 300_000_000),
                        ("0s", 0), ("-1.5s", -1_500_000_000)):
        assert protobuf._parse_duration(text) == nanos
        assert protobuf._format_duration(nanos) == text


def test_bad_bodies_say_why() -> None:
    with pytest.raises(protobuf.ProtobufError, match="expected prefix"):
        protobuf.decode(b'{"kind": "Pod"}')
    unknown = b"k8s\x00" + b"\x0a\x0c" + b"\x0a\x02v1\x12\x06Widget"
    with pytest.raises(protobuf.ProtobufError, match='no kind "Widget" is registered for version "v1"'):
        protobuf.decode(unknown)
    assert protobuf.encode({"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1"}) is None


# Bodies copied from a real kube-apiserver (v1.33), byte for byte, newline included.
REAL_STATUS = [
    (st.not_found("", "pods", "x"),
     b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \\"x\\" not found",'
     b'"reason":"NotFound","details":{"name":"x","kind":"pods"},"code":404}\n'),
    (st.not_found("apps", "deployments", "web"),
     b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"deployments.apps \\"web\\" '
     b'not found","reason":"NotFound","details":{"name":"web","group":"apps","kind":"deployments"},"code":404}\n'),
    (st.already_exists("", "namespaces", "default"),
     b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"namespaces \\"default\\" '
     b'already exists","reason":"AlreadyExists","details":{"name":"default","kind":"namespaces"},"code":409}\n'),
    (st.invalid("apps", "Deployment", "web", [("FieldValueInvalid", "spec.replicas",
                                               "Invalid value: -1: must be greater than or equal to 0")]),
     b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Deployment.apps \\"web\\" is '
     b'invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0","reason":"Invalid",'
     b'"details":{"name":"web","group":"apps","kind":"Deployment","causes":[{"reason":"FieldValueInvalid",'
     b'"message":"Invalid value: -1: must be greater than or equal to 0","field":"spec.replicas"}]},"code":422}\n'),
    (st.not_found_path(),
     b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server could not find '
     b'the requested resource","reason":"NotFound","details":{},"code":404}\n'),
]


@pytest.mark.parametrize("err,expected", REAL_STATUS, ids=[e.reason + str(i) for i, (e, _) in enumerate(REAL_STATUS)])
def test_status_bodies_match_the_api_server_byte_for_byte(err: st.ApiError, expected: bytes) -> None:
    assert wire.status_json(err.body()) == expected


def test_status_json_escapes_like_go() -> None:
    body = st.bad_request("spec.replicas must be <= 10 & > 0").body()
    assert b'"message":"spec.replicas must be \\u003c= 10 \\u0026 \\u003e 0"' in wire.status_json(body)


def test_json_names_match_the_upstream_openapi_for_every_message() -> None:
    """Every .proto message's JSON keys (inline structs flattened, Go-named fields renamed) are exactly the
    properties of the same type in the upstream OpenAPI schemas (kubernetes-validate, v1.33)."""
    import json
    from pathlib import Path

    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    defs_path = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema/v1.33.0-local/_definitions.json"
    defs = json.loads(defs_path.read_text())["$defs"]
    pool = protobuf._Registry.get().pool
    scalar_like = {protobuf._TIME, protobuf._MICRO_TIME, protobuf._QUANTITY, protobuf._INT_OR_STRING,
                   protobuf._RAW_EXTENSION, protobuf._FIELDS_V1}
    checked, wrong = 0, []
    for key, schema in defs.items():
        name = "k8s.io." + key.removeprefix("io.k8s.")
        if not key.startswith("io.k8s.") or name in scalar_like or "properties" not in schema:
            continue
        try:
            desc = pool.FindMessageTypeByName(name)
        except KeyError:
            continue  # apiextensions, kube-aggregator: no .proto here
        direct, inline = protobuf.json_fields(desc)
        got, want = set(direct) | set(inline), set(schema["properties"])
        if got not in (want, want - {"kind", "apiVersion"}):  # objects carry kind/apiVersion in the envelope
            wrong.append(name)
        checked += 1
    assert checked > 600 and wrong == []


def test_shipped_descriptors_are_the_compiled_protos() -> None:
    """kubeops/sandbox/proto/k8s-api.binpb is what scripts/build_k8s_proto.py makes of the shared .proto files."""
    import importlib.util
    from pathlib import Path

    from google.protobuf import descriptor_pb2

    proto_root = Path("/work/shared/k8s-proto")
    if not proto_root.is_dir() or importlib.util.find_spec("grpc_tools") is None:
        pytest.skip("the k8s .proto files or grpcio-tools are not here")
    script = Path(__file__).resolve().parents[2] / "scripts" / "build_k8s_proto.py"
    spec = importlib.util.spec_from_file_location("build_k8s_proto", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fresh = descriptor_pb2.FileDescriptorSet.FromString(module.compile_descriptor_set(proto_root))
    shipped = descriptor_pb2.FileDescriptorSet.FromString(module.OUT.read_bytes())
    assert {f.name: f for f in fresh.file} == {f.name: f for f in shipped.file}
