"""Starting the console: tokens, the app, uvicorn. What `invoke console` calls.

Loopback by default. Bound elsewhere without TLS it still starts (a trusted network, a TLS proxy in front) but
warns, because cookies and tokens would then cross the network in clear.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from kubeops.actions.registry import Registry
from kubeops.console.auth import TokenBook, load_or_create, load_token_file
from kubeops.errors import InputError
from kubeops.settings import Settings


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    read_only: bool = False
    token_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def prepare_tokens(settings: Settings, options: ServeOptions, *, out: TextIO) -> TokenBook:
    """The token book; on a first start the new tokens are printed here, once, and never again."""
    if options.token_file:
        return load_token_file(Path(options.token_file))
    book, created = load_or_create(Path(settings.state_dir))
    if created:
        print(f"console tokens created (shown once; only their hashes are kept in {book.source}):", file=out)
        for role, token in created.items():
            print(f"  {role:<9} {token}", file=out)
    return book


def check_options(options: ServeOptions) -> None:
    if bool(options.tls_cert) != bool(options.tls_key):
        raise InputError("--tls-cert and --tls-key go together")
    for flag, path in (("--tls-cert", options.tls_cert), ("--tls-key", options.tls_key)):
        if path and not os.path.isfile(path):
            raise InputError(f"{flag} {path}: no such file")
    if not 0 <= options.port <= 65535:
        raise InputError(f"--port must be 0..65535, got {options.port}")


def make_app(settings: Settings, registry: Registry, options: ServeOptions, *, out: TextIO = sys.stdout) -> Any:
    from kubeops.console.app import ConsoleConfig, build_app

    check_options(options)
    tokens = prepare_tokens(settings, options, out=out)
    return build_app(ConsoleConfig(settings=settings, registry=registry, tokens=tokens, read_only=options.read_only,
                                   secure_cookies=bool(options.tls_cert)))


def serve(settings: Settings, registry: Registry, options: ServeOptions, *, out: TextIO = sys.stdout) -> None:
    """Run until interrupted."""
    import uvicorn

    app = make_app(settings, registry, options, out=out)
    scheme = "https" if options.tls_cert else "http"
    if not is_loopback(options.host) and not options.tls_cert:
        print(f"WARNING: listening on {options.host} without TLS: tokens and session cookies cross the network in "
              "clear; use --tls-cert/--tls-key or a TLS proxy", file=sys.stderr)
    mode = " (read-only)" if options.read_only else ""
    print(f"kubeops console for cluster {settings.cluster}{mode}: {scheme}://{options.host}:{options.port}/",
          file=out, flush=True)
    uvicorn.run(app, host=options.host, port=options.port, ssl_certfile=options.tls_cert,
                ssl_keyfile=options.tls_key, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
