"""`Status` bodies shaped exactly like kube-apiserver's, raised as `ApiError` anywhere below the HTTP layer.

Clients (kubectl, the official Python client, our own kubeops.clients) parse ``reason``, ``code``, ``details``
and print ``message``; tests compare messages with a real server's, so the texts here are copied shapes, e.g.
``pods "x" not found`` and ``Operation cannot be fulfilled on nodes "x": the object has been modified; please apply
your changes to the latest version and try again``.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error response: HTTP code plus a Status body. Handlers raise it; the server serialises it."""

    def __init__(self, code: int, reason: str, message: str, *, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return failure(self.code, self.reason, self.message, details=self.details)


def failure(code: int, reason: str, message: str, *, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
    }
    if reason:  # an error of no known kind carries none (StatusReasonUnknown), as upstream
        body["reason"] = reason
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def success(*, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details is not None:
        body["details"] = details
    return body


def _details(name: str | None, group: str, plural: str, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if name is not None:
        d["name"] = name
    if group:
        d["group"] = group
    d["kind"] = plural
    d.update(extra)
    return d


def qualified(group: str, plural: str) -> str:
    return plural if not group else f"{plural}.{group}"


def not_found(group: str, plural: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{qualified(group, plural)} "{name}" not found',
                    details=_details(name, group, plural))


def already_exists(group: str, plural: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{qualified(group, plural)} "{name}" already exists',
                    details=_details(name, group, plural))


def conflict(group: str, plural: str, name: str, reason_text: str | None = None) -> ApiError:
    text = reason_text or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {qualified(group, plural)} "{name}": {text}',
                    details=_details(name, group, plural))


def invalid(group: str, kind: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """422 Invalid; causes are (reason e.g. FieldValueRequired, field, message)."""
    text = ", ".join(f"{f}: {m}" if f else m for _, f, m in causes)
    if len(causes) > 1:
        text = "[" + text + "]"
    message = f'{kind}{"." + group if group else ""} "{name}" is invalid: {text}'
    return ApiError(422, "Invalid", message, details={
        "name": name, **({"group": group} if group else {}), "kind": kind,
        "causes": [{"reason": r, "message": m, "field": f} for r, f, m in causes],
    })


def forbidden_named(group: str, plural: str, name: str, why: str, *,
                    causes: list[dict[str, str]] | None = None) -> ApiError:
    """403 from an admission plug-in (not RBAC): ``namespaces "default" is forbidden: <why>``."""
    extra = {"causes": causes} if causes else {}
    return ApiError(403, "Forbidden", f'{qualified(group, plural)} "{name}" is forbidden: {why}',
                    details=_details(name, group, plural, **extra))


def namespace_terminating(group: str, plural: str, name: str, namespace: str) -> ApiError:
    """The NamespaceLifecycle admission plug-in refusing a create in a namespace being deleted."""
    return forbidden_named(group, plural, name, f"unable to create new content in namespace {namespace} because "
                           "it is being terminated", causes=[{"reason": "NamespaceTerminating", "message":
                                                              f"namespace {namespace} is being terminated",
                                                              "field": "metadata.namespace"}])


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", details={})


def gone(message: str = "too old resource version") -> ApiError:
    return ApiError(410, "Expired", message)


def too_many_requests(message: str, retry_after_s: int = 1) -> ApiError:
    return ApiError(429, "TooManyRequests", message, details={"retryAfterSeconds": retry_after_s},
                    headers={"Retry-After": str(retry_after_s)})


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted media '
                    f'types include: application/json-patch+json, application/merge-patch+json, '
                    f'application/apply-patch+yaml, application/strategic-merge-patch+json; got "{content_type}"')


FAULT_USER = "system:serviceaccount:kube-system:kubeops"
_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def forbidden(method: str, path: str, user: str = FAULT_USER) -> dict[str, Any]:
    """An RBAC denial for a request path, worded like kube-apiserver's authorizer (a Status body)."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        verb = _VERBS.get(method.upper(), method.lower())
        return failure(403, "Forbidden", f'forbidden: User "{user}" cannot {verb} path "{path}"', details={})
    namespace = None
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) >= 2 else None
    if len(rest) == 2 and resource == "namespaces":
        namespace = name
    sub = rest[2] if len(rest) >= 3 else ""
    verb = _VERBS.get(method.upper(), method.lower())
    if name is None and verb in ("get", "delete"):
        verb = "list" if verb == "get" else "deletecollection"
    scope = f'in the namespace "{namespace}"' if namespace and resource != "namespaces" else "at the cluster scope"
    what = f"{resource}/{sub}" if sub else resource
    subject = f'{qualified(group, resource)} "{name}"' if name else qualified(group, resource)
    message = (f'{subject} is forbidden: User "{user}" cannot {verb} resource "{what}" in API group "{group}" '
               f"{scope}")
    return failure(403, "Forbidden", message, details=_details(name, group, resource))
