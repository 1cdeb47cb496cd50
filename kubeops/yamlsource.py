"""Safe YAML loading that remembers where every value came from.

Every error about a playbook, inventory or app config must name the file, line and field. PyYAML's safe loader
drops positions, so we compose the node graph ourselves (still the safe loader: no Python tags, no code) and keep
a map from a value's path, e.g. ``("steps", 2, "action")``, to its 1-based line.

Every YAML kubeops reads comes through here, so this is where hostile input is bounded: a file over a size limit,
nesting deeper than a depth limit, or aliases that would expand to more values than a node limit (the "billion
laughs" bomb: a dozen lines of nested ``&a``/``*a`` that expand to billions of values) is refused before it is
expanded, with an input error naming the file and line. The limits have sane defaults and can be raised through
`KUBEOPS_YAML_MAX_BYTES`, `KUBEOPS_YAML_MAX_DEPTH` and `KUBEOPS_YAML_MAX_NODES` (read here, not in settings,
because the inventory that holds settings is itself read through this module).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubeops.errors import InputError, PlaybookError

PathKey = tuple[str | int, ...]

DEFAULT_MAX_BYTES = 10 * 1024 * 1024  # far above any real playbook; a 10,000-step playbook is about 1 MiB
DEFAULT_MAX_DEPTH = 100  # real files nest < 15 deep; Python's own recursion limit is 1,000
DEFAULT_MAX_NODES = 2_000_000  # values after alias expansion; a 10 MiB file without aliases has fewer


@dataclass(frozen=True, slots=True)
class YamlLimits:
    """How much a YAML file may hold before it is refused as hostile (or at least not a playbook)."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    max_nodes: int = DEFAULT_MAX_NODES

    @classmethod
    def from_env(cls) -> YamlLimits:
        """Defaults, overridden by `KUBEOPS_YAML_MAX_BYTES/_DEPTH/_NODES` when set to a positive integer."""
        values = {}
        for name, env in (("max_bytes", "BYTES"), ("max_depth", "DEPTH"), ("max_nodes", "NODES")):
            raw = os.environ.get(f"KUBEOPS_YAML_MAX_{env}", "").strip()
            if raw:
                try:
                    number = int(raw)
                except ValueError:
                    number = 0
                if number <= 0:
                    raise InputError(f"KUBEOPS_YAML_MAX_{env} must be a positive integer, got {raw!r}")
                values[name] = number
        return cls(**values)


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """Plain Python data from one YAML file plus the line of every key and item in it."""

    path: str
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, key: PathKey) -> int | None:
        """The line of `key`, or of its nearest enclosing value when `key` itself is absent."""
        probe = tuple(key)
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            probe = probe[:-1]
        return self.lines.get((), 1)

    def error(self, key: PathKey, message: str, *, hint: str | None = None) -> PlaybookError:
        """A PlaybookError pointing at `key` (dotted as ``steps[2].action``)."""
        return PlaybookError(message, path=self.path, line=self.line_of(key), field=dotted(key), hint=hint)


def dotted(key: PathKey) -> str:
    """``("steps", 2, "args", "node")`` -> ``steps[2].args.node``; the form users see in messages."""
    out = ""
    for part in key:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(document)"


class _Builder(yaml.SafeLoader):
    """Safe loader; only used for its constructors of scalars."""


class _Composer(yaml.SafeLoader):
    """Safe loader that composes the node graph with a depth limit (PyYAML's composer recurses without one)."""

    def __init__(self, stream: str, *, max_depth: int) -> None:
        super().__init__(stream)
        self._max_depth = max_depth
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:  # type: ignore[override]
        self._depth += 1
        try:
            if self._depth > self._max_depth:
                event = self.peek_event()
                raise _TooDeep(event.start_mark.line + 1)
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1


def _compose(text: str, *, max_depth: int) -> yaml.Node | None:
    """The node graph of one document, refusing nesting past `max_depth` before building anything.

    With libyaml (the usual case) a streaming pass over the C parser's events checks the depth, then the C
    composer builds the graph: both about 50x faster than PyYAML's pure-Python composer on a big playbook.
    """
    if not getattr(yaml, "__with_libyaml__", False):
        return _compose_python(text, max_depth=max_depth)
    try:
        return _compose_c(text, max_depth=max_depth)
    except yaml.YAMLError:
        # libyaml's messages are terser ("cannot start any token" where PyYAML says "found character '\t'"):
        # a broken file is parsed again in Python for the better message, a cost paid only on the error path.
        _compose_python(text, max_depth=max_depth)
        raise


def _compose_python(text: str, *, max_depth: int) -> yaml.Node | None:
    loader = _Composer(text, max_depth=max_depth)
    try:
        return loader.get_single_node()  # type: ignore[no-any-return]
    finally:
        loader.dispose()


def _compose_c(text: str, *, max_depth: int) -> yaml.Node | None:
    depth = 0
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > max_depth:
                raise _TooDeep(event.start_mark.line + 1)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    c_loader = yaml.CSafeLoader(text)
    try:
        return c_loader.get_single_node()  # type: ignore[no-any-return]
    finally:
        c_loader.dispose()


class _TooDeep(Exception):
    """Raised inside composition; turned into a PlaybookError naming the line."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def expanded_size(root: yaml.Node, *, limit: int) -> int:
    """How many values `root` becomes once every alias is expanded, stopping as soon as it passes `limit`.

    Aliases make the node graph a DAG that shares nodes, so the expanded count is computed bottom-up once per
    distinct node (linear in the file) instead of by expanding: a bomb is measured, never built.
    """
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, ready = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if not ready:
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        total = 1 + sum(sizes.get(id(child), 0) for child in children)
        sizes[id(node)] = min(total, limit + 1)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _build(node: yaml.Node, key: PathKey, lines: dict[PathKey, int], loader: _Builder, path: str) -> Any:
    lines.setdefault(key, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            name = loader.construct_object(key_node, deep=True)
            if not isinstance(name, str | int | float | bool) or name is None:
                raise PlaybookError(
                    "mapping keys must be plain strings",
                    path=path,
                    line=key_node.start_mark.line + 1,
                    field=dotted(key),
                )
            name = str(name)
            if name in result:
                raise PlaybookError(
                    f"duplicate key {name!r}",
                    path=path,
                    line=key_node.start_mark.line + 1,
                    field=dotted((*key, name)),
                )
            child = (*key, name)
            lines[child] = key_node.start_mark.line + 1
            result[name] = _build(value_node, child, lines, loader, path)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*key, index), lines, loader, path) for index, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, *, path: str, limits: YamlLimits | None = None) -> YamlDocument:
    """Parse one YAML document safely; syntax errors and hostile shapes become PlaybookError with the line."""
    limits = limits or YamlLimits.from_env()
    size = len(text.encode("utf-8", errors="replace")) if len(text) * 4 > limits.max_bytes else len(text)
    if size > limits.max_bytes:
        raise _too_big(path, size, limits)
    try:
        root = _compose(text, max_depth=limits.max_depth)
    except _TooDeep as exc:
        raise PlaybookError(
            f"nested more than {limits.max_depth} levels deep; refused",
            path=path,
            line=exc.line,
            hint="raise KUBEOPS_YAML_MAX_DEPTH if this file is genuine",
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        raise PlaybookError(f"invalid YAML: {problem}", path=path, line=line) from None
    except yaml.YAMLError as exc:
        raise PlaybookError(f"invalid YAML: {exc}", path=path) from None
    if root is None:
        return YamlDocument(path=path, data=None, lines={(): 1})
    if expanded_size(root, limit=limits.max_nodes) > limits.max_nodes:
        raise PlaybookError(
            f"expands to more than {limits.max_nodes:,} values (aliases referring to aliases?); refused",
            path=path,
            line=_first_alias_line(text),
            hint="raise KUBEOPS_YAML_MAX_NODES if this file is genuine",
        )
    lines: dict[PathKey, int] = {}
    try:
        data = _build(root, (), lines, _Builder(""), path)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise PlaybookError(
            f"unsupported YAML value: {exc.problem}", path=path, line=mark.line + 1 if mark else None
        ) from None
    return YamlDocument(path=path, data=data, lines=lines)


def _too_big(path: str, size: int, limits: YamlLimits) -> PlaybookError:
    return PlaybookError(
        f"file is {size:,} bytes, over the {limits.max_bytes:,}-byte limit; refused",
        path=path,
        hint="raise KUBEOPS_YAML_MAX_BYTES if this file is genuine",
    )


def _first_alias_line(text: str) -> int | None:
    """The line of the first alias (``*name``), where a reader should start looking at an alias bomb."""
    scanner = yaml.SafeLoader(text)
    try:
        while scanner.check_token():
            token = scanner.get_token()
            if isinstance(token, yaml.AliasToken):
                return int(token.start_mark.line) + 1
    except yaml.YAMLError:
        return None
    finally:
        scanner.dispose()
    return None


def load_yaml(path: str | Path, *, limits: YamlLimits | None = None) -> YamlDocument:
    """Read and parse a YAML file; a missing, unreadable or oversized file is an input error naming it."""
    name = str(path)
    limits = limits or YamlLimits.from_env()
    try:
        with Path(path).open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limits.max_bytes:
                raise _too_big(name, size, limits)
            raw = handle.read()  # not read(max_bytes + 1): that allocates the whole limit up front
        if len(raw) > limits.max_bytes:  # grew while we looked, or a pipe/FIFO whose size stat cannot tell
            raise _too_big(name, len(raw), limits)
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise PlaybookError("file not found", path=name) from None
    except OSError as exc:
        raise PlaybookError(f"cannot read file: {exc.strerror}", path=name) from None
    except UnicodeDecodeError:
        raise PlaybookError("file is not UTF-8 text", path=name) from None
    return parse_yaml(text, path=name, limits=limits)
