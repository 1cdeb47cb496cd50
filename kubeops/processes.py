"""Whether a process on this host is alive: resume and the cluster lock must not act for a run still running."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True when `pid` exists and is not a zombie (a killed child not yet reaped is dead for our purposes)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True
