"""Task `console`: the web GUI (kubeops/console) over the same engine API as every other task. Thin on purpose."""

from __future__ import annotations

from dataclasses import replace

from kubeops.tasks import _common
from kubeops.tasks._common import task


@task(
    auto_shortflags=False,  # -h stays help, not --host
    help={
        "cluster": _common.CLUSTER_HELP,
        "host": "address to listen on (default 127.0.0.1; elsewhere without TLS prints a warning)",
        "port": "port (default 8080)",
        "read-only": "nobody may launch, resume, cancel or break the lock, whatever their token",
        "token-file": "your own tokens, one a line: '<name> <role> <token>' (role viewer or operator; mode 0600)",
        "tls-cert": "PEM certificate: serve HTTPS (with --tls-key)",
        "tls-key": "PEM private key of --tls-cert",
        "log-format": _common.LOG_HELP,
    }
)
def console(  # type: ignore[no-untyped-def]
    c, cluster=None, host="127.0.0.1", port=8080, read_only=False, token_file=None, tls_cert=None, tls_key=None,
    log_format=None,
):
    """Start the web console: see runs, plan and launch playbooks, watch them live, resume; tokens on first start."""
    import importlib.util

    missing = [m for m in ("starlette", "uvicorn", "jinja2", "multipart") if importlib.util.find_spec(m) is None]
    if missing:  # the console extra is optional: say how to get it rather than show an ImportError
        from invoke import Exit

        raise Exit(f"error: the console needs {', '.join(missing)}: pip install 'kubeops[console]'", _common.EXIT_INPUT)
    with _common.exit_codes():
        from kubeops.console.server import ServeOptions, serve

        settings = _common.build_settings(cluster, log_format)
        # a long-lived server: decoded lists must stay collectable (see KubeSettings.freeze_big_lists)
        settings = replace(settings, kube=replace(settings.kube, freeze_big_lists=False))
        _common.setup_logging(settings)
        serve(settings, _common.registry(), ServeOptions(host=host, port=int(port), read_only=bool(read_only),
                                                         token_file=token_file, tls_cert=tls_cert, tls_key=tls_key))
