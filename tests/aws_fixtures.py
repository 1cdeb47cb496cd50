"""A real `moto_server` on a loopback port, plus helpers to build groups and read moto's request recording.

Tests reach AWS over the wire exactly as production does: boto3 -> HTTP -> moto. Nothing of ours is patched.
moto's recorder (`/moto-api/recorder/*`) logs every request the server receives; `recorded_actions` turns that
into the list of AWS operation names, which is how tests prove a dry run made zero mutating calls.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REGION = "us-east-1"
ZONE = "us-east-1a"
READ_PREFIXES = ("Describe", "List", "Get")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MotoServer:
    """A running moto_server; `url` is its endpoint."""

    url: str
    process: subprocess.Popen[bytes]
    recording: Path

    def post(self, path: str) -> bytes:
        request = urllib.request.Request(self.url + path, data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.read()

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=10) as answer:
            return answer.read()

    def reset(self) -> None:
        """Forget every resource (between tests)."""
        self.post("/moto-api/reset")

    @contextmanager
    def recording_actions(self) -> Iterator[list[str]]:
        """Collects the AWS operation names moto received inside the block (filled in on exit)."""
        self.post("/moto-api/recorder/reset-recording")
        self.post("/moto-api/recorder/start-recording")
        actions: list[str] = []
        try:
            yield actions
        finally:
            self.post("/moto-api/recorder/stop-recording")
            actions.extend(recorded_actions(self.get("/moto-api/recorder/download-recording").decode()))

    def boto(self, service: str) -> Any:
        import boto3

        return boto3.client(service, **boto_kwargs(self.url))


def boto_kwargs(url: str) -> dict[str, str]:
    return {
        "endpoint_url": url,
        "region_name": REGION,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing-secret-never-shown",
    }


def recorded_actions(text: str) -> list[str]:
    """Operation names (``SetDesiredCapacity``) from moto's recording, one JSON object a line."""
    actions: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode("utf-8", "replace")
        query = urllib.parse.urlparse(entry.get("url", "")).query
        params = urllib.parse.parse_qs(body) | urllib.parse.parse_qs(query)
        if params.get("Action"):
            actions.append(params["Action"][0])
    return actions


def mutating(actions: list[str]) -> list[str]:
    return [a for a in actions if not a.startswith(READ_PREFIXES)]


def start_moto(tmp: Path) -> MotoServer:
    port = free_port()
    recording = tmp / "moto-recording.jsonl"
    env = dict(os.environ, MOTO_RECORDER_FILEPATH=str(recording))
    process = subprocess.Popen(
        ["moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tmp,
    )
    server = MotoServer(url=f"http://127.0.0.1:{port}", process=process, recording=recording)
    deadline = time.monotonic() + 30
    while True:
        try:
            server.get("/moto-api/data.json")
            return server
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.1)


def stop_moto(server: MotoServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def create_group(
    server: MotoServer,
    name: str = "workers",
    *,
    desired: int = 2,
    min_size: int = 1,
    max_size: int = 5,
    zones: tuple[str, ...] = (ZONE,),
) -> list[str]:
    """A launch template and an Auto Scaling group; returns the group's instance ids."""
    ec2 = server.boto("ec2")
    asg = server.boto("autoscaling")
    template = f"lt-{name}"
    existing = ec2.describe_launch_templates(Filters=[{"Name": "launch-template-name", "Values": [template]}])[
        "LaunchTemplates"
    ]
    if not existing:
        ec2.create_launch_template(
            LaunchTemplateName=template, LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.medium"}
        )
    asg.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": template},
        MinSize=min_size,
        MaxSize=max_size,
        DesiredCapacity=desired,
        AvailabilityZones=list(zones),
    )
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    return [i["InstanceId"] for i in group["Instances"]]


def describe(server: MotoServer, name: str) -> dict[str, Any]:
    return server.boto("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


def ec2_state(server: MotoServer, instance_id: str) -> str:
    answer = server.boto("ec2").describe_instances(InstanceIds=[instance_id])
    return str(answer["Reservations"][0]["Instances"][0]["State"]["Name"])


class ThrottlingProxy:
    """An HTTP proxy in front of moto answering the first `throttle` requests with AWS's Throttling error.

    It lets a test watch botocore's real retry loop (our client's configuration) over the wire.
    """

    def __init__(self, upstream: str, *, throttle: int) -> None:
        self.upstream = upstream
        self.remaining = throttle
        self.requests = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.requests += 1
                if proxy.remaining > 0:
                    proxy.remaining -= 1
                    payload = (
                        b'<ErrorResponse xmlns="https://autoscaling.amazonaws.com/doc/2011-01-01/"><Error>'
                        b"<Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
                        b"<RequestId>x</RequestId></ErrorResponse>"
                    )
                    self.send_response(400)
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                request = urllib.request.Request(proxy.upstream + self.path, data=body, headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        status, data, kind = answer.status, answer.read(), answer.headers.get("Content-Type")
                except urllib.error.HTTPError as exc:
                    status, data, kind = exc.code, exc.read(), exc.headers.get("Content-Type")
                self.send_response(status)
                self.send_header("Content-Type", kind or "text/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- pytest fixtures (imported by the conftest of each test folder that needs them) ---------------------------------
import pytest  # noqa: E402 - kept beside the fixtures that need it


@pytest.fixture(scope="session")
def moto_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto_server for the whole test session (starting one takes ~1 s)."""
    server = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        stop_moto(server)


@pytest.fixture
def moto(moto_session: MotoServer) -> MotoServer:
    """The session's moto_server, emptied for this test."""
    moto_session.reset()
    return moto_session
