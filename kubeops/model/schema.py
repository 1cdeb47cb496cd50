"""The playbook JSON Schema (for editors), shipped as `schema.json`, optionally sharpened with the registry.

`schema.json` describes the shape; `build_schema(registry)` adds, per action, the arguments it accepts, so an
editor can complete them. The loader remains the authority (references and includes are beyond a schema).
"""

from __future__ import annotations

import copy
import json
import types
import typing
from functools import cache
from importlib import resources
from typing import Any

from kubeops.actions.registry import Registry


@cache
def _base() -> dict[str, Any]:
    return json.loads(resources.files("kubeops.model").joinpath("schema.json").read_text(encoding="utf-8"))


def base_schema() -> dict[str, Any]:
    """The shipped schema (a copy)."""
    return copy.deepcopy(_base())


def _json_type(tp: Any) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_json_type(a) for a in typing.get_args(tp)]}
    if origin is list:
        return {"type": "array"}
    if origin is dict:
        return {"type": "object"}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
    if tp in simple:
        # a whole-string reference (${...}) may stand for any type
        return {"anyOf": [{"type": simple[tp]}, {"type": "string", "pattern": "\\$\\{"}]}
    return {}


def build_schema(registry: Registry) -> dict[str, Any]:
    """The shipped schema plus, for each registered action, its arguments (names, types, required)."""
    schema = base_schema()
    step = schema["$defs"]["step"]
    step["properties"]["action"]["enum"] = registry.names()
    rules = []
    for spec in registry:
        params = spec.param_specs()
        args = {
            "type": "object",
            "additionalProperties": False,
            "properties": {n: {**_json_type(p.type), "description": p.description} for n, p in params.items()},
            "required": [n for n, p in params.items() if p.required],
        }
        rules.append(
            {
                "if": {"required": ["action"], "properties": {"action": {"const": spec.name}}},
                "then": {"properties": {"args": args}},
            }
        )
    step["allOf"] = rules
    return schema
