"""Label and field selectors with the real API server's grammar and error messages.

Label selectors: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``, comma-joined.
Field selectors: ``=``, ``==``, ``!=`` on a per-resource whitelist (``metadata.name``, ``metadata.namespace``
everywhere; ``spec.nodeName``/``status.phase`` on pods; ``spec.unschedulable`` on nodes...); any other field is a
400 like kube-apiserver's ``field label not supported``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


class SelectorError(ValueError):
    """A selector the real server would reject with 400 BadRequest; str() is the server's message."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op in ("=", "in"):
            return self.key in labels and labels[self.key] in self.values
        # != and notin match when the label is absent, like labels.Selector in apimachinery.
        return labels.get(self.key) not in self.values


_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_SET_RE = re.compile(r"^\s*([^\s!=()]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def _check_key(key: str, selector: str) -> None:
    if not _KEY.match(key) or len(key.rpartition("/")[2]) > 63:
        raise SelectorError(f'unable to parse requirement: invalid label key "{key}"')


def _check_value(value: str) -> None:
    if len(value) > 63 or not _VALUE.match(value):
        raise SelectorError(f'unable to parse requirement: invalid label value: "{value}"')


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    """Parse a label selector string; '' means everything."""
    if not text or not text.strip():
        return ()
    reqs: list[Requirement] = []
    for raw in _split_top(text):
        part = raw.strip()
        if not part:
            raise SelectorError(f"found '', expected: identifier in selector \"{text}\"")
        m = _SET_RE.match(part)
        if m:
            key, op, vals = m.group(1), m.group(2), m.group(3)
            values = tuple(v.strip() for v in vals.split(",") if v.strip())
            _check_key(key, text)
            for v in values:
                _check_value(v)
            reqs.append(Requirement(key, op, values))
            continue
        for op_text, op in (("!=", "!="), ("==", "="), ("=", "=")):
            if op_text in part:
                key, _, value = part.partition(op_text)
                key, value = key.strip(), value.strip()
                _check_key(key, text)
                _check_value(value)
                reqs.append(Requirement(key, op, (value,)))
                break
        else:
            if part.startswith("!"):
                key = part[1:].strip()
                _check_key(key, text)
                reqs.append(Requirement(key, "!exists"))
            else:
                if " " in part or "(" in part:
                    raise SelectorError(f"unable to parse requirement: found '{part}'")
                _check_key(part, text)
                reqs.append(Requirement(part, "exists"))
    return tuple(reqs)


def labels_match(reqs: tuple[Requirement, ...], obj: Obj) -> bool:
    if not reqs:
        return True
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(r.matches(labels) for r in reqs)


def selector_text(sel: Any) -> str:
    """A LabelSelector (or a ReplicationController's plain map) as selector syntax, like
    ``LabelSelectorAsSelector(...).String()``: the Scale subresource's ``status.selector`` and kubectl's
    Selector column both show this ("" when it selects everything)."""
    if not sel:
        return ""
    if "matchLabels" in sel or "matchExpressions" in sel:
        parts = [f"{k}={v}" for k, v in (sel.get("matchLabels") or {}).items()]
        for e in sel.get("matchExpressions") or []:
            op = e.get("operator")
            if op in ("In", "NotIn"):
                parts.append(f"{e['key']} {op.lower()} ({','.join(e.get('values') or [])})")
            elif op == "Exists":
                parts.append(e["key"])
            else:
                parts.append("!" + e["key"])
        return ",".join(parts)
    return ",".join(f"{k}={v}" for k, v in sel.items())


# ---- field selectors ---------------------------------------------------------------------------------------


def _get(path: str) -> Callable[[Obj], str]:
    parts = path.split(".")

    def read(obj: Obj) -> str:
        cur: Any = obj
        for p in parts:
            if not isinstance(cur, dict):
                return ""
            cur = cur.get(p)
        if cur is None:
            return ""
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return str(cur)

    return read


_COMMON = ("metadata.name", "metadata.namespace")
FIELD_WHITELIST: dict[str, tuple[str, ...]] = {
    "pods": (*_COMMON, "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
             "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"),
    "nodes": (*_COMMON, "spec.unschedulable"),
    "events": (*_COMMON, "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
               "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
               "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"),
    "namespaces": (*_COMMON, "status.phase"),
    "secrets": (*_COMMON, "type"),
    "replicasets.apps": (*_COMMON, "status.replicas"),
    "replicationcontrollers": (*_COMMON, "status.replicas"),
    "jobs.batch": (*_COMMON, "status.successful"),
}


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    op: str  # "=" or "!="
    value: str
    read: Callable[[Obj], str]

    def matches(self, obj: Obj) -> bool:
        got = self.read(obj)
        # spec.unschedulable absent reads as "false" like the real field label conversion.
        if self.field == "spec.unschedulable" and got == "":
            got = "false"
        return (got == self.value) if self.op == "=" else (got != self.value)


def parse_field_selector(text: str | None, resource_key: str) -> tuple[FieldRequirement, ...]:
    if not text or not text.strip():
        return ()
    allowed = FIELD_WHITELIST.get(resource_key, _COMMON)
    out: list[FieldRequirement] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        for op_text, op in (("!=", "!="), ("==", "="), ("=", "=")):
            if op_text in part:
                field, _, value = part.partition(op_text)
                field, value, found_op = field.strip(), value.strip(), op
                break
        else:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        if field not in allowed:
            raise SelectorError(f"field label not supported: {field}")
        out.append(FieldRequirement(field, found_op, value, _get(field)))
    return tuple(out)


def fields_match(reqs: tuple[FieldRequirement, ...], obj: Obj) -> bool:
    return all(r.matches(obj) for r in reqs)
