"""OpenAPI v3 documents as kube-apiserver serves them: ``/openapi/v3`` (an index) and one document per group version.

Two clients read them. kubectl (1.27+) validates manifests by asking the server (``fieldValidation=Strict``) when
the group version's document shows a PATCH operation for the kind with a ``fieldValidation`` query parameter
(otherwise it downloads OpenAPI v2, and ``apply``/``create`` fail without it). ``kubectl explain`` finds a kind's
schema in ``components.schemas`` by its ``x-kubernetes-group-version-kind`` and follows the references.

The schemas are the upstream ones: kubernetes-validate ships the Kubernetes OpenAPI definitions per version as
JSON Schema (``$defs``, nullable ``type: [T, "null"]``, ``apiVersion``/``kind`` enums added); they are turned back
into the OpenAPI 3.0 shape the API server writes (``#/components/schemas/...`` references wrapped in ``allOf``
when a description sits beside them, IntOrString as ``type: string, format: int-or-string``). Each group version
document carries the schemas its kinds reach. Without kubernetes-validate installed the documents carry no schemas
(explain then fails, everything else works).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from kubeops.sandbox.discovery import Catalog, ResourceInfo

_QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force")
SCHEMA_VERSION = "v1.33.0"
_REF_PREFIX = "#/components/schemas/"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def root(catalog: Catalog) -> dict[str, Any]:
    paths = {}
    gvs = [("", "v1")] + [(g, v) for g, versions in catalog.groups.items() for v in versions]
    for group, version in gvs:
        digest = _digest(_served(catalog, group, version), group, version)
        gv = _gv_path(group, version)
        paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
    return {"paths": paths}


@functools.lru_cache(maxsize=256)
def _digest(infos: tuple[ResourceInfo, ...], group: str, version: str) -> str:
    text = json.dumps(_group_version(infos, group, version), sort_keys=True)
    return hashlib.sha512(text.encode()).hexdigest()[:64].upper()


def _served(catalog: Catalog, group: str, version: str) -> tuple[ResourceInfo, ...]:
    return tuple(i for i in catalog.resources if i.group == group and version in i.versions)


def _op(info: ResourceInfo, group: str, version: str, action: str, schema: str | None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": "OK"}
    if schema:
        response["content"] = {"application/json": {"schema": {"$ref": _REF_PREFIX + schema}}}
    return {
        "operationId": f"{action}{info.kind}",
        "parameters": [{"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                       for p in _QUERY_PARAMS],
        "responses": {"200": response},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": info.kind},
    }


def group_version(catalog: Catalog, group: str, version: str) -> dict[str, Any] | None:
    """The document for one group version (shared and cached: serialise it, do not change it)."""
    if not catalog.has_group_version(group, version):
        return None
    return _group_version(_served(catalog, group, version), group, version)


@functools.lru_cache(maxsize=64)
def _group_version(infos: tuple[ResourceInfo, ...], group: str, version: str) -> dict[str, Any]:
    prefix = "/" + _gv_path(group, version)
    by_gvk = _schemas_by_gvk()
    paths: dict[str, Any] = {}
    roots: list[str] = []
    for info in infos:
        schema = by_gvk.get((group, version, info.kind))
        list_schema = by_gvk.get((group, version, info.kind + "List"))
        roots += [s for s in (schema, list_schema) if s]
        base = f"{prefix}/namespaces/{{namespace}}/{info.plural}" if info.namespaced else f"{prefix}/{info.plural}"
        item: dict[str, Any] = {"get": _op(info, group, version, "get", schema)}
        collection: dict[str, Any] = {"get": _op(info, group, version, "list", list_schema)}
        if "patch" in info.verbs:
            item["patch"] = _op(info, group, version, "patch", schema)
        if "update" in info.verbs:
            item["put"] = _op(info, group, version, "put", schema)
        if "create" in info.verbs:
            collection["post"] = _op(info, group, version, "post", schema)
        paths[f"{base}/{{name}}"] = item
        paths[base] = collection
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": _closure(roots)},
    }


# ---- the upstream schemas ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def upstream_definitions() -> dict[str, Any]:
    """kubernetes-validate's ``$defs`` for `SCHEMA_VERSION` (JSON Schema form), or {} when it is not installed."""
    try:
        import kubernetes_validate
    except ImportError:
        return {}
    path = (Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"{SCHEMA_VERSION}-local"
            / "_definitions.json")
    if not path.exists():
        return {}
    return json.loads(path.read_text())["$defs"]


@functools.lru_cache(maxsize=1)
def _components() -> dict[str, Any]:
    return {name: _to_openapi(schema, name) for name, schema in upstream_definitions().items()}


@functools.lru_cache(maxsize=1)
def _schemas_by_gvk() -> dict[tuple[str, str, str], str]:
    out: dict[tuple[str, str, str], str] = {}
    for name, schema in upstream_definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or ():
            out.setdefault((gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", "")), name)
    return out


def _closure(roots: list[str]) -> dict[str, Any]:
    components = _components()
    out: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in out or name not in components:
            continue
        out[name] = components[name]
        todo.extend(schema_refs(components[name]))
    return dict(sorted(out.items()))


def schema_refs(schema: Any, prefix: str = _REF_PREFIX) -> list[str]:
    """Names of every schema `schema` references (``$ref`` values less `prefix`), nested ones included."""
    if isinstance(schema, dict):
        found = [schema["$ref"][len(prefix):]] if isinstance(schema.get("$ref"), str) else []
        return found + [r for v in schema.values() for r in schema_refs(v, prefix)]
    if isinstance(schema, list):
        return [r for v in schema for r in schema_refs(v, prefix)]
    return []


def _to_openapi(schema: dict[str, Any], name: str = "") -> dict[str, Any]:
    """One JSON Schema definition in the OpenAPI 3.0 shape kube-apiserver writes."""
    if name == _INT_OR_STRING:
        return {"description": "IntOrString is a type that can hold an int32 or a string.", "type": "string",
                "format": "int-or-string"}
    if name == _QUANTITY:
        return {"description": "Quantity is a fixed-point representation of a number.", "type": "string"}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$ref":
            continue
        if key == "type" and isinstance(value, list):
            kinds = [t for t in value if t != "null"]
            if kinds:
                out["type"] = kinds[0]
        elif key == "properties":
            out["properties"] = {
                prop: _property(prop, sub) for prop, sub in value.items()
            }
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _property("", value)
        else:
            out[key] = value
    return out


def _property(prop: str, schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = _REF_PREFIX + ref.rsplit("/", 1)[-1]
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        if not rest:
            return {"$ref": target}
        return {"allOf": [{"$ref": target}], **_to_openapi(rest)}
    out = _to_openapi(schema)
    if prop in ("apiVersion", "kind"):
        out.pop("enum", None)  # added by the JSON Schema conversion, not upstream
    return out
