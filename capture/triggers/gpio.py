"""The `gpio` trigger: a digital input (infrared gate, light barrier, dry contact) via gpiozero.

Debouncing and the minimum pulse length are done here rather than by the pin
factory, because factories disagree (lgpio filters glitches, RPi.GPIO ignores
edges after one, MockFactory does nothing); this way a rule behaves the same
on a Pi 5, a Pi 3 and in tests. The first edge fires at once, so the picture
is as close to the moment as possible; bounces after it are absorbed, and the
input is re-read when the bounce window ends so a real change inside it is
never lost.

Those deadlines (end of the bounce window, end of min_active_ms) belong to a
worker thread, which a busy CPU can wake late. An edge arriving after a
deadline the worker has not handled yet handles it first, judged by the input
as the last edge left it: what a pulse counts as never depends on how
punctually a thread was scheduled.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from typing import Any

from gpiozero import BadPinFactory, DigitalInputDevice, GPIOPinInUse, PinFixedPull

from capture.config import schema
from capture.events import Value
from capture.triggers.base import (
    Emit,
    StatsKeeper,
    TriggerContext,
    TriggerError,
    TriggerStats,
    event_at,
)

log = logging.getLogger(__name__)

ACTIVE = "active"
INACTIVE = "inactive"


def open_input(name: str, config: schema.GpioTrigger, pin_factory: Any) -> DigitalInputDevice:
    """Open the input pin, translating every pin-library failure into one `TriggerError`.

    gpiozero announces each pin factory it could not load with a
    PinFactoryFallback warning before giving up; those reasons go into the
    error so a technician sees why (no lgpio module, not a Pi, ...), or into
    the log when a later factory worked.
    """
    source = f"gpio pin {config.pin}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            device = DigitalInputDevice(
                config.pin,
                pull_up=config.pull_up,
                active_state=config.active_state,
                bounce_time=None,
                pin_factory=pin_factory,
            )
        except Exception as exc:  # the one place pin libraries are touched: lgpio.error, OSError...
            reasons = "; ".join(str(warning.message) for warning in caught)
            hint = _hint(exc)
            detail = f"{exc}" + (f" ({reasons})" if reasons else "") + (f"; {hint}" if hint else "")
            raise TriggerError(name, f"cannot start: {detail}", source) from exc
    for warning in caught:
        log.info("gpio note trigger=%s pin=%s note=%r", name, config.pin, str(warning.message))
    return device


def _hint(exc: Exception) -> str:
    if isinstance(exc, BadPinFactory):
        return (
            "no GPIO pin factory available (not a Raspberry Pi?); on a Pi install "
            "python3-lgpio, elsewhere remove or disable this trigger"
        )
    if isinstance(exc, GPIOPinInUse):
        return "another trigger or program uses this pin"
    if isinstance(exc, PinFixedPull):
        return "this pin has a fixed pull-up resistor (GPIO2/GPIO3): set pull_up = true or use another pin"
    if isinstance(exc, PermissionError) or "permission" in str(exc).lower():
        return "add the service user to the gpio group"
    return ""


class GpioTrigger:
    """Fires on edges of one digital input, debounced, optionally ignoring short pulses.

    Values: `pin` (gpiozero's name, e.g. "GPIO17"), `state` ("active" or
    "inactive", the new state) and `duration_ms` (how long the input was
    active: the pulse length on deactivation, the time it has been active so
    far on a confirmed activation, None on an immediate activation).
    """

    def __init__(self, name: str, config: schema.GpioTrigger, context: TriggerContext) -> None:
        self.name = name
        self.config = config
        self._pin_factory = context.pin_factory
        self._bounce = config.bounce_ms / 1000
        self._min_active = config.min_active_ms / 1000
        self._stats = StatsKeeper()
        self._lock = threading.Condition()
        self._device: DigitalInputDevice | None = None
        self._worker: threading.Thread | None = None
        self._emit: Emit | None = None
        self._running = False
        self._pin_name = str(config.pin)
        # Debounce state, guarded by _lock.
        self._active = False  # the accepted (debounced) state
        self._since = 0.0  # monotonic time of the accepted edge
        self._confirmed = False  # the current activation lasted min_active_ms
        self._last_edge = 0.0  # monotonic time of the last raw edge
        self._raw = False  # the input as the last raw edge left it
        self._quiet_until = 0.0  # end of the bounce window after the accepted edge
        self._settle_at: float | None = None  # re-read the input then
        self._confirm_at: float | None = None  # confirm the activation then

    def start(self, emit: Emit) -> None:
        """Open the pin and start watching it; `TriggerError` if there is no usable GPIO."""
        if self._running:
            return
        device = open_input(self.name, self.config, self._pin_factory)
        self._device = device
        self._pin_name = getattr(device.pin.info, "name", str(self.config.pin))
        self._emit = emit
        with self._lock:
            self._running = True
            self._settle_at = self._confirm_at = None
            self._quiet_until = 0.0
            self._active = self._raw = bool(device.is_active)
            self._since = self._last_edge = time.monotonic()
            self._confirmed = True  # an input already active at start is not a new pulse
        self._worker = threading.Thread(target=self._run, name=f"gpio-{self.name}", daemon=True)
        self._worker.start()
        device.when_activated = self._on_activated
        device.when_deactivated = self._on_deactivated
        log.info(
            "gpio trigger started trigger=%s pin=%s state=%s",
            self.name,
            self._pin_name,
            ACTIVE if self._active else INACTIVE,
        )

    def stop(self) -> None:
        """Release the pin and join the worker thread."""
        with self._lock:
            self._running = False
            self._lock.notify_all()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        if self._device is not None:
            self._device.close()
            self._device = None

    def stats(self) -> TriggerStats:
        """Events fired and short pulses ignored."""
        return self._stats.snapshot()

    # gpiozero's callback thread -------------------------------------------------

    def _on_activated(self) -> None:
        self._on_edge(True)

    def _on_deactivated(self) -> None:
        self._on_edge(False)

    def _on_edge(self, active: bool) -> None:
        now = time.monotonic()
        with self._lock:
            if not self._running:
                return
            if any(t is not None and now >= t for t in (self._settle_at, self._confirm_at)):
                self._on_deadline(now, self._raw)  # the worker is late: the input was _raw since
            self._last_edge = now
            self._raw = active
            if now < self._quiet_until:
                self._settle_at = self._quiet_until
                self._lock.notify_all()
            elif active != self._active:
                self._accept(active, now)

    # shared by both threads, called with _lock held -------------------------------

    def _accept(self, active: bool, at: float) -> None:
        previous_since = self._since
        self._active = active
        self._since = at
        self._quiet_until = at + self._bounce
        if self._bounce:
            self._settle_at = self._quiet_until
        if active:
            self._confirmed = not self._min_active
            if self._confirmed:
                self._fire(ACTIVE, None, at, "activated")
            else:
                self._confirm_at = at + self._min_active
        elif self._confirmed:
            self._fire(INACTIVE, (at - previous_since) * 1000, at, "deactivated")
        else:
            self._confirm_at = None
            self._stats.ignored()
            log.debug(
                "gpio pulse too short trigger=%s pin=%s duration_ms=%.1f min_active_ms=%d",
                self.name,
                self._pin_name,
                (at - previous_since) * 1000,
                self.config.min_active_ms,
            )
        self._lock.notify_all()

    def _fire(self, state: str, duration_ms: float | None, at: float, edge: str) -> None:
        if self.config.edge not in (edge, "both") or self._emit is None:
            return
        values: dict[str, Value] = {
            "pin": self._pin_name,
            "state": state,
            "duration_ms": None if duration_ms is None else round(duration_ms, 1),
        }
        self._stats.deliver(self._emit, event_at(self.name, values, at))

    # the worker thread: deadlines for settling and confirming ----------------------

    def _run(self) -> None:
        with self._lock:
            while self._running:
                deadlines = [t for t in (self._settle_at, self._confirm_at) if t is not None]
                if not deadlines:
                    self._lock.wait()
                    continue
                wait = min(deadlines) - time.monotonic()
                if wait > 0:
                    self._lock.wait(wait)
                    continue
                self._on_deadline(time.monotonic(), self._read())

    def _read(self) -> bool:
        return self._device is not None and bool(self._device.is_active)

    def _on_deadline(self, now: float, actual: bool) -> None:
        """Handle the deadlines due at `now`, earliest first; `actual` is the input's state at them."""
        while True:
            due = [t for t in (self._settle_at, self._confirm_at) if t is not None and t <= now]
            if not due:
                return
            if self._settle_at is not None and self._settle_at == min(due):
                self._settle_at = None
                if actual != self._active:
                    # The input changed inside the bounce window and stayed changed.
                    self._accept(actual, max(self._last_edge, self._since))
            else:
                self._confirm_at = None
                if self._active and not self._confirmed:
                    if not actual and self._settle_at is not None:
                        # Released inside the bounce window (min_active_ms < bounce_ms): a
                        # spike or a part, the end of the window tells (settle, above).
                        self._confirm_at = self._settle_at
                        continue
                    self._confirmed = True
                    self._fire(ACTIVE, (now - self._since) * 1000, self._since, "activated")
