"""References (``${params.node}``, ``${steps.drain.outputs.pods[0]}``, ``${run.id}``) and `when` conditions.

Data only: a reference is a path into a dict of known values, never an expression; conditions are a handful of
structured operators. There is no eval and no template language, so a playbook cannot run code.

Rules:
- a string that is exactly one reference takes the referenced value with its type (a list stays a list);
- references embedded in a longer string are stringified (strings as-is, everything else as JSON);
- ``$${`` writes a literal ``${``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kubeops.errors import InputError

_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_TOKEN = re.compile(r"""\s*(?:([A-Za-z0-9_/\-]+)|\[\s*(\d+)\s*\]|\[\s*"([^"]*)"\s*\]|\[\s*'([^']*)'\s*\])""")
RUN_KEYS = ("id", "dry_run", "cluster", "playbook")
OPERATORS = ("equals", "not_equals", "not", "all", "any")


class RefError(InputError):
    """A reference or condition is malformed or does not resolve; `keypath` says where inside the value."""


@dataclass(frozen=True, slots=True)
class Ref:
    """A parsed reference: ``root`` is params/steps/run; ``path`` the keys and indices after it."""

    root: str
    path: tuple[str | int, ...]
    text: str

    @property
    def step(self) -> str | None:
        return str(self.path[0]) if self.root == "steps" else None

    @property
    def output_key(self) -> str | int | None:
        """``steps.x.outputs.<key>``: the first key under outputs, if any."""
        return self.path[2] if self.root == "steps" and len(self.path) > 2 else None


def parse_ref(expr: str) -> Ref:
    """``steps.drain.outputs.pods[0]`` -> Ref("steps", ("drain", "outputs", "pods", 0))."""
    text = expr.strip()
    parts: list[str | int] = []
    pos = 0
    while pos < len(text):
        if parts and text[pos] == ".":
            pos += 1
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise RefError(f"malformed reference ${{{expr}}}")
        name, index, dq, sq = match.groups()
        if name is not None:
            parts.append(int(name) if name.isdigit() and parts else name)
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append(dq if dq is not None else sq)
        pos = match.end()
    if not parts:
        raise RefError("empty reference ${}")
    root, rest = parts[0], tuple(parts[1:])
    if root == "params":
        if not rest or not isinstance(rest[0], str):
            raise RefError(f"${{{expr}}}: expected ${{params.<name>}}")
    elif root == "steps":
        if len(rest) < 2 or rest[1] != "outputs":
            raise RefError(f"${{{expr}}}: expected ${{steps.<step>.outputs[.<key>...]}}")
    elif root == "run":
        if len(rest) != 1 or rest[0] not in RUN_KEYS:
            raise RefError(f"${{{expr}}}: run has only {', '.join('run.' + k for k in RUN_KEYS)}")
    else:
        raise RefError(f"${{{expr}}}: a reference starts with params., steps. or run.")
    return Ref(root=str(root), path=rest, text=text)


def split(text: str) -> list[str | Ref]:
    """A string as literal pieces and references (``$${`` becomes a literal ``${``)."""
    out: list[str | Ref] = []
    pos = 0
    for match in _REF.finditer(text):
        if match.start() > pos:
            out.append(text[pos : match.start()])
        out.append("${" if match.group(0) == "$${" else parse_ref(match.group(1)))
        pos = match.end()
    if pos < len(text):
        out.append(text[pos:])
    return out


def exact_ref(value: Any) -> Ref | None:
    """The reference when `value` is a string made of exactly one reference."""
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        pieces = split(value)
        if len(pieces) == 1 and isinstance(pieces[0], Ref):
            return pieces[0]
    return None


def walk_refs(value: Any, keypath: tuple[str | int, ...] = ()) -> Iterator[tuple[Ref, tuple[str | int, ...]]]:
    """Every reference inside a value (strings, lists, mappings, condition operators), with where it sits."""
    if isinstance(value, str):
        for piece in split(value):
            if isinstance(piece, Ref):
                yield piece, keypath
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk_refs(item, (*keypath, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from walk_refs(item, (*keypath, key))


def _stringify(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def escape(text: str) -> str:
    """A literal string safe to splice into a template."""
    return text.replace("${", "$${")


def format_ref(root: str, path: tuple[str | int, ...]) -> str:
    """The canonical ``${...}`` text of a reference."""
    text = root
    for key in path:
        if isinstance(key, int):
            text += f"[{key}]"
        elif re.fullmatch(r"[A-Za-z0-9_/\-]+", key) and not key.isdigit():
            text += f".{key}"
        else:
            text += f"[{json.dumps(key)}]"
    return "${" + text + "}"


Replacement = tuple[bool, Any]  # (is_template, value): template text is spliced verbatim, literals are escaped


def rewrite(value: Any, fn: Callable[[Ref], Replacement]) -> Any:
    """Replace each reference with `fn(ref)`, keeping the result a template; used to inline includes.

    `fn` returns ``(True, text)`` for template text (outer-scope references stay references) or
    ``(False, value)`` for a literal value (kept typed when it replaces a whole string, else stringified).
    """
    if isinstance(value, str):
        pieces = split(value)
        if len(pieces) == 1 and isinstance(pieces[0], Ref):
            is_template, replacement = fn(pieces[0])
            if is_template or not isinstance(replacement, str):
                return replacement
            return escape(replacement)
        out = ""
        for piece in pieces:
            if isinstance(piece, Ref):
                is_template, replacement = fn(piece)
                out += replacement if is_template and isinstance(replacement, str) else escape(_stringify(replacement))
            else:
                out += escape(piece)
        return out
    if isinstance(value, list):
        return [rewrite(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: rewrite(v, fn) for k, v in value.items()}
    return value


class Scope:
    """The values references resolve against during a run."""

    def __init__(
        self,
        *,
        params: Mapping[str, Any],
        outputs: Mapping[str, Mapping[str, Any]],
        run: Mapping[str, Any],
        unavailable: Mapping[str, str] | None = None,
    ) -> None:
        self.params = params
        self.outputs = outputs
        self.run = run
        self.unavailable = unavailable or {}  # step -> why it has no outputs (skipped, failed, not run)

    def lookup(self, ref: Ref) -> Any:
        if ref.root == "run":
            return self.run.get(str(ref.path[0]))
        if ref.root == "params":
            name = str(ref.path[0])
            if name not in self.params:
                raise RefError(f"${{{ref.text}}}: no parameter {name!r}")
            return _descend(self.params[name], ref.path[1:], ref)
        step = str(ref.path[0])
        if step not in self.outputs:
            why = self.unavailable.get(step, "has not run")
            raise RefError(f"${{{ref.text}}}: step {step!r} {why}, so it has no outputs")
        return _descend(self.outputs[step], ref.path[2:], ref)


class MissingKey(LookupError):
    """`dig` found no `key` in `value` (the mapping or list reached so far)."""

    def __init__(self, key: str | int, value: Any) -> None:
        super().__init__(key)
        self.key = key
        self.value = value


def dig(value: Any, path: tuple[str | int, ...]) -> Any:
    """`value` followed along `path` (mapping keys as strings, list indexes); MissingKey where it stops."""
    for key in path:
        if isinstance(value, dict) and str(key) in value:
            value = value[str(key)]
        elif isinstance(value, list) and isinstance(key, int) and -len(value) <= key < len(value):
            value = value[key]
        else:
            raise MissingKey(key, value)
    return value


def _descend(value: Any, path: tuple[str | int, ...], ref: Ref) -> Any:
    try:
        return dig(value, path)
    except MissingKey as exc:
        raise RefError(f"${{{ref.text}}}: no {exc.key!r} in {_stringify(exc.value)[:200]}") from None


def resolve(value: Any, scope: Scope) -> Any:
    """Substitute every reference in `value` (strings, lists and mappings, recursively)."""
    if isinstance(value, str):
        if "${" not in value and "$$" not in value:
            return value
        pieces = split(value)
        if len(pieces) == 1 and isinstance(pieces[0], Ref):
            return scope.lookup(pieces[0])
        return "".join(_stringify(scope.lookup(p)) if isinstance(p, Ref) else p for p in pieces)
    if isinstance(value, list):
        return [resolve(v, scope) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, scope) for k, v in value.items()}
    return value


def check_condition(cond: Any) -> tuple[str | int, ...] | None:
    """Structural check of a `when` condition; returns the keypath of the first problem, or None.

    A condition is a boolean, a string (a reference that must be truthy, or a literal), or a one-key mapping:
    ``{equals: [a, b]}``, ``{not_equals: [a, b]}``, ``{not: c}``, ``{all: [c, ...]}``, ``{any: [c, ...]}``.
    """
    if cond is None or isinstance(cond, bool | str | int | float):
        return None
    if isinstance(cond, dict):
        if len(cond) != 1:
            return ()
        ((op, arg),) = cond.items()
        if op not in OPERATORS:
            return (op,)
        if op in ("equals", "not_equals"):
            return None if isinstance(arg, list) and len(arg) == 2 else (op,)
        if op == "not":
            sub = check_condition(arg)
            return None if sub is None else (op, *sub)
        if not isinstance(arg, list) or not arg:
            return (op,)
        for index, item in enumerate(arg):
            sub = check_condition(item)
            if sub is not None:
                return (op, index, *sub)
        return None
    return ()


def evaluate(cond: Any, scope: Scope) -> bool:
    """Evaluate a checked condition. A reference to a step that has no outputs is null (falsy) here, not an error,
    so cleanup steps can say ``when: ${steps.cordon.outputs.changed}`` whether or not `cordon` ran."""
    if cond is None:
        return True
    if isinstance(cond, dict):
        ((op, arg),) = cond.items()
        if op == "not":
            return not evaluate(arg, scope)
        if op == "all":
            return all(evaluate(c, scope) for c in arg)
        if op == "any":
            return any(evaluate(c, scope) for c in arg)
        left, right = (_soft(v, scope) for v in arg)
        return (left == right) if op == "equals" else (left != right)
    return _truthy(_soft(cond, scope))


def _soft(value: Any, scope: Scope) -> Any:
    ref = exact_ref(value)
    if ref is not None and ref.root == "steps":
        try:
            return scope.lookup(ref)
        except RefError:
            return None
    return resolve(value, scope)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "no", "0", "off", "null", "none")
    return bool(value)
