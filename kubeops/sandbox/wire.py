"""Content negotiation for the sandbox's HTTP face: which bytes a request body holds, which bytes an answer gets.

Request bodies: JSON (and YAML for patches) as before, plus ``application/vnd.kubernetes.protobuf``, which
kubectl 1.33 sends for built-in kinds (see `kubeops.sandbox.protobuf`).

Answers: protobuf only when the client accepts nothing else (``Accept: application/vnd.kubernetes.protobuf``;
watch streams then go out as length-delimited frames), otherwise JSON, which every client that lists protobuf
first (kubectl, client-go) also takes. JSON ends with a newline as the API server's Go encoder writes it; Status
bodies are encoded byte for byte like kube-apiserver's (keys in Go struct order, compact, ``<``, ``>``, ``&``
escaped as ``\\u003c`` and friends).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kubeops.sandbox import protobuf

PROTOBUF = protobuf.MEDIA_TYPE
PROTOBUF_WATCH = f"{PROTOBUF};stream=watch"
_STATUS_ORDER = ("kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code")
_DETAILS_ORDER = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")
_CAUSE_ORDER = ("reason", "message", "field")


def media_type(header: str | None) -> str:
    return (header or "").split(";")[0].strip().lower()


def is_protobuf(content_type: str | None) -> bool:
    return media_type(content_type) == PROTOBUF


def accepts_only_protobuf(accept: str | None) -> bool:
    types = [media_type(t) for t in (accept or "").split(",") if t.strip()]
    return bool(types) and all(t == PROTOBUF for t in types)


def decode_protobuf(raw: bytes) -> dict[str, Any]:
    """A protobuf request body as the JSON dict the handlers take; `ValueError` when it is not one."""
    return protobuf.decode(raw)


def encode(body: Any, *, accept: str | None, content_type: str,
           dumps: Callable[[Any], bytes]) -> tuple[bytes, str]:
    """The bytes and Content-Type of an answer (`dumps` is the server's fast JSON encoder)."""
    if (accept and "protobuf" in accept and content_type == "application/json" and isinstance(body, dict)
            and accepts_only_protobuf(accept)):
        data = protobuf.encode(body)
        if data is not None:
            return data, PROTOBUF
    if isinstance(body, dict) and body.get("kind") == "Status" and body.get("apiVersion") == "v1":
        return status_json(body), content_type
    return dumps(body) + b"\n", content_type


def _ordered(obj: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    out = {k: obj[k] for k in order if k in obj}
    out.update((k, v) for k, v in obj.items() if k not in out)
    return out


def status_json(body: dict[str, Any]) -> bytes:
    """A Status as kube-apiserver writes it: ``{"kind":"Status","apiVersion":"v1","metadata":{},...}`` + newline."""
    out = _ordered(body, _STATUS_ORDER)
    details = out.get("details")
    if isinstance(details, dict):
        details = _ordered(details, _DETAILS_ORDER)
        if isinstance(details.get("causes"), list):
            details["causes"] = [_ordered(c, _CAUSE_ORDER) if isinstance(c, dict) else c for c in details["causes"]]
        out["details"] = details
    return go_json(out) + b"\n"


def go_json(value: Any) -> bytes:
    """Compact JSON escaped like Go's encoding/json (HTML characters and U+2028/2029), UTF-8 otherwise."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                          ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text.encode()


def watch_in_protobuf(accept: str | None, api_version: str, kind: str) -> bool:
    """Whether a watch stream goes out as length-delimited protobuf frames (the client accepts nothing else)."""
    return bool(accept and "protobuf" in accept and accepts_only_protobuf(accept)
                and protobuf.has_message(api_version, kind))


def watch_event(event_type: str, obj: Any, *, as_protobuf: bool, dumps: Callable[[Any], bytes]) -> bytes:
    """One watch event's bytes: a JSON line, or a protobuf frame."""
    if as_protobuf:
        return protobuf.watch_frame(event_type, obj)
    return dumps({"type": event_type, "object": obj}) + b"\n"
