"""`Mirror` (list, then watch) against a real sandbox: it follows changes, and resumes after 410 Gone by listing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeops.clients.factory import Clients
from kubeops.clients.watch import Mirror, wait_until
from kubeops.errors import Forbidden
from kubeops.sandbox.testing import SandboxProcess
from kubeops.settings import load_settings
from tests.k8s_sandbox import clients_as

SCENARIO: dict[str, Any] = {
    "name": "watch-test",
    "settings": {"tick_ms": 50, "watch_history": 5},  # only 5 events kept: older versions answer 410 Gone
    "nodes": [{"name": "worker-0"}],
}


@pytest.fixture
def kube(sandbox_factory: Callable[..., SandboxProcess], tmp_path: Path):  # type: ignore[no-untyped-def]
    sb = sandbox_factory(SCENARIO)
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    spec = {"name": "sandbox", "kube": {"kubeconfig": str(sb.kubeconfig)}}
    (inventory / "sandbox.yaml").write_text(yaml.safe_dump(spec))
    clients = Clients(load_settings("sandbox", inventory=inventory, state_dir=tmp_path / "state"))
    yield sb, clients.kube
    clients.close()


def configmap(kube: Any, name: str, value: str) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}}
    try:
        kube.request("POST", "/api/v1/namespaces/default/configmaps", body=body, what="create")
    except Exception:
        kube.request("PUT", f"/api/v1/namespaces/default/configmaps/{name}", body=body, what="update")


def config_reads(sb: SandboxProcess, mark: int) -> list[str]:
    """Verbs of the GETs on configmaps since `mark` (a watch is logged only when its stream ends, at the server)."""
    return [r["verb"] for r in sb.requests()[mark:] if r["method"] == "GET" and "/configmaps" in r["path"]]


def values(mirror: Mirror) -> dict[str, str]:
    """The test's ConfigMaps (every namespace also holds kube-root-ca.crt, as on a cluster)."""
    return {o["metadata"]["name"]: (o.get("data") or {}).get("v", "") for o in mirror.objects()
            if o["metadata"]["name"] != "kube-root-ca.crt"}


def test_follows_changes_with_one_list_and_one_watch(kube) -> None:  # type: ignore[no-untyped-def]
    sb, client = kube
    configmap(client, "a", "1")
    mark = len(sb.requests())
    with Mirror(client, "/api/v1/namespaces/default/configmaps", what="configmaps") as mirror:
        assert values(mirror) == {"a": "1"}
        for i in range(10):
            configmap(client, "a", str(i))
        configmap(client, "b", "x")
        got = wait_until([mirror], lambda: values(mirror) == {"a": "9", "b": "x"} or None,
                         deadline=time.monotonic() + 10)
        assert got
    assert [v for v in config_reads(sb, mark) if v != "watch"] == ["list"]  # 11 changes, no other read
    assert mirror.relists == 0


def test_a_too_old_version_gets_410_and_the_mirror_lists_again(kube) -> None:  # type: ignore[no-untyped-def]
    sb, client = kube
    configmap(client, "a", "old")
    listed = client.request("GET", "/api/v1/namespaces/default/configmaps", what="list")
    stale = (listed["items"], listed["metadata"]["resourceVersion"])
    for i in range(12):  # more changes than the server keeps: the stale version is now too old to watch from
        configmap(client, "a", str(i))
    configmap(client, "c", "new")
    mark = len(sb.requests())
    with Mirror(client, "/api/v1/namespaces/default/configmaps", what="configmaps", seed=stale) as mirror:
        got = wait_until([mirror], lambda: values(mirror) == {"a": "11", "c": "new"} or None,
                         deadline=time.monotonic() + 10)
        assert got, values(mirror)
        assert mirror.relists == 1 and not mirror.polling
        configmap(client, "c", "after")  # and it keeps following from the fresh list's version
        assert wait_until([mirror], lambda: values(mirror).get("c") == "after" or None,
                          deadline=time.monotonic() + 10)
    assert [v for v in config_reads(sb, mark) if v != "watch"] == ["list"]  # the one list after the 410


def test_when_watches_keep_failing_the_mirror_falls_back_to_a_slow_list(
    sandbox_factory: Callable[..., SandboxProcess], tmp_path: Path
) -> None:
    sb = sandbox_factory(SCENARIO)
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    spec = {"name": "sandbox", "kube": {"kubeconfig": str(sb.kubeconfig), "max_retries": 0}}
    (inventory / "sandbox.yaml").write_text(yaml.safe_dump(spec))
    clients = Clients(load_settings("sandbox", inventory=inventory, state_dir=tmp_path / "state"))
    client = clients.kube
    configmap(client, "a", "1")
    path = "/api/v1/namespaces/default/configmaps"
    listed = client.request("GET", path, what="list")
    # from now on every request on the collection fails (a proxy that drops long requests, say): watches, lists
    sb.set_faults(error_503_rate=1.0, path_prefix=path)
    seed = (listed["items"], listed["metadata"]["resourceVersion"])
    with Mirror(client, path, what="configmaps", fallback_poll_s=0.5, seed=seed) as mirror:
        deadline = time.monotonic() + 5
        while not mirror.polling and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mirror.polling and mirror.error is not None and mirror.error.status == 503
        sb.set_faults()
        client.request("PUT", f"{path}/a", body={"apiVersion": "v1", "kind": "ConfigMap",
                                                 "metadata": {"name": "a"}, "data": {"v": "2"}}, what="update")
        got = wait_until([mirror], lambda: values(mirror) == {"a": "2"} or None, deadline=time.monotonic() + 5)
        assert got, values(mirror)  # seen by the slow list, not by a watch
    clients.close()


def test_a_watch_refused_by_rbac_fails_the_wait_instead_of_falling_back_to_polling(
    sandbox_factory: Callable[..., SandboxProcess], tmp_path: Path
) -> None:
    """A 403 never heals by itself: polling around it would hide the missing `watch` permission behind a slower
    wait, so the wait raises Forbidden at once, naming the verb and resource."""
    sb = sandbox_factory({**SCENARIO, "settings": {**SCENARIO["settings"], "rbac": True}})
    admin = {"Authorization": "Bearer kubeops-sandbox-token"}
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/default"
    for path, doc in (
        ("/api/v1/namespaces/default/serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                                        "metadata": {"name": "lister"}}),
        (f"{rbac}/roles", {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                           "metadata": {"name": "list-only"},
                           "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]}),
        (f"{rbac}/rolebindings", {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                                  "metadata": {"name": "lister"},
                                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                              "name": "list-only"},
                                  "subjects": [{"kind": "ServiceAccount", "name": "lister", "namespace": "default"}]}),
        ("/api/v1/namespaces/default/serviceaccounts/lister/token",
         {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}),
    ):
        code, answer = sb.request("POST", path, doc, headers=admin)
        assert code == 201, answer
    clients = clients_as(sb.kubeconfig, answer["status"]["token"], "lister", tmp_path / "lister")
    try:
        with Mirror(clients.kube, "/api/v1/namespaces/default/configmaps", what="configmaps",
                    fallback_poll_s=0.2) as mirror:
            started = time.monotonic()
            with pytest.raises(Forbidden) as refused:
                wait_until([mirror], lambda: None, deadline=started + 30)
            assert time.monotonic() - started < 5  # not after the three failures that lead to polling
            assert not mirror.polling
        assert 'cannot watch resource "configmaps"' in str(refused.value)
    finally:
        clients.close()


def test_keep_holds_only_what_is_wanted_and_follows_objects_in_and_out(kube) -> None:  # type: ignore[no-untyped-def]
    _, client = kube
    configmap(client, "wanted", "keep-1")
    configmap(client, "other", "skip")

    def keep(obj: dict[str, Any]) -> dict[str, Any] | None:
        value = (obj.get("data") or {}).get("v", "")
        return {"metadata": {"name": obj["metadata"]["name"]}, "data": {"v": value}} if value.startswith("keep") \
            else None

    with Mirror(client, "/api/v1/namespaces/default/configmaps", what="configmaps", keep=keep) as mirror:
        assert values(mirror) == {"wanted": "keep-1"}
        assert all(set(o) == {"metadata", "data"} and set(o["metadata"]) == {"name"} for o in mirror.objects())
        configmap(client, "other", "keep-2")  # now of interest
        configmap(client, "wanted", "skip")  # no longer
        assert wait_until([mirror], lambda: values(mirror) == {"other": "keep-2"} or None,
                          deadline=time.monotonic() + 10)
