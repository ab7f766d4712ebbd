"""Slows down token guessing: too many wrong tokens from one address, and it must wait.

A dashboard bound off loopback sits on the plant network, where anyone can
reach its login form. A random token is far too long to guess, but a short
one chosen by hand is not, so after `limit` wrong tokens from one address
within `window_s` that address's token attempts are refused (HTTP 429 with
Retry-After) until the oldest failure leaves the window. The right token is
refused too while the address waits: otherwise guessing would just go on.
A browser already holding a valid session cookie is not affected.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

#: Wrong tokens one address may send within the window.
FAILURE_LIMIT = 10
WINDOW_S = 60.0
#: Addresses remembered at most; the least recently failing are forgotten first.
MAX_ADDRESSES = 4096


class GuessThrottle:
    """Per client address, the times of its recent wrong tokens; thread-safe."""

    def __init__(
        self,
        limit: int = FAILURE_LIMIT,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> float:
        """Seconds `address` must wait before its next token attempt; 0 when it may try."""
        with self._lock:
            recent = self._recent(address)
            if recent is None or len(recent) < self.limit:
                return 0.0
            return max(0.0, recent[0] + self.window_s - self._clock())

    def failed(self, address: str) -> None:
        """Count one wrong token from `address`."""
        with self._lock:
            recent = self._recent(address)
            if recent is None:
                recent = self._failures[address] = deque(maxlen=self.limit)
                while len(self._failures) > MAX_ADDRESSES:
                    self._failures.popitem(last=False)
            recent.append(self._clock())
            self._failures.move_to_end(address)

    def _recent(self, address: str) -> deque[float] | None:
        """The address's failures still inside the window (the caller holds the lock)."""
        recent = self._failures.get(address)
        if recent is None:
            return None
        horizon = self._clock() - self.window_s
        while recent and recent[0] <= horizon:
            recent.popleft()
        if not recent:
            del self._failures[address]
            return None
        return recent
