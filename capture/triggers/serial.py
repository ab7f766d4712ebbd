"""The `serial` trigger: lines from a USB or RS-232 device, read with pyserial.

Thermometers, barcode scanners and PLC ports print one reading per line; the
same parsers as the `file` trigger turn it into values, so no helper script
copying the port into a file is needed. An unplugged device is reopened every
reconnect_s; the outage is logged once when it starts and once when it ends.
"""

from __future__ import annotations

import errno
import logging
import threading
import time

import serial as pyserial

from capture.config import schema
from capture.events import Event
from capture.triggers.base import (
    Emit,
    StatsKeeper,
    TriggerContext,
    TriggerError,
    TriggerStats,
)
from capture.triggers.parsing import LineSplitter, ValueParser, merge
from capture.triggers.values import PayloadFormatError

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 1.0
"""A blocked read wakes this often at most; stop() cancels it at once anyway."""


class SerialTrigger:
    """Fires for each line a serial device sends.

    Values: what the parser found, `line` (the line, stripped) and `port`
    (the configured device path).
    """

    def __init__(self, name: str, config: schema.SerialTrigger, context: TriggerContext) -> None:
        self.name = name
        self.config = config
        self.source = f"serial port {config.port}"
        self._stats = StatsKeeper(connected=False)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._port: pyserial.Serial | None = None
        self._port_lock = threading.Lock()
        self._outage_since: float | None = None
        self._splitter = LineSplitter()
        self._parser: ValueParser | None = None

    def start(self, emit: Emit) -> None:
        """Open the port and read it in a thread of its own.

        A missing device is not fatal (it may be plugged in later: the trigger
        keeps trying); a port the service may not open is, because retrying
        cannot fix it.
        """
        if self._thread is not None:
            return
        try:
            self._parser = ValueParser(self.config)
        except LookupError as exc:
            raise TriggerError(
                self.name, f"cannot start: unknown encoding {self.config.encoding!r}", self.source
            ) from exc
        self._stopping.clear()
        try:
            self._set_port(self._open())
        except ValueError as exc:  # pyserial's verdict on the settings, e.g. a baud rate
            raise TriggerError(self.name, f"cannot start: {exc}", self.source) from exc
        except pyserial.SerialException as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise TriggerError(
                    self.name,
                    f"cannot start: permission denied on {self.config.port}; "
                    "add the service user to the dialout group",
                    self.source,
                ) from exc
            self._outage(exc)
        self._thread = threading.Thread(
            target=self._run, args=(emit,), name=f"serial-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop reading, join the thread and close the port."""
        self._stopping.set()
        with self._port_lock:
            if self._port is not None:
                self._port.cancel_read()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._set_port(None)

    def stats(self) -> TriggerStats:
        """Lines fired, lines that did not parse, and whether the device is there."""
        return self._stats.snapshot()

    def _open(self) -> pyserial.Serial:
        config = self.config
        port = pyserial.Serial(
            config.port,
            baudrate=config.baud,
            bytesize=config.bytesize,
            parity=config.parity,
            stopbits=config.stopbits,
            timeout=READ_TIMEOUT_S,
            exclusive=True,
        )
        if self._outage_since is not None:
            log.info(
                "serial port back trigger=%s port=%s outage_s=%.1f",
                self.name,
                config.port,
                time.monotonic() - self._outage_since,
            )
        else:
            log.info(
                "serial port open trigger=%s port=%s baud=%d", self.name, config.port, config.baud
            )
        self._outage_since = None
        return port

    def _set_port(self, port: pyserial.Serial | None, error: str | None = None) -> None:
        with self._port_lock:
            old, self._port = self._port, port
        if old is not None:
            old.close()
        if error is not None:
            self._stats.outage(error)
        else:
            self._stats.connected(port is not None)

    def _outage(self, exc: Exception) -> None:
        self._set_port(None, error=f"{self.config.port}: {exc}")
        self._splitter.reset()  # a partial line from before the outage is lost
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.warning(
                "serial port unavailable trigger=%s port=%s error=%r; retrying every %s s",
                self.name,
                self.config.port,
                str(exc),
                self.config.reconnect_s,
            )

    def _run(self, emit: Emit) -> None:
        while not self._stopping.is_set():
            port = self._port
            if port is None:
                if self._stopping.wait(self.config.reconnect_s):
                    return
                try:
                    self._set_port(self._open())
                except (pyserial.SerialException, OSError, ValueError) as exc:
                    self._outage(exc)
                continue
            try:
                data = port.read(max(1, port.in_waiting))
            except (pyserial.SerialException, OSError) as exc:
                if not self._stopping.is_set():
                    self._outage(exc)
                continue
            self._feed(data, emit)

    def _feed(self, data: bytes, emit: Emit) -> None:
        assert self._parser is not None
        lines, dropped = self._splitter.feed(data)
        for _ in range(dropped):
            self._reject("line longer than 64 KiB")
        for raw in lines:
            try:
                values = self._parser.parse_bytes(raw)
            except PayloadFormatError as exc:
                self._reject(str(exc))
                continue
            event = Event(trigger=self.name, values=merge(values, {"port": self.config.port}))
            self._stats.deliver(emit, event)

    def _reject(self, why: str) -> None:
        self._stats.rejected(f"{self.config.port}: {why}")
        log.info(
            "serial line rejected trigger=%s port=%s reason=%r", self.name, self.config.port, why
        )
