"""What apiextensions-apiserver does with a CRD version's ``openAPIV3Schema``: prune, default, validate.

Pure functions over a schema (a CRD's JSON, unchanged) and a custom resource (JSON-shaped dicts), wired into the
store by `kubeops.sandbox.crds`. Why ours and not a JSON Schema library: users read the API server's messages
(`kubectl apply` prints them verbatim) and those come from kube-openapi's validator wrapped in apimachinery's
field errors, which no generic library words the same way. The wording below follows Kubernetes 1.33:

- a cause is ``(reason, field, message)`` as `kubeops.sandbox.store` validators return them; the message is the
  field error's body, e.g. ``Invalid value: "string": spec.replicas in body must be of type integer: "string"``
  (reason ``FieldValueTypeInvalid``), ``Required value``, ``Unsupported value: "x": supported values: "a", "b"``,
  ``Too long: may not be more than 5 bytes``, ``Too many: 4: must have at most 3 items``; the rest are
  ``Invalid value: <value>: <kube-openapi's sentence>``, whose subject is the path from the schema's root
  (``spec.containers[0].port``; for the status subresource, relative to ``status``);
- errors from anyOf/oneOf/allOf/not and from an int32/int64 range carry no field (``<nil>``, or ``status``), as
  kube-apiserver reports them; int32/int64 ranges are checked as newer servers do (1.33 ignored those formats);
- string formats are the ones CRDs support (date, date-time, ipv4, ipv6, cidr, mac, uuid*, byte, hostname,
  email, uri, duration...; isbn, creditcard and the like are accepted unchecked); others are ignored, like upstream;
- on an update, a subtree equal to the stored one is not validated again (CRD validation ratcheting, on by default
  since 1.30), so a schema tightened after the fact does not block unrelated changes;
- pruning drops fields the schema does not name (not under ``x-kubernetes-preserve-unknown-fields``; apiVersion,
  kind and metadata of the root and of ``x-kubernetes-embedded-resource`` objects are kept) and reports their
  paths (``spec.foo``, ``spec.items[0].bar``) for the request's field validation; unknown root ``metadata`` fields
  go too. Non-nullable nulls without a default are dropped, then ``default`` values fill absent (or null) fields,
  top-down, so a defaulted object gets its own nested defaults.

List types: items of an ``x-kubernetes-list-type: set`` and keys of a ``map`` list must be unique (checked on an
update only when the stored object had no such duplicates, like upstream's ratcheting).

Not done: CEL rules (``x-kubernetes-validations``), validation of embedded ``metadata`` beyond its type,
ratcheting through lists.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from kubeops.sandbox.metrics import go_float  # Go's shortest float text, as the API server prints values

Schema = Mapping[str, Any]
Cause = tuple[str, str, str]
_META_FIELDS = ("apiVersion", "kind", "metadata")
_OBJECT_META = frozenset((
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences", "finalizers",
    "managedFields"))
_TYPES = ("object", "array", "string", "integer", "number", "boolean")
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_NO_FIELD = "<nil>"  # what apimachinery prints for a field error without a path


# ---- values as Go prints them ------------------------------------------------------------------------------


def go_quote(text: str) -> str:
    """Go's %q of a string (strconv.Quote): what field errors put around string values."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_json(value: Any) -> str:
    """encoding/json's rendering: sorted keys, no spaces, <, > and & escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_value(value: Any) -> str:
    """A field error's bad value as apimachinery writes it after ``Invalid value: ``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return go_quote(value)
    return go_json(value)


def _bound(value: float) -> str:
    """A schema bound (a float64 in the API server) as %v prints it."""
    return go_float(float(value))


# ---- schema reading ----------------------------------------------------------------------------------------


def _types(schema: Schema) -> list[str]:
    if schema.get("x-kubernetes-int-or-string"):
        return ["integer", "string"]
    kind = schema.get("type")
    return [kind] if isinstance(kind, str) and kind else []


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null" if value is None else type(value).__name__


def _is_json_integer(value: float) -> bool:
    """swag.IsFloat64AJSONInteger: an integral float (within a relative 1e-9) counts as an integer."""
    if math.isnan(value) or math.isinf(value) or abs(value) > 2**53:
        return False
    if value == int(value):
        return True
    truncated = float(int(value))
    return abs(value - truncated) / (abs(value) + abs(truncated)) < 1e-9


def _property(schema: Schema | None, key: str) -> Schema | None:
    """The schema of ``key`` in an object: a named property, else an additionalProperties schema (else None)."""
    if schema is None:
        return None
    props = schema.get("properties") or {}
    if key in props:
        return props[key] or {}
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        return extra
    return None


def _has_property_schema(schema: Schema, key: str) -> tuple[bool, Schema | None]:
    """(known, schema): whether pruning keeps ``key``, and the schema to prune its value with."""
    props = schema.get("properties") or {}
    if key in props:
        return True, props[key] or {}
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        return True, extra
    if extra is True:
        return True, None
    return False, None


def status_schema(schema: Schema | None) -> Schema | None:
    """The schema the status subresource validates ``status`` with (None: nothing to check)."""
    if not schema:
        return None
    status = (schema.get("properties") or {}).get("status")
    return status if isinstance(status, Mapping) else None


# ---- pruning -----------------------------------------------------------------------------------------------


def prune(obj: dict[str, Any], schema: Schema | None) -> list[str]:
    """Drop what the schema does not specify from a custom resource (in place); the dropped paths, sorted.

    The root keeps apiVersion, kind and metadata (only ObjectMeta's own fields survive in metadata)."""
    unknown: list[str] = []
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        for key in [k for k in meta if k not in _OBJECT_META]:
            del meta[key]
            unknown.append(f"metadata.{key}")
    root = dict(schema or {})
    root["x-kubernetes-embedded-resource"] = True
    _prune(obj, root, "", unknown)
    return sorted(unknown)


def _join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _prune(value: Any, schema: Schema | None, path: str, unknown: list[str]) -> None:
    if schema is not None and schema.get("x-kubernetes-preserve-unknown-fields"):
        _prune_known(value, schema, path, unknown)
        return
    if isinstance(value, dict):
        embedded = schema is not None and schema.get("x-kubernetes-embedded-resource")
        for key in list(value):
            if embedded and key in _META_FIELDS:
                continue
            known, sub = _has_property_schema(schema, key) if schema is not None else (False, None)
            if known:
                _prune(value[key], sub, _join(path, key), unknown)
            else:
                unknown.append(_join(path, key))
                del value[key]
    elif isinstance(value, list):
        items = schema.get("items") if schema is not None else None
        for i, item in enumerate(value):
            _prune(item, items if isinstance(items, Mapping) else None, f"{path}[{i}]", unknown)


def _prune_known(value: Any, schema: Schema | None, path: str, unknown: list[str]) -> None:
    """Under x-kubernetes-preserve-unknown-fields: unknown keys stay, known ones are pruned by their schema."""
    if schema is None:
        return
    if isinstance(value, dict):
        embedded = schema.get("x-kubernetes-embedded-resource")
        for key in list(value):
            if embedded and key in _META_FIELDS:
                continue
            known, sub = _has_property_schema(schema, key)
            if known and sub is not None:
                _prune(value[key], sub, _join(path, key), unknown)
    elif isinstance(value, list):
        items = schema.get("items")
        for i, item in enumerate(value):
            _prune_known(item, items if isinstance(items, Mapping) else None, f"{path}[{i}]", unknown)


# ---- defaulting --------------------------------------------------------------------------------------------


def _nulls_out(value: Any, schema: Schema | None) -> bool:
    return value is None and schema is not None and not schema.get("nullable") and "default" not in schema


def drop_nulls(value: Any, schema: Schema | None) -> None:
    """Remove null fields the schema neither allows (nullable) nor defaults, like kube-apiserver before defaulting."""
    if isinstance(value, dict):
        for key in list(value):
            sub = _property(schema, key)
            if _nulls_out(value[key], sub):
                del value[key]
            else:
                drop_nulls(value[key], sub)
    elif isinstance(value, list):
        items = schema.get("items") if schema is not None else None
        for item in value:
            drop_nulls(item, items if isinstance(items, Mapping) else None)


def _copy(value: Any) -> Any:
    """A private copy of a default (JSON-shaped), so objects never share it."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _null_to_default(value: Any, schema: Schema | None) -> bool:
    return value is None and schema is not None and not schema.get("nullable") and "default" in schema


def apply_defaults(value: Any, schema: Schema | None) -> None:
    """Fill absent (or non-nullable null) fields from ``default``, then the defaults' own nested defaults."""
    if schema is None:
        return
    if isinstance(value, dict):
        for key, prop in (schema.get("properties") or {}).items():
            if isinstance(prop, Mapping) and "default" in prop and prop["default"] is not None and (
                    key not in value or _null_to_default(value[key], prop)):
                value[key] = _copy(prop["default"])
        extra = schema.get("additionalProperties")
        for key in list(value):
            props = schema.get("properties") or {}
            if key in props:
                apply_defaults(value[key], props[key])
            elif isinstance(extra, Mapping):
                if _null_to_default(value[key], extra):
                    value[key] = _copy(extra["default"])
                apply_defaults(value[key], extra)
    elif isinstance(value, list):
        items = schema.get("items")
        if not isinstance(items, Mapping):
            return
        for i, item in enumerate(value):
            if _null_to_default(item, items):
                value[i] = _copy(items["default"])
            apply_defaults(value[i], items)


# ---- validation --------------------------------------------------------------------------------------------


class _Errors:
    """Collects kube-openapi's errors, already turned into field causes the way apiextensions-apiserver does."""

    def __init__(self, root: str | None) -> None:
        self.root = root  # the field path the schema's root stands for: None (the object) or "status"
        self.causes: list[Cause] = []

    def field(self, name: str) -> str:
        if name and name != ".":
            name = name[1:] if name.startswith(".") else name
            return f"{self.root}.{name}" if self.root else name
        return self.root or _NO_FIELD

    def add(self, reason: str, name: str, message: str) -> None:
        self.causes.append((reason, self.field(name), message))

    def invalid(self, name: str, value: Any, detail: str) -> None:
        self.add("FieldValueInvalid", name, f"Invalid value: {render_value(value)}: {detail}")

    def plain(self, detail: str) -> None:
        """An error kube-openapi raises without a path (composition, number ranges): reported on the root."""
        self.causes.append(("FieldValueInvalid", self.root or _NO_FIELD, f'Invalid value: "": {detail}'))


def _subject(name: str) -> str:
    return f"{name} in body"


def validate(obj: Any, schema: Schema | None, *, old: Any = None, root: str | None = None) -> list[Cause]:
    """Check ``obj`` against ``schema``: the causes kube-apiserver reports, in its words (see module docstring).

    ``old`` is the stored object on an update (unchanged subtrees are not checked again); ``root`` is the field
    the schema's root stands for (``"status"`` for the status subresource's schema)."""
    if not schema:
        return []
    errors = _Errors(root)
    _validate(obj, schema, "", old, old is not None, errors)
    if root is None and isinstance(obj, dict):
        _validate_embedded(obj, schema, None, errors, root=True)
    return errors.causes


def _same(a: Any, b: Any) -> bool:
    """JSON equality (True is not 1, 1.0 is 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    return bool(a == b) and (a is None) == (b is None)


def _validate(value: Any, schema: Schema, name: str, old: Any, has_old: bool, errors: _Errors) -> None:
    if has_old and _same(value, old):
        return  # ratcheting: what did not change is not judged again
    types = _types(schema)
    if value is None:
        if types and not schema.get("nullable"):
            _type_error(errors, name, ",".join(types), "null")
        _check_enum(value, schema, name, errors)
        return
    kind = _json_type(value)
    fmt = _format(schema)
    if types:
        numeric = "number" in types or "integer" in types
        lenient = not numeric and fmt and kind in ("string", "array")
        if not lenient and not (kind in types or (kind == "number" and "integer" in types and _is_json_integer(value))
                                or (kind == "integer" and "number" in types)):
            _type_error(errors, name, ",".join(types), kind)
    _check_composition(value, schema, name, errors)
    if kind == "string":
        _check_string(value, schema, name, errors)
        if fmt and not _format_ok(fmt, value):
            errors.add("FieldValueTypeInvalid", name, f"Invalid value: {go_quote(value)}: {_subject(name)} must be of "
                                                      f"type {fmt}: {go_quote(value)}")
    elif kind in ("integer", "number"):
        _check_number(value, schema, name, errors)
    elif kind == "array":
        _check_array(value, schema, name, old if isinstance(old, list) else None, errors)
    _check_enum(value, schema, name, errors)
    if kind == "object":
        _check_object(value, schema, name, old if isinstance(old, dict) else None, has_old, errors)


def _type_error(errors: _Errors, name: str, expected: str, actual: str) -> None:
    errors.add("FieldValueTypeInvalid", name, f"Invalid value: {go_quote(actual)}: {_subject(name)} must be of type "
                                              f"{expected}: {go_quote(actual)}")


def _valid(value: Any, schema: Schema, name: str) -> list[Cause]:
    probe = _Errors(None)
    _validate(value, schema, name, None, False, probe)
    return probe.causes


def _check_composition(value: Any, schema: Schema, name: str, errors: _Errors) -> None:
    """allOf / anyOf / oneOf / not: the alternatives' own errors, then kube-openapi's summary without a field."""
    if not ("anyOf" in schema or "oneOf" in schema or "allOf" in schema or "not" in schema):
        return
    subject = go_quote(name)
    any_of = [s for s in schema.get("anyOf") or () if isinstance(s, Mapping)]
    if any_of:
        results = [_valid(value, s, name) for s in any_of]
        if all(results):
            errors.plain(f"{subject} must validate at least one schema (anyOf)")
            errors.causes.extend(_rebase(min(results, key=len), errors))
    one_of = [s for s in schema.get("oneOf") or () if isinstance(s, Mapping)]
    if one_of:
        results = [_valid(value, s, name) for s in one_of]
        passed = sum(1 for r in results if not r)
        if passed != 1:
            found = "Found none valid" if passed == 0 else f"Found {passed} valid alternatives"
            errors.plain(f"{subject} must validate one and only one schema (oneOf). {found}")
            if passed == 0:
                errors.causes.extend(_rebase(min(results, key=len), errors))
    all_of = [s for s in schema.get("allOf") or () if isinstance(s, Mapping)]
    if all_of:
        results = [_valid(value, s, name) for s in all_of]
        for r in results:
            errors.causes.extend(_rebase(r, errors))
        passed = sum(1 for r in results if not r)
        if passed != len(all_of):
            errors.plain(f"{subject} must validate all the schemas (allOf){'. None validated' if not passed else ''}")
    not_schema = schema.get("not")
    if isinstance(not_schema, Mapping) and not _valid(value, not_schema, name):
        errors.plain(f"{subject} must not validate the schema (not)")


def _rebase(causes: list[Cause], errors: _Errors) -> list[Cause]:
    """Causes collected without a root, moved under ``errors.root`` (the status subresource's)."""
    if not errors.root:
        return causes
    out = []
    for reason, field, message in causes:
        out.append((reason, errors.root if field == _NO_FIELD else f"{errors.root}.{field}", message))
    return out


def _check_string(value: str, schema: Schema, name: str, errors: _Errors) -> None:
    """maxLength, minLength, pattern: like kube-openapi, only the first failure of the three is reported."""
    length = len(value)
    if isinstance(schema.get("maxLength"), int) and length > schema["maxLength"]:
        errors.add("FieldValueTooLong", name, f"Too long: may not be more than {schema['maxLength']} bytes")
        return
    if isinstance(schema.get("minLength"), int) and length < schema["minLength"]:
        errors.invalid(name, value, f"{_subject(name)} should be at least {schema['minLength']} chars long")
        return
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and pattern:
        try:
            matched = re.search(pattern, value) is not None
        except re.error as exc:
            errors.invalid(name, value, f"{_subject(name)} should match '{pattern}, but pattern is invalid: {exc}'")
            return
        if not matched:
            errors.invalid(name, value, f"{_subject(name)} should match '{pattern}'")


def _check_number(value: float, schema: Schema, name: str, errors: _Errors) -> None:
    integral = isinstance(value, int)
    fmt = schema.get("format")
    if schema.get("type") == "integer" and fmt in ("int32", "int64"):
        low, high = _INT32 if fmt == "int32" else _INT64
        if not (low <= value <= high) or (not integral and not _is_json_integer(value)):
            errors.plain(f"Checked value must be of type integer with format {fmt} in {name}")
    factor = schema.get("multipleOf")
    if isinstance(factor, (int, float)) and not isinstance(factor, bool):
        if factor <= 0:
            errors.invalid(name, factor, f"factor MultipleOf declared for {name} must be positive: {_bound(factor)}")
        elif integral and int(factor) > 0:
            if value % int(factor):
                errors.invalid(name, value, f"{_subject(name)} should be a multiple of {int(factor)}")
        else:
            mult = (1 / factor * value) if factor < 1 else (value / factor)
            if not _is_json_integer(mult):
                errors.invalid(name, value, f"{_subject(name)} should be a multiple of {_bound(factor)}")
    for key, exclusive_key, below in (("minimum", "exclusiveMinimum", True), ("maximum", "exclusiveMaximum", False)):
        bound = schema.get(key)
        if not isinstance(bound, (int, float)) or isinstance(bound, bool):
            continue
        exclusive = bool(schema.get(exclusive_key))
        limit: float = int(bound) if integral else float(bound)  # an integer is compared with int64(bound)
        if below:
            bad = value <= limit if exclusive else value < limit
            words = "greater than" if exclusive else "greater than or equal to"
        else:
            bad = value >= limit if exclusive else value > limit
            words = "less than" if exclusive else "less than or equal to"
        if bad:
            shown = str(int(bound)) if integral else _bound(bound)
            errors.invalid(name, value, f"{_subject(name)} should be {words} {shown}")


def _check_array(value: list[Any], schema: Schema, name: str, old: list[Any] | None, errors: _Errors) -> None:
    items = schema.get("items")
    if isinstance(items, Mapping):
        for i, item in enumerate(value):
            _validate(item, items, f"{name}[{i}]", None, False, errors)
    size = len(value)
    if isinstance(schema.get("minItems"), int) and size < schema["minItems"]:
        errors.invalid(name, size, f"{_subject(name)} should have at least {schema['minItems']} items")
    if isinstance(schema.get("maxItems"), int) and size > schema["maxItems"]:
        errors.add("FieldValueTooMany", name, f"Too many: {size}: must have at most {schema['maxItems']} items")
    if schema.get("uniqueItems") and any(_same(a, b) for i, a in enumerate(value) for b in value[i + 1:]):
        errors.invalid(name, "", f"{_subject(name)} shouldn't contain duplicates")


def _check_enum(value: Any, schema: Schema, name: str, errors: _Errors) -> None:
    allowed = schema.get("enum")
    if not isinstance(allowed, list) or not allowed:
        return
    if value is not None and any(_same(value, a) or (_numeric(value) and _numeric(a) and value == a) for a in allowed):
        return
    shown = ", ".join(go_quote(a if isinstance(a, str) else go_json(a)) for a in allowed)
    errors.add("FieldValueNotSupported", name, f"Unsupported value: {render_value(value)}: supported values: {shown}")


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_object(value: dict[str, Any], schema: Schema, name: str, old: dict[str, Any] | None, has_old: bool,
                  errors: _Errors) -> None:
    size = len(value)
    if isinstance(schema.get("minProperties"), int) and size < schema["minProperties"]:
        errors.invalid(name, size, f"{_subject(name)} should have at least {schema['minProperties']} properties")
    if isinstance(schema.get("maxProperties"), int) and size > schema["maxProperties"]:
        errors.add("FieldValueTooMany", name, f"Too many: {size}: must have at most {schema['maxProperties']} items")
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    if extra is False:
        for key in value:
            if key not in props:
                errors.invalid(name, key, f"{name}.{key} in body is a forbidden property")
    elif isinstance(extra, Mapping):
        for key, sub in value.items():
            if key not in props:
                _validate(sub, extra, f"{name}.{key}", *_old_child(old, key, has_old), errors)
    for key, prop in props.items():
        if key in value and isinstance(prop, Mapping):
            _validate(value[key], prop, _join(name, key), *_old_child(old, key, has_old), errors)
    for key in schema.get("required") or ():
        if key not in value:
            errors.add("FieldValueRequired", f"{name}.{key}", "Required value")


def _old_child(old: dict[str, Any] | None, key: str, has_old: bool) -> tuple[Any, bool]:
    if has_old and old is not None and key in old:
        return old[key], True
    return None, False


def _validate_embedded(value: Any, schema: Schema | None, path: str | None, errors: _Errors, *, root: bool = False
                       ) -> None:
    """x-kubernetes-embedded-resource objects need a string apiVersion and kind (the root's are the store's)."""
    if schema is None:
        return
    if isinstance(value, dict):
        if schema.get("x-kubernetes-embedded-resource") and not root:
            prefix = f"{path}." if path else ""
            for key in ("apiVersion", "kind"):
                if key not in value:
                    errors.causes.append(("FieldValueRequired", prefix + key, "Required value: must not be empty"))
                elif not isinstance(value[key], str):
                    errors.causes.append(("FieldValueInvalid", prefix + key,
                                          f"Invalid value: {render_value(value[key])}: must be a string"))
                elif not value[key]:
                    errors.causes.append(("FieldValueInvalid", prefix + key, 'Invalid value: "": must not be empty'))
            if "metadata" in value and not isinstance(value["metadata"], dict):
                errors.causes.append(("FieldValueInvalid", prefix + "metadata",
                                      f"Invalid value: {render_value(value['metadata'])}: must be an object"))
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            if key in props:
                _validate_embedded(sub, props[key], _join(path or "", key), errors)
            elif isinstance(extra, Mapping):
                _validate_embedded(sub, extra, f"{path or ''}[{key}]", errors)
    elif isinstance(value, list):
        items = schema.get("items")
        for i, item in enumerate(value):
            _validate_embedded(item, items if isinstance(items, Mapping) else None, f"{path or ''}[{i}]", errors)


# ---- list types ---------------------------------------------------------------------------------------------


def list_errors(obj: Any, schema: Schema | None) -> list[Cause]:
    """``x-kubernetes-list-type: set`` items and ``map`` keys must be unique: a Duplicate value cause at the second
    appearance, the way kube-apiserver reports it (for a map list, the bad value is the item's key fields)."""
    causes: list[Cause] = []
    if schema is not None and isinstance(obj, dict):
        _lists_in_object(obj, schema, "", causes)
    return causes


def _lists_in_object(obj: dict[str, Any], schema: Schema, path: str, causes: list[Cause]) -> None:
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        for key, value in obj.items():
            _lists(value, extra, f"{path}[{key}]", causes)
    props = schema.get("properties") or {}
    for key, value in obj.items():
        if isinstance(props.get(key), Mapping):
            _lists(value, props[key], _join(path, key), causes)


def _lists(value: Any, schema: Schema, path: str, causes: list[Cause]) -> None:
    if isinstance(value, dict):
        _lists_in_object(value, schema, path, causes)
        return
    if not isinstance(value, list):
        return
    kind = schema.get("x-kubernetes-list-type")
    if kind == "set":
        for i in _second_appearances(value):
            causes.append(("FieldValueDuplicate", f"{path}[{i}]", f"Duplicate value: {render_value(value[i])}"))
    elif kind == "map":
        _map_list(value, [str(k) for k in schema.get("x-kubernetes-list-map-keys") or ()], path, causes)
    items = schema.get("items")
    if isinstance(items, Mapping):
        for i, item in enumerate(value):
            _lists(item, items, f"{path}[{i}]", causes)


def _map_list(value: list[Any], keys: list[str], path: str, causes: list[Cause]) -> None:
    for i, item in enumerate(value):
        if item is not None and not isinstance(item, dict):
            causes.append(("FieldValueInvalid", f"{path}[{i}]", f"Invalid value: {render_value(item)}: must be an "
                                                                "object for an array of list-type map"))
            return
    identities = [{k: item[k] for k in keys if k in item} if isinstance(item, dict) else {} for item in value]
    for i in _second_appearances(identities):
        causes.append(("FieldValueDuplicate", f"{path}[{i}]", f"Duplicate value: {render_value(identities[i])}"))


def _second_appearances(values: list[Any]) -> list[int]:
    """Indices where a value shows up for the second time (1 is not 1.0 here: Go keeps int64 and float64 apart)."""
    seen: dict[str, int] = {}
    out = []
    for i, value in enumerate(values):
        tag = go_json(value) if isinstance(value, (dict, list)) else f"{type(value).__name__}:{value!r}"
        seen[tag] = seen.get(tag, 0) + 1
        if seen[tag] == 2:
            out.append(i)
    return out


# ---- string formats ----------------------------------------------------------------------------------------

_UUID = {
    "uuid": re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"),
    "uuid3": re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$"),
    "uuid4": re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"),
    "uuid5": re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"),
}
_HOSTNAME = re.compile(r"^(?=.{1,255}$)[A-Za-z0-9](?:[-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*\.?$")
_MAC = re.compile(r"^(?:[0-9A-Fa-f]{2}([:-]))(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}$|"
                  r"^(?:[0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$")
_DURATION = re.compile(r"^(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)\s*(?:ns|us|µs|ms|s|m|h|d|w|"
                       r"nanoseconds?|microseconds?|milliseconds?|seconds?|minutes?|hours?|days?|weeks?)\s*)+$")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
_PATTERNS = {
    "hexcolor": re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"),
    "ssn": re.compile(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$"),
    "bsonobjectid": re.compile(r"^[0-9a-fA-F]{24}$"),
    "rgbcolor": re.compile(r"^rgb\(\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*\)$"),
}
_UNCHECKED = frozenset(("password", "isbn", "isbn10", "isbn13", "creditcard"))
SUPPORTED_FORMATS = frozenset(("bsonobjectid", "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "mac", "uuid",
                               "uuid3", "uuid4", "uuid5", "isbn", "isbn10", "isbn13", "creditcard", "ssn",
                               "hexcolor", "rgbcolor", "byte", "password", "date", "duration", "datetime"))


def _format(schema: Schema) -> str:
    """The string format kube-apiserver enforces ("" for numbers' formats and unsupported names)."""
    fmt = schema.get("format")
    if not isinstance(fmt, str) or schema.get("type") in ("integer", "number"):
        return ""
    return fmt if fmt.replace("-", "") in SUPPORTED_FORMATS else ""


def _format_ok(fmt: str, value: str) -> bool:
    name = fmt.replace("-", "")
    if name in _UNCHECKED:
        return True
    if name in _UUID:
        return bool(_UUID[name].match(value))
    if name in _PATTERNS:
        return bool(_PATTERNS[name].match(value))
    checks = {
        "ipv4": lambda v: _ip(v, 4),
        "ipv6": lambda v: _ip(v, 6),
        "cidr": _cidr,
        "mac": lambda v: bool(_MAC.match(v)),
        "hostname": lambda v: bool(_HOSTNAME.match(v)),
        "email": lambda v: bool(_EMAIL.match(v)),
        "uri": _uri,
        "byte": _base64,
        "date": _date,
        "datetime": _datetime,
        "duration": lambda v: bool(_DURATION.match(v.strip())),
    }
    return checks.get(name, lambda v: True)(value)


def _ip(value: str, version: int) -> bool:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return address.version == version or (version == 6 and ":" in value)


def _cidr(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return "/" in value


def _uri(value: str) -> bool:
    parts = urlsplit(value)
    return bool(parts.scheme) or value.startswith("/")


def _base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except ValueError:
        return False
    return True


def _date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _datetime(value: str) -> bool:
    if not _DATETIME.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00").replace(" ", "T").replace("t", "T"))
    except ValueError:
        return False
    return True


# ---- the CRD side: is the schema structural? ---------------------------------------------------------------


def structural_errors(schema: Any, path: str) -> list[Cause]:
    """The structural-schema rules kube-apiserver checks when a CRD is written (the ones users meet), sorted by
    their text like upstream: types present and known, arrays with items, object root, no root
    additionalProperties, properties and additionalProperties not both, patterns that compile."""
    if not isinstance(schema, Mapping):
        return [("FieldValueRequired", path, "Required value: schemas are required")]
    causes: list[Cause] = []
    _structural(schema, "root", path, causes)
    return sorted(causes, key=lambda c: f"{c[1]}: {c[2]}")


def _structural(s: Mapping[str, Any], level: str, path: str, causes: list[Cause]) -> None:
    kind = s.get("type")
    if kind is not None and kind not in _TYPES:
        causes.append(("FieldValueNotSupported", f"{path}.type",
                       f"Unsupported value: {render_value(kind)}: supported values: \"array\", \"boolean\", "
                       "\"integer\", \"number\", \"object\", \"string\""))
    if kind == "array" and not isinstance(s.get("items"), Mapping):
        causes.append(("FieldValueRequired", f"{path}.items", "Required value: must be specified"))
    if isinstance(s.get("items"), Mapping):
        _structural(s["items"], "item", f"{path}.items", causes)
    props = s.get("properties")
    if isinstance(props, Mapping):
        for key, sub in props.items():
            if isinstance(sub, Mapping):
                _structural(sub, "field", f"{path}.properties[{key}]", causes)
    extra = s.get("additionalProperties")
    if extra is not None:
        if level == "root":
            causes.append(("FieldValueForbidden", f"{path}.additionalProperties", "Forbidden: must not be used at "
                                                                                  "the root"))
        if props:
            causes.append(("FieldValueForbidden", f"{path}.additionalProperties",
                           "Forbidden: additionalProperties and properties are mutual exclusive"))
        if isinstance(extra, Mapping):
            _structural(extra, "field", f"{path}.additionalProperties", causes)
    embedded = s.get("x-kubernetes-embedded-resource")
    if embedded and kind != "object":
        causes.append(("FieldValueRequired", f"{path}.type", "Required value: must be object if "
                                                             "x-kubernetes-embedded-resource is true")
                      if not kind else
                      ("FieldValueInvalid", f"{path}.type", f"Invalid value: {render_value(kind)}: must be object if "
                                                            "x-kubernetes-embedded-resource is true"))
    elif not kind and not s.get("x-kubernetes-int-or-string") and not s.get("x-kubernetes-preserve-unknown-fields"):
        where = {"root": "at the root", "item": "for specified array items", "field": "for specified object fields"}
        causes.append(("FieldValueRequired", f"{path}.type", f"Required value: must not be empty {where[level]}"))
    if level == "root" and kind and kind != "object":
        causes.append(("FieldValueInvalid", f"{path}.type", f"Invalid value: {render_value(kind)}: must be object "
                                                            "at the root"))
    pattern = s.get("pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as exc:
            causes.append(("FieldValueInvalid", f"{path}.pattern", f"Invalid value: {go_quote(pattern)}: must be a "
                                                                   f"valid regular expression, but isn't: {exc}"))
