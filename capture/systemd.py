"""Tells systemd how the service is doing (sd_notify), so `Type=notify` and `WatchdogSec=` work.

The protocol is one datagram of `KEY=value` lines to the AF_UNIX socket named
in `$NOTIFY_SOCKET` (a leading `@` means Linux's abstract namespace). It is a
few lines of socket code, so no library is needed; outside systemd (a
technician running `capture run` by hand, tests) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


def _address(environ: Mapping[str, str]) -> str | bytes | None:
    target = environ.get("NOTIFY_SOCKET", "")
    if not target:
        return None
    if target.startswith("@"):
        return b"\0" + target[1:].encode()
    if target.startswith("/"):
        return target
    # vsock:... and other forms are for VMs and containers, not a Pi on a line.
    log.debug("NOTIFY_SOCKET=%s is not an AF_UNIX path; systemd notifications off", target)
    return None


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `message` (e.g. `"READY=1"`, `"STATUS=..."`) to systemd; True if it was sent.

    Without `$NOTIFY_SOCKET` (not started by systemd) nothing is sent and the
    result is False. A failure to send is logged, never raised: systemd's
    bookkeeping must not stop a capture.
    """
    address = _address(os.environ if environ is None else environ)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning(
            "systemd notification failed message=%s error=%s", message.partition("=")[0], exc
        )
        return False
    return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between watchdog pings: half of `$WATCHDOG_USEC`, or None if no watchdog is asked.

    systemd sets `$WATCHDOG_PID` too; a value naming another process (a child
    that inherited the environment) means the watchdog is not ours.
    """
    environ = os.environ if environ is None else environ
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = environ.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2_000_000


class Watchdog:
    """A thread that pings systemd's watchdog while the service is healthy, and keeps STATUS= current.

    `healthy` is asked before each ping: when it returns False the ping is
    skipped, so systemd restarts a service whose parts died
    (`Restart=on-failure` also covers a watchdog timeout). `status` gives the
    one-line text `systemctl status` shows; it is sent when it changes.
    """

    def __init__(
        self,
        interval_s: float,
        *,
        healthy: Callable[[], bool] = lambda: True,
        status: Callable[[], str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.interval_s = interval_s
        self._healthy = healthy
        self._status = status
        self._environ = environ
        self._last_status: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="systemd-watchdog", daemon=True)
        self.pings = 0

    @classmethod
    def from_environment(
        cls,
        *,
        healthy: Callable[[], bool] = lambda: True,
        status: Callable[[], str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Watchdog | None:
        """A watchdog at half of `$WATCHDOG_USEC`, or None when systemd asked for none."""
        interval = watchdog_interval(environ)
        if interval is None:
            return None
        return cls(interval, healthy=healthy, status=status, environ=environ)

    def start(self) -> None:
        """Ping once now, then every `interval_s` until `stop`."""
        log.info("systemd watchdog on interval_s=%.1f", self.interval_s)
        self._thread.start()

    def stop(self) -> None:
        """Stop pinging; returns once the thread has ended."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while True:
            self.tick()
            if self._stop.wait(self.interval_s):
                return

    def tick(self) -> None:
        """One round: send the status if it changed, ping if healthy."""
        if self._status is not None:
            text = self._status()
            if text != self._last_status and notify(f"STATUS={text}", self._environ):
                self._last_status = text
        if self._healthy():
            if notify("WATCHDOG=1", self._environ):
                self.pings += 1
        else:
            log.error("service unhealthy: watchdog ping withheld, systemd will restart it")
