"""Failed logins, counted per client address and overall, so the login form cannot be used to guess tokens.

Why both: per address stops one client's guessing without bothering anyone else; the overall bound stops a
guesser who changes address at every try (it then slows every failing client, never a session already open).
While a client is held back its attempts are refused before the token is even looked at, so a guess made
meanwhile learns nothing. A successful login forgets that client's failures. Behind a reverse proxy every
client has the proxy's address: the per-address bound then applies to all of them together.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

PER_CLIENT = 10  # failed logins from one address ...
OVERALL = 100  # ... or from all addresses together ...
WINDOW_S = 600.0  # ... within this many seconds, then refused until the oldest of them is this old
_MAX_CLIENTS = 10_000  # addresses remembered at most (the oldest forgotten first): memory stays bounded


class LoginThrottle:
    """Sliding windows of failed logins; `wait_s` says how long a client must still wait (0: it may try)."""

    def __init__(self, *, per_client: int = PER_CLIENT, overall: int = OVERALL, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_client < 1 or overall < 1 or window_s <= 0:
            raise ValueError("login throttle bounds must be positive")
        self.per_client, self.overall, self.window_s = per_client, overall, window_s
        self._clock = clock
        self._by_client: OrderedDict[str, deque[float]] = OrderedDict()
        self._all: deque[float] = deque()
        self._mutex = threading.Lock()

    def wait_s(self, client: str) -> float:
        """Seconds until `client` may try again; 0 when it may now."""
        with self._mutex:
            now = self._clock()
            self._expire(now)
            waits = [0.0]
            mine = self._by_client.get(client)
            if mine is not None and len(mine) >= self.per_client:
                waits.append(mine[-self.per_client] + self.window_s - now)
            if len(self._all) >= self.overall:
                waits.append(self._all[-self.overall] + self.window_s - now)
            return max(waits)

    def failed(self, client: str) -> None:
        with self._mutex:
            now = self._clock()
            self._expire(now)
            mine = self._by_client.pop(client, None) or deque()
            mine.append(now)
            while len(mine) > self.per_client:
                mine.popleft()
            self._by_client[client] = mine  # most recent last
            while len(self._by_client) > _MAX_CLIENTS:
                self._by_client.popitem(last=False)
            self._all.append(now)
            while len(self._all) > self.overall:
                self._all.popleft()

    def succeeded(self, client: str) -> None:
        with self._mutex:
            self._by_client.pop(client, None)

    def _expire(self, now: float) -> None:
        horizon = now - self.window_s
        while self._all and self._all[0] <= horizon:
            self._all.popleft()
        while self._by_client:
            oldest_client, times = next(iter(self._by_client.items()))
            if times[-1] > horizon:
                break
            del self._by_client[oldest_client]  # its newest failure is out of the window: nothing left to count
