"""How a command's main thread waits for SIGTERM or SIGINT without ever missing one.

Two traps, both met here (`capture demo` once in ~40 runs of the suite did
not stop on SIGINT):

- The kernel hands a process-directed signal to any thread that does not
  block it: paho's, watchdog's, a camera worker's. CPython then only notes
  it for the main thread, which runs the Python handler at its next bytecode;
  a main thread blocked in `threading.Event.wait()` without a timeout never
  gets there, and waits forever (measured: woke only when something else set
  the event). So the main thread waits in slices of `POLL_S`.
- A Python handler runs in the main thread between two bytecodes, possibly
  while that thread holds the very lock `Event.set()` needs (inside
  `Event.wait`): a handler that calls `set()` can deadlock. So the handler
  only assigns a flag, which takes no lock.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

#: Longest a stop request waits for the main thread to notice it.
POLL_S = 0.2

#: What `signal.signal` returns and takes: a function, SIG_DFL / SIG_IGN, or None.
Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class StopRequest:
    """A stop asked for by a signal (`on_signal`) or by another thread (`set`)."""

    def __init__(self) -> None:
        self.requested = False
        self._event = threading.Event()

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler: assigns a flag and nothing else (see the module docstring)."""
        self.requested = True

    def set(self) -> None:
        """Ask for the stop from a thread (not from a signal handler): wakes the waiter at once."""
        self.requested = True
        self._event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is asked for or `timeout` passes; True when asked for."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.requested:
            left = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
            if left <= 0:
                break
            self._event.wait(left)
        return self.requested

    def install(
        self, signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT)
    ) -> dict[signal.Signals, Handler]:
        """Make these signals ask for the stop; returns the handlers they had, for restoring."""
        return {number: signal.signal(number, self.on_signal) for number in signals}
