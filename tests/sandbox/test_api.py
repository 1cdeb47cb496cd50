"""The sandbox over HTTP with the official Python client and raw requests: what clients rely on."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from kubeops.sandbox.testing import SandboxProcess

SCENARIO = {
    "name": "api-test",
    "namespaces": ["apps"],
    "nodes": [{"name_prefix": "node-", "count": 3}],
    "workloads": [{"kind": "Pod", "name": "bulk", "namespace": "apps", "per_node": 4, "labels": {"app": "bulk"}}],
}


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    with SandboxProcess(SCENARIO, state_dir=tmp_path_factory.mktemp("api") / "sandbox") as proc:
        yield proc


@pytest.fixture(scope="module")
def core(sb: SandboxProcess):  # type: ignore[no-untyped-def]
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(sb.kubeconfig))
    yield client.CoreV1Api(api_client)
    api_client.close()


def _configmap(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}


class TestOfficialClient:
    def test_list_with_selectors(self, core) -> None:  # type: ignore[no-untyped-def]
        pods = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=node-1")
        assert len(pods.items) == 4 and all(p.spec.node_name == "node-1" for p in pods.items)
        assert pods.metadata.resource_version
        assert len(core.list_namespaced_pod("apps", label_selector="app=bulk").items) == 12

    def test_create_get_patch_delete(self, core) -> None:  # type: ignore[no-untyped-def]
        created = core.create_namespaced_config_map("apps", _configmap("client-cm"))
        assert created.metadata.uid
        patched = core.patch_namespaced_config_map("client-cm", "apps", {"data": {"k2": "v2"}})
        assert patched.data == {"k": "v", "k2": "v2"}
        node = core.patch_node("node-2", {"spec": {"unschedulable": True}})
        assert node.spec.unschedulable is True
        core.patch_node("node-2", {"spec": {"unschedulable": None}})
        core.delete_namespaced_config_map("client-cm", "apps")
        from kubernetes.client.rest import ApiException

        with pytest.raises(ApiException) as exc:
            core.read_namespaced_config_map("client-cm", "apps")
        assert exc.value.status == 404
        assert json.loads(exc.value.body)["message"] == 'configmaps "client-cm" not found'

    def test_stale_replace_is_409(self, core) -> None:  # type: ignore[no-untyped-def]
        from kubernetes.client.rest import ApiException

        node = core.read_node("node-0")
        core.patch_node("node-0", {"metadata": {"labels": {"touched": "yes"}}})
        node.metadata.labels["mine"] = "x"
        with pytest.raises(ApiException) as exc:
            core.replace_node("node-0", node)
        body = json.loads(exc.value.body)
        assert exc.value.status == 409 and body["reason"] == "Conflict"
        assert body["details"] == {"name": "node-0", "kind": "nodes"}

    def test_watch_resumes_from_a_resource_version(self, core) -> None:  # type: ignore[no-untyped-def]
        from kubernetes import watch

        rv = core.list_namespaced_config_map("apps").metadata.resource_version
        core.create_namespaced_config_map("apps", _configmap("w1"))
        core.patch_namespaced_config_map("w1", "apps", {"data": {"x": "1"}})
        core.delete_namespaced_config_map("w1", "apps")
        seen = []
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_config_map, "apps", resource_version=rv, timeout_seconds=20):
            seen.append((ev["type"], ev["object"].metadata.name))
            if len(seen) == 3:
                w.stop()
        assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]

    def test_watch_streams_live_changes(self, core) -> None:  # type: ignore[no-untyped-def]
        from kubernetes import watch

        rv = core.list_namespaced_config_map("apps").metadata.resource_version
        timer = threading.Timer(0.3, lambda: core.create_namespaced_config_map("apps", _configmap("live")))
        timer.start()
        w = watch.Watch()
        got = None
        for ev in w.stream(core.list_namespaced_config_map, "apps", resource_version=rv, timeout_seconds=20):
            got = (ev["type"], ev["object"].metadata.name)
            w.stop()
        timer.join()
        assert got == ("ADDED", "live")

    def test_watch_from_a_compacted_version_is_410(self, sandbox_factory) -> None:  # type: ignore[no-untyped-def]
        from kubernetes import client, config, watch
        from kubernetes.client.rest import ApiException

        small = sandbox_factory({**SCENARIO, "name": "small-history", "settings": {"watch_history": 8}})
        api = client.CoreV1Api(config.new_client_from_config(config_file=str(small.kubeconfig)))
        old = api.list_namespaced_config_map("apps").metadata.resource_version
        for i in range(30):
            api.create_namespaced_config_map("apps", _configmap(f"c{i}"))
        with pytest.raises(ApiException) as exc:
            for _ in watch.Watch().stream(api.list_namespaced_config_map, "apps", resource_version=old,
                                          timeout_seconds=2):
                pass
        assert exc.value.status == 410
        assert "too old resource version" in str(exc.value.reason) + str(exc.value.body)


class TestRawHttp:
    def test_not_found_status_shape(self, sb: SandboxProcess) -> None:
        code, body = sb.request("GET", "/api/v1/nodes/missing")
        assert code == 404
        assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": 'nodes "missing" not found', "reason": "NotFound",
                        "details": {"name": "missing", "kind": "nodes"}, "code": 404}
        code, body = sb.request("GET", "/apis/apps/v1/namespaces/apps/deployments/nope")
        assert body["message"] == 'deployments.apps "nope" not found'
        assert body["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}

    def test_pagination_with_continue_tokens(self, sb: SandboxProcess) -> None:
        names: list[str] = []
        path = "/api/v1/pods?limit=5"
        pages = 0
        while True:
            code, body = sb.request("GET", path)
            assert code == 200
            names += [p["metadata"]["name"] for p in body["items"]]
            pages += 1
            token = body["metadata"].get("continue")
            if not token:
                break
            path = f"/api/v1/pods?limit=5&continue={token}"
        assert len(names) == len(set(names)) == 12 and pages == 3

    def test_dry_run_changes_nothing_and_is_logged_as_such(self, sb: SandboxProcess) -> None:
        _, before = sb.request("GET", "/api/v1/namespaces/apps/configmaps")
        code, body = sb.request("POST", "/api/v1/namespaces/apps/configmaps?dryRun=All", _configmap("dry"))
        assert code == 201 and body["metadata"]["name"] == "dry"
        code, _ = sb.request("PATCH", "/api/v1/nodes/node-0?dryRun=All", {"spec": {"unschedulable": True}},
                             content_type="application/strategic-merge-patch+json")
        assert code == 200
        code, _ = sb.request("DELETE", "/api/v1/nodes/node-1?dryRun=All")
        assert code == 200
        _, after = sb.request("GET", "/api/v1/namespaces/apps/configmaps")
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        assert sb.request("GET", "/api/v1/nodes/node-1")[0] == 200
        assert not sb.request("GET", "/api/v1/nodes/node-0")[1]["spec"].get("unschedulable")
        dry = [r for r in sb.requests() if r["dry_run"]]
        assert {(r["verb"], r["resource"]) for r in dry} >= {("create", "configmaps"), ("patch", "nodes"),
                                                              ("delete", "nodes")}

    def test_invalid_field_selector_is_400(self, sb: SandboxProcess) -> None:
        code, body = sb.request("GET", "/api/v1/pods?fieldSelector=spec.foo%3Dbar")
        assert code == 400 and body["reason"] == "BadRequest"
        assert body["message"].endswith("field label not supported: spec.foo")

    def test_scale_subresource(self, sb: SandboxProcess) -> None:
        rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc1"},
              "spec": {"replicas": 1, "selector": {"app": "rc1"},
                       "template": {"metadata": {"labels": {"app": "rc1"}},
                                    "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
        assert sb.request("POST", "/api/v1/namespaces/apps/replicationcontrollers", rc)[0] == 201
        code, scale = sb.request("GET", "/api/v1/namespaces/apps/replicationcontrollers/rc1/scale")
        assert code == 200 and scale["kind"] == "Scale" and scale["spec"]["replicas"] == 1
        code, scale = sb.request("PATCH", "/api/v1/namespaces/apps/replicationcontrollers/rc1/scale",
                                 {"spec": {"replicas": 3}}, content_type="application/merge-patch+json")
        assert code == 200 and scale["spec"]["replicas"] == 3
        _, obj = sb.request("GET", "/api/v1/namespaces/apps/replicationcontrollers/rc1")
        assert obj["spec"]["replicas"] == 3

    def test_discovery_lists_subresources_and_short_names(self, sb: SandboxProcess) -> None:
        _, core = sb.request("GET", "/api/v1")
        by_name = {r["name"]: r for r in core["resources"]}
        assert by_name["pods/eviction"]["group"] == "policy" and by_name["pods/eviction"]["version"] == "v1"
        assert "po" in by_name["pods"]["shortNames"] and "no" in by_name["nodes"]["shortNames"]
        assert {"nodes/proxy", "nodes/status", "pods/status"} <= set(by_name)
        _, apps = sb.request("GET", "/apis/apps/v1")
        assert {"deployments/scale", "statefulsets/scale"} <= {r["name"] for r in apps["resources"]}
        code, agg = sb.request("GET", "/apis", headers={
            "Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"})
        assert code == 200 and agg["kind"] == "APIGroupDiscoveryList"
        assert "policy" in {i["metadata"]["name"] for i in agg["items"]}
        _, version = sb.request("GET", "/version")
        assert version["major"] == "1" and int(version["minor"]) >= 30


class TestFaultsAndLog:
    def test_faults_switch_on_and_off_at_run_time(self, sb: SandboxProcess) -> None:
        sb.set_faults(error_429_rate=1.0, retry_after_s=3)
        try:
            code, body = sb.request("GET", "/api/v1/nodes")
            assert code == 429 and body["reason"] == "TooManyRequests"
            assert body["details"]["retryAfterSeconds"] == 3
            # sandbox-only endpoints are never faulted
            assert sb.sandbox_call("GET", "health")["ok"] is True
            sb.set_faults(error_503_rate=1.0)
            assert sb.request("GET", "/api/v1/nodes")[0] == 503
            sb.set_faults(error_500_rate=1.0, max_faults=1)
            assert sb.request("GET", "/api/v1/nodes")[0] == 500
            assert sb.request("GET", "/api/v1/nodes")[0] == 200
        finally:
            sb.set_faults()
        assert sb.request("GET", "/api/v1/nodes")[0] == 200
        faulted = [r for r in sb.requests() if r.get("fault")]
        assert [r["fault"] for r in faulted][-3:] == ["429", "503", "500"]

    def test_403_scoped_to_the_kubelet_proxy_leaves_metrics_api_working(self, sb: SandboxProcess) -> None:
        node = sb.request("GET", "/api/v1/nodes")[1]["items"][0]["metadata"]["name"]
        sb.set_faults(error_403_rate=1.0, path_prefix="/api/v1/nodes/*/proxy")
        try:
            code, body = sb.request("GET", f"/api/v1/nodes/{node}/proxy/metrics/cadvisor")
            assert (code, body["reason"]) == (403, "Forbidden")
            assert body["message"].startswith(f'nodes "{node}" is forbidden: User ')
            assert 'cannot get resource "nodes/proxy" in API group "" at the cluster scope' in body["message"]
            result = sb.kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/metrics/cadvisor")
            assert result.returncode != 0 and "Error from server (Forbidden)" in result.stderr
            assert sb.request("GET", f"/api/v1/nodes/{node}")[0] == 200
            assert sb.request("GET", f"/apis/metrics.k8s.io/v1beta1/nodes/{node}")[0] == 200
            sb.set_faults(error_401_rate=1.0)
            code, body = sb.request("GET", "/api/v1/namespaces")
            assert (code, body["reason"], body["message"]) == (401, "Unauthorized", "Unauthorized")
        finally:
            sb.set_faults()
        assert sb.request("GET", f"/api/v1/nodes/{node}/proxy/metrics/cadvisor")[0] == 200
        assert [r["fault"] for r in sb.requests() if r.get("fault")][-3:] == ["403", "403", "401"]

    def test_dropped_connections(self, sb: SandboxProcess) -> None:
        import http.client

        sb.set_faults(drop_rate=1.0)
        try:
            host, port = sb.api_url.removeprefix("http://").split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
                conn.request("GET", "/api/v1/nodes")
                conn.getresponse()
        finally:
            sb.set_faults()

    def test_bad_fault_settings_are_rejected(self, sb: SandboxProcess) -> None:
        import urllib.error

        with pytest.raises(urllib.error.HTTPError) as exc:
            sb.set_faults(error_429_rate=2)
        assert exc.value.code == 400
        with pytest.raises(urllib.error.HTTPError) as exc:
            sb.set_faults(error_403_rate=0.5, path_prefix="api/v1/nodes")
        assert exc.value.code == 400

    def test_request_log_records_each_request(self, sb: SandboxProcess) -> None:
        sb.request("GET", "/api/v1/namespaces/apps/pods?labelSelector=app%3Dbulk", headers={"User-Agent": "t/1"})
        rec = [r for r in sb.requests() if r["user_agent"] == "t/1"][-1]
        assert rec["method"] == "GET" and rec["verb"] == "list" and rec["resource"] == "pods"
        assert rec["namespace"] == "apps" and rec["query"] == {"labelSelector": "app=bulk"}
        assert rec["status"] == 200 and rec["dry_run"] is False and rec["duration_ms"] >= 0
