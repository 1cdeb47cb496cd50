"""Durations as people read them in tables and reports: ``4.2s``, ``3m05s``, ``1h02m``.

One formatter for the fleet table, the rehearsal report and the console, so the same run reads the same
everywhere.
"""

from __future__ import annotations


def format_duration(seconds: float | None) -> str:
    """``-`` when unknown (never ran); tenths of a second under a minute, then whole seconds, then minutes."""
    if seconds is None:
        return "-"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
