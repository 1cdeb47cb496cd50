"""The smallest OpenAPI v3 kubectl needs: one document per group version listing its PATCH operations.

kubectl (1.27+) validates manifests by asking the server (``fieldValidation=Strict``) when the group version's
OpenAPI v3 document shows a PATCH operation for the kind with a ``fieldValidation`` query parameter; otherwise it
downloads OpenAPI v2 to validate client-side, and ``kubectl apply``/``create`` fail without it. Schemas are left
out: kubectl then computes apply patches from its built-in types, which covers every kind the sandbox serves.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kubeops.sandbox.discovery import Catalog, ResourceInfo

_QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force")


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def root(catalog: Catalog) -> dict[str, Any]:
    paths = {}
    gvs = [("", "v1")] + [(g, v) for g, versions in catalog.groups.items() for v in versions]
    for group, version in gvs:
        doc = group_version(catalog, group, version)
        digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:64].upper()
        gv = _gv_path(group, version)
        paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
    return {"paths": paths}


def _op(info: ResourceInfo, group: str, version: str, action: str) -> dict[str, Any]:
    return {
        "operationId": f"{action}{info.kind}",
        "parameters": [{"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                       for p in _QUERY_PARAMS],
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": info.kind},
    }


def group_version(catalog: Catalog, group: str, version: str) -> dict[str, Any] | None:
    if not catalog.has_group_version(group, version):
        return None
    prefix = "/" + _gv_path(group, version)
    paths: dict[str, Any] = {}
    for info in catalog.resources:
        if info.group != group or version not in info.versions:
            continue
        base = f"{prefix}/namespaces/{{namespace}}/{info.plural}" if info.namespaced else f"{prefix}/{info.plural}"
        item: dict[str, Any] = {"get": _op(info, group, version, "get")}
        collection: dict[str, Any] = {"get": _op(info, group, version, "list")}
        if "patch" in info.verbs:
            item["patch"] = _op(info, group, version, "patch")
        if "update" in info.verbs:
            item["put"] = _op(info, group, version, "put")
        if "create" in info.verbs:
            collection["post"] = _op(info, group, version, "post")
        paths[f"{base}/{{name}}"] = item
        paths[base] = collection
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }
