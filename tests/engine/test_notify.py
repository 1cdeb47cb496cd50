"""Webhook notifications received by a local HTTP server, through the real CLI; the URL's token never leaks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kubeops.engine.notify import Notifier, run_message
from tests.engine.schedule_harness import Harness

TOKEN = "T0001/B0002/xoxb-very-secret-hook-token"


class Hook:
    """A Slack-like webhook endpoint on 127.0.0.1 recording what it receives."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.received.append({"path": self.path, "type": self.headers.get("Content-Type"),
                                      "json": json.loads(body)})
                self.send_response(hook.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/services/{TOKEN}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


def _failing_playbook(h: Harness) -> Path:
    path = h.tmp / "needs-flag.yaml"
    path.write_text(f"name: needs-flag\nsteps:\n  - name: check\n    action: crash.require\n"
                    f"    args: {{path: '{h.tmp / 'flag'}'}}\n")
    return path


def _everything_written(h: Harness, *outputs: str) -> str:
    files = [p.read_text(errors="replace") for p in h.state.rglob("*") if p.is_file()]
    return "\n".join([*outputs, *files])


def test_a_failed_run_is_announced_and_the_url_token_is_nowhere(tmp_path: Path, hook: Hook) -> None:
    h = Harness(tmp_path, None, notify={"webhook_url_env": "KUBEOPS_TEST_HOOK"})
    h.env["KUBEOPS_TEST_HOOK"] = hook.url
    failed = h.call("run", f"--playbook={_failing_playbook(h)}")
    assert failed.returncode == 1, failed.stderr
    (message,) = hook.received
    assert message["path"] == f"/services/{TOKEN}" and message["type"] == "application/json"
    (record,) = h.records()
    text = message["json"]["text"]
    assert f"run {record['id']} of playbook needs-flag on cluster sb failed at step check" in text
    assert "is missing" in text and f"invoke resume --run={record['id']}" in text
    assert '"event": "notify.sent"' in failed.stderr
    everything = _everything_written(h, failed.stdout, failed.stderr)
    assert "xoxb-very-secret" not in everything and "127.0.0.1" not in everything
    # once the cause is fixed, the resumed run succeeds quietly (on_success is off)
    (tmp_path / "flag").touch()
    resumed = h.call("resume")
    assert resumed.returncode == 0 and len(hook.received) == 1


def test_success_is_announced_when_asked_and_delivery_failures_do_not_fail_the_run(
    tmp_path: Path, hook: Hook
) -> None:
    h = Harness(tmp_path, None, notify={"webhook_url": hook.url, "on_success": True})
    h.open_gates("a")
    done = h.call("run", f"--playbook={h.playbook(['a'])}")
    assert done.returncode == 0, done.stderr
    (message,) = hook.received
    assert message["json"]["text"].endswith("finished") and "playbook gated on cluster sb" in message["json"]["text"]
    hook.status = 500
    h.open_gates("b")
    still_ok = h.call("run", f"--playbook={h.playbook(['b'], name='second')}")
    assert still_ok.returncode == 0
    failed_event = next(json.loads(line) for line in still_ok.stderr.splitlines() if "notify.failed" in line)
    assert failed_event["status"] == 500
    assert "xoxb-very-secret" not in _everything_written(h, done.stderr, still_ok.stderr)


def test_a_non_http_url_is_refused_without_echoing_it(tmp_path: Path) -> None:
    h = Harness(tmp_path, None, notify={"webhook_url": f"file:///etc/{TOKEN}"})
    proc = h.call("run", f"--playbook={h.playbook(['a'])}")
    assert proc.returncode == 2
    assert "must start with https://" in proc.stderr and "xoxb" not in proc.stderr
    assert h.effects_done() == []


def test_messages_by_status() -> None:
    base = {"id": "r1", "playbook": {"name": "drain-node"}, "cluster": "prod", "failed_step": "drain"}
    kind, text = run_message({**base, "status": "failed",
                              "error": "eviction of pod a/b refused: Cannot evict pod as it would violate the "
                                       "pod's disruption budget."})  # type: ignore[misc]
    assert kind == "blocked" and "blocked by a PodDisruptionBudget at step drain" in text
    assert run_message({**base, "status": "paused"}) is None
    assert run_message({**base, "status": "done"})[0] == "success"  # type: ignore[index]
    assert "secret" not in repr(Notifier("https://hooks.example.com/secret", on_success=True))


@pytest.mark.timeout(120)
def test_a_run_blocked_by_the_lock_is_announced(tmp_path: Path, hook: Hook, sandbox) -> None:  # type: ignore[no-untyped-def]
    from kubeops.clients.kube import KubeClient
    from kubeops.engine.lock import ClusterLock
    from kubeops.settings import KubeSettings

    holder = ClusterLock(KubeClient.from_settings(KubeSettings(kubeconfig=str(sandbox.kubeconfig))),
                         namespace="kube-system", name="kubeops-lock", ttl_s=30, host="ops-1")
    holder.acquire(run_id="20260101T030000Z-beef", playbook="drain-node")
    try:
        h = Harness(tmp_path, sandbox, notify={"webhook_url": hook.url})
        proc = h.call("run", f"--playbook={h.playbook(['a'])}")
        assert proc.returncode == 3, proc.stderr
        (message,) = hook.received
        text = message["json"]["text"]
        assert "playbook gated on cluster sb did not start" in text
        assert "held by 20260101T030000Z-beef@ops-1 (playbook drain-node)" in text
        assert "xoxb-very-secret" not in _everything_written(h, proc.stdout, proc.stderr)
    finally:
        holder.release()
