"""Server-side apply (PATCH ``application/apply-patch+yaml``) over plain dict objects.

An apply sends the applier's whole intent for an object, not a diff. kube-apiserver then:

1. merges the intent into the live object (here: strategic merge, so keyed lists merge item by item and fields
   other managers set are kept), or builds the object from it when there is none (the write becomes a create);
2. makes the applied fields the applier's set (`kubeops.sandbox.managedfields`), replacing its previous one;
3. removes the fields the applier set last time and no longer applies, unless another manager owns them too
   (then only the applier's claim goes), keyed-list and set items alike;
4. refuses, with 409 Conflict and one cause per field, to change a field another manager owns; ``force=true``
   takes it over instead. Applying the value already there is no change: the field becomes shared.

Everything here is pure: `apply` returns the new object with its managedFields, or raises `ApplyConflict`.
"""

from __future__ import annotations

import json
from typing import Any

from kubeops.sandbox import managedfields as mf
from kubeops.sandbox.patch import PatchError, strategic_merge_patch

Obj = dict[str, Any]


class ApplyConflict(Exception):
    """Fields another manager owns that the apply would change; `message`/`causes` are kube-apiserver's."""

    def __init__(self, conflicts: list[tuple[mf.Manager, mf.Path]]) -> None:
        self.conflicts = conflicts
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if len(self.conflicts) == 1:
            who, path = self.conflicts[0]
            return f"Apply failed with 1 conflict: conflict with {who.describe()}: {mf.render(path)}"
        by_manager: dict[str, list[str]] = {}
        for who, path in self.conflicts:
            by_manager.setdefault(who.describe(), []).append(mf.render(path))
        lines = []
        for name in sorted(by_manager):
            lines.append(f"conflicts with {name}:")
            lines.extend(f"- {p}" for p in by_manager[name])
        return f"Apply failed with {len(self.conflicts)} conflicts: " + "\n".join(lines)

    @property
    def causes(self) -> list[dict[str, str]]:
        return [{"reason": "FieldManagerConflict", "message": f"conflict with {who.describe()}",
                 "field": mf.render(path)} for who, path in self.conflicts]


def apply(live: Obj | None, config: Any, who: mf.Manager, *, force: bool, now: str) -> Obj:
    """The object after `who` applies `config` to `live` (None: no object yet), managedFields included."""
    if not isinstance(config, dict):
        raise PatchError("error decoding YAML: the apply configuration must be an object", 400)
    if (config.get("metadata") or {}).get("managedFields") is not None:
        raise PatchError("metadata.managedFields must be nil", 400)
    applied = mf.fieldset(config, subresource=who.subresource)
    merged = strategic_merge_patch(live or {}, config)
    entries = mf.read_entries(live) if live else {}
    previous, when = entries.get(who, (frozenset(), ""))
    entries[who] = (applied, when)
    owned: set[mf.Path] = set().union(*(fields for fields, _ in entries.values()))
    dropped: list[mf.Path] = []
    for path in sorted(previous - owned, key=len):  # an item goes whole (its own fields hold its key)...
        if any(path[:len(d)] == d for d in dropped) or _is_key_of_item(path):
            continue
        if not any(len(o) > len(path) and o[:len(path)] == path for o in owned):  # ...unless others own inside
            dropped.append(path)
    for path in reversed(dropped):
        _remove(merged, path, owned)
    changed, removed = mf.changes(live, merged, subresource=who.subresource)
    conflicts: list[tuple[mf.Manager, mf.Path]] = []
    for other, (fields, other_when) in list(entries.items()):
        if other == who:
            continue
        taken = fields & changed
        if taken and not force:
            conflicts.extend((other, p) for p in sorted(taken))
        entries[other] = (fields - taken - removed, other_when)
    if conflicts:
        raise ApplyConflict(conflicts)
    if changed or removed or applied != previous or not when:
        entries[who] = (applied, now)
    merged.setdefault("metadata", {})["managedFields"] = mf.write_entries(entries)
    return merged


def _is_key_of_item(path: mf.Path) -> bool:
    """A key field of a keyed-list item (``name`` of ``k:{"name":"c"}``): it goes with its item, never alone."""
    if len(path) < 2 or not path[-2].startswith("k:") or not path[-1].startswith("f:"):
        return False
    return path[-1][2:] in json.loads(path[-2][2:])


def _remove(node: Any, path: mf.Path, owned: set[mf.Path], prefix: mf.Path = ()) -> None:
    """Drop the value at `path` from `node`; containers it leaves empty go too unless someone owns them."""
    element, rest = path[0], path[1:]
    kind, _, text = element.partition(":")
    if kind == "f" and isinstance(node, dict) and text in node:
        if rest:
            child = node[text]
            _remove(child, rest, owned, (*prefix, element))
            if child in ({}, []) and (*prefix, element) not in owned:
                del node[text]
        else:
            del node[text]
        return
    if not isinstance(node, list) or not prefix:
        return
    field = prefix[-1].partition(":")[2]
    if kind == "k":
        key = json.loads(text)
        index = next((i for i, item in enumerate(node) if mf.item_key(field, item) == key), None)
    elif kind == "v":
        value = json.loads(text)
        index = next((i for i, item in enumerate(node) if item == value), None)
    else:
        return
    if index is None:
        return
    if rest:
        _remove(node[index], rest, owned, (*prefix, element))
    else:
        del node[index]
