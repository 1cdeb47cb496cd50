"""Jinja filters of the console's templates: numbers and times as people read them, JSON as it is stored."""

from __future__ import annotations

import json
from typing import Any

from kubeops.quantity import format_bytes, format_cpu


def cpu(v: float | None) -> str:
    return "-" if v is None else format_cpu(v)


def size(v: float | None) -> str:
    return "-" if v is None else format_bytes(v)


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}%"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def step_duration(step: dict[str, Any]) -> float | None:
    from datetime import datetime

    try:
        start = datetime.fromisoformat(str(step["started"]).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(step["finished"]).replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError):
        return None
    return (end - start).total_seconds()


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=str)
