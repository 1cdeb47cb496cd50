"""The three patch formats kube-apiserver accepts, applied to plain JSON objects.

- JSON merge patch (RFC 7386, ``application/merge-patch+json``): maps merge, ``null`` deletes, lists replace.
- JSON patch (RFC 6902, ``application/json-patch+json``): add/remove/replace/move/copy/test with JSON pointers.
- Strategic merge patch (``application/strategic-merge-patch+json``): like merge patch, but lists named in
  `MERGE_KEYS` merge item by item on their key (containers by ``name``, conditions by ``type``...), lists in
  `PRIMITIVE_MERGE` (finalizers) are unioned, and the directives ``$patch`` (replace/delete/merge),
  ``$deleteFromPrimitiveList/<field>``, ``$setElementOrder/<field>`` and ``$retainKeys`` are honoured. The real
  server reads strategies from Go struct tags; the sandbox keys them on the field name, which is unambiguous for the
  built-in types it serves (``ports`` is keyed on ``containerPort`` or ``port`` depending on the items).

Errors raise `PatchError` (the server answers 422 or 400 like the real one).
"""

from __future__ import annotations

import copy
from typing import Any

MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "volumes": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "podIPs": "ip",
    "hostIPs": "ip",
    "conditions": "type",
    "addresses": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
PRIMITIVE_MERGE = frozenset({"finalizers"})


class PatchError(ValueError):
    """A patch that cannot apply; `code` is the HTTP status the real server would use."""

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.code = code


# ---- JSON merge patch ---------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ---- JSON patch ---------------------------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}", 422)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    cur = doc
    for p in parts:
        if isinstance(cur, dict):
            if p not in cur:
                raise PatchError(f"doc is missing path: \"{path}\": missing value", 422)
            cur = cur[p]
        elif isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError):
                raise PatchError(f"doc is missing path: \"{path}\": missing value", 422) from None
        else:
            raise PatchError(f"doc is missing path: \"{path}\": missing value", 422)
    return cur


def _add(doc: Any, parts: list[str], value: Any, path: str) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            try:
                idx = int(last)
            except ValueError:
                raise PatchError(f"invalid array index {last!r} in {path!r}", 422) from None
            if idx < 0 or idx > len(parent):
                raise PatchError(f"add operation does not apply: doc is missing path: \"{path}\": missing value")
            parent.insert(idx, value)
    else:
        raise PatchError(f"add operation does not apply: doc is missing path: \"{path}\": missing value")
    return doc


def _remove(doc: Any, parts: list[str], path: str) -> Any:
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"remove operation does not apply: doc is missing path: \"{path}\": missing value")
        parent.pop(last)
        return doc
    if isinstance(parent, list):
        try:
            parent.pop(int(last))
        except (ValueError, IndexError):
            raise PatchError(f"remove operation does not apply: doc is missing path: \"{path}\": missing value") \
                from None
        return doc
    raise PatchError(f"remove operation does not apply: doc is missing path: \"{path}\": missing value")


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch", 400)
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise PatchError("Unexpected kind: missing op", 422)
        kind, path = op["op"], op.get("path", "")
        parts = _pointer(path)
        if kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")), path)
        elif kind == "remove":
            doc = _remove(doc, parts, path)
        elif kind == "replace":
            _walk(doc, parts, path)
            if parts:
                doc = _remove(doc, parts, path)
            doc = _add(doc, parts, copy.deepcopy(op.get("value")), path)
        elif kind in ("move", "copy"):
            src = _pointer(op.get("from", ""))
            value = copy.deepcopy(_walk(doc, src, op.get("from", "")))
            if kind == "move":
                doc = _remove(doc, src, op.get("from", ""))
            doc = _add(doc, parts, value, path)
        elif kind == "test":
            if _walk(doc, parts, path) != op.get("value"):
                raise PatchError(f"testing value {path} failed: test failed", 422)
        else:
            raise PatchError(f"Unexpected kind: {kind}", 422)
    return doc


# ---- strategic merge patch ----------------------------------------------------------------------------------


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        sample = next((i for i in items if isinstance(i, dict)), None)
        if sample is None:
            return None
        return "containerPort" if "containerPort" in sample else "port"
    return MERGE_KEYS.get(field)


def strategic_merge_patch(original: Any, patch: Any) -> Any:
    """Apply a strategic merge patch to a copy of `original`."""
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object", 400)
    return _smp_map(copy.deepcopy(original) if isinstance(original, dict) else {}, patch)


def _smp_map(orig: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            current = orig.get(field)
            if isinstance(current, list):
                orig[field] = [v for v in current if v not in (value or [])]
            continue
        if value is None:
            orig.pop(key, None)
            continue
        current = orig.get(key)
        if isinstance(value, dict):
            if value.get("$patch") == "delete":
                orig.pop(key, None)
            else:
                orig[key] = _smp_map(current if isinstance(current, dict) else {}, value)
        elif isinstance(value, list):
            orig[key] = _smp_list(key, current if isinstance(current, list) else [], value)
        else:
            orig[key] = copy.deepcopy(value)
    if isinstance(retain, list):
        for k in list(orig):
            if k not in retain:
                del orig[k]
    return orig


def _smp_list(field: str, orig: list[Any], patch: list[Any]) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if field in PRIMITIVE_MERGE:
        out = list(orig)
        for v in patch:
            if v not in out:
                out.append(v)
        return out
    key = _merge_key(field, orig + patch)
    if key is None:
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and i.get("$patch") == "delete")]
    out = [copy.deepcopy(i) for i in orig]
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"the list {field!r} is keyed on {key!r}: every item must be an object", 422)
        if key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {key}", 422)
        index = next((n for n, o in enumerate(out) if isinstance(o, dict) and o.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                out.pop(index)
            continue
        if index is None:
            out.append(_smp_map({}, item))
        else:
            out[index] = _smp_map(out[index], item)
    return out


def apply_patch(original: dict[str, Any], patch: Any, content_type: str) -> dict[str, Any]:
    """Dispatch on the request's Content-Type (parameters ignored)."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/json-patch+json":
        result = json_patch(original, patch)
    elif ctype == "application/merge-patch+json":
        if not isinstance(patch, dict):
            raise PatchError("merge patch must be a JSON object", 400)
        result = merge_patch(original, patch)
    elif ctype == "application/strategic-merge-patch+json":
        result = strategic_merge_patch(original, patch)
    elif ctype == "application/apply-patch+yaml":
        # Server-side apply without managed fields: a merge on keyed lists is the useful approximation.
        if not isinstance(patch, dict):
            raise PatchError("apply patch must be an object", 400)
        result = strategic_merge_patch(original, patch)
    else:
        raise PatchError(content_type, 415)
    if not isinstance(result, dict):
        raise PatchError("the patched object is not a JSON object", 422)
    return result
