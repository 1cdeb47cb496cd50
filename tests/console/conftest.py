"""A console in front of a real sandbox: the app built as `invoke console` builds it, reached over HTTP.

`console_factory(scenario)` starts a sandbox process, writes an inventory for it, and returns a `Console` with
the settings, the tokens (a token file of our own, mode 0600), a Starlette TestClient per role, and `serve()` to
run it under uvicorn on a free loopback port (for the browser).
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeops.sandbox.testing import SandboxProcess

REPO = Path(__file__).resolve().parents[2]
TOKENS = {"viewer": "viewer-token-0123456789abcdef", "operator": "operator-token-0123456789abcdef"}


class Console:
    def __init__(self, sandbox: SandboxProcess, folder: Path, *, read_only: bool = False,
                 inventory_extra: dict[str, Any] | None = None) -> None:
        from kubeops.actions.registry import default_registry
        from kubeops.console.server import ServeOptions, make_app
        from kubeops.settings import load_settings

        self.sandbox = sandbox
        inventory = folder / "inventory"
        inventory.mkdir(parents=True, exist_ok=True)
        extra = dict(inventory_extra or {})
        (inventory / "sandbox.yaml").write_text(yaml.safe_dump({
            "name": "sandbox",
            "kube": {"kubeconfig": str(sandbox.kubeconfig), "context": "sandbox", **extra.pop("kube", {})},
            "lock": {"namespace": "kube-system", "name": "kubeops-lock", "ttl_s": 30},
            **extra,
        }))
        self.inventory = inventory
        shutil.copytree(REPO / "inventory" / "apps", inventory / "apps", dirs_exist_ok=True)
        token_file = folder / "tokens"
        token_file.write_text("".join(f"{role} {role} {tok}\n" for role, tok in TOKENS.items()))
        token_file.chmod(0o600)
        self.settings = load_settings("sandbox", inventory=inventory, state_dir=folder / "state")
        self.app = make_app(self.settings, default_registry(),
                            ServeOptions(token_file=str(token_file), read_only=read_only), out=io.StringIO())
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def client(self, role: str | None = None) -> Any:
        """A TestClient, logged in as `role` when given (through the login form, like a browser)."""
        from starlette.testclient import TestClient

        client = TestClient(self.app, base_url="http://127.0.0.1", follow_redirects=False)
        if role:
            page = client.get("/login")
            nonce = page.cookies.get("kubeops_login") or client.cookies.get("kubeops_login")
            resp = client.post("/login", data={"token": TOKENS[role], "csrf": nonce})
            assert resp.status_code == 303, resp.text
        return client

    def serve(self) -> str:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            if self._thread is not None:
                self._thread.join(10)
        self.app.state.launcher.shutdown(timeout_s=5)


@pytest.fixture
def console_factory(sandbox_factory: Callable[..., SandboxProcess], tmp_path: Path) -> Iterator[Callable[..., Console]]:
    made: list[Console] = []

    def make(scenario: str | dict[str, Any] = "default", *, read_only: bool = False,
             inventory_extra: dict[str, Any] | None = None) -> Console:
        sb = sandbox_factory(scenario)
        console = Console(sb, tmp_path / f"console-{len(made)}", read_only=read_only, inventory_extra=inventory_extra)
        made.append(console)
        return console

    old = os.environ.get("KUBEOPS_LOG_FORMAT")
    os.environ["KUBEOPS_LOG_FORMAT"] = "json"
    yield make
    for c in made:
        c.stop()
    if old is None:
        os.environ.pop("KUBEOPS_LOG_FORMAT", None)
    else:
        os.environ["KUBEOPS_LOG_FORMAT"] = old
