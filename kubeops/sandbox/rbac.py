"""Who is asking and may they: authentication, RBAC authorization, access reviews and TokenRequest.

Why: kubeops ships a least-privilege ClusterRole for its in-cluster CronJob; only a server that enforces RBAC can
prove that role is enough and no more. So the sandbox evaluates Roles, ClusterRoles, RoleBindings and
ClusterRoleBindings the way kube-apiserver's RBAC authorizer does (rbac/validation RuleAllows), answers
``SelfSubjectAccessReview`` / ``SelfSubjectRulesReview`` (``kubectl auth can-i [--list]``) and issues
ServiceAccount tokens (``POST .../serviceaccounts/<name>/token``, what ``kubectl create token`` calls).

Users:
- the sandbox's own kubeconfig token (and every token in the scenario setting ``tokens``) is ``kubernetes-admin``
  in ``system:masters``: always allowed, RBAC on or off, like a kubeadm admin certificate;
- ``token_users`` (``{token: "system:serviceaccount:<ns>:<name>"}`` or ``{token: {user, groups}}``) and tokens
  issued by TokenRequest are who they name; ServiceAccounts get the ``system:serviceaccounts[:<ns>]`` groups;
- no Authorization header is the admin too: kubectl and client-go never send a kubeconfig's token over plain
  HTTP (clientcmd reads user credentials only for TLS), and the sandbox serves plain HTTP, so its own admin
  kubeconfig must keep working without one. To act as someone else with kubectl, impersonate:
  ``kubectl --as=system:serviceaccount:<ns>:<name>`` (the ``Impersonate-User``/``-Group`` headers, which only a
  user allowed to ``impersonate`` may send). kubeops' Python client sends its token over HTTP, so a kubeops run
  under a ServiceAccount token is authorized as that ServiceAccount.

With the scenario setting ``rbac: true`` every resource request is authorized; a denial is the API server's 403
(``pods "x" is forbidden: User "..." cannot get resource "pods" in API group "" in the namespace "default"``).
Without it every authenticated request is allowed (AlwaysAllow), which is what all other tests rely on.
Non-resource paths (discovery, /version, /openapi) are open to everyone, like the default
system:discovery/system:public-info-viewer bindings, and every user may create the self reviews.
"""

from __future__ import annotations

import base64
import hashlib
import os
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kubeops.sandbox import status as st
from kubeops.sandbox.discovery import ResourceInfo, SubresourceInfo

if TYPE_CHECKING:
    from kubeops.sandbox.cluster import Cluster

ADMIN_TOKEN = "kubeops-sandbox-token"  # the one in the sandbox's kubeconfig; not a secret
AUTHZ_GROUP = "authorization.k8s.io"
REVIEW_KINDS = {
    f"selfsubjectaccessreviews.{AUTHZ_GROUP}": "SelfSubjectAccessReview",
    f"selfsubjectrulesreviews.{AUTHZ_GROUP}": "SelfSubjectRulesReview",
}
DEFAULT_TOKEN_TTL_S = 3600
_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
# What kube-apiserver's bootstrap policy gives every authenticated user (system:basic-user, system:discovery).
_BASIC_RULES: tuple[dict[str, Any], ...] = (
    {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"]},
    {"verbs": ["create"], "apiGroups": [AUTHZ_GROUP],
     "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},
)
_BASIC_NON_RESOURCE: tuple[dict[str, Any], ...] = (
    {"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                                           "/openapi/*", "/readyz", "/version", "/version/"]},
)
_ADMIN_RULES: tuple[dict[str, Any], ...] = ({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},)
_ADMIN_NON_RESOURCE: tuple[dict[str, Any], ...] = ({"verbs": ["*"], "nonResourceURLs": ["*"]},)


@dataclass(frozen=True, slots=True)
class User:
    """An authenticated (or anonymous) requester."""

    name: str
    groups: tuple[str, ...] = ()

    @property
    def is_admin(self) -> bool:
        return "system:masters" in self.groups


ADMIN = User("kubernetes-admin", ("system:masters", "system:authenticated"))


def user_named(name: str, groups: Iterable[str] = ()) -> User:
    """A user with the groups kube-apiserver adds: ServiceAccounts get theirs, everyone system:authenticated."""
    extra: list[str] = list(groups)
    if name.startswith("system:serviceaccount:"):
        namespace = name.split(":")[2]
        extra += ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    extra.append("system:authenticated")
    return User(name, tuple(dict.fromkeys(extra)))


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a request asks to do, as the authorizer sees it (k8s.io/apiserver authorizer.Attributes)."""

    user: User
    verb: str
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    namespace: str = ""
    path: str = ""
    resource_request: bool = True


def check_settings(settings: dict[str, Any]) -> Iterator[tuple[tuple[str, ...], str]]:
    """(key path, problem) for each malformed ``rbac`` / ``tokens`` / ``token_users`` scenario setting."""
    if "rbac" in settings and not isinstance(settings["rbac"], bool):
        yield ("rbac",), f"must be true or false, got {settings['rbac']!r}"
    tokens = settings.get("tokens")
    if tokens is not None and (not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens)):
        yield ("tokens",), "must be a list of token strings"
    users = settings.get("token_users")
    if users is None:
        return
    if not isinstance(users, dict):
        yield ("token_users",), "must be a mapping of token -> user name or {user, groups}"
        return
    for token, who in users.items():
        if isinstance(who, str) and who:
            continue
        if isinstance(who, dict) and isinstance(who.get("user"), str) and who["user"] and set(who) <= {
                "user", "groups"} and isinstance(who.get("groups", []), list):
            continue
        yield ("token_users", str(token)), "must be a user name or {user: name, groups: [..]}"


# ---- authentication ---------------------------------------------------------------------------------------------

@dataclass
class _Issued:
    user: User
    namespace: str
    name: str
    uid: str
    expires: float


_ISSUED: weakref.WeakKeyDictionary[Any, dict[str, _Issued]] = weakref.WeakKeyDictionary()


def authenticate(cluster: Cluster, header: str | None) -> User | None:
    """The user a request's Authorization header names; None for a token nobody issued (401)."""
    if not header:
        return ADMIN
    token = header.removeprefix("Bearer ").strip()
    settings = cluster.settings
    mapped = (settings.get("token_users") or {}).get(token)
    if mapped is not None:
        if isinstance(mapped, str):
            return user_named(mapped)
        return user_named(str(mapped.get("user", "")), mapped.get("groups") or ())
    issued = _ISSUED.get(cluster, {}).get(token)
    if issued is not None:
        if issued.expires < cluster.clock.now():
            return None
        try:
            sa = cluster.store.get("serviceaccounts", issued.namespace, issued.name, copy=False)
        except st.ApiError:
            return None  # the ServiceAccount was deleted: its bound tokens die with it
        if sa["metadata"].get("uid") != issued.uid:
            return None
        return issued.user
    tokens = settings.get("tokens") or [ADMIN_TOKEN]
    if "*" in tokens or token in tokens:
        return ADMIN
    return None


def impersonate(cluster: Cluster, user: User, name: str | None, groups: list[str]) -> User:
    """The user named by Impersonate-User/-Group, if `user` may impersonate them (403 otherwise)."""
    if not name:
        if groups:
            raise st.ApiError(500, "InternalError", "Internal error occurred: requested [" + ", ".join(
                f"{{Group  {g}  authentication.k8s.io/v1  }}" for g in groups) + "] without impersonating a user")
        return user
    if name.startswith("system:serviceaccount:") and name.count(":") == 3:
        _, _, namespace, sa = name.split(":")
        wanted = Attributes(user=user, verb="impersonate", resource="serviceaccounts", name=sa, namespace=namespace)
    else:
        wanted = Attributes(user=user, verb="impersonate", resource="users", name=name)
    check(cluster, wanted)
    for group in groups:
        check(cluster, Attributes(user=user, verb="impersonate", resource="groups", name=group))
    return user_named(name, groups)


# ---- request attributes -----------------------------------------------------------------------------------------

def request_attributes(user: User, method: str, *, group: str, version: str, info: ResourceInfo,
                       namespace: str | None, name: str | None, subresource: str | None,
                       query: dict[str, str]) -> Attributes:
    """The authorizer's view of a routed resource request (RequestInfoFactory's verb rules)."""
    verb = _VERBS.get(method.upper(), method.lower())
    if not name and not subresource:
        if verb == "get":
            verb = "watch" if query.get("watch") in ("1", "true", "True") else "list"
        elif verb == "delete":
            verb = "deletecollection"
        if verb in ("list", "watch"):
            for term in (query.get("fieldSelector") or "").split(","):
                key, _, value = term.partition("=")
                if key.strip() == "metadata.name" and value and not value.startswith("="):
                    name = value
    elif verb == "get" and query.get("watch") in ("1", "true", "True"):
        verb = "watch"
    if info.plural == "namespaces" and name:
        namespace = name
    return Attributes(user=user, verb=verb, group=group, version=version, resource=info.plural,
                      subresource=subresource or "", name=name or "", namespace=namespace or "")


# ---- RBAC evaluation --------------------------------------------------------------------------------------------

def enabled(cluster: Cluster) -> bool:
    return bool(cluster.settings.get("rbac"))


def _has(values: Iterable[str] | None, wanted: str) -> bool:
    values = list(values or ())
    return "*" in values or wanted in values


def rule_allows(attrs: Attributes, rule: dict[str, Any]) -> bool:
    """rbac/validation RuleAllows: verbs, apiGroups, resources (with ``*/sub``), resourceNames, nonResourceURLs."""
    if not _has(rule.get("verbs"), attrs.verb):
        return False
    if not attrs.resource_request:
        for url in rule.get("nonResourceURLs") or ():
            if url == "*" or url == attrs.path or (url.endswith("*") and attrs.path.startswith(url[:-1])):
                return True
        return False
    if not _has(rule.get("apiGroups"), attrs.group):
        return False
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    if not any(r == "*" or r == combined or (attrs.subresource and r == f"*/{attrs.subresource}")
               for r in rule.get("resources") or ()):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


def _subject_matches(subject: dict[str, Any], user: User, binding_namespace: str) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return subject.get("name") == user.name
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{namespace}:{subject.get('name')}"
    return False


def _describe_subject(subject: dict[str, Any], binding_namespace: str) -> str:
    if subject.get("kind") == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return f'ServiceAccount "{subject.get("name")}/{namespace}"'
    return f'{subject.get("kind")} "{subject.get("name")}"'


def _role_rules(cluster: Cluster, ref: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    try:
        if ref.get("kind") == "ClusterRole":
            role = cluster.store.get("clusterroles.rbac.authorization.k8s.io", None, ref.get("name", ""), copy=False)
        else:
            role = cluster.store.get("roles.rbac.authorization.k8s.io", namespace, ref.get("name", ""), copy=False)
    except st.ApiError:
        return []  # a binding to a missing role grants nothing, as in kube-apiserver
    return list(role.get("rules") or [])


def _applicable(cluster: Cluster, user: User, namespace: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(source description, rule) for every rule bound to `user` that applies in `namespace` ("" = cluster)."""
    store = cluster.store
    for binding in store.list("clusterrolebindings.rbac.authorization.k8s.io", copy=False).items:
        subjects = [s for s in binding.get("subjects") or () if _subject_matches(s, user, "")]
        if not subjects:
            continue
        ref = binding.get("roleRef") or {}
        source = (f'ClusterRoleBinding "{binding["metadata"]["name"]}" of {ref.get("kind")} "{ref.get("name")}" '
                  f'to {_describe_subject(subjects[0], "")}')
        for rule in _role_rules(cluster, ref, ""):
            yield source, rule
    if not namespace:
        return
    for binding in store.list("rolebindings.rbac.authorization.k8s.io", namespace=namespace, copy=False).items:
        subjects = [s for s in binding.get("subjects") or () if _subject_matches(s, user, namespace)]
        if not subjects:
            continue
        ref = binding.get("roleRef") or {}
        meta = binding["metadata"]
        source = (f'RoleBinding "{meta["name"]}/{namespace}" of {ref.get("kind")} "{ref.get("name")}" '
                  f'to {_describe_subject(subjects[0], namespace)}')
        for rule in _role_rules(cluster, ref, namespace):
            yield source, rule


def authorize(cluster: Cluster, attrs: Attributes) -> tuple[bool, str]:
    """(allowed, reason) as kube-apiserver's authorizer chain answers: masters, then RBAC (when on)."""
    if attrs.user.is_admin or not enabled(cluster):
        return True, ""
    authenticated = "system:authenticated" in attrs.user.groups
    basic = _BASIC_RULES if attrs.resource_request else _BASIC_NON_RESOURCE
    if (authenticated or not attrs.resource_request) and any(rule_allows(attrs, r) for r in basic):
        return True, 'RBAC: allowed by ClusterRoleBinding "system:basic-user" of ClusterRole "system:basic-user" ' \
                     'to Group "system:authenticated"'
    for source, rule in _applicable(cluster, attrs.user, attrs.namespace):
        if rule_allows(attrs, rule):
            return True, f"RBAC: allowed by {source}"
    return False, ""


def forbidden(attrs: Attributes) -> st.ApiError:
    """The 403 kube-apiserver writes (responsewriters.Forbidden + apierrors.NewForbidden)."""
    user = attrs.user.name
    if not attrs.resource_request:
        return st.ApiError(403, "Forbidden", f'forbidden: User "{user}" cannot {attrs.verb} path "{attrs.path}"',
                           details={})
    what = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    scope = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    text = f'User "{user}" cannot {attrs.verb} resource "{what}" in API group "{attrs.group}" {scope}'
    qualified = st.qualified(attrs.group, attrs.resource)
    subject = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    details: dict[str, Any] = {}
    if attrs.name:
        details["name"] = attrs.name
    if attrs.group:
        details["group"] = attrs.group
    details["kind"] = attrs.resource
    return st.ApiError(403, "Forbidden", f"{subject} is forbidden: {text}", details=details)


def check(cluster: Cluster, attrs: Attributes) -> None:
    """Raise the 403 when `attrs` is not allowed."""
    allowed, _ = authorize(cluster, attrs)
    if not allowed:
        raise forbidden(attrs)


# ---- the self reviews -------------------------------------------------------------------------------------------

def is_review(info: ResourceInfo) -> bool:
    return info.key in REVIEW_KINDS


def review(cluster: Cluster, user: User, info: ResourceInfo, version: str, body: Any) -> tuple[int, dict[str, Any]]:
    """Answer a SelfSubjectAccessReview or SelfSubjectRulesReview (201, the review with its status filled in).

    `body` is already decoded by the server (JSON, or protobuf as kubectl 1.33 sends it)."""
    kind = REVIEW_KINDS[info.key]
    if not isinstance(body, dict):
        raise st.bad_request("the body of the request was in an unknown format")
    spec = body.get("spec") or {}
    out = {"kind": kind, "apiVersion": f"{AUTHZ_GROUP}/{version}",
           "metadata": {"creationTimestamp": None, **{k: v for k, v in (body.get("metadata") or {}).items()
                                                      if k in ("name", "labels", "annotations")}},
           "spec": spec}
    if kind == "SelfSubjectAccessReview":
        out["status"] = _access_review(cluster, user, spec)
    else:
        out["status"] = _rules_review(cluster, user, str(spec.get("namespace") or ""))
    return 201, out


def _access_review(cluster: Cluster, user: User, spec: dict[str, Any]) -> dict[str, Any]:
    res, non = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if res is None and non is None:
        raise st.invalid(AUTHZ_GROUP, "SelfSubjectAccessReview", "", [(
            "FieldValueRequired", "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified")])
    if res is not None:
        attrs = Attributes(user=user, verb=str(res.get("verb") or ""), group=str(res.get("group") or ""),
                           version=str(res.get("version") or ""), resource=str(res.get("resource") or ""),
                           subresource=str(res.get("subresource") or ""), name=str(res.get("name") or ""),
                           namespace=str(res.get("namespace") or ""))
    else:
        attrs = Attributes(user=user, verb=str(non.get("verb") or ""), path=str(non.get("path") or ""),
                           resource_request=False)
    allowed, reason = authorize(cluster, attrs)
    status: dict[str, Any] = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return status


def _rules_review(cluster: Cluster, user: User, namespace: str) -> dict[str, Any]:
    if user.is_admin or not enabled(cluster):
        rules, non = list(_ADMIN_RULES), list(_ADMIN_NON_RESOURCE)
    else:
        rules, non = [], []
        for _source, rule in _applicable(cluster, user, namespace):
            if rule.get("nonResourceURLs"):
                non.append({"verbs": rule.get("verbs") or [], "nonResourceURLs": rule["nonResourceURLs"]})
            else:
                rules.append({k: rule[k] for k in ("verbs", "apiGroups", "resources", "resourceNames")
                              if rule.get(k)})
        if "system:authenticated" in user.groups:
            rules += [dict(r) for r in _BASIC_RULES]
        non += [dict(r) for r in _BASIC_NON_RESOURCE]
    return {"resourceRules": rules, "nonResourceRules": non, "incomplete": False}


# ---- TokenRequest -----------------------------------------------------------------------------------------------

def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _token_request(cluster: Cluster, namespace: str | None, name: str, body: dict[str, Any],
                   dry_run: bool) -> tuple[int, dict[str, Any]]:
    """POST serviceaccounts/<name>/token: a bearer token that authenticates as that ServiceAccount."""
    sa = cluster.store.get("serviceaccounts", namespace, name, copy=False)
    spec = dict(body.get("spec") or {})
    ttl = spec.get("expirationSeconds") or DEFAULT_TOKEN_TTL_S
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 600:
        raise st.invalid("authentication.k8s.io", "TokenRequest", name, [(
            "FieldValueInvalid", "spec.expirationSeconds",
            f"Invalid value: {ttl}: may not specify a duration less than 10 minutes")])
    spec["expirationSeconds"] = ttl
    spec.setdefault("audiences", ["https://kubernetes.default.svc.cluster.local"])
    spec.setdefault("boundObjectRef", None)
    expires = cluster.clock.now() + ttl
    payload = f"{namespace}:{name}:{os.urandom(12).hex()}".encode()
    token = "sandbox." + base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + \
        hashlib.sha256(payload).hexdigest()[:16]
    if not dry_run:
        user = user_named(f"system:serviceaccount:{namespace}:{name}")
        issued = _ISSUED.setdefault(cluster, {})
        issued[token] = _Issued(user, namespace or "", name, sa["metadata"].get("uid", ""), expires)
    return 201, {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                 "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
                 "spec": spec, "status": {"token": token, "expirationTimestamp": _iso(expires)}}


def install(cluster: Cluster) -> None:
    """Serve authorization.k8s.io/v1 self reviews and the ServiceAccount token subresource."""
    reviews = [ResourceInfo(plural=key.split(".")[0], kind=kind, group=AUTHZ_GROUP, versions=("v1",),
                            namespaced=False, verbs=("create",)) for key, kind in REVIEW_KINDS.items()]
    cluster.catalog.add_group(AUTHZ_GROUP, "v1", reviews)
    sa = cluster.catalog.by_key("serviceaccounts")
    if sa.subresource("token") is None:
        from dataclasses import replace

        token = SubresourceInfo("token", "TokenRequest", ("create",), group="authentication.k8s.io", version="v1")
        cluster.catalog.replace(replace(sa, subresources=(*sa.subresources, token)))
    cluster.subresources[("serviceaccounts", "token")] = _token_request
