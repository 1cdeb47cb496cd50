"""Field ownership (``metadata.managedFields``) over plain dict objects, the way kube-apiserver records it.

Every write names a manager: server-side apply says who with the ``fieldManager`` query parameter; other writes
(create, PUT, merge/JSON/strategic patches) use that parameter too, else the program name in the User-Agent
(``kubectl/v1.33.0 (linux/amd64)`` -> ``kubectl``). An entry per (manager, operation, apiVersion, subresource)
holds the set of fields that manager owns, encoded as ``fieldsV1``:

- ``f:<name>`` a field of an object (``f:spec`` -> ``f:replicas``);
- ``k:{"name":"c"}`` an item of a list keyed on some of its fields (containers by name, ports by port and
  protocol; the keys are `kubeops.sandbox.patch.MERGE_KEYS`, the ones strategic merge uses);
- ``v:"x"`` an item of a set of scalars (finalizers);
- ``.`` the item itself, when the item also has owned fields below it.

Other lists (``args``, ``tolerations``...) are atomic: whoever set them owns the whole list. The sandbox has no
schemas, so every map key is treated as a struct field (kube-apiserver makes a plain map's key, a label for
instance, a member of the set as well; for the scalar values labels carry that is the same set).

A path is a tuple of those element strings. An **Update** gives its manager every field it added or changed and
takes those fields from every other manager (never a conflict); fields that disappeared leave every set. The
bookkeeping runs only for writes made through the API with a manager; the sandbox's own controllers and kubelet
write through ``Store.modify`` without one, so 60,000 pod status writes pay nothing for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from kubeops.sandbox.patch import MERGE_KEYS, PRIMITIVE_MERGE

Path = tuple[str, ...]
FieldSet = frozenset[Path]

# Fields every manager may set but none owns (the server keeps them; kube-apiserver strips the same ones).
_META_UNOWNED = frozenset({"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                           "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"})
_ITEM = object()  # the "value" of a list item's own path: present or absent, never "changed"


class FieldsV1(dict):  # type: ignore[type-arg]
    """A ``fieldsV1`` value. Never changed once built (a new one replaces it), so the store's `clone` (which copies
    plain dicts and lists only) shares it between an object's versions instead of copying it on every write:
    managedFields roughly double a pod's size, and the kubelet copies a pod several times on its way to Running."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Manager:
    """Who writes, and how: one managedFields entry is kept per distinct Manager."""

    name: str
    operation: str  # "Apply" or "Update"
    api_version: str
    subresource: str = ""

    def describe(self) -> str:
        """As kube-apiserver names a manager in a conflict: quoted name, subresource, and version for an Update."""
        text = json.dumps(self.name)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text


def manager_name(field_manager: str | None, user_agent: str | None) -> str:
    """The ``fieldManager`` parameter when given, else the User-Agent's program name (before the first "/")."""
    if field_manager:
        return field_manager
    prefix = (user_agent or "").split("/", 1)[0].strip()
    return "".join(ch for ch in prefix if ch.isprintable())[:128]


# ---- paths ----------------------------------------------------------------------------------------------------


def item_key(field: str, item: Any) -> dict[str, Any] | None:
    """The key fields of an item of a keyed list, or None when the list is not keyed (or the item lacks its key)."""
    if not isinstance(item, dict):
        return None
    if field == "ports":
        port = "containerPort" if "containerPort" in item else "port"
        if port not in item:
            return None
        return {port: item[port], "protocol": item.get("protocol") or "TCP"}
    key = MERGE_KEYS.get(field)
    if key is None or key not in item:
        return None
    return {key: item[key]}


def _keyed(field: str, items: list[Any]) -> bool:
    return bool(items) and (field == "ports" or field in MERGE_KEYS) and all(item_key(field, i) for i in items)


_quote = json.encoder.encode_basestring_ascii  # the C encoder json.dumps uses for a str, without its set-up


def _json(value: Any) -> str:
    if type(value) is str:
        return _quote(value)
    if type(value) is int:
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _key_element(key: dict[str, Any]) -> str:
    return "k:{" + ",".join(f"{_quote(k)}:{_json(key[k])}" for k in sorted(key)) + "}"


def _value_element(value: Any) -> str:
    return "v:" + _json(value)


def flatten(obj: dict[str, Any], *, include_status: bool = False) -> dict[Path, Any]:
    """Every ownable path of `obj` with its value (list items map to a marker): the basis of sets and diffs.

    Leaves are scalars, atomic lists and empty maps; keyed-list and set items are members too. apiVersion, kind,
    the server-set metadata and (unless `include_status`) status are left out."""
    out: dict[Path, Any] = {}
    for name, value in obj.items():
        if name in ("apiVersion", "kind") or (name == "status" and not include_status):
            continue
        if name == "metadata" and isinstance(value, dict):
            meta = {k: v for k, v in value.items() if k not in _META_UNOWNED}
            if meta:
                _walk(meta, ("f:metadata",), out)
            continue
        _walk_value(name, value, ("f:" + name,), out)
    return out


def _walk(obj: dict[str, Any], path: Path, out: dict[Path, Any]) -> None:
    for name, value in obj.items():
        _walk_value(name, value, (*path, "f:" + name), out)


def _walk_value(name: str, value: Any, path: Path, out: dict[Path, Any]) -> None:
    if isinstance(value, dict):
        if value:
            _walk(value, path, out)
        else:
            out[path] = value
    elif isinstance(value, list):
        if name in PRIMITIVE_MERGE and all(not isinstance(v, dict | list) for v in value) and value:
            for v in value:
                out[(*path, _value_element(v))] = _ITEM
        elif _keyed(name, value):
            for item in value:
                ipath = (*path, _key_element(item_key(name, item) or {}))
                out[ipath] = _ITEM
                _walk(item, ipath, out)
        else:
            out[path] = value
    else:
        out[path] = value


def fieldset(obj: dict[str, Any], *, subresource: str = "") -> FieldSet:
    """The fields a write of `obj` sets; a status write owns status (and metadata), any other write no status."""
    paths = flatten(obj, include_status=subresource == "status")
    if subresource == "status":
        return frozenset(p for p in paths if p[0] in ("f:status", "f:metadata"))
    return frozenset(paths)


def render(path: Path) -> str:
    """A path as kube-apiserver prints it: ``.spec.template.spec.containers[name="c"].image``."""
    text = ""
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            text += "." + rest
        elif kind == "k":
            key = json.loads(rest)
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in key.items()) + "]"
        elif kind == "v":
            text += f"[={rest}]"
    return text


# ---- fieldsV1 -------------------------------------------------------------------------------------------------


def encode(paths: Iterable[Path]) -> dict[str, Any]:
    """The nested ``fieldsV1`` form of a set of paths (``.`` marks a member that also has members below)."""
    root: dict[str, Any] = {}
    members: set[Path] = set()
    for path in paths:
        node = root
        for element in path:
            node = node.setdefault(element, {})
        members.add(path)
    return FieldsV1(_sorted(root, (), members))


def _sorted(node: dict[str, Any], path: Path, members: set[Path]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if node and path in members:
        out["."] = {}
    for element in sorted(node):
        out[element] = _sorted(node[element], (*path, element), members)
    return out


def decode(fields: Any) -> FieldSet:
    """The set of paths a ``fieldsV1`` object holds (anything malformed holds nothing)."""
    return frozenset(_decode(fields, ())) if isinstance(fields, dict) else frozenset()


def _decode(node: dict[str, Any], path: Path) -> Iterator[Path]:
    for element, child in node.items():
        if element == ".":
            yield path
        elif isinstance(child, dict) and child:
            yield from _decode(child, (*path, element))
        else:
            yield (*path, element)


# ---- entries --------------------------------------------------------------------------------------------------


def read_entries(obj: dict[str, Any]) -> dict[Manager, tuple[FieldSet, str]]:
    """metadata.managedFields as {Manager: (fields, time)}; entries the sandbox cannot read are dropped."""
    out: dict[Manager, tuple[FieldSet, str]] = {}
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if not isinstance(entry, dict) or entry.get("fieldsType", "FieldsV1") != "FieldsV1":
            continue
        who = Manager(str(entry.get("manager") or ""), str(entry.get("operation") or "Update"),
                      str(entry.get("apiVersion") or ""), str(entry.get("subresource") or ""))
        fields = decode(entry.get("fieldsV1"))
        if who in out:
            fields = fields | out[who][0]
        out[who] = (fields, str(entry.get("time") or ""))
    return out


def write_entries(entries: dict[Manager, tuple[FieldSet, str]]) -> list[dict[str, Any]]:
    """The managedFields list: Apply entries first, then by time and manager (kube-apiserver's order)."""
    rows = []
    for who, (fields, when) in entries.items():
        if not fields:
            continue
        row: dict[str, Any] = {"manager": who.name, "operation": who.operation, "apiVersion": who.api_version}
        if when:
            row["time"] = when
        row["fieldsType"] = "FieldsV1"
        row["fieldsV1"] = encode(fields)
        if who.subresource:
            row["subresource"] = who.subresource
        rows.append(row)
    rows.sort(key=lambda r: (r["operation"], r.get("time", ""), r["manager"], r["apiVersion"],
                             r.get("subresource", "")))
    return rows


def changes(old: dict[str, Any] | None, new: dict[str, Any], *, subresource: str = "") -> tuple[set[Path], set[Path]]:
    """(added or modified paths, removed paths) from `old` to `new`, as a write on `subresource` sees them.

    Walks both objects together and skips equal subtrees, so a status write costs what changed in it."""
    status = subresource == "status"
    changed: set[Path] = set()
    removed: set[Path] = set()
    old = old or {}
    for name in new.keys() | old.keys():
        if not _written(name, status):
            continue
        a, b = old.get(name, _MISSING), new.get(name, _MISSING)
        if name == "metadata":
            a = {k: v for k, v in a.items() if k not in _META_UNOWNED} if isinstance(a, dict) else _MISSING
            b = {k: v for k, v in b.items() if k not in _META_UNOWNED} if isinstance(b, dict) else _MISSING
            a, b = a or _MISSING, b or _MISSING
        _diff(name, a, b, ("f:" + name,), changed, removed)
    return changed, removed


_MISSING: Any = object()


def _written(name: str, status: bool) -> bool:
    """Whether a top-level field counts for a write: metadata always, status only for a status write (kube-apiserver
    resets the other part), apiVersion and kind never."""
    if name == "metadata":
        return True
    if name in ("apiVersion", "kind"):
        return False
    return (name == "status") == status


def _flat_at(name: str, value: Any, path: Path) -> dict[Path, Any]:
    out: dict[Path, Any] = {}
    if value is not _MISSING:
        _walk_value(name, value, path, out)
    return out


def _diff(name: str, a: Any, b: Any, path: Path, changed: set[Path], removed: set[Path]) -> None:
    if a is b or (a is not _MISSING and b is not _MISSING and type(a) is type(b) and a == b):
        return
    if type(a) is dict and type(b) is dict and a and b:
        for key in b.keys() | a.keys():
            _diff(key, a.get(key, _MISSING), b.get(key, _MISSING), (*path, "f:" + key), changed, removed)
        return
    if type(a) is list and type(b) is list and name not in PRIMITIVE_MERGE and _keyed(name, a) and _keyed(name, b):
        before = {_key_element(item_key(name, i) or {}): i for i in a}
        after = {_key_element(item_key(name, i) or {}): i for i in b}
        for element in after.keys() | before.keys():
            x, y = before.get(element, _MISSING), after.get(element, _MISSING)
            ipath = (*path, element)
            if x is _MISSING:
                changed.add(ipath)
            elif y is _MISSING:
                removed.add(ipath)
            for key in (y if y is not _MISSING else {}).keys() | (x if x is not _MISSING else {}).keys():
                _diff(key, x.get(key, _MISSING) if x is not _MISSING else _MISSING,
                      y.get(key, _MISSING) if y is not _MISSING else _MISSING, (*ipath, "f:" + key), changed, removed)
        return
    fa, fb = _flat_at(name, a, path), _flat_at(name, b, path)
    changed.update(p for p, v in fb.items() if p not in fa or (v is not _ITEM and fa[p] != v))
    removed.update(p for p in fa if p not in fb)


def _identity(row: dict[str, Any]) -> Manager:
    return Manager(str(row.get("manager") or ""), str(row.get("operation") or "Update"),
                   str(row.get("apiVersion") or ""), str(row.get("subresource") or ""))


def _owns(fields: Any, path: Path) -> bool:
    node = fields
    for element in path:
        if not isinstance(node, dict) or element not in node:
            return False
        node = node[element]
    return isinstance(node, dict) and (not node or "." in node)


def _row(who: Manager, now: str, fields: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"manager": who.name, "operation": who.operation, "apiVersion": who.api_version,
                           "time": now, "fieldsType": "FieldsV1", "fieldsV1": FieldsV1(fields)}
    if who.subresource:
        row["subresource"] = who.subresource
    return row


def _order(row: dict[str, Any]) -> tuple[str, ...]:
    return (str(row.get("operation")), str(row.get("time", "")), str(row.get("manager")), str(row.get("apiVersion")),
            str(row.get("subresource", "")))


def record_update(old: dict[str, Any] | None, new: dict[str, Any], who: Manager, now: str) -> None:
    """Set ``new``'s managedFields for an Update by `who` (old None: a create). A write that changes no field
    keeps the entries as they were (an idle PUT does not churn them); entries the write does not touch are kept
    as they are, not decoded and encoded again."""
    meta = new.setdefault("metadata", {})
    if old is None:
        fields = object_fields(new, subresource=who.subresource)
        if fields:
            meta["managedFields"] = [_row(who, now, fields)]
        else:
            meta.pop("managedFields", None)
        return
    rows = [r for r in (old.get("metadata") or {}).get("managedFields") or [] if isinstance(r, dict)]
    sent = meta.get("managedFields")
    if not who.subresource and isinstance(sent, list) and sent and sent != rows:
        # The writer changed managedFields itself (kubectl does, moving client-side apply's fields to its
        # server-side apply entry): kube-apiserver takes them as given when they read; [{}] clears them all.
        if all(r == {} for r in sent):
            meta.pop("managedFields", None)
            return
        if all(isinstance(r, dict) and r.get("manager") and r.get("operation") in ("Apply", "Update")
               and isinstance(r.get("fieldsV1", {}), dict) for r in sent):
            rows = [{**r, "fieldsV1": FieldsV1(r.get("fieldsV1") or {})} for r in sent]
    changed, removed = changes(old, new, subresource=who.subresource)
    if not changed and not removed:
        if rows:
            meta["managedFields"] = rows
        else:
            meta.pop("managedFields", None)
        return
    gone = changed | removed
    out: list[dict[str, Any]] = []
    mine: FieldSet = frozenset()
    for row in rows:
        if _identity(row) == who:
            mine = mine | decode(row.get("fieldsV1"))
            continue
        fields = row.get("fieldsV1")
        if any(_owns(fields, p) for p in gone):
            kept = decode(fields) - gone
            if kept:
                out.append({**row, "fieldsV1": encode(kept)})
        else:
            out.append(row)
    out.append(_row(who, now, encode((mine - removed) | changed)))
    out.sort(key=_order)
    meta["managedFields"] = out


def object_fields(obj: dict[str, Any], *, subresource: str = "") -> dict[str, Any]:
    """``fieldsV1`` of every field of `obj` (what a create gives its manager), built in one walk."""
    status = subresource == "status"
    out: dict[str, Any] = {}
    for name, value in obj.items():
        if not _written(name, status):
            continue
        if name == "metadata":
            if isinstance(value, dict):
                node = {"f:" + k: _value_fields(k, v) for k, v in value.items() if k not in _META_UNOWNED}
                if node:
                    out["f:metadata"] = node
            continue
        out["f:" + name] = _value_fields(name, value)
    return out


def _value_fields(name: str, value: Any) -> dict[str, Any]:
    if type(value) is dict:
        return {"f:" + k: _value_fields(k, v) for k, v in value.items()}
    if type(value) is list and value:
        if name in PRIMITIVE_MERGE and all(not isinstance(v, dict | list) for v in value):
            return {_value_element(v): {} for v in value}
        if _keyed(name, value):
            return {_key_element(item_key(name, i) or {}): {".": {}, **{"f:" + k: _value_fields(k, v)
                                                                         for k, v in i.items()}} for i in value}
    return {}
