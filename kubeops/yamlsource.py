"""Safe YAML loading that remembers where every value came from.

Every error about a playbook, inventory or app config must name the file, line and field. PyYAML's safe loader
drops positions, so we compose the node graph ourselves (still the safe loader: no Python tags, no code) and keep
a map from a value's path, e.g. ``("steps", 2, "action")``, to its 1-based line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubeops.errors import PlaybookError

PathKey = tuple[str | int, ...]


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


def parse_yaml(text: str, *, path: str) -> YamlDocument:
    """Parse one YAML document safely; syntax errors become PlaybookError with the line."""
    loader = _Builder(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        raise PlaybookError(f"invalid YAML: {problem}", path=path, line=line) from None
    except yaml.YAMLError as exc:
        raise PlaybookError(f"invalid YAML: {exc}", path=path) from None
    finally:
        loader.dispose()
    if root is None:
        return YamlDocument(path=path, data=None, lines={(): 1})
    lines: dict[PathKey, int] = {}
    try:
        data = _build(root, (), lines, _Builder(""), path)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise PlaybookError(
            f"unsupported YAML value: {exc.problem}", path=path, line=mark.line + 1 if mark else None
        ) from None
    return YamlDocument(path=path, data=data, lines=lines)


def load_yaml(path: str | Path) -> YamlDocument:
    """Read and parse a YAML file; a missing or unreadable file is an input error naming it."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlaybookError("file not found", path=name) from None
    except OSError as exc:
        raise PlaybookError(f"cannot read file: {exc.strerror}", path=name) from None
    except UnicodeDecodeError:
        raise PlaybookError("file is not UTF-8 text", path=name) from None
    return parse_yaml(text, path=name)
