"""Log output: JSON lines off a terminal, console with a redrawn progress line on one, secrets masked in both."""

from __future__ import annotations

import io
import json

import structlog

from kubeops.engine.logging import configure_logging, redact, redact_text


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _emit(stream: io.StringIO, fmt: str = "auto") -> str:
    chosen = configure_logging(log_format=fmt, stream=stream)
    log = structlog.get_logger("kubeops").bind(run_id="r1", step="s", action="sleep")
    log.info("sleep.progress", message="sleeping", elapsed_s=3.0, timeout_s=10)
    log.info("step.done", password="hunter2", url="https://user:pw@example.com/x")
    structlog.reset_defaults()
    return chosen


def test_json_off_a_terminal_drops_progress_and_masks_secrets() -> None:
    out = io.StringIO()
    assert _emit(out) == "json"
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in lines] == ["step.done"]
    assert lines[0]["password"] == "[redacted]" and "pw@" not in lines[0]["url"]
    assert lines[0]["run_id"] == "r1" and lines[0]["step"] == "s" and lines[0]["action"] == "sleep"


def test_console_on_a_terminal_redraws_progress() -> None:
    out = Tty()
    assert _emit(out) == "console"
    text = out.getvalue()
    assert "\r\x1b[2K  ⏳ s: sleeping 3s/10s" in text
    assert "step.done" in text and "hunter2" not in text


def test_redaction_of_values_and_keys() -> None:
    assert redact({"aws_secret_access_key": "abc", "n": 1, "nested": [{"token": "t"}]}) == {
        "aws_secret_access_key": "[redacted]", "n": 1, "nested": [{"token": "[redacted]"}]
    }
    assert "AKIA" not in redact_text("key AKIAABCDEFGHIJKLMNOP used")
    assert redact_text("see https://hooks.slack.com/services/T/B/C now") == "see [redacted] now"
    assert redact_text("plain text stays") == "plain text stays"
