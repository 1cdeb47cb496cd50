"""Progress of long waits as ``*.progress`` log events, at most one per second.

Why a separate helper: a drain, a reboot or a node coming back can take minutes, and a person at a terminal
wants to see that something is happening and what is holding it up. `kubeops.engine.logging` redraws one line
for ``*.progress`` events on a terminal and drops them from JSON, so emitting them is cheap for cron runs too;
this module only keeps their rate down (waits loop much faster than a person reads) and gives every event the
same keys: ``message``, ``elapsed_s`` and ``timeout_s``.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Progress", "ticking"]


class Progress:
    """Emits ``event`` through `log` (a structlog logger or None) no more often than every `every_s` seconds."""

    def __init__(
        self,
        log: Any,
        event: str,
        *,
        timeout_s: float | None,
        every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not event.endswith(".progress"):
            raise ValueError(f"progress events are named '*.progress', got {event!r}")
        self.log, self.event, self.timeout_s, self.every_s, self.clock = log, event, timeout_s, every_s, clock
        self.started = clock()
        self._last: float | None = None
        self._lock = threading.Lock()

    def emit(self, message: str) -> bool:
        """Log `message` unless one went out less than `every_s` ago; True when it was logged."""
        if self.log is None:
            return False
        with self._lock:
            now = self.clock()
            if self._last is not None and now - self._last < self.every_s:
                return False
            self._last = now
        self.log.info(self.event, message=message, elapsed_s=round(now - self.started, 1), timeout_s=self.timeout_s)
        return True


@contextmanager
def ticking(progress: Progress, message: Callable[[], str], *, every_s: float = 1.0) -> Iterator[None]:
    """Emit ``message()`` every `every_s` from a helper thread while the body blocks (e.g. in a watch)."""
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every_s):
            progress.emit(message())

    # The helper thread logs with the caller's bound context (run, step and, in a fleet, the cluster).
    thread = threading.Thread(target=contextvars.copy_context().run, args=(tick,), name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2.0)
