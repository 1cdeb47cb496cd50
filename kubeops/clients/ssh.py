"""The one seam between kubeops and its nodes' shells: fabric/paramiko over SSH.

Why a wrapper rather than `Connection.run`:
- commands are ARGUMENT LISTS; every argument is shell-quoted here (`shlex.join`), so a parameter such as
  ``$(rm -rf /)`` reaches the program as those literal characters and is never interpreted by the remote shell;
- host keys are verified against a known_hosts file by default (an unknown key is refused, never auto-added);
  only an inventory that sets ``strict_host_key_checking: false`` accepts unknown keys, and even then never saves them;
- output is bounded: only the last `OUTPUT_LIMIT` bytes of stdout and stderr are kept, with a truncated flag,
  because they end up in checkpoints and a chatty command must not fill memory or disk;
- a timed-out command is killed on the node (coreutils ``timeout`` wraps it, inside sudo) as well as abandoned here;
- dry run is applied at this single choke point: the intended command is recorded and a synthetic result returned
  without opening a connection;
- paramiko exceptions never leave this module: they become `SshError` subclasses with messages that name the host,
  port, user and key *path*, never the key itself or any environment value.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from kubeops.errors import InputError, SshError

if TYPE_CHECKING:
    from kubeops.settings import SshSettings

OUTPUT_LIMIT = 64 * 1024  # bytes kept of each stream (the tail)
ERROR_TAIL = 2048  # characters of stderr quoted in an error message
KILL_GRACE_S = 5.0  # remote `timeout --kill-after`: SIGTERM first, SIGKILL this much later
CLIENT_SLACK_S = 10.0  # we give up on the channel this long after the remote timeout should have fired
EOF_GRACE_S = 2.0  # after the exit status, output still in flight is awaited this long (until EOF)
REDACTED = "***"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

log = structlog.get_logger("kubeops.ssh")


class HostKeyRejected(SshError):
    """The server's host key is unknown or does not match known_hosts: nothing was sent to it."""


class SshConnectError(SshError):
    """The SSH connection could not be opened or authenticated."""


class SshConnectionLost(SshError):
    """The connection dropped before the command reported an exit status (expected during a reboot)."""


class SshTimeout(SshError):
    """The command ran past its timeout and was killed."""


class SshCommandFailed(SshError):
    """The command ran and exited non-zero; `result` holds its captured (bounded) output."""

    def __init__(self, message: str, *, result: CommandResult, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.result = result


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What one remote command did; `command` is the display form (environment values redacted)."""

    host: str
    command: str
    exit_code: int
    stdout: str
    stderr: str
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_s: float = 0.0
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for step outputs and checkpoints."""
        return {
            "host": self.host,
            "command": self.command,
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "stdout_truncated": self.stdout_truncated,
            "stderr_truncated": self.stderr_truncated,
            "duration_s": round(self.duration_s, 3),
            "dry_run": self.dry_run,
        }


@dataclass(frozen=True, slots=True)
class RemoteCommand:
    """A command line built from an argument list: `line` is sent, `display` is logged."""

    line: str
    display: str


def build_command(
    argv: Sequence[str],
    *,
    sudo: bool = False,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
) -> RemoteCommand:
    """Quote every argument; wrap as ``sudo -n -- timeout -k 5 Ns env K=V argv...`` as asked.

    `sudo -n` never prompts (a password prompt would hang the step); `timeout` sits inside sudo so it may kill a
    root command; `env` carries variables because sshd drops most client-sent ones (AcceptEnv).
    """
    if isinstance(argv, str) or not argv:
        raise InputError("an SSH command must be a non-empty list of arguments, e.g. [systemctl, restart, kubelet]")
    args = [str(a) for a in argv]
    env = dict(env or {})
    for name in env:
        if not _ENV_NAME.match(name):
            raise InputError(f"environment variable name {name!r} is not valid (letters, digits, underscore)")
    env_real = ["env", *(f"{k}={v}" for k, v in env.items())] if env else []
    env_shown = ["env", *(f"{k}={REDACTED}" for k in env)] if env else []
    wrap: list[str] = []
    if timeout_s is not None:
        if timeout_s <= 0:
            raise InputError(f"timeout_s must be positive, got {timeout_s}")
        wrap = ["timeout", f"--kill-after={KILL_GRACE_S:g}s", f"{timeout_s:g}s"]
    head = ["sudo", "-n", "--"] if sudo else []
    line = shlex.join([*head, *wrap, *env_real, *args])
    display = shlex.join([*(["sudo"] if sudo else []), *env_shown, *args])
    return RemoteCommand(line=line, display=display)


def parse_gateway(spec: str, *, default_port: int = 22) -> tuple[str | None, str, int]:
    """``user@host:port`` (user and port optional, IPv6 in brackets) -> (user, host, port)."""
    user: str | None = None
    rest = spec.strip()
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
    port = default_port
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        if tail.startswith(":"):
            port = int(tail[1:])
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
        port = int(port_text)
    else:
        host = rest
    if not host:
        raise InputError(f"ssh.gateway {spec!r} names no host; expected user@host:port")
    return user or None, host, port


def _fingerprint(key: Any) -> str:
    import base64
    import hashlib

    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _make_policy(known_hosts: str, *, strict: bool) -> Any:
    """A paramiko policy for keys missing from known_hosts: refuse (default) or accept without saving."""
    from paramiko import MissingHostKeyPolicy

    class RefuseUnknown(MissingHostKeyPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            raise HostKeyRejected(
                f"host key of {hostname} ({key.get_name()} {_fingerprint(key)}) is not in known_hosts {known_hosts}:"
                " refusing to connect",
                hint="add the node's host key to that file (ssh-keyscan, checked out of band) or set ssh.known_hosts;"
                " only an inventory may disable ssh.strict_host_key_checking",
            )

    class AcceptUnknown(MissingHostKeyPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            log.warning(
                "ssh.host_key_unverified", host=hostname, key_type=key.get_name(), fingerprint=_fingerprint(key)
            )

    return RefuseUnknown() if strict else AcceptUnknown()


class _Abandoned(Exception):
    """The channel outlived the remote timeout plus slack: we stop waiting for it."""


class _Tail:
    """Keeps the last `limit` bytes written, and whether anything was dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buf = bytearray()
        self.truncated = False

    def feed(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > self.limit:
            del self.buf[: len(self.buf) - self.limit]
            self.truncated = True

    def text(self) -> str:
        return self.buf.decode("utf-8", "replace")


@dataclass(slots=True)
class SshClient:
    """Runs argument-list commands on nodes; one cached connection per (user, host, port)."""

    user: str | None = None
    port: int = 22
    key_filename: str | None = None
    gateway: str | None = None
    known_hosts: str | None = None
    strict_host_key_checking: bool = True
    connect_timeout_s: float = 10.0
    dry_run: bool = False
    passphrase: str | None = field(default=None, repr=False)  # of an encrypted key; never printed
    output_limit: int = OUTPUT_LIMIT
    recorded: list[dict[str, Any]] = field(default_factory=list)  # dry run: what would have been sent
    _connections: dict[tuple[str | None, str, int], Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_settings(cls, settings: SshSettings, *, dry_run: bool = False) -> SshClient:
        """Build from the inventory's `ssh` group; a configured key that does not exist is an input error."""
        key = settings.key_filename
        if key and not Path(key).expanduser().exists():
            raise InputError(f"ssh.key_filename {key} does not exist", hint="fix ssh.key_filename in the inventory")
        passphrase = None
        if settings.key_passphrase_env:
            passphrase = os.environ.get(settings.key_passphrase_env)
            if not passphrase:
                raise InputError(
                    f"ssh.key_passphrase_env names ${settings.key_passphrase_env}, which is not set",
                    hint=f"export {settings.key_passphrase_env} (the passphrase of {key}) before running",
                )
        return cls(
            passphrase=passphrase,
            user=settings.user,
            port=settings.port,
            key_filename=str(Path(key).expanduser()) if key else None,
            gateway=settings.gateway,
            known_hosts=settings.known_hosts,
            strict_host_key_checking=settings.strict_host_key_checking,
            connect_timeout_s=settings.connect_timeout_s,
            dry_run=dry_run,
        )

    @property
    def known_hosts_path(self) -> str:
        return str(Path(self.known_hosts or "~/.ssh/known_hosts").expanduser())

    # --- connections --------------------------------------------------------------------------------------------
    def _where(self, host: str, port: int, user: str | None) -> str:
        return f"{user or '(local user)'}@{host}:{port}"

    def _new_connection(self, host: str, port: int, user: str | None, gateway: Any = None) -> Any:
        from fabric import Config, Connection

        connect_kwargs: dict[str, Any] = {
            "timeout": self.connect_timeout_s,
            "banner_timeout": self.connect_timeout_s,
            "auth_timeout": self.connect_timeout_s,
        }
        if self.key_filename:
            # an explicit key only: no agent or ~/.ssh guessing, so the inventory says exactly what is used
            connect_kwargs.update(key_filename=self.key_filename, look_for_keys=False, allow_agent=False)
            if self.passphrase:
                connect_kwargs["passphrase"] = self.passphrase  # decrypts the key in memory only
        config = Config(overrides={"load_ssh_configs": False})  # the inventory, not ~/.ssh/config, decides
        conn = Connection(
            host,
            user=user,
            port=port,
            config=config,
            connect_kwargs=connect_kwargs,
            gateway=gateway if gateway is not None else False,
        )
        client = conn.client
        path = self.known_hosts_path
        if Path(path).is_file():
            client.load_host_keys(path)
        client.set_missing_host_key_policy(_make_policy(path, strict=self.strict_host_key_checking))
        return conn

    def _connect(self, host: str, port: int, user: str | None) -> Any:
        cache_key = (user, host, port)
        conn = self._connections.get(cache_key)
        if conn is not None and conn.is_connected:
            return conn
        gateway = None
        if self.gateway:
            g_user, g_host, g_port = parse_gateway(self.gateway)
            gateway = self._new_connection(g_host, g_port, g_user or user)
        conn = self._new_connection(host, port, user, gateway)
        try:
            conn.open()
        except SshError:
            self._close_quietly(conn)
            raise
        except Exception as exc:
            self._close_quietly(conn)
            raise self._connect_error(exc, host=host, port=port, user=user) from None
        self._connections[cache_key] = conn
        return conn

    def _connect_error(self, exc: Exception, *, host: str, port: int, user: str | None) -> SshError:
        from paramiko import AuthenticationException, BadHostKeyException, SSHException

        where = self._where(host, port, user)
        via = f" via gateway {self.gateway}" if self.gateway else ""
        if isinstance(exc, BadHostKeyException):
            return HostKeyRejected(
                f"host key of {exc.hostname} ({_fingerprint(exc.key)}) does NOT match the one in known_hosts "
                f"{self.known_hosts_path} ({_fingerprint(exc.expected_key)}): refusing to connect",
                hint="the node was reinstalled, or someone is in the middle; check out of band before updating it",
            )
        if isinstance(exc, AuthenticationException):
            key = f"key {self.key_filename}" if self.key_filename else "the agent or default keys"
            return SshConnectError(
                f"authentication as {where}{via} failed with {key} ({type(exc).__name__})",
                hint="check ssh.user and ssh.key_filename in the inventory and the node's authorized_keys",
            )
        if isinstance(exc, socket.timeout | TimeoutError):
            return SshConnectError(
                f"connecting to {where}{via} timed out after {self.connect_timeout_s:g}s",
                hint="is the node up and port open? raise ssh.connect_timeout_s for slow links",
            )
        if isinstance(exc, SSHException):
            return SshConnectError(f"SSH handshake with {where}{via} failed: {_short(exc)}")
        if isinstance(exc, OSError):
            reason = exc.strerror or _short(exc)
            return SshConnectError(f"cannot connect to {where}{via}: {reason}")
        return SshConnectError(f"cannot connect to {where}{via}: {type(exc).__name__}: {_short(exc)}")

    def _drop(self, host: str, port: int, user: str | None) -> None:
        conn = self._connections.pop((user, host, port), None)
        if conn is not None:
            self._close_quietly(conn)

    @staticmethod
    def _close_quietly(conn: Any) -> None:
        with contextlib.suppress(Exception):  # a half-open connection must not mask the real error
            conn.close()
        gateway = getattr(conn, "gateway", None)
        if gateway:
            with contextlib.suppress(Exception):
                gateway.close()

    def close(self) -> None:
        """Close every cached connection."""
        for conn in self._connections.values():
            self._close_quietly(conn)
        self._connections.clear()

    # --- commands -----------------------------------------------------------------------------------------------
    def send_reboot(
        self, host: str, argv: Sequence[str], *, node: str, sudo: bool = False, timeout_s: float | None = None
    ) -> CommandResult:
        """Send a reboot command to `node` at `host`: `run`, named apart so that a rehearsal's client can make
        its copy of the node go through a reboot instead (`kubeops.rehearse.remote`)."""
        return self.run(host, argv, sudo=sudo, timeout_s=timeout_s)

    def run(
        self,
        host: str,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        check: bool = True,
        port: int | None = None,
        user: str | None = None,
    ) -> CommandResult:
        """Run one argument-list command on `host`; non-zero exit raises `SshCommandFailed` unless `check=False`."""
        port = port or self.port
        user = user or self.user
        cmd = build_command(argv, sudo=sudo, env=env, timeout_s=timeout_s)
        where = self._where(host, port, user)
        if self.dry_run:
            self.recorded.append({"host": host, "port": port, "user": user, "command": cmd.display})
            log.info("ssh.dry_run", host=host, port=port, user=user, command=cmd.display)
            return CommandResult(host=host, command=cmd.display, exit_code=0, stdout="", stderr="", dry_run=True)
        conn = self._connect(host, port, user)
        log.info("ssh.run", host=host, port=port, user=user, command=cmd.display, timeout_s=timeout_s)
        started = time.monotonic()
        try:
            exit_code, out, err = self._exec(conn, cmd.line, timeout_s=timeout_s)
        except _Abandoned:
            self._drop(host, port, user)
            raise SshTimeout(
                f"`{cmd.display}` on {where} did not finish within {timeout_s:g}s and the node did not kill it;"
                " abandoned (the command may still be running there)",
            ) from None
        except SshError:
            self._drop(host, port, user)
            raise
        except Exception as exc:
            self._drop(host, port, user)
            raise SshConnectionLost(
                f"connection to {where} failed while running `{cmd.display}`: {type(exc).__name__}: {_short(exc)}"
            ) from None
        duration = time.monotonic() - started
        result = CommandResult(
            host=host,
            command=cmd.display,
            exit_code=exit_code,
            stdout=out.text(),
            stderr=err.text(),
            stdout_truncated=out.truncated,
            stderr_truncated=err.truncated,
            duration_s=duration,
        )
        if exit_code == -1:
            self._drop(host, port, user)
            raise SshConnectionLost(
                f"connection to {where} closed before `{cmd.display}` reported an exit status"
            )
        if timeout_s is not None and exit_code in (124, 137) and duration >= timeout_s - 0.5:
            raise SshTimeout(
                f"`{cmd.display}` on {where} timed out after {timeout_s:g}s and was killed{_stderr_tail(result)}"
            )
        log.info("ssh.exit", host=host, command=cmd.display, exit_code=exit_code, duration_s=round(duration, 3))
        if check and exit_code != 0:
            raise SshCommandFailed(
                f"`{cmd.display}` on {where} exited with code {exit_code}{_stderr_tail(result)}", result=result
            )
        return result

    def _exec(self, conn: Any, line: str, *, timeout_s: float | None) -> tuple[int, _Tail, _Tail]:
        """Send `line` on a fresh channel and read both streams until the exit status, bounded and timed."""
        transport = conn.client.get_transport()
        channel = transport.open_session(timeout=self.connect_timeout_s)
        out, err = _Tail(self.output_limit), _Tail(self.output_limit)
        hard_deadline = None if timeout_s is None else time.monotonic() + timeout_s + KILL_GRACE_S + CLIENT_SLACK_S
        try:
            channel.exec_command(line)
            exited: float | None = None  # when the exit status was first seen with nothing left to read

            def drain() -> bool:
                busy = False
                while channel.recv_ready():
                    out.feed(channel.recv(32768))
                    busy = True
                while channel.recv_stderr_ready():
                    err.feed(channel.recv_stderr(32768))
                    busy = True
                return busy

            while True:
                busy = drain()
                if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                    # sshd may send the exit status before the last output it still has to forward: wait for the
                    # end of the streams (EOF), but not forever: a process left in the background can hold them
                    exited = exited if exited is not None else time.monotonic()
                    if channel.eof_received or channel.closed or time.monotonic() - exited > EOF_GRACE_S:
                        drain()
                        return channel.recv_exit_status(), out, err
                if channel.closed or not transport.is_active():
                    drain()  # what arrived before the close is kept; the status too, if it came
                    return (channel.recv_exit_status() if channel.exit_status_ready() else -1), out, err
                if hard_deadline is not None and time.monotonic() > hard_deadline:
                    raise _Abandoned
                if not busy:
                    if exited is None:
                        channel.status_event.wait(0.02)
                    else:  # the status event stays set once the status came: sleep, do not spin
                        time.sleep(0.01)
        finally:
            with contextlib.suppress(Exception):
                channel.close()


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip() or type(exc).__name__
    if "PRIVATE KEY" in text:  # never echo key material, whatever a library put in its message
        return type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def _stderr_tail(result: CommandResult) -> str:
    text = result.stderr.strip()
    if not text:
        return ""
    if len(text) > ERROR_TAIL:
        text = "..." + text[-ERROR_TAIL:]
    return f"; stderr:\n{text}"
