"""``requests.jsonl``: one JSON line per API request, flushed per line so tests and benchmarks read it live.

Fields: ts (epoch seconds when the request arrived), method, path, query (dict of first values), status, dry_run,
verb (get, list, watch, create, update, patch, delete, deletecollection, proxy, discovery, sandbox), resource
(plural), group, subresource, namespace, name, user_agent, content_type (of the request body), duration_ms (from
arrival until the answer was ready to send: the request was handled during [ts, ts + duration_ms]), and fault when
one was injected.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any


class RequestLog:
    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._fh = open(self.path, "a", encoding="utf-8") if self.path else None  # noqa: SIM115

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            return
        line = json.dumps(record, separators=(",", ":"), sort_keys=False) + "\n"
        with self._lock:
            self._fh.write(line)
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def read_requests(path: str | Path) -> list[dict[str, Any]]:
    """Parse a requests.jsonl; a half-written last line (the server is live) is skipped."""
    out = []
    p = Path(path)
    if not p.exists():
        return out
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
