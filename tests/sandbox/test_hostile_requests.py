"""Hostile requests against the sandbox API server: answered like kube-apiserver answers them, and the server
keeps serving. A body over 3 MiB is refused with 413 before it is read (a client announcing gigabytes cannot
make the server hold them); JSON nested too deeply is a 400, not a crash."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from kubeops.sandbox.testing import SandboxProcess

LIMIT = 3 * 1024 * 1024
PATH = "/api/v1/namespaces/default/configmaps"


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    with SandboxProcess({"name": "hostile", "nodes": [{"name": "n1"}]},
                        state_dir=tmp_path_factory.mktemp("hostile") / "sandbox") as proc:
        yield proc


def connect(sb: SandboxProcess) -> http.client.HTTPConnection:
    url = urlsplit(sb.api_url)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=10)


def test_an_announced_huge_body_is_refused_before_it_is_sent(sb: SandboxProcess) -> None:
    url = urlsplit(sb.api_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as raw:
        # ten gigabytes announced, none sent: the answer must come anyway, and at once
        raw.sendall(f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {10 * 1024**3}\r\n\r\n".encode())
        received = b""
        while chunk := raw.recv(65536):  # the server answers, then closes: read the whole answer
            received += chunk
        answer = received.decode("latin-1")
    head, _, body = answer.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 413") or head.startswith("HTTP/1.0 413"), head
    status = json.loads(body)
    assert status["reason"] == "RequestEntityTooLarge"
    assert status["message"] == f"Request entity too large: limit is {LIMIT}"
    code, _ = sb.request("GET", "/api/v1/namespaces/default/configmaps")
    assert code == 200  # still serving


def test_a_chunked_body_over_the_limit_and_deep_nesting_are_refused(sb: SandboxProcess) -> None:
    conn = connect(sb)
    chunk = b"x" * (1024 * 1024)
    conn.putrequest("POST", PATH)
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    try:
        for _ in range(4):
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused as soon as the limit was passed: the answer is waiting
    response = conn.getresponse()
    assert response.status == 413
    conn.close()

    nested = "[" * 100_000 + "]" * 100_000
    code, body = sb.request("POST", PATH, nested.encode())
    assert code == 400 and "nested too deeply" in body["message"]
    fine = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after"}, "data": {"k": "v" * 1000}}
    code, _ = sb.request("POST", PATH, fine)
    assert code == 201  # a normal write still works
