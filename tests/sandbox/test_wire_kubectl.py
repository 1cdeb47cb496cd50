"""kubectl 1.33 (protobuf request bodies) and 1.27 (JSON) create every built-in kind the way users do, and the
objects read back as the API server would have stored them."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from kubeops.sandbox.testing import SandboxProcess, kubectl_binary

VERSIONS = ("1.33", "1.27")
try:
    for _v in VERSIONS:
        kubectl_binary(_v)
except FileNotFoundError:  # .ci/run checks kubectl is installed; a dev box without it skips loudly
    pytest.skip("kubectl 1.33/1.27 are not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    with SandboxProcess("default", state_dir=tmp_path_factory.mktemp("kubectl-create") / "sandbox") as proc:
        yield proc


def _commands(ns: str, tag: str) -> list[list[str]]:
    return [
        ["create", "namespace", ns],
        ["create", "configmap", "cfg", "-n", ns, "--from-literal=mode=fast", "--from-literal=empty="],
        ["create", "secret", "generic", "creds", "-n", ns, "--from-literal=password=s3cr3t"],
        ["create", "deployment", "web", "-n", ns, "--image=nginx:1.27", "--replicas=2", "--port=80"],
        ["create", "deployment", "idle", "-n", ns, "--image=nginx:1.27", "--replicas=0"],
        ["create", "serviceaccount", "bot", "-n", ns],
        ["create", "role", "reader", "-n", ns, "--verb=get,list", "--resource=pods"],
        ["create", "rolebinding", "reader-bot", "-n", ns, "--role=reader", f"--serviceaccount={ns}:bot"],
        ["create", "job", "once", "-n", ns, "--image=busybox", "--", "echo", "hi"],
        ["create", "poddisruptionbudget", "web-pdb", "-n", ns, "--selector=app=web", "--min-available=1"],
        ["create", "clusterrole", f"viewer-{tag}", "--verb=get,list", "--resource=nodes"],
        ["create", "clusterrolebinding", f"viewer-{tag}", f"--clusterrole=viewer-{tag}",
         f"--serviceaccount={ns}:bot"],
        ["create", "priorityclass", f"batch-{tag}", "--value=1000", "--description=batch work"],
        ["create", "secret", "docker-registry", "pull", "-n", ns, "--docker-server=registry.example.com",
         "--docker-username=ops", "--docker-password=hunter2"],
        ["create", "service", "clusterip", "api", "-n", ns, "--tcp=80:8080"],
        ["create", "service", "nodeport", "edge", "-n", ns, "--tcp=443:8443"],
        ["create", "service", "externalname", "db", "-n", ns, "--external-name=db.example.com"],
        ["create", "cronjob", "nightly", "-n", ns, "--image=busybox", "--schedule=0 3 * * *"],
        ["run", "shell", "-n", ns, "--image=busybox", "--labels=app=shell", "--", "sleep", "3600"],
        ["expose", "deployment", "web", "-n", ns, "--port=8080", "--target-port=80"],
        ["debug", "node/worker-1", "-n", ns, "--image=busybox"],
    ]


def _get(sb: SandboxProcess, path: str) -> dict:
    code, body = sb.request("GET", path)
    assert code == 200, (path, body)
    return body


@pytest.fixture(scope="module")
def created(sb: SandboxProcess) -> dict[str, list[dict]]:
    """Both kubectl versions run every command, each in its own namespace; the POSTs each one made."""
    posts: dict[str, list[dict]] = {}
    for version in VERSIONS:
        tag = version.replace(".", "")
        mark = len(sb.requests())
        for cmd in _commands(f"team-{tag}", tag):
            r = sb.kubectl(*cmd, version=version)
            assert r.returncode == 0, f"kubectl {version} {' '.join(cmd)}: {r.stderr}"
        posts[version] = [r for r in sb.requests()[mark:] if r["method"] == "POST"]
    return posts


@pytest.mark.parametrize("version", VERSIONS)
def test_kubectl_create_run_expose_debug(sb: SandboxProcess, created: dict[str, list[dict]], version: str) -> None:
    tag = version.replace(".", "")
    ns = f"team-{tag}"
    posts = created[version]
    sent = {r["content_type"] for r in posts}
    # 1.33 sends built-in kinds as protobuf, 1.27 as JSON: both must land.
    assert ("application/vnd.kubernetes.protobuf" in sent) == (version == "1.33"), sent
    assert all(r["status"] == 201 for r in posts), [(r["path"], r["status"]) for r in posts]

    assert _get(sb, f"/api/v1/namespaces/{ns}")["status"]["phase"] == "Active"
    assert _get(sb, f"/api/v1/namespaces/{ns}/configmaps/cfg")["data"] == {"mode": "fast", "empty": ""}
    secret = _get(sb, f"/api/v1/namespaces/{ns}/secrets/creds")
    assert secret["data"] == {"password": "czNjcjN0"} and secret["type"] == "Opaque"

    web = _get(sb, f"/apis/apps/v1/namespaces/{ns}/deployments/web")
    assert web["spec"]["replicas"] == 2
    assert web["spec"]["strategy"] == {"type": "RollingUpdate",
                                       "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1.27" and container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert "stdin" not in container and "generation" not in web["spec"]["template"]["metadata"]
    assert _get(sb, f"/apis/apps/v1/namespaces/{ns}/deployments/idle")["spec"]["replicas"] == 0

    assert _get(sb, f"/api/v1/namespaces/{ns}/serviceaccounts/bot")["metadata"]["name"] == "bot"
    role = _get(sb, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/reader")
    assert role["rules"] == [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]
    binding = _get(sb, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/reader-bot")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "bot", "namespace": ns}]
    clusterrole = _get(sb, f"/apis/rbac.authorization.k8s.io/v1/clusterroles/viewer-{tag}")
    assert clusterrole["rules"][0]["resources"] == ["nodes"]
    crb = _get(sb, f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/viewer-{tag}")
    assert crb["roleRef"]["kind"] == "ClusterRole" and crb["subjects"][0]["namespace"] == ns
    priority = _get(sb, f"/apis/scheduling.k8s.io/v1/priorityclasses/batch-{tag}")
    assert priority["value"] == 1000 and priority["description"] == "batch work"
    pull = _get(sb, f"/api/v1/namespaces/{ns}/secrets/pull")
    assert pull["type"] == "kubernetes.io/dockerconfigjson"
    auths = json.loads(base64.b64decode(pull["data"][".dockerconfigjson"]))["auths"]
    assert auths["registry.example.com"]["username"] == "ops"
    api = _get(sb, f"/api/v1/namespaces/{ns}/services/api")
    assert api["spec"]["type"] == "ClusterIP" and api["spec"]["selector"] == {"app": "api"}
    assert api["spec"]["ports"] == [{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}]
    edge = _get(sb, f"/api/v1/namespaces/{ns}/services/edge")
    assert edge["spec"]["type"] == "NodePort" and edge["spec"]["ports"][0]["targetPort"] == 8443
    assert 30000 <= edge["spec"]["ports"][0]["nodePort"] <= 32767
    external = _get(sb, f"/api/v1/namespaces/{ns}/services/db")
    assert external["spec"]["type"] == "ExternalName" and external["spec"]["externalName"] == "db.example.com"
    assert "clusterIP" not in external["spec"]

    job = _get(sb, f"/apis/batch/v1/namespaces/{ns}/jobs/once")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["echo", "hi"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert _get(sb, f"/apis/batch/v1/namespaces/{ns}/cronjobs/nightly")["spec"]["schedule"] == "0 3 * * *"
    pdb = _get(sb, f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/web-pdb")
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}

    shell = _get(sb, f"/api/v1/namespaces/{ns}/pods/shell")
    assert shell["metadata"]["labels"] == {"app": "shell"}
    assert shell["spec"]["containers"][0]["args"] == ["sleep", "3600"]
    service = _get(sb, f"/api/v1/namespaces/{ns}/services/web")
    assert service["spec"]["ports"] == [{"port": 8080, "protocol": "TCP", "targetPort": 80}]
    assert service["spec"]["selector"] == {"app": "web"}

    pods = _get(sb, f"/api/v1/namespaces/{ns}/pods")["items"]
    debug = [p for p in pods if p["metadata"]["name"].startswith("node-debugger-worker-1-")]
    assert len(debug) == 1, [p["metadata"]["name"] for p in pods]
    spec = debug[0]["spec"]
    assert spec["nodeName"] == "worker-1" and spec["containers"][0]["image"] == "busybox"
    # the legacy profile: the node's namespaces and its root filesystem (an inline VolumeSource in protobuf)
    assert spec["hostNetwork"] is True and spec["hostPID"] is True
    assert {"name": "host-root", "hostPath": {"path": "/"}} in spec["volumes"]
    assert {"name": "host-root", "mountPath": "/host"} in spec["containers"][0]["volumeMounts"]


def _comparable(obj: dict, ns: str) -> dict:
    out = json.loads(json.dumps(obj).replace(ns, "NS"))
    for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields"):
        out["metadata"].pop(key, None)
    out.pop("status", None)
    if out["metadata"]["name"].startswith("node-debugger-"):
        out["metadata"]["name"] = "node-debugger"
    if out.get("kind") == "Service":  # allocated per object
        out["spec"].pop("clusterIP", None), out["spec"].pop("clusterIPs", None)
        for port in out["spec"].get("ports") or []:
            port.pop("nodePort", None)
    return out


def test_protobuf_and_json_bodies_store_the_same_objects(sb: SandboxProcess, created: dict) -> None:
    """What kubectl 1.33 sent as protobuf reads back exactly like what 1.27 sent as JSON."""
    compared = 0
    for base, plural in (("/api/v1", "configmaps"), ("/api/v1", "secrets"), ("/api/v1", "serviceaccounts"),
                         ("/api/v1", "services"), ("/apis/apps/v1", "deployments"), ("/apis/batch/v1", "jobs"),
                         ("/apis/batch/v1", "cronjobs"), ("/apis/policy/v1", "poddisruptionbudgets"),
                         ("/apis/rbac.authorization.k8s.io/v1", "roles"),
                         ("/apis/rbac.authorization.k8s.io/v1", "rolebindings")):
        objects = {}
        for version in VERSIONS:
            ns = f"team-{version.replace('.', '')}"
            items = _get(sb, f"{base}/namespaces/{ns}/{plural}")["items"]
            objects[version] = {o["metadata"]["name"]: _comparable(o, ns) for o in items}
        assert objects["1.33"] == objects["1.27"], plural
        compared += len(objects["1.33"])
    pods = {}
    for version in VERSIONS:
        ns = f"team-{version.replace('.', '')}"
        pods[version] = [_comparable(_get(sb, f"/api/v1/namespaces/{ns}/pods/shell"), ns)] + [
            _comparable(p, ns) for p in _get(sb, f"/api/v1/namespaces/{ns}/pods")["items"]
            if p["metadata"]["name"].startswith("node-debugger-")]
    assert pods["1.33"] == pods["1.27"]
    assert compared >= 10


def test_protobuf_only_client_gets_protobuf_and_json_clients_json(sb: SandboxProcess) -> None:
    import urllib.request

    from kubeops.sandbox import protobuf

    def get(accept: str) -> tuple[str, bytes]:
        req = urllib.request.Request(sb.api_url + "/api/v1/nodes/worker-0", headers={"Accept": accept})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.headers["Content-Type"], resp.read()

    ctype, raw = get("application/vnd.kubernetes.protobuf")
    assert ctype == "application/vnd.kubernetes.protobuf" and raw.startswith(b"k8s\x00")
    node = protobuf.decode(raw)
    ctype, raw = get("application/vnd.kubernetes.protobuf, application/json")
    assert ctype == "application/json" and raw.endswith(b"}\n")
    assert node == json.loads(raw)
    assert node["metadata"]["name"] == "worker-0" and node["status"]["nodeInfo"]["kubeletVersion"] == "v1.33.0"


def test_a_protobuf_only_client_gets_errors_as_protobuf_status(sb: SandboxProcess) -> None:
    import urllib.error
    import urllib.request

    from kubeops.sandbox import protobuf

    req = urllib.request.Request(sb.api_url + "/apis/apps/v1/namespaces/default/deployments/nope",
                                 headers={"Accept": "application/vnd.kubernetes.protobuf"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(req, timeout=10)
    assert caught.value.code == 404
    assert caught.value.headers["Content-Type"] == "application/vnd.kubernetes.protobuf"
    assert protobuf.decode(caught.value.read()) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'deployments.apps "nope" not found', "reason": "NotFound",
        "details": {"name": "nope", "group": "apps", "kind": "deployments"}, "code": 404}


def test_error_bodies_are_the_api_servers_bytes(sb: SandboxProcess) -> None:
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(sb.api_url + "/api/v1/namespaces/default/pods/x", timeout=10)
    assert caught.value.code == 404 and caught.value.headers["Content-Type"] == "application/json"
    assert caught.value.read() == (b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":'
                                   b'"pods \\"x\\" not found","reason":"NotFound","details":{"name":"x","kind":"pods"},'
                                   b'"code":404}\n')
    r = sb.kubectl("get", "deployment", "nope", "-n", "default")
    assert r.returncode == 1
    assert r.stderr.strip() == 'Error from server (NotFound): deployments.apps "nope" not found'


@pytest.mark.parametrize("version", VERSIONS)
def test_kubectl_explain_reads_the_upstream_schemas(sb: SandboxProcess, version: str) -> None:
    # 1.33 reads OpenAPI v3, 1.27 OpenAPI v2 (protobuf).
    out = sb.kubectl("explain", "pods.spec.containers", version=version)
    assert out.returncode == 0, out.stderr
    assert "FIELD: containers <[]Container>" in out.stdout
    assert "List of containers belonging to the pod." in out.stdout
    assert "image\t<string>" in out.stdout and "livenessProbe\t<Probe>" in out.stdout
    out = sb.kubectl("explain", "deployment.spec.strategy", version=version)
    assert out.returncode == 0, out.stderr
    assert "GROUP:      apps" in out.stdout and "FIELD: strategy <DeploymentStrategy>" in out.stdout
    assert "rollingUpdate\t<RollingUpdateDeployment>" in out.stdout
    assert 'Type of deployment. Can be "Recreate" or "RollingUpdate".' in out.stdout


def test_get_raw_openapi_v3(sb: SandboxProcess) -> None:
    index = json.loads(sb.kubectl("get", "--raw", "/openapi/v3", check=True).stdout)
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/apps/v1?hash=")
    doc = json.loads(sb.kubectl("get", "--raw", url, check=True).stdout)
    schemas = doc["components"]["schemas"]
    deployment = schemas["io.k8s.api.apps.v1.Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment",
                                                              "version": "v1"}]
    assert deployment["properties"]["spec"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}]
    assert schemas["io.k8s.api.apps.v1.DeploymentSpec"]["required"] == ["selector", "template"]
    assert "io.k8s.api.core.v1.PodSpec" in schemas and "io.k8s.api.core.v1.Node" not in schemas
    post = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["post"]
    assert any(p["name"] == "fieldValidation" for p in post["parameters"])


def test_a_protobuf_only_watch_streams_length_delimited_frames(sb: SandboxProcess) -> None:
    import urllib.request

    from kubeops.sandbox import protobuf

    req = urllib.request.Request(sb.api_url + "/api/v1/nodes?watch=1&timeoutSeconds=1",
                                 headers={"Accept": "application/vnd.kubernetes.protobuf;stream=watch"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Content-Type"] == "application/vnd.kubernetes.protobuf;stream=watch"
        events = protobuf.read_watch_frames(resp.read())
    added = {obj["metadata"]["name"] for kind, obj in events if kind == "ADDED"}
    assert added == {"control-plane-0", "worker-0", "worker-1", "worker-2"}
    assert all(obj["kind"] == "Node" and obj["apiVersion"] == "v1" for _, obj in events)
