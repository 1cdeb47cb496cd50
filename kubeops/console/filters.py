"""Jinja filters of the console's templates: numbers and times as people read them, JSON as it is stored."""

from __future__ import annotations

import json
from typing import Any

from kubeops.durations import format_duration
from kubeops.quantity import format_bytes, format_cpu


def cpu(v: float | None) -> str:
    return "-" if v is None else format_cpu(v)


def size(v: float | None) -> str:
    return "-" if v is None else format_bytes(v)


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}%"


duration = format_duration  # the one formatter the fleet table and rehearsal reports use too


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
