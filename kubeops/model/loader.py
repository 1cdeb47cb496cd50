"""Find, parse and validate playbooks: every mistake is found here, before anything runs.

Checks: YAML syntax and shape, unknown or missing fields, parameter declarations, unique step names, known
actions, step arguments against the action's params dataclass (unknown, missing, wrong literal type), references
(unknown parameter, unknown or later step, unknown output key when the action declares its outputs), `when`
conditions, retry, timeout, on_failure, and includes (found, parameters bound, no cycles). Each error is a
PlaybookError naming file, line and field.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeops.actions.registry import ActionSpec, Registry, check_value, type_name
from kubeops.errors import PlaybookError
from kubeops.model import refs
from kubeops.model.playbook import PARAM_TYPES, ParamDecl, Playbook, RetryPolicy, Source, Step
from kubeops.model.windows import Window, WindowError
from kubeops.yamlsource import PathKey, YamlDocument, load_yaml

TOP_KEYS = ("name", "description", "params", "window", "steps", "cleanup")
WINDOW_KEYS = ("days", "start", "end", "timezone")
PARAM_KEYS = ("type", "required", "default", "description")
STEP_KEYS = (
    "name",
    "description",
    "action",
    "args",
    "include",
    "params",
    "when",
    "retry",
    "timeout",
    "on_failure",
    "always",
)
RETRY_KEYS = ("attempts", "backoff_s", "max_backoff_s")
STEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_SAMPLES: dict[str, Any] = {"string": "x", "integer": 1, "number": 1.5, "boolean": True, "list": [], "mapping": {}}


def playbook_dirs() -> list[Path]:
    """Where playbooks are looked up by name: `$KUBEOPS_PLAYBOOK_DIR` (os.pathsep-separated), else
    ``./playbooks`` when it exists, then the project's own ``playbooks/``."""
    env = os.environ.get("KUBEOPS_PLAYBOOK_DIR")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    from kubeops.settings import project_root

    dirs = [Path.cwd() / "playbooks", project_root() / "playbooks"]
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def available_playbooks(search_dirs: Sequence[Path] | None = None) -> list[str]:
    """Names of the playbooks found by name lookup."""
    names: set[str] = set()
    for d in search_dirs if search_dirs is not None else playbook_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.iterdir() if p.suffix in (".yaml", ".yml"))
    return sorted(names)


def find_playbook(ref: str, *, base_dir: Path | None = None, search_dirs: Sequence[Path] | None = None) -> Path:
    """A playbook by path (absolute, or relative to `base_dir`/cwd) or by name in the playbook folders."""
    candidates: list[Path] = []
    looks_like_path = "/" in ref or ref.endswith((".yaml", ".yml"))
    if looks_like_path:
        p = Path(ref).expanduser()
        candidates.append(p if p.is_absolute() or base_dir is None else base_dir / p)
        if base_dir is not None and not p.is_absolute():
            candidates.append(p)
    else:
        dirs = list(search_dirs if search_dirs is not None else playbook_dirs())
        if base_dir is not None:
            dirs.insert(0, base_dir)
        for d in dirs:
            candidates += [d / f"{ref}.yaml", d / f"{ref}.yml"]
    for c in candidates:
        if c.is_file():
            return c
    known = available_playbooks(search_dirs)
    close = difflib.get_close_matches(ref, known, n=3)
    hint = f"did you mean: {', '.join(close)}?" if close else f"known playbooks: {', '.join(known) or '(none)'}"
    raise PlaybookError(
        f"no playbook {ref!r} found", path=ref, field="playbook", hint=None if looks_like_path else hint
    )


def load_playbook(
    ref: str | Path,
    *,
    registry: Registry | None = None,
    search_dirs: Sequence[Path] | None = None,
) -> Playbook:
    """Load and fully validate a playbook (name or path); raises PlaybookError on the first problem."""
    if registry is None:
        from kubeops.actions.registry import default_registry

        registry = default_registry()
    path = Path(ref) if isinstance(ref, Path) else find_playbook(ref, search_dirs=search_dirs)
    return _Loader(registry, search_dirs).load(path, stack=())


def parse_duration(value: Any) -> float | None:
    """Seconds from a number or a string like "90", "30s", "5m", "1h30m", "250ms"; None when malformed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value > 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        seconds = float(text)
        return seconds if seconds > 0 else None
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            return None
        number, unit = float(match.group(1)), match.group(2)
        total += number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
        pos = match.end()
    return total if pos == len(text) and total > 0 else None


@dataclass(slots=True)
class _Visible:
    """What references in the step being checked may point at."""

    params: dict[str, ParamDecl]
    steps: dict[str, ActionSpec | None] = field(default_factory=dict)  # name -> spec (None: unknown outputs)
    all_names: dict[str, int] = field(default_factory=dict)  # every step name -> its index, for "later step"
    windows: list[Window] = field(default_factory=list)  # of included playbooks: they bind the run too


class _Loader:
    def __init__(self, registry: Registry, search_dirs: Sequence[Path] | None) -> None:
        self.registry = registry
        self.search_dirs = search_dirs

    def load(self, path: Path, *, stack: tuple[Path, ...]) -> Playbook:
        doc = load_yaml(path)
        data = doc.data
        if not isinstance(data, dict):
            raise doc.error((), "a playbook must be a mapping with name, params and steps")
        for key in data:
            if key not in TOP_KEYS:
                raise doc.error((key,), f"unknown field; expected one of: {', '.join(TOP_KEYS)}")
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise doc.error(("name",), "required: a non-empty string naming the playbook")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise doc.error(("description",), "must be a string")
        params = self._params(doc, data.get("params"))
        window = self._window(doc, data["window"]) if data.get("window") is not None else None
        steps_raw = data.get("steps")
        if not isinstance(steps_raw, list) or not steps_raw:
            raise doc.error(("steps",), "required: a non-empty list of steps")
        cleanup_raw = data.get("cleanup", [])
        if cleanup_raw is None:
            cleanup_raw = []
        if not isinstance(cleanup_raw, list):
            raise doc.error(("cleanup",), "must be a list of steps")

        visible = _Visible(params={p.name: p for p in params})
        # Every declared name first, so a reference to a later step says "later", not "unknown".
        for raw in [*steps_raw, *cleanup_raw]:
            if isinstance(raw, dict) and isinstance(raw.get("name"), str):
                visible.all_names.setdefault(raw["name"], len(visible.all_names))
        steps: list[Step] = []
        cleanup: list[Step] = []
        seen: dict[str, int] = {}
        for section, raw_list in (("steps", steps_raw), ("cleanup", cleanup_raw)):
            for index, raw in enumerate(raw_list):
                key: PathKey = (section, index)
                new_main, new_cleanup = self._step(
                    doc, key, raw, visible, seen, stack=(*stack, path.resolve()), is_cleanup=section == "cleanup"
                )
                (cleanup if section == "cleanup" else steps).extend(new_main)
                cleanup.extend(new_cleanup)
        return Playbook(
            name=name.strip(),
            path=str(path),
            description=description,
            params=tuple(params),
            steps=tuple(steps),
            cleanup=tuple(cleanup),
            windows=tuple(dict.fromkeys([*([window] if window else []), *visible.windows])),
        )

    # -- window ---------------------------------------------------------------------------------------------
    def _window(self, doc: YamlDocument, raw: Any) -> Window:
        """The playbook's maintenance window: the inventory's shape and rules (kubeops.model.windows)."""
        if not isinstance(raw, dict):
            raise doc.error(("window",), "must be a mapping with days, start, end and timezone")
        for k in raw:
            if k not in WINDOW_KEYS:
                raise doc.error(("window", k), f"unknown field; expected one of: {', '.join(WINDOW_KEYS)}")
        days = raw.get("days") or []
        if isinstance(days, str):
            days = [days]
        if not isinstance(days, list) or not all(isinstance(d, str) for d in days):
            raise doc.error(("window", "days"), "must be a list of days like [mon-fri, sun]")
        times: dict[str, str | None] = {}
        for k in ("start", "end"):
            value = raw.get(k)
            if isinstance(value, int) and not isinstance(value, bool):
                raise doc.error(
                    ("window", k), f'must be a quoted time like "22:00" (unquoted, YAML reads 22:00 as {value!r})'
                )
            if value is not None and not isinstance(value, str):
                raise doc.error(("window", k), f'must be a time like "22:00", got {value!r}')
            times[k] = value
        timezone = raw.get("timezone", "UTC")
        if not isinstance(timezone, str):
            raise doc.error(("window", "timezone"), f"must be an IANA name like Europe/Berlin, got {timezone!r}")
        try:
            return Window.parse(days=days, start=times["start"], end=times["end"], timezone=timezone)
        except WindowError as exc:
            raise doc.error(("window", exc.field), str(exc)) from None

    # -- params ---------------------------------------------------------------------------------------------
    def _params(self, doc: YamlDocument, raw: Any) -> list[ParamDecl]:
        if raw is None:
            return []
        if not isinstance(raw, dict):
            raise doc.error(("params",), "must be a mapping of parameter name to {type, required, default}")
        out: list[ParamDecl] = []
        for name, spec in raw.items():
            key: PathKey = ("params", name)
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise doc.error(key, "parameter names are letters, digits and underscores")
            if spec is None:
                spec = {}
            if isinstance(spec, str):
                spec = {"type": spec}
            if not isinstance(spec, dict):
                raise doc.error(key, "must be a mapping like {type: string, required: true}")
            for k in spec:
                if k not in PARAM_KEYS:
                    raise doc.error((*key, k), f"unknown field; expected one of: {', '.join(PARAM_KEYS)}")
            ptype = spec.get("type", "string")
            if ptype not in PARAM_TYPES:
                raise doc.error((*key, "type"), f"unknown type {ptype!r}; expected one of: {', '.join(PARAM_TYPES)}")
            required = spec.get("required", "default" not in spec)
            if not isinstance(required, bool):
                raise doc.error((*key, "required"), "must be true or false")
            description = spec.get("description", "")
            if not isinstance(description, str):
                raise doc.error((*key, "description"), "must be a string")
            decl = ParamDecl(
                name=name,
                type=ptype,
                required=required and "default" not in spec,
                default=spec.get("default"),
                description=description,
                source=Source(doc.path, doc.line_of(key)),
            )
            if "default" in spec and spec["default"] is not None and not decl.accepts(spec["default"]):
                raise doc.error((*key, "default"), f"must be of type {ptype}, got {spec['default']!r}")
            out.append(decl)
        return out

    # -- steps ----------------------------------------------------------------------------------------------
    def _step(
        self,
        doc: YamlDocument,
        key: PathKey,
        raw: Any,
        visible: _Visible,
        seen: dict[str, int],
        *,
        stack: tuple[Path, ...],
        is_cleanup: bool,
    ) -> tuple[list[Step], list[Step]]:
        if not isinstance(raw, dict):
            raise doc.error(key, "a step must be a mapping with name and action (or include)")
        for k in raw:
            if k not in STEP_KEYS:
                raise doc.error((*key, k), f"unknown field; expected one of: {', '.join(STEP_KEYS)}")
        name = raw.get("name")
        if name is not None and not isinstance(name, str):
            raise doc.error(
                (*key, "name"), f"must be a string, got {name!r}; quote it (YAML reads yes/no/on/off as booleans)"
            )
        if not name:
            raise doc.error((*key, "name"), "required: a step name")
        if not STEP_NAME.match(name):
            raise doc.error((*key, "name"), f"{name!r}: step names are letters, digits, '-' and '_'")
        if name in seen:
            raise doc.error((*key, "name"), f"duplicate step name {name!r} (first used on line {seen[name]})")
        seen[name] = doc.line_of((*key, "name")) or 0
        source = Source(doc.path, doc.line_of(key))
        has_action, has_include = "action" in raw, "include" in raw
        if has_action == has_include:
            raise doc.error((*key, "action"), "a step needs exactly one of `action` or `include`")
        if "always" in raw and not is_cleanup:
            raise doc.error((*key, "always"), "only cleanup steps can be marked always")
        always = raw.get("always", False)
        if not isinstance(always, bool):
            raise doc.error((*key, "always"), "must be true or false")
        when = raw.get("when")
        bad = refs.check_condition(when)
        if bad is not None:
            raise doc.error(
                (*key, "when", *bad),
                f"invalid condition; use a reference or one of {{{', '.join(refs.OPERATORS)}}} "
                "(equals/not_equals take a list of two values)",
            )
        self._check_refs(doc, (*key, "when"), when, visible, current=name)

        if has_include:
            if is_cleanup:
                raise doc.error((*key, "include"), "include is not allowed in cleanup; include in steps instead")
            for k in ("args", "retry", "timeout", "on_failure"):
                if k in raw:
                    raise doc.error((*key, k), "not allowed on an include step (set it in the included playbook)")
            return self._include(doc, key, raw, name, when, visible, stack=stack)

        if "params" in raw:
            raise doc.error((*key, "params"), "`params` belongs to include steps; actions take `args`")
        action_name = raw["action"]
        if not isinstance(action_name, str):
            raise doc.error((*key, "action"), "must be an action name")
        spec = self.registry.get(action_name)
        if spec is None:
            close = difflib.get_close_matches(action_name, self.registry.names(), n=3)
            raise doc.error(
                (*key, "action"),
                f"unknown action {action_name!r}",
                hint=f"did you mean: {', '.join(close)}?" if close else "see `kubeops validate` docs for actions",
            )
        args = raw.get("args") or {}
        if not isinstance(args, dict):
            raise doc.error((*key, "args"), "must be a mapping of argument name to value")
        self._check_args(doc, (*key, "args"), spec, args, visible, current=name)
        step = Step(
            name=name,
            action=action_name,
            args=args,
            when=when,
            retry=self._retry(doc, (*key, "retry"), raw.get("retry")),
            timeout_s=self._timeout(doc, (*key, "timeout"), raw.get("timeout")),
            on_failure=self._on_failure(doc, (*key, "on_failure"), raw.get("on_failure", "abort")),
            cleanup=is_cleanup,
            always=always,
            source=source,
        )
        visible.steps[name] = spec
        return [step], []

    def _retry(self, doc: YamlDocument, key: PathKey, raw: Any) -> RetryPolicy:
        if raw is None:
            return RetryPolicy()
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = {"attempts": raw}
        if not isinstance(raw, dict):
            raise doc.error(key, "must be a mapping {attempts, backoff_s, max_backoff_s} or a number of attempts")
        for k, v in raw.items():
            if k not in RETRY_KEYS:
                raise doc.error((*key, k), f"unknown field; expected one of: {', '.join(RETRY_KEYS)}")
            if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                raise doc.error((*key, k), f"must be a non-negative number, got {v!r}")
        attempts = raw.get("attempts", 1)
        if not isinstance(attempts, int) or attempts < 1:
            raise doc.error((*key, "attempts"), f"must be an integer >= 1, got {attempts!r}")
        policy = RetryPolicy(
            attempts=attempts,
            backoff_s=float(raw.get("backoff_s", 1.0)),
            max_backoff_s=float(raw.get("max_backoff_s", 60.0)),
        )
        return policy

    def _timeout(self, doc: YamlDocument, key: PathKey, raw: Any) -> float | None:
        if raw is None:
            return None
        seconds = parse_duration(raw)
        if seconds is None:
            raise doc.error(key, f"must be a positive number of seconds or a duration like 30s, 5m, 1h; got {raw!r}")
        return seconds

    def _on_failure(self, doc: YamlDocument, key: PathKey, raw: Any) -> Any:
        if raw not in ("abort", "continue"):
            raise doc.error(key, f"must be 'abort' or 'continue', got {raw!r}")
        return raw

    # -- arguments and references ---------------------------------------------------------------------------
    def _check_args(
        self, doc: YamlDocument, key: PathKey, spec: ActionSpec, args: dict[str, Any], visible: _Visible, current: str
    ) -> None:
        params = spec.param_specs()
        for arg, value in args.items():
            if arg not in params:
                close = difflib.get_close_matches(arg, list(params), n=1)
                expected = ", ".join(params) or "(none)"
                raise doc.error(
                    (*key, arg),
                    f"unknown argument for {spec.name}; expected one of: {expected}",
                    hint=f"did you mean {close[0]!r}?" if close else None,
                )
            self._check_refs(doc, (*key, arg), value, visible, current=current)
            if not self._fits(params[arg].type, value, visible):
                raise doc.error((*key, arg), f"must be {type_name(params[arg].type)}, got {_describe(value, visible)}")
        for pname, pspec in params.items():
            if pspec.required and pname not in args:
                raise doc.error(
                    key, f"missing required argument {pname!r} for {spec.name}", hint=pspec.description or None
                )

    def _fits(self, tp: Any, value: Any, visible: _Visible) -> bool:
        ref = refs.exact_ref(value)
        if ref is not None:
            if ref.root == "params":
                decl = visible.params[str(ref.path[0])]
                if len(ref.path) > 1:
                    return True
                return check_value(tp, _SAMPLES[decl.type])
            if ref.root == "run":
                return check_value(tp, False if ref.path[0] == "dry_run" else "x")
            return True  # step outputs: checked at run time
        if isinstance(value, str) and any(isinstance(p, refs.Ref) for p in refs.split(value)):
            return check_value(tp, "x")
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            return any(self._fits(a, value, visible) for a in typing.get_args(tp))
        if origin is list and isinstance(value, list):
            (item,) = typing.get_args(tp) or (Any,)
            return all(self._fits(item, v, visible) for v in value)
        if origin is dict and isinstance(value, dict):
            args = typing.get_args(tp)
            return all(self._fits(args[1], v, visible) for v in value.values()) if args else True
        return check_value(tp, value)

    def _check_refs(self, doc: YamlDocument, key: PathKey, value: Any, visible: _Visible, *, current: str) -> None:
        try:
            found = list(refs.walk_refs(value))
        except refs.RefError as exc:
            raise doc.error(key, exc.message) from None
        for ref, sub in found:
            where = (*key, *sub)
            if ref.root == "params":
                pname = str(ref.path[0])
                if pname not in visible.params:
                    known = ", ".join(visible.params) or "(none declared)"
                    raise doc.error(where, f"${{{ref.text}}}: unknown parameter {pname!r}; declared: {known}")
            elif ref.root == "steps":
                sname = str(ref.path[0])
                if sname not in visible.steps:
                    if sname == current:
                        why = "a step cannot reference its own outputs"
                    elif sname.split("/")[0] in visible.all_names:
                        why = f"step {sname!r} runs later; only earlier steps' outputs can be referenced"
                    else:
                        why = f"unknown step {sname!r}"
                    raise doc.error(where, f"${{{ref.text}}}: {why}")
                spec = visible.steps[sname]
                out_key = ref.output_key
                declared = spec.outputs if spec is not None else None
                if declared is not None and out_key is not None and out_key not in declared:
                    raise doc.error(
                        where,
                        f"${{{ref.text}}}: action {spec.name if spec else '?'} has no output {out_key!r}; "
                        f"it outputs: {', '.join(declared) or '(nothing)'}",
                    )

    # -- includes -------------------------------------------------------------------------------------------
    def _include(
        self,
        doc: YamlDocument,
        key: PathKey,
        raw: dict[str, Any],
        name: str,
        when: Any,
        visible: _Visible,
        *,
        stack: tuple[Path, ...],
    ) -> tuple[list[Step], list[Step]]:
        target = raw["include"]
        if not isinstance(target, str) or not target:
            raise doc.error((*key, "include"), "must be a playbook name or path")
        try:
            path = find_playbook(target, base_dir=Path(doc.path).parent, search_dirs=self.search_dirs)
        except PlaybookError as exc:
            raise doc.error((*key, "include"), f"no playbook {target!r} found", hint=exc.hint) from None
        if path.resolve() in stack:
            chain = " -> ".join(p.name for p in (*stack, path.resolve()))
            raise doc.error((*key, "include"), f"include cycle: {chain}")
        inner = self.load(path, stack=stack)
        bindings = raw.get("params") or {}
        if not isinstance(bindings, dict):
            raise doc.error((*key, "params"), "must be a mapping of the included playbook's parameters")
        decls = {p.name: p for p in inner.params}
        for pname, value in bindings.items():
            if pname not in decls:
                raise doc.error(
                    (*key, "params", pname),
                    f"playbook {inner.name!r} has no parameter {pname!r}; it takes: {', '.join(decls) or '(none)'}",
                )
            self._check_refs(doc, (*key, "params", pname), value, visible, current=name)
            decl = decls[pname]
            if any(True for _ in refs.walk_refs(value)):
                ref = refs.exact_ref(value)
                if ref is not None and ref.root == "params" and len(ref.path) == 1:
                    outer = visible.params[str(ref.path[0])]
                    if not decl.accepts(_SAMPLES[outer.type]):
                        raise doc.error(
                            (*key, "params", pname), f"must be {decl.type}, got {outer.type} parameter {ref.path[0]!r}"
                        )
                elif ref is None and decl.type != "string":
                    raise doc.error((*key, "params", pname), f"must be {decl.type}, got a string")
            elif not decl.accepts(value):
                raise doc.error((*key, "params", pname), f"must be {decl.type}, got {value!r}")
        for decl in inner.params:
            if decl.required and decl.name not in bindings:
                raise doc.error((*key, "params"), f"missing required parameter {decl.name!r} of {inner.name!r}")

        renamed = {s.name: f"{name}/{s.name}" for s in inner.all_steps()}

        def replace(ref: refs.Ref) -> refs.Replacement:
            if ref.root == "steps":
                return True, refs.format_ref("steps", (renamed.get(str(ref.path[0]), str(ref.path[0])), *ref.path[1:]))
            if ref.root == "run":
                return True, refs.format_ref("run", ref.path)
            pname, rest = str(ref.path[0]), ref.path[1:]
            if pname in bindings:
                bound = bindings[pname]
                inner_ref = refs.exact_ref(bound)
                if inner_ref is not None:
                    return True, refs.format_ref(inner_ref.root, (*inner_ref.path, *rest))
                if isinstance(bound, str) and not rest:
                    return True, bound  # template text of the outer playbook
                return False, _dig(bound, rest, doc, (*key, "params", pname))
            return False, _dig(decls[pname].default, rest, doc, (*key, "params"))

        def inline(step: Step, *, cleanup: bool) -> Step:
            inner_when = refs.rewrite(step.when, replace) if step.when is not None else None
            combined = inner_when if when is None else (when if inner_when is None else {"all": [when, inner_when]})
            return Step(
                name=renamed[step.name],
                action=step.action,
                args=refs.rewrite(step.args, replace),
                when=combined,
                retry=step.retry,
                timeout_s=step.timeout_s,
                on_failure=step.on_failure,
                cleanup=cleanup,
                always=step.always,
                source=step.source,
            )

        main = [inline(s, cleanup=False) for s in inner.steps]
        extra_cleanup = [inline(s, cleanup=True) for s in inner.cleanup]
        for s in main:
            visible.steps[s.name] = self.registry.get(s.action)
        visible.windows.extend(inner.windows)
        return main, extra_cleanup


def _dig(value: Any, path: tuple[str | int, ...], doc: YamlDocument, key: PathKey) -> Any:
    try:
        return refs.dig(value, path)
    except refs.MissingKey as exc:
        raise doc.error(key, f"value has no {exc.key!r}") from None


def _describe(value: Any, visible: _Visible) -> str:
    ref = refs.exact_ref(value)
    if ref is not None and ref.root == "params":
        decl = visible.params.get(str(ref.path[0]))
        if decl is not None:
            return f"{decl.type} parameter {decl.name!r}"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)
