"""The `sandbox` task: start or stop the local Kubernetes API emulator (and moto for AWS).

Thin wrapper over `python -m kubeops.sandbox`; the state folder is `$KUBEOPS_STATE_DIR/sandbox`, where
`inventory/sandbox.yaml` expects the kubeconfig and the AWS env file.
"""

from __future__ import annotations

from invoke import Exit

from kubeops.tasks._common import task


@task(
    help={
        "scenario": "scenario name (default, pdb-blocked, autoscaling, large) or a YAML path",
        "port": "API port (0: a free one)",
        "detach": "run in the background and return once the API answers",
        "stop": "stop the sandbox started with --detach",
        "no-aws": "do not start moto_server (no AWS Auto Scaling)",
        "param": "scenario parameter override k=v (repeatable)",
        "fault": "fault injection k=v, e.g. error_429_rate=0.1 (repeatable)",
    },
    iterable=["param", "fault"],
)
def sandbox(
    c: object,
    scenario: str = "default",
    port: int = 0,
    detach: bool = False,
    stop: bool = False,
    no_aws: bool = False,
    param: list[str] | None = None,
    fault: list[str] | None = None,
) -> None:
    """Run the local sandbox cluster: a Kubernetes API with real semantics plus moto AWS."""
    from kubeops.sandbox import main

    argv = ["--stop"] if stop else ["--scenario", scenario, "--port", str(port)]
    if not stop:
        if detach:
            argv.append("--detach")
        if no_aws:
            argv.append("--no-aws")
        for item in param or ():
            argv += ["--param", item]
        for item in fault or ():
            argv += ["--fault", item]
    code = main(argv)
    if code:
        raise Exit(code=code)
