"""A real OpenSSH server on a loopback ephemeral port, for SSH tests that go through the wire.

Everything is throwaway and lives in one temp folder: a host key, a client key, authorized_keys, an sshd_config,
the pid file, the server log and a known_hosts holding the host key for ``[127.0.0.1]:PORT``. The server runs as
the current user (root in CI). Tests skip, with the reason, only when sshd cannot exist on this machine.

Use: ``from tests.ssh_fixture import sshd_server  # noqa: F401`` in a conftest or test module, then ask for `sshd`.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from kubeops.settings import SshSettings

SSHD = "/usr/sbin/sshd"
INSTALL_HINT = "install Debian's openssh-server (apt-get install -y openssh-server openssh-client)"


@dataclass
class Sshd:
    """A running sshd and the files a client needs to reach it."""

    dir: Path
    port: int
    user: str
    key_filename: Path
    known_hosts: Path
    host_public_key: str
    log_path: Path
    process: subprocess.Popen[bytes]
    host: str = "127.0.0.1"

    def settings(self, **overrides: Any) -> SshSettings:
        """Inventory-like SSH settings pointing at this server."""
        base = SshSettings(
            user=self.user,
            port=self.port,
            key_filename=str(self.key_filename),
            known_hosts=str(self.known_hosts),
            connect_timeout_s=5.0,
        )
        return replace(base, **overrides)

    def log_text(self) -> str:
        """What sshd has logged so far (connections, auth, sessions)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def private_key_text(self) -> str:
        return self.key_filename.read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _wait_banner(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return True
        except OSError:
            time.sleep(0.05)
    return False


def start_sshd(folder: Path, *, extra_config: tuple[str, ...] = ()) -> Sshd:
    """Start sshd in `folder`; raise RuntimeError with its log if it does not come up.

    `extra_config`: more sshd_config lines (e.g. ``SetEnv PATH=...`` so a test's stand-in commands run).
    """
    if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
        pytest.skip(f"{SSHD} or ssh-keygen is missing: {INSTALL_HINT}")
    folder.mkdir(parents=True, exist_ok=True)
    host_key, client_key = folder / "host_ed25519", folder / "client_ed25519"
    _keygen(host_key, "kubeops-test-host")
    _keygen(client_key, "kubeops-test-client")
    authorized = folder / "authorized_keys"
    authorized.write_text((folder / "client_ed25519.pub").read_text())
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    last_log = ""
    for _ in range(3):  # the free port may be taken between probing and binding: try another
        port = _free_port()
        log_path = folder / f"sshd-{port}.log"
        config = folder / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {folder / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized}",
                    "UsePAM no",
                    "StrictModes no",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "AllowTcpForwarding yes",
                    "MaxStartups 50:30:100",
                    "LogLevel VERBOSE",
                    *extra_config,
                    "",
                ]
            )
        )
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)], stdout=log_file, stderr=subprocess.STDOUT
            )
        if _wait_banner(port, time.monotonic() + 10):
            host_pub = (folder / "host_ed25519.pub").read_text().split()
            known_hosts = folder / "known_hosts"
            known_hosts.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
            return Sshd(
                dir=folder,
                port=port,
                user=getpass.getuser(),
                key_filename=client_key,
                known_hosts=known_hosts,
                host_public_key=f"{host_pub[0]} {host_pub[1]}",
                log_path=log_path,
                process=process,
            )
        process.kill()
        process.wait()
        last_log = log_path.read_text(errors="replace")
    raise RuntimeError(f"sshd did not start; its log:\n{last_log}")


def stop_sshd(server: Sshd) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session", name="sshd")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A real sshd on 127.0.0.1 with throwaway keys; skips only when sshd is not installed."""
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        stop_sshd(server)
