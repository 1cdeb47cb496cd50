"""SshClient against a real sshd on loopback: what a user relies on when kubeops runs commands on a node."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from kubeops.clients.ssh import (
    OUTPUT_LIMIT,
    HostKeyRejected,
    SshClient,
    SshCommandFailed,
    SshConnectError,
    SshConnectionLost,
    SshTimeout,
)
from kubeops.errors import InputError, SshError
from tests.ssh_fixture import Sshd

NASTY = """$(touch {marker}); echo 'a b' "c" | rm -rf `touch {marker}` && touch {marker} > {marker}"""


def client_for(sshd: Sshd, **overrides: object) -> SshClient:
    return SshClient.from_settings(sshd.settings(**overrides))


class TestRunning:
    def test_runs_a_command_and_captures_stdout_and_stderr(self, sshd: Sshd) -> None:
        client = client_for(sshd)
        try:
            result = client.run(sshd.host, ["sh", "-c", "echo out; echo err >&2"])
        finally:
            client.close()
        assert result.exit_code == 0
        assert result.stdout == "out\n"
        # the account's login shell may add its own lines first (a ~/.bashrc's `pyenv init` under load): ours end it
        assert result.stderr.endswith("err\n")
        assert not result.stdout_truncated and not result.stderr_truncated

    def test_non_zero_exit_raises_with_exit_code_and_stderr_tail(self, sshd: Sshd) -> None:
        client = client_for(sshd)
        try:
            with pytest.raises(SshCommandFailed) as info:
                client.run(sshd.host, ["sh", "-c", "echo first >&2; echo 'disk is full' >&2; exit 7"])
        finally:
            client.close()
        message = str(info.value)
        assert "exited with code 7" in message
        assert "disk is full" in message
        assert info.value.result.exit_code == 7
        assert isinstance(info.value, SshError)

    def test_non_zero_exit_is_returned_when_not_checked(self, sshd: Sshd) -> None:
        client = client_for(sshd)
        try:
            result = client.run(sshd.host, ["false"], check=False)
        finally:
            client.close()
        assert result.exit_code == 1

    def test_shell_metacharacters_in_a_parameter_are_passed_literally(self, sshd: Sshd, tmp_path: Path) -> None:
        marker = tmp_path / "pwned"
        nasty = NASTY.format(marker=marker)
        client = client_for(sshd)
        try:
            env = {"X": f"$(touch {marker})"}
            result = client.run(sshd.host, ["printf", "%s|%s", nasty, "two words"], env=env)
        finally:
            client.close()
        assert result.stdout == f"{nasty}|two words"
        assert not marker.exists()

    def test_environment_is_passed_to_the_command(self, sshd: Sshd) -> None:
        client = client_for(sshd)
        try:
            result = client.run(sshd.host, ["printenv", "GREETING"], env={"GREETING": "hello 'world' $HOME"})
        finally:
            client.close()
        assert result.stdout == "hello 'world' $HOME\n"

    def test_output_is_bounded_to_the_tail_with_a_truncated_flag(self, sshd: Sshd) -> None:
        client = client_for(sshd)
        script = "head -c 200000 /dev/zero | tr '\\0' x; echo END; head -c 100 /dev/zero | tr '\\0' y >&2"
        try:
            result = client.run(sshd.host, ["sh", "-c", script])
        finally:
            client.close()
        assert len(result.stdout) == OUTPUT_LIMIT
        assert result.stdout.endswith("xxxEND\n")
        assert result.stdout_truncated
        assert result.stderr.endswith("y" * 100) and not result.stderr_truncated

    def test_one_connection_serves_several_commands(self, sshd: Sshd) -> None:
        before = sshd.log_text().count("Accepted publickey")
        client = client_for(sshd)
        try:
            for i in range(3):
                assert client.run(sshd.host, ["echo", str(i)]).stdout == f"{i}\n"
        finally:
            client.close()
        assert sshd.log_text().count("Accepted publickey") - before == 1

    def test_a_bastion_gateway_is_used_when_configured(self, sshd: Sshd) -> None:
        client = client_for(sshd, gateway=f"{sshd.user}@{sshd.host}:{sshd.port}")
        before = sshd.log_text().count("Accepted publickey")
        try:
            result = client.run(sshd.host, ["echo", "through the bastion"])
        finally:
            client.close()
        assert result.stdout == "through the bastion\n"
        assert sshd.log_text().count("Accepted publickey") - before == 2  # the bastion hop, then the node


class TestTimeouts:
    def test_a_command_past_its_timeout_is_killed_on_the_node(self, sshd: Sshd) -> None:
        tag = "31.41592"  # a unique sleep duration to find the process by
        client = client_for(sshd)
        started = time.monotonic()
        try:
            with pytest.raises(SshTimeout) as info:
                client.run(sshd.host, ["sleep", tag], timeout_s=1)
        finally:
            client.close()
        assert time.monotonic() - started < 10
        assert "timed out after 1s" in str(info.value)
        for _ in range(40):
            alive = subprocess.run(["pgrep", "-f", f"sleep {tag}"], capture_output=True).returncode == 0
            if not alive:
                break
            time.sleep(0.1)
        assert not alive, "the remote command survived its timeout"

    def test_connecting_to_a_closed_port_fails_naming_host_and_port(self, sshd: Sshd) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed_port = s.getsockname()[1]
        client = client_for(sshd, port=closed_port)
        with pytest.raises(SshConnectError) as info:
            client.run(sshd.host, ["true"])
        assert f"127.0.0.1:{closed_port}" in str(info.value)


    def test_a_dropped_connection_is_reported_and_the_next_command_reconnects(self, sshd: Sshd) -> None:
        client = client_for(sshd)
        try:
            with pytest.raises(SshConnectionLost) as info:
                client.run(sshd.host, ["sh", "-c", "kill -9 $PPID"], timeout_s=20)  # kills its sshd session
            assert "reported an exit status" in str(info.value)
            assert client.run(sshd.host, ["echo", "back"]).stdout == "back\n"
        finally:
            client.close()


class TestHostKeys:
    def test_an_unknown_host_key_is_refused_and_nothing_runs(self, sshd: Sshd, tmp_path: Path) -> None:
        empty = tmp_path / "known_hosts"
        empty.write_text("")
        marker = tmp_path / "ran"
        client = client_for(sshd, known_hosts=str(empty))
        with pytest.raises(HostKeyRejected) as info:
            client.run(sshd.host, ["touch", str(marker)])
        message = str(info.value)
        assert "host key" in message
        assert f"[127.0.0.1]:{sshd.port}" in message
        assert str(empty) in message
        assert not marker.exists()
        assert empty.read_text() == ""  # never auto-added

    def test_a_missing_known_hosts_file_refuses_too(self, sshd: Sshd, tmp_path: Path) -> None:
        client = client_for(sshd, known_hosts=str(tmp_path / "absent"))
        with pytest.raises(HostKeyRejected):
            client.run(sshd.host, ["true"])
        assert not (tmp_path / "absent").exists()

    def test_a_changed_host_key_is_refused(self, sshd: Sshd, tmp_path: Path) -> None:
        other = tmp_path / "other"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
        wrong = tmp_path / "known_hosts"
        kind, blob = other.with_suffix(".pub").read_text().split()[:2]
        wrong.write_text(f"[127.0.0.1]:{sshd.port} {kind} {blob}\n")
        client = client_for(sshd, known_hosts=str(wrong))
        with pytest.raises(HostKeyRejected) as info:
            client.run(sshd.host, ["true"])
        assert "does NOT match" in str(info.value)

    def test_unknown_keys_are_accepted_only_when_the_inventory_disables_strict_checking(
        self, sshd: Sshd, tmp_path: Path
    ) -> None:
        empty = tmp_path / "known_hosts"
        empty.write_text("")
        client = client_for(sshd, known_hosts=str(empty), strict_host_key_checking=False)
        try:
            with capture_logs() as logs:
                assert client.run(sshd.host, ["echo", "ok"]).stdout == "ok\n"
        finally:
            client.close()
        assert empty.read_text() == ""  # accepted for this run, not saved
        assert any(e["event"] == "ssh.host_key_unverified" for e in logs)


class TestDryRun:
    def test_dry_run_records_the_command_without_connecting(self, sshd: Sshd, tmp_path: Path) -> None:
        marker = tmp_path / "ran"
        connections_before = sshd.log_text().count("Connection from")
        client = SshClient.from_settings(sshd.settings(), dry_run=True)
        result = client.run(sshd.host, ["touch", str(marker)], env={"TOKEN": "s3cr3t"})
        assert result.dry_run and result.exit_code == 0
        assert client.recorded == [
            {"host": sshd.host, "port": sshd.port, "user": sshd.user, "command": f"env 'TOKEN=***' touch {marker}"}
        ]
        time.sleep(0.2)
        assert not marker.exists()
        assert sshd.log_text().count("Connection from") == connections_before


class TestSecrets:
    def test_key_content_and_env_values_never_reach_logs_or_errors(self, sshd: Sshd, tmp_path: Path) -> None:
        key_body = "".join(sshd.private_key_text().splitlines()[1:-1])
        client = client_for(sshd)
        with capture_logs() as logs:
            try:
                client.run(sshd.host, ["true"], env={"PASSWORD": "hunter2"})
                with pytest.raises(SshCommandFailed) as failed:
                    client.run(sshd.host, ["sh", "-c", "exit 3"], env={"PASSWORD": "hunter2"})
            finally:
                client.close()
        texts = [str(failed.value), repr(logs)]
        # a key the server does not accept: the error names the path, never the content
        stranger = tmp_path / "stranger"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
        with pytest.raises(SshConnectError) as denied:
            client_for(sshd, key_filename=str(stranger)).run(sshd.host, ["true"])
        assert str(stranger) in str(denied.value)
        stranger_body = "".join(stranger.read_text().splitlines()[1:-1])
        texts.append(str(denied.value))
        for text in texts:
            assert "hunter2" not in text
            for body in (key_body, stranger_body):
                assert body[:40] not in text and body[-40:] not in text
            assert "PRIVATE KEY" not in text

    def test_a_missing_key_file_is_an_input_error(self, sshd: Sshd, tmp_path: Path) -> None:
        with pytest.raises(InputError) as info:
            client_for(sshd, key_filename=str(tmp_path / "nope"))
        assert "ssh.key_filename" in str(info.value)
