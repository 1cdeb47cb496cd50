"""The toy actions registered in the app's default registry, for CLI subprocess tests ($KUBEOPS_ACTION_MODULES)."""

from __future__ import annotations

from kubeops.actions.registry import DEFAULT_REGISTRY, action
from tests.engine import toy_actions as t

action("t.read", params=t.ReadParams, mutates=False, outputs=("content", "lines", "exists"), registry=DEFAULT_REGISTRY)(
    t._read
)
action("t.typed", params=t.TypedParams, mutates=False, outputs=("echo",), registry=DEFAULT_REGISTRY)(t._typed)
action(
    "t.write", params=t.WriteParams, mutates=True, plan=t._plan_write, outputs=("written",), registry=DEFAULT_REGISTRY
)(t._write)
