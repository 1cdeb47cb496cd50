"""Tell a human: a Slack-compatible JSON webhook (``{"text": ...}``) when a run needs attention.

Sent on: a failed run, a run blocked by a PodDisruptionBudget (a failed run whose error names a budget), a run
refused because another run holds the lock, and, with ``notify.on_success``, a finished run.

The URL carries a token (Slack, Teams and Mattermost webhooks are bearer secrets in the path), so it is treated
as a secret everywhere: it is never logged, never put in an error message or a checkpoint; a failed delivery is
logged with the HTTP status or the exception type only. Delivery failures never fail the run.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from kubeops.engine.logging import get_logger, redact_text


def resolve_url(*, url: str | None, url_env: str | None, environ: Mapping[str, str]) -> str | None:
    """The webhook URL: the inventory's `webhook_url`, else the variable named by `webhook_url_env`."""
    if url:
        return url
    if url_env:
        return environ.get(url_env) or None
    return None


def run_message(record: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, text) describing a finished run, or None for an unremarkable status (paused, rejected dry runs)."""
    rid = record.get("id")
    playbook = (record.get("playbook") or {}).get("name")
    cluster = record.get("cluster")
    status = record.get("status")
    head = f"kubeops: run {rid} of playbook {playbook} on cluster {cluster}"
    if status == "done":
        return "success", f":white_check_mark: {head} finished"
    if status in ("failed", "rejected"):
        error = redact_text(str(record.get("error") or "no error recorded"))
        step = record.get("failed_step")
        if "budget" in error.lower() or "disruption" in error.lower():
            kind, what = "blocked", "is blocked by a PodDisruptionBudget"
        else:
            kind, what = "failure", "failed" if status == "failed" else "was rejected (nothing changed)"
        resume = f"\nresume with: invoke resume --run={rid}" if status == "failed" else ""
        return kind, f":x: {head} {what} at step {step}: {error}{resume}"
    return None


def lock_message(*, cluster: str, playbook: str, reason: str) -> str:
    """Text for a run refused because the cluster lock is held."""
    return f":lock: kubeops: playbook {playbook} on cluster {cluster} did not start: {redact_text(reason)}"


class Notifier:
    """Posts messages to one webhook; `url` stays private to this object."""

    def __init__(self, url: str, *, on_success: bool = False, timeout_s: float = 10.0) -> None:
        self._url = url
        self.on_success = on_success
        self.timeout_s = timeout_s
        self.log = get_logger()

    def __repr__(self) -> str:  # never show the URL, even in a traceback's locals
        return f"Notifier(url=<redacted>, on_success={self.on_success})"

    def run_finished(self, record: Mapping[str, Any]) -> bool:
        """Notify about a finished run if its status calls for it; True when a message was delivered."""
        message = run_message(record)
        if message is None:
            return False
        kind, text = message
        if kind == "success" and not self.on_success:
            return False
        return self.send(text, kind=kind)

    def send(self, text: str, *, kind: str) -> bool:
        """POST ``{"text": text}``; logs `notify.sent` or `notify.failed` (status or error type, never the URL)."""
        body = json.dumps({"text": text}).encode()
        request = urllib.request.Request(
            self._url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            self.log.warning("notify.failed", kind=kind, status=exc.code)
            return False
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.log.warning("notify.failed", kind=kind, error_type=type(exc).__name__)
            return False
        self.log.info("notify.sent", kind=kind, status=status)
        return True
