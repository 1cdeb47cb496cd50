"""``/openapi/v2``: the Swagger 2.0 document, in JSON or in the protobuf form kubectl asks for.

kubectl before 1.30 (1.27 here) reads ``kubectl explain`` schemas from OpenAPI v2, fetched as
``application/com.github.proto-openapi.spec.v2@v1.0+protobuf``: gnostic's ``openapi.v2.Document`` message, which it
decodes with kube-openapi's proto models (definitions, their ``x-kubernetes-group-version-kind`` vendor extension,
``$ref`` to ``#/definitions/...``). Only the parts of that message those readers use are written here, by a small
protobuf writer (field numbers from gnostic's OpenAPIv2.proto), so no generated gnostic code is needed.

The definitions are the upstream ones (`kubeops.sandbox.openapi.upstream_definitions`), limited to what the served
kinds reach.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from kubeops.sandbox import openapi
from kubeops.sandbox.discovery import Catalog, ResourceInfo

PROTOBUF_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_REF_PREFIX = "#/definitions/"
_SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "description": "IntOrString is a type that can hold an int32 or a string.", "type": "string",
        "format": "int-or-string"},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "description": "Quantity is a fixed-point representation of a number.", "type": "string"},
}


def render(catalog: Catalog, accept: str | None) -> tuple[bytes, str]:
    """The document as protobuf when the client asks for it, JSON otherwise: (body, Content-Type)."""
    infos = tuple(catalog.resources)
    if "protobuf" in (accept or ""):
        return _proto_bytes(infos), PROTOBUF_TYPE
    return json.dumps(_document(infos), separators=(",", ":")).encode(), "application/json"


def document(catalog: Catalog) -> dict[str, Any]:
    return _document(tuple(catalog.resources))


@functools.lru_cache(maxsize=8)
def _document(infos: tuple[ResourceInfo, ...]) -> dict[str, Any]:
    defs = openapi.upstream_definitions()
    wanted = {(i.group, v, k) for i in infos for v in i.versions for k in (i.kind, i.kind + "List")}
    roots = [name for name, schema in defs.items()
             if any((g.get("group", ""), g.get("version", ""), g.get("kind", "")) in wanted
                    for g in schema.get("x-kubernetes-group-version-kind") or ())]
    definitions: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in definitions or name not in defs:
            continue
        definitions[name] = _SPECIAL.get(name) or _schema(defs[name])
        todo.extend(openapi.schema_refs(definitions[name], _REF_PREFIX))
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.33.0"}, "paths": {},
            "definitions": dict(sorted(definitions.items()))}


def _schema(schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$ref":
            out["$ref"] = _REF_PREFIX + value.rsplit("/", 1)[-1]
        elif key == "type" and isinstance(value, list):
            kinds = [t for t in value if t != "null"]
            if kinds:
                out["type"] = kinds[0]
        elif key == "properties":
            out["properties"] = {p: _schema(s) for p, s in value.items()}
            for p in ("apiVersion", "kind"):  # enums added by the JSON Schema conversion, not upstream
                if p in out["properties"]:
                    out["properties"][p].pop("enum", None)
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _schema(value)
        else:
            out[key] = value
    return out


# ---- gnostic openapi.v2 protobuf -----------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, bytes, messages)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _text(number: int, text: str) -> bytes:
    return _field(number, text.encode()) if text else b""


def _flag(number: int, value: bool) -> bytes:
    return _varint(number << 3) + b"\x01" if value else b""


def _any(value: Any) -> bytes:
    """gnostic Any: the value as YAML text (field 2); JSON is YAML."""
    return _text(2, json.dumps(value))


def _named_any(name: str, value: Any) -> bytes:
    return _text(1, name) + _field(2, _any(value))


def _schema_proto(schema: dict[str, Any]) -> bytes:
    """gnostic Schema (field numbers: _ref 1, format 2, description 4, default 5, required 19, enum 20,
    additional_properties 21, type 22, items 23, all_of 24, properties 25, read_only 27, vendor_extension 31)."""
    out = bytearray()
    out += _text(1, schema.get("$ref", ""))
    out += _text(2, schema.get("format", ""))
    out += _text(4, schema.get("description", ""))
    if "default" in schema:
        out += _field(5, _any(schema["default"]))
    for name in schema.get("required") or ():
        out += _text(19, name)
    for value in schema.get("enum") or ():
        out += _field(20, _any(value))
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        out += _field(21, _field(1, _schema_proto(extra)))
    elif isinstance(extra, bool):
        out += _field(21, _flag(2, extra))
    if schema.get("type"):
        out += _field(22, _text(1, schema["type"]))
    if isinstance(schema.get("items"), dict):
        out += _field(23, _field(1, _schema_proto(schema["items"])))
    for sub in schema.get("allOf") or ():
        out += _field(24, _schema_proto(sub))
    if schema.get("properties"):
        props = b"".join(_field(1, _text(1, name) + _field(2, _schema_proto(sub)))
                         for name, sub in schema["properties"].items())
        out += _field(25, props)
    out += _flag(27, bool(schema.get("readOnly")))
    for key, value in schema.items():
        if key.startswith("x-"):
            out += _field(31, _named_any(key, value))
    return bytes(out)


@functools.lru_cache(maxsize=8)
def _proto_bytes(infos: tuple[ResourceInfo, ...]) -> bytes:
    """gnostic Document: swagger 1, info 2 (title 1, version 2), paths 8, definitions 9."""
    doc = _document(infos)
    info = _text(1, doc["info"]["title"]) + _text(2, doc["info"]["version"])
    definitions = b"".join(_field(1, _text(1, name) + _field(2, _schema_proto(schema)))
                           for name, schema in doc["definitions"].items())
    return _text(1, doc["swagger"]) + _field(2, info) + _field(8, b"") + _field(9, definitions)
