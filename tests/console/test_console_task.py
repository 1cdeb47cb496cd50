"""`kubeops console` as a user starts it: tokens printed once and kept hashed (0600), login with them, warnings."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(state: Path, *args: str) -> tuple[subprocess.Popen[str], str, int]:
    port = _free_port()
    env = {**os.environ, "KUBEOPS_STATE_DIR": str(state), "KUBEOPS_LOG_FORMAT": "json", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", "from kubeops.cli import main; main()", "console",
                             "--port", str(port), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO)
    lines = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("kubeops console for cluster"):
            break
    scheme = "https" if "--tls-cert" in args else "http"
    for _ in range(200):
        try:
            httpx.get(f"{scheme}://127.0.0.1:{port}/healthz", timeout=1, verify=False)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    return proc, "".join(lines), port


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


def _login(port: int, token: str) -> int:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        page = client.get("/login")
        nonce = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        return client.post("/login", data={"token": token, "csrf": nonce}).status_code


def test_tokens_are_printed_once_kept_hashed_and_log_in(tmp_path: Path) -> None:
    proc, out, port = _start(tmp_path)
    try:
        tokens = dict(re.findall(r"^  (viewer|operator)\s+(\S+)$", out, re.M))
        assert set(tokens) == {"viewer", "operator"}, out
        stored = tmp_path / "console-tokens.json"
        assert stat.S_IMODE(stored.stat().st_mode) == 0o600
        assert not any(t in stored.read_text() for t in tokens.values())  # digests only
        assert _login(port, tokens["operator"]) == 303
        assert _login(port, tokens["operator"] + "x") == 401
    finally:
        _stop(proc)
    again, out2, port2 = _start(tmp_path)
    try:
        assert "operator" not in out2 and "console for cluster sandbox: http://127.0.0.1:" in out2
        assert _login(port2, tokens["viewer"]) == 303  # the same tokens still work
    finally:
        _stop(again)


def test_listening_beyond_loopback_without_tls_warns(tmp_path: Path) -> None:
    proc, _, _ = _start(tmp_path, "--host", "0.0.0.0")
    err = _stop(proc)
    assert "WARNING: listening on 0.0.0.0 without TLS" in err


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("alice operator a-long-enough-token-123\n")
    token_file.chmod(0o644)
    env = {**os.environ, "KUBEOPS_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", "from kubeops.cli import main; main()", "console",
                           "--token-file", str(token_file)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"--token-file {token_file}: readable by others (mode 644)" in proc.stderr
    assert "chmod 600" in proc.stderr


def test_tls_serves_https_and_marks_the_cookie_secure(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                           "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                           "-keyout", str(key), "-out", str(cert)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    token_file = tmp_path / "tokens"
    token_file.write_text("alice operator a-long-enough-token-123\n")
    token_file.chmod(0o600)
    proc, out, port = _start(tmp_path / "state", "--tls-cert", str(cert), "--tls-key", str(key),
                             "--token-file", str(token_file))
    try:
        assert f"https://127.0.0.1:{port}/" in out and "tokens created" not in out
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=str(cert)) as client:
            page = client.get("/login")
            nonce = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
            resp = client.post("/login", data={"token": "a-long-enough-token-123", "csrf": nonce})
            assert resp.status_code == 303 and "secure" in resp.headers["set-cookie"].lower()
    finally:
        _stop(proc)
