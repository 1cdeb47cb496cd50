"""kubeops.sandbox: a local Kubernetes API server with real semantics, plus moto for AWS.

Layout (core): `store` (objects, resourceVersion, watch log, deletion), `cluster` (the `Cluster` and its plug-in
points: reconcilers, subresource/proxy handlers, extra API groups; read its docstring before plugging in),
`server` (HTTP), `wire` (content negotiation) with `protobuf` (+ `proto/k8s-api.binpb`), `discovery`, `selectors`,
`patch`, `status`, `defaults`, `tables`, `openapi` and `openapi_v2`, `faults`, `requestlog`, `scenario`
(+ `scenarios/*.yaml`), `process` (flags, state folder, detach/stop) and `testing` (`SandboxProcess` for tests).
Cluster behaviour (controllers, scheduler, kubelet, PDBs, eviction, AWS link, metrics) lives in the semantics
modules that `cluster.PLUGIN_MODULES` names.

Importing this package is cheap: the functions below import the machinery lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["main", "start", "stop"]


def main(argv: list[str] | None = None) -> int:
    """The ``python -m kubeops.sandbox`` entry point; returns the exit code."""
    from kubeops.sandbox.process import main as _main

    return _main(argv)


def start(scenario: str = "default", *, state_dir: str | Path | None = None, port: int = 0, aws: bool = True,
          params: dict[str, str] | None = None) -> dict[str, Any]:
    """Start a detached sandbox and return its sandbox.json (pid, api_url, aws_url, scenario)."""
    from kubeops.sandbox.process import default_state_dir, detach

    sd = Path(state_dir) if state_dir else default_state_dir()
    argv = ["--scenario", str(scenario), "--port", str(port), "--state-dir", str(sd)]
    if not aws:
        argv.append("--no-aws")
    for k, v in (params or {}).items():
        argv += ["--param", f"{k}={v}"]
    return detach(argv, sd)


def stop(state_dir: str | Path | None = None) -> bool:
    """Stop the detached sandbox of state_dir (default: $KUBEOPS_STATE_DIR/sandbox); False if none ran."""
    from kubeops.sandbox.process import stop as _stop

    return _stop(state_dir)
