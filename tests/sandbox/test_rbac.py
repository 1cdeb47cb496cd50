"""RBAC in the sandbox as kubectl and a ServiceAccount token see it: `kubectl auth can-i [--list]` (1.27 sends
JSON, 1.33 protobuf), 403s worded like kube-apiserver's, TokenRequest, and the rule semantics (verbs, groups,
resources with subresources, resourceNames, wildcards, Role vs ClusterRole bindings) checked without a server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubeops.sandbox import rbac
from kubeops.sandbox.testing import SandboxProcess

ADMIN = {"Authorization": "Bearer kubeops-sandbox-token"}
SA = "system:serviceaccount:ops:runner"
RBAC = "rbac.authorization.k8s.io/v1"

SCENARIO: dict[str, Any] = {
    "name": "rbac",
    "settings": {"rbac": True, "token_users": {"runner-token": SA, "dev-token": {"user": "jane", "groups": ["dev"]}}},
    "namespaces": ["ops", "apps"],
    "nodes": [{"name": "worker-1"}],
    "workloads": [{"kind": "Pod", "name": "web", "namespace": "apps"}],
    "objects": [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner", "namespace": "ops"}},
        {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": "node-reader"},
         "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]},
                   {"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]}]},
        {"apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": {"name": "runner-nodes"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "node-reader"},
         "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "ops"}]},
        {"apiVersion": RBAC, "kind": "Role", "metadata": {"name": "evictor", "namespace": "apps"},
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
                   {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
                   {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
                    "resourceNames": ["app-config"]}]},
        {"apiVersion": RBAC, "kind": "RoleBinding", "metadata": {"name": "runner-evicts", "namespace": "apps"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "evictor"},
         "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "ops"}]},
        {"apiVersion": RBAC, "kind": "RoleBinding", "metadata": {"name": "dev-all", "namespace": "apps"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "node-reader"},
         "subjects": [{"kind": "Group", "name": "dev"}]},
    ],
}


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    with SandboxProcess(SCENARIO, state_dir=tmp_path_factory.mktemp("rbac-sb")) as process:
        yield process


def call(sb: SandboxProcess, method: str, path: str, token: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
    return sb.request(method, path, body, headers={"Authorization": f"Bearer {token}"}, **kw)


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_kubectl_auth_can_i_answers_for_a_service_account(sb: SandboxProcess, version: str):
    def can_i(*args: str) -> tuple[int, str]:
        done = sb.kubectl("auth", "can-i", f"--as={SA}", *args, version=version)
        assert done.stdout.strip() in ("yes", "no"), done.stderr
        return done.returncode, done.stdout.strip()

    assert can_i("list", "nodes") == (0, "yes")  # ClusterRoleBinding: everywhere
    assert can_i("delete", "nodes") == (1, "no")
    assert can_i("create", "pods", "--subresource=eviction", "-n", "apps") == (0, "yes")
    assert can_i("create", "pods", "--subresource=eviction", "-n", "default") == (1, "no")  # RoleBinding: apps only
    assert can_i("delete", "pods", "-n", "apps") == (1, "no")
    assert can_i("get", "configmaps/app-config", "-n", "apps") == (0, "yes")  # resourceNames
    assert can_i("get", "configmaps/other", "-n", "apps") == (1, "no")
    assert can_i("get", "nodes", "--subresource=proxy") == (0, "yes")


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_kubectl_auth_can_i_list_shows_the_rules_of_the_namespace(sb: SandboxProcess, version: str):
    done = sb.kubectl("auth", "can-i", "--list", f"--as={SA}", "-n", "apps", version=version)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:] if not line.startswith(" ")}
    assert "[create]" in rows["pods/eviction"] and "[app-config]" in rows["configmaps"]
    assert "[get list]" in rows["nodes"] and "selfsubjectaccessreviews.authorization.k8s.io" in rows
    elsewhere = sb.kubectl("auth", "can-i", "--list", f"--as={SA}", "-n", "default", version=version).stdout
    assert "pods/eviction" not in elsewhere and "nodes" in elsewhere
    admin = sb.kubectl("auth", "can-i", "--list", version=version)
    assert admin.returncode == 0 and "*.*" in admin.stdout  # the sandbox's kubeconfig stays all-powerful


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_kubectl_as_a_service_account_gets_the_api_servers_forbidden_message(sb: SandboxProcess, version: str):
    denied = sb.kubectl("get", "pods", "-n", "default", f"--as={SA}", version=version)
    assert denied.returncode == 1
    assert (f'Error from server (Forbidden): pods is forbidden: User "{SA}" cannot list resource "pods" in API '
            'group "" in the namespace "default"') in denied.stderr
    assert sb.kubectl("get", "nodes", f"--as={SA}", version=version).returncode == 0
    assert sb.kubectl("get", "pods", "-n", "apps", f"--as={SA}", version=version).returncode == 0


def test_a_token_is_authorized_as_its_service_account_and_a_denial_is_a_403_status(sb: SandboxProcess):
    code, body = call(sb, "GET", "/api/v1/namespaces/default/pods/x", "runner-token")
    assert code == 403
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": f'pods "x" is forbidden: User "{SA}" cannot get resource "pods" in API group "" in '
                               'the namespace "default"',
                    "reason": "Forbidden", "details": {"name": "x", "kind": "pods"}, "code": 403}
    code, body = call(sb, "DELETE", "/apis/apps/v1/namespaces/apps/deployments", "runner-token")
    assert code == 403 and body["message"] == (
        f'deployments.apps is forbidden: User "{SA}" cannot deletecollection resource "deployments" in API group '
        '"apps" in the namespace "apps"') and body["details"] == {"group": "apps", "kind": "deployments"}
    code, body = call(sb, "POST", "/api/v1/namespaces/apps/pods/web/eviction", "runner-token",
                      {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web"}},
                      )
    assert code == 201, body
    code, body = call(sb, "GET", "/api/v1/nodes/worker-1", "runner-token")
    assert code == 200 and body["metadata"]["name"] == "worker-1"
    code, body = call(sb, "GET", "/api/v1/nodes/worker-1", "forged-token")
    assert code == 401


def test_a_group_bound_user_and_watch_by_name(sb: SandboxProcess):
    code, _ = call(sb, "GET", "/api/v1/nodes", "dev-token")
    assert code == 403  # bound by a RoleBinding: a namespace-scoped grant never reaches cluster-scoped nodes
    code, body = call(sb, "GET", "/api/v1/namespaces/apps/pods?watch=true&timeoutSeconds=1", "runner-token")
    assert code == 403 and 'cannot watch resource "pods"' in body["message"]


def test_token_request_issues_a_token_that_dies_with_its_service_account(sb: SandboxProcess, tmp_path: Path):
    code, answer = call(sb, "POST", "/api/v1/namespaces/ops/serviceaccounts/runner/token", "kubeops-sandbox-token",
                        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}})
    assert code == 201 and answer["kind"] == "TokenRequest" and answer["spec"]["expirationSeconds"] == 3600
    token = answer["status"]["token"]
    assert call(sb, "GET", "/api/v1/nodes", token)[0] == 200
    code, body = call(sb, "GET", "/api/v1/secrets", token)
    assert code == 403 and f'User "{SA}" cannot list resource "secrets"' in body["message"]
    assert call(sb, "POST", "/api/v1/namespaces/ops/serviceaccounts/ghost/token", "kubeops-sandbox-token",
                {"spec": {}})[0] == 404
    code, body = call(sb, "POST", "/api/v1/namespaces/ops/serviceaccounts/runner/token", "kubeops-sandbox-token",
                      {"spec": {"expirationSeconds": 60}})
    assert code == 422 and "may not specify a duration less than 10 minutes" in body["message"]
    code, body = call(sb, "POST", "/api/v1/namespaces/ops/serviceaccounts", "kubeops-sandbox-token",
                      {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "short-lived"}})
    assert code == 201, body
    code, answer = call(sb, "POST", "/api/v1/namespaces/ops/serviceaccounts/short-lived/token",
                        "kubeops-sandbox-token", {"spec": {}})
    short = answer["status"]["token"]
    assert call(sb, "GET", "/api/v1/nodes", short)[0] == 403  # authenticated, nothing granted
    assert call(sb, "DELETE", "/api/v1/namespaces/ops/serviceaccounts/short-lived", "kubeops-sandbox-token")[0] == 200
    assert call(sb, "GET", "/api/v1/nodes", short)[0] == 401


def test_impersonation_needs_the_impersonate_verb(sb: SandboxProcess):
    code, body = sb.request("GET", "/api/v1/nodes", headers={"Authorization": "Bearer runner-token",
                                                             "Impersonate-User": "jane"})
    assert code == 403 and body["message"] == (
        f'users "jane" is forbidden: User "{SA}" cannot impersonate resource "users" in API group "" at the '
        "cluster scope")


# ---- rule semantics, no server -----------------------------------------------------------------------------------

USER = rbac.user_named(SA)


def attrs(verb: str, resource: str, *, group: str = "", sub: str = "", name: str = "", ns: str = "") -> rbac.Attributes:
    return rbac.Attributes(user=USER, verb=verb, group=group, resource=resource, subresource=sub, name=name,
                           namespace=ns)


@pytest.mark.parametrize(("rule", "request_attrs", "allowed"), [
    ({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}, attrs("get", "pods"), True),
    ({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}, attrs("list", "pods"), False),
    ({"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}, attrs("deletecollection", "pods"), True),
    ({"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["get"]}, attrs("get", "pods"), False),
    ({"apiGroups": ["*"], "resources": ["deployments"], "verbs": ["get"]},
     attrs("get", "deployments", group="apps"), True),
    # a resource does not cover its subresources, and the other way round
    ({"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}, attrs("create", "pods", sub="eviction"), False),
    ({"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]}, attrs("create", "pods"), False),
    ({"apiGroups": [""], "resources": ["*/eviction"], "verbs": ["create"]},
     attrs("create", "pods", sub="eviction"), True),
    ({"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}, attrs("get", "nodes", sub="proxy"), True),
    # resourceNames restrict to named requests; a list or create has no name
    ({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"], "resourceNames": ["a"]},
     attrs("get", "configmaps", name="a"), True),
    ({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"], "resourceNames": ["a"]},
     attrs("list", "configmaps"), False),
])
def test_rule_allows_like_kube_apiserver(rule: dict[str, Any], request_attrs: rbac.Attributes, allowed: bool):
    assert rbac.rule_allows(request_attrs, rule) is allowed


def test_service_accounts_get_their_groups():
    assert USER.groups == ("system:serviceaccounts", "system:serviceaccounts:ops", "system:authenticated")
    assert not USER.is_admin and rbac.ADMIN.is_admin


def test_kubectl_create_token_issues_a_service_account_token(sb: SandboxProcess):
    # kubectl 1.33 sends the TokenRequest as protobuf: decoding request bodies is the server's generic job
    made = sb.kubectl("create", "token", "runner", "-n", "ops", "--duration=1h", version="1.27")
    assert made.returncode == 0, made.stderr
    code, body = call(sb, "GET", "/api/v1/secrets", made.stdout.strip())
    assert code == 403 and body["message"].startswith(f'secrets is forbidden: User "{SA}" cannot list')
    assert call(sb, "GET", "/api/v1/nodes", made.stdout.strip())[0] == 200
