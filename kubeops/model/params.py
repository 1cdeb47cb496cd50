"""Binding run parameters: playbook defaults < inventory defaults < values given by the user.

Values from the command line arrive as strings (``--param count=3``) and are converted to the declared type;
values from Python callers may already be typed. Unknown and missing parameters are input errors (exit 2).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubeops.errors import InputError
from kubeops.model.playbook import ParamDecl, Playbook

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def coerce(decl: ParamDecl, value: Any) -> Any:
    """`value` converted to `decl.type`, or InputError saying what was expected."""
    if decl.accepts(value) and value is not None:
        return float(value) if decl.type == "number" else value
    if isinstance(value, str):
        text = value.strip()
        try:
            if decl.type == "integer":
                return int(text)
            if decl.type == "number":
                return float(text)
            if decl.type == "boolean":
                if text.lower() in _TRUE:
                    return True
                if text.lower() in _FALSE:
                    return False
            if decl.type in ("list", "mapping"):
                if text.startswith(("[", "{")):
                    parsed = json.loads(text)
                    if decl.accepts(parsed):
                        return parsed
                elif decl.type == "list":
                    return [item.strip() for item in text.split(",") if item.strip()]
        except ValueError:
            pass
    expected = {
        "list": 'list (JSON like ["a","b"] or comma-separated)',
        "mapping": "mapping (JSON object)",
    }.get(decl.type, decl.type)
    raise InputError(f"parameter {decl.name!r} must be {expected}, got {value!r}")


def bind_params(
    playbook: Playbook,
    given: Mapping[str, Any],
    *,
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The parameters of a run. `defaults` (the inventory's) apply only to parameters the playbook declares."""
    declared = {p.name: p for p in playbook.params}
    for name in given:
        if name not in declared:
            raise InputError(
                f"{playbook.path}: params: playbook {playbook.name!r} has no parameter {name!r}",
                hint=f"it takes: {', '.join(declared) or '(no parameters)'}",
            )
    bound: dict[str, Any] = {}
    for name, decl in declared.items():
        where = f"{decl.source or playbook.path}: params.{name}"  # the declaration a bad value is checked against
        if name in given and given[name] is not None:
            try:
                bound[name] = coerce(decl, given[name])
            except InputError as exc:
                raise InputError(f"{where}: {exc.message}", hint=exc.hint) from None
        elif defaults and name in defaults:
            bound[name] = coerce(decl, defaults[name])
        elif decl.default is not None:
            bound[name] = decl.default
        elif decl.required:
            raise InputError(
                f"{where}: playbook {playbook.name!r} needs parameter {name!r}"
                + (f" ({decl.description})" if decl.description else ""),
                hint=f"pass --param {name}=...",
            )
        else:
            bound[name] = None
    return bound
