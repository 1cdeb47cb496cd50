"""The request's ``fieldValidation`` directive (Strict / Warn / Ignore), carried from the HTTP layer to the store's
hooks, and the warnings a write collects for the ``Warning`` response header.

Why a context variable: the store's defaulters see only ``(obj, old)``, yet what happens to an unknown field
depends on the request (kubectl 1.27+ sends ``fieldValidation=Strict`` on create, replace and apply; a client that
sends nothing gets ``Warn``, kube-apiserver's default). The server opens `writing` around each API request on its
own thread; hooks read `current` (None for internal writers: controllers, scenario loading, which prune silently).

What kube-apiserver answers for unknown fields, reproduced by `report_unknown_fields`:
- create/update, Strict: 400 BadRequest ``<Kind> in version "<v>" cannot be handled as a <Kind>: strict decoding
  error: unknown field "spec.foo", unknown field "spec.bar"``;
- patch, Strict: 422 Invalid, field ``patch``, the patched object as JSON, then the same strict decoding error;
- Warn: one ``299 - "unknown field \\"spec.foo\\""`` warning per field (kubectl prints ``Warning: unknown field
  "spec.foo"``); Ignore: nothing. Server-side apply refuses them whatever the directive (see
  `report_unknown_fields`).
An unsupported directive is refused like upstream (422 on ``CreateOptions``/``UpdateOptions``/``PatchOptions``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from kubeops.sandbox import status as st
from kubeops.sandbox.crdschema import go_json, go_quote

STRICT, WARN, IGNORE = "Strict", "Warn", "Ignore"
_VERBS = {"POST": ("create", "CreateOptions"), "PUT": ("update", "UpdateOptions"), "PATCH": ("patch", "PatchOptions")}


@dataclass(slots=True)
class WriteRequest:
    """One API write as the hooks need to know it; ``warnings`` fills while the store works."""

    directive: str
    verb: str  # "create", "update", "patch" ("" for reads)
    version: str  # the version in the URL: which schema of a CRD applies
    subresource: str | None
    content_type: str = ""
    warnings: list[str] = field(default_factory=list)


_current: ContextVar[WriteRequest | None] = ContextVar("kubeops_sandbox_write_request", default=None)


def current() -> WriteRequest | None:
    return _current.get()


@contextlib.contextmanager
def writing(method: str, query: Mapping[str, str], *, version: str, subresource: str | None,
            content_type: str = "") -> Iterator[WriteRequest]:
    """Make this request's directive visible to the store's hooks until the block ends."""
    verb, options = _VERBS.get(method, ("", ""))
    value = query.get("fieldValidation", "")
    if verb and value not in ("", STRICT, WARN, IGNORE):
        raise st.invalid("meta.k8s.io", options, "", [(
            "FieldValueNotSupported", "fieldValidation",
            f'Unsupported value: "{value}": supported values: "", "Ignore", "Strict", "Warn"')])
    request = WriteRequest(directive=value or WARN, verb=verb, version=version, subresource=subresource,
                           content_type=content_type)
    token = _current.set(request)
    try:
        yield request
    finally:
        _current.reset(token)


def report_unknown_fields(paths: list[str], *, kind: str, patched: Any = None, obj: Any = None) -> None:
    """Refuse or warn about pruned fields as the current request asks (nothing outside a request).

    Server-side apply is strict whatever the directive, as upstream: its typed patch cannot hold a field the
    schema does not declare (500, ``failed to create typed patch object (...): .spec.foo: field not declared in
    schema``, which kubectl prints as "Error from server: ...")."""
    request = current()
    if not paths or request is None or not request.verb:
        return
    if "apply-patch" in request.content_type:
        meta = (obj or {}).get("metadata") or {}
        where = f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"
        errors = [f".{p}: field not declared in schema" for p in paths]
        text = errors[0] if len(errors) == 1 else "errors:\n" + "\n".join(f"  {e}" for e in errors)
        raise st.ApiError(500, "", f"failed to create typed patch object ({where}; "
                                   f"{(obj or {}).get('apiVersion')}, Kind={kind}): {text}")
    errors = [f'unknown field "{p}"' for p in paths]
    if request.directive == WARN:
        request.warnings.extend(errors)
    elif request.directive == STRICT:
        text = "strict decoding error: " + ", ".join(errors)
        if request.verb == "patch":
            raise st.invalid("", "", "", [("FieldValueInvalid", "patch",
                                           f"Invalid value: {go_quote(go_json(patched))}: {text}")])
        raise st.bad_request(f'{kind} in version "{request.version}" cannot be handled as a {kind}: {text}')


def warning_header() -> str | None:
    """The ``Warning`` header value for what the current request collected (RFC 7234 code 299), or None."""
    request = current()
    if request is None or not request.warnings:
        return None
    return ", ".join('299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"' for w in request.warnings)
