"""The action registry: what a playbook step may name, and what each action accepts.

An action is declared once, with its parameters as a frozen dataclass, whether it mutates anything, and how to
plan it for a dry run. The loader checks every step against these declarations before the first API call, so
a typo in step 9 fails at load time, not halfway through a drain.

Contract of an action function: ``fn(ctx: StepContext, p: Params) -> dict[str, Any]``, returning JSON-able
outputs that later steps may reference. A mutating action is idempotent, or records its intent with
``ctx.record_intent(...)`` before the side effect and reconciles from ``ctx.intent`` when re-entered on resume.

Contract of a plan function (dry run, mutating actions only): ``plan(ctx, p) -> Plan``. It may read, and may call
the Kubernetes API with ``dryRun=All``; it must not change anything anywhere.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubeops.errors import RegistryError

if TYPE_CHECKING:
    from kubeops.actions.context import StepContext

ActionFn = Callable[["StepContext", Any], dict[str, Any]]
PlanFn = Callable[["StepContext", Any], "Plan"]

# Modules that declare the shipped actions; imported lazily so `kubeops --help` stays fast.
ACTION_MODULES: tuple[str, ...] = (
    "kubeops.actions.builtin",
    "kubeops.actions.k8s",
    "kubeops.actions.ssh",
    "kubeops.actions.aws",
    "kubeops.actions.cadvisor",
    "kubeops.actions.redistribute",
    "kubeops.actions.apps",
)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a mutating step would do: shown by dry-run; `outputs` stand in for the real ones."""

    summary: str
    details: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One declared parameter, derived from the params dataclass."""

    name: str
    type: Any  # the annotation, resolved
    required: bool
    default: Any
    description: str


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """A declared action."""

    name: str
    fn: ActionFn
    params: type
    mutates: bool
    plan: PlanFn | None
    description: str
    outputs: tuple[str, ...] | None = None  # declared output keys: lets the loader reject unknown references

    def param_specs(self) -> dict[str, ParamSpec]:
        """The parameters a step may pass: required ones first, each group in declaration order.

        (A params class built on a keyword-only base, like `DrainParams` on `DrainFlags`, declares its required
        field after the base's defaults; listing it first keeps help and schema reading as for any other action.)
        """
        hints = _type_hints(self.params)
        specs: dict[str, ParamSpec] = {}
        for f in sorted(dataclasses.fields(self.params), key=_has_default):
            has_default = _has_default(f)
            default = f.default if f.default is not dataclasses.MISSING else None
            if f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            specs[f.name] = ParamSpec(
                name=f.name,
                type=hints[f.name],
                required=not has_default,
                default=default,
                description=str(f.metadata.get("help", "")),
            )
        return specs


def _has_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


@functools.cache
def _type_hints(params: type) -> dict[str, Any]:
    """Resolved annotations of a params class, once: resolving them per step made big playbooks load slowly."""
    return typing.get_type_hints(params)


class Registry:
    """Named actions. The app has one default registry; tests build their own."""

    def __init__(self) -> None:
        self._specs: dict[str, ActionSpec] = {}

    def add(self, spec: ActionSpec) -> None:
        if spec.name in self._specs:
            raise RegistryError(f"action {spec.name!r} is declared twice")
        if not dataclasses.is_dataclass(spec.params):
            raise RegistryError(f"action {spec.name!r}: params must be a dataclass")
        if spec.mutates and spec.plan is None:
            raise RegistryError(f"action {spec.name!r} mutates, so it must declare a dry-run plan")
        self._specs[spec.name] = spec

    def get(self, name: str) -> ActionSpec | None:
        return self._specs.get(name)

    def names(self) -> list[str]:
        return sorted(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[ActionSpec]:
        return iter(self._specs.values())


DEFAULT_REGISTRY = Registry()
_loaded = False


def default_registry() -> Registry:
    """The app's registry with every shipped action module imported (once)."""
    global _loaded
    if not _loaded:
        for module in ACTION_MODULES:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:  # a real missing dependency inside the module: surface it
                    raise
        _loaded = True
    return DEFAULT_REGISTRY


def action(
    name: str,
    *,
    params: type,
    mutates: bool,
    plan: PlanFn | None = None,
    outputs: tuple[str, ...] | list[str] | None = None,
    registry: Registry = DEFAULT_REGISTRY,
) -> Callable[[ActionFn], ActionFn]:
    """Declare `fn` as the action `name`; returns `fn` unchanged so tests can call it directly."""

    def register(fn: ActionFn) -> ActionFn:
        doc = (fn.__doc__ or "").strip().splitlines()
        registry.add(
            ActionSpec(
                name=name,
                fn=fn,
                params=params,
                mutates=mutates,
                plan=plan,
                description=doc[0] if doc else "",
                outputs=tuple(outputs) if outputs is not None else None,
            )
        )
        return fn

    return register


def type_name(tp: Any) -> str:
    """Human name of a parameter type, as shown in error messages and the JSON schema."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return f"list of {type_name(item)}"
    if origin is dict:
        return "mapping"
    if tp is type(None):
        return "null"
    if tp is Any:
        return "any"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(tp, getattr(tp, "__name__", str(tp)))


def check_value(tp: Any, value: Any) -> bool:
    """Whether a literal `value` fits type `tp` (ints are accepted where floats are)."""
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(check_value(a, value) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is list:
        args = typing.get_args(tp)
        return isinstance(value, list) and all(check_value(args[0], v) for v in value) if args else isinstance(
            value, list
        )
    if origin is dict:
        args = typing.get_args(tp)
        if not isinstance(value, dict):
            return False
        return all(check_value(args[1], v) for v in value.values()) if args else True
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    return isinstance(value, tp) if isinstance(tp, type) else True
