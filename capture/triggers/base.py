"""What every trigger kind shares: the protocol, errors, statistics, context and registry.

The engine only ever sees `Trigger`; a kind is one module, one entry in
`TRIGGER_KINDS` (capture.registry, the pattern camera drivers share) and its
config model in the schema's `TriggerConfig` union; the service, engine and
web need no change.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

from capture.config.schema import MqttConfig
from capture.errors import CaptureError
from capture.events import Event, Value
from capture.registry import Registry

log = logging.getLogger(__name__)

Emit = Callable[[Event], None]
"""Hands an event to the engine: thread-safe and non-blocking."""


class TriggerError(CaptureError):
    """A trigger cannot do its job; the message names the trigger and what to do."""

    def __init__(self, trigger: str, message: str, source: str | None = None) -> None:
        self.trigger = trigger
        self.source = source
        where = f"{trigger} ({source})" if source else trigger
        super().__init__(f"trigger {where}: {message}")


class PayloadError(TriggerError, ValueError):
    """A payload or line cannot be turned into event values (malformed, oversized)."""


@dataclass(frozen=True, slots=True)
class TriggerStats:
    """Counters and health of one trigger, for the dashboard and the logs.

    `rejected` counts malformed or oversized input (a sensor or sender to fix);
    `ignored` counts input dropped on purpose (a pulse shorter than
    min_active_ms, a tick outside working hours, a retained message).
    `connected` is None for kinds without a connection.
    """

    emitted: int = 0
    rejected: int = 0
    ignored: int = 0
    connected: bool | None = None
    last_error: str | None = None
    last_event: datetime | None = None


class StatsKeeper:
    """Thread-safe counters behind `TriggerStats`, updated from library callback threads."""

    def __init__(self, connected: bool | None = None) -> None:
        self._lock = threading.Lock()
        self._stats = TriggerStats(connected=connected)

    def _update(self, **changes: Any) -> None:
        with self._lock:
            self._stats = replace(self._stats, **changes)

    def snapshot(self) -> TriggerStats:
        """The current counters."""
        with self._lock:
            return self._stats

    def deliver(self, emit: Emit, event: Event) -> None:
        """Emit `event` and count it; an engine failure is logged, never raised into a library thread."""
        try:
            emit(event)
        except Exception as exc:
            log.exception("event handoff failed trigger=%s event=%s", event.trigger, event.id)
            self.error(f"event handoff failed: {exc}")
            return
        with self._lock:
            self._stats = replace(
                self._stats, emitted=self._stats.emitted + 1, last_event=event.wall_time
            )

    def rejected(self, reason: str) -> None:
        """Count malformed or oversized input and remember why."""
        with self._lock:
            self._stats = replace(self._stats, rejected=self._stats.rejected + 1, last_error=reason)

    def ignored(self) -> None:
        """Count input dropped on purpose."""
        with self._lock:
            self._stats = replace(self._stats, ignored=self._stats.ignored + 1)

    def connected(self, state: bool) -> None:
        """Record the connection state."""
        self._update(connected=state)

    def error(self, message: str) -> None:
        """Remember the last problem, shown on the dashboard."""
        self._update(last_error=message)

    def outage(self, message: str) -> None:
        """Disconnected, and why, in one update: a reader never sees one without the other."""
        self._update(connected=False, last_error=message)


@runtime_checkable
class Trigger(Protocol):
    """A source of events: started with the engine's `emit`, stopped at shutdown or reload."""

    name: str

    def start(self, emit: Emit) -> None:
        """Begin producing events; raise `TriggerError` if the trigger cannot work here."""
        ...

    def stop(self) -> None:
        """Stop producing events and join every thread; safe to call twice."""
        ...

    def stats(self) -> TriggerStats:
        """Counters and health for the dashboard."""
        ...


T = TypeVar("T")


@dataclass
class TriggerContext:
    """What some trigger kinds need beyond their own section of the rule file.

    `pin_factory` is a gpiozero pin factory (tests pass `MockFactory`); None
    lets gpiozero choose (lgpio on a Pi 5). `shared` holds objects that all
    triggers of one service share, such as the single MQTT connection.
    """

    mqtt: MqttConfig = field(default_factory=MqttConfig)
    timezone: tzinfo = UTC
    site: str = "plant"
    pin_factory: Any = None
    _shared: dict[str, object] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def shared(self, key: str, create: Callable[[], T]) -> T:
        """The object stored under `key`, created on first use."""
        with self._lock:
            if key not in self._shared:
                self._shared[key] = create()
            # Only `create` of this key ever stored it, and every caller of a key passes
            # the same factory (the key names the kind of object).
            return cast(T, self._shared[key])


TriggerFactory = Callable[[str, Any, TriggerContext], Trigger]
"""Builds a trigger from its name, its config model and the context."""

#: Trigger kind -> "module:factory" that builds it. A kind's module is imported
#: only when a rule file uses the kind: a service with MQTT triggers alone never
#: loads gpiozero, watchdog, pyserial, pymodbus or asyncua (each costs memory on a Pi).
TRIGGER_KINDS: Registry[TriggerFactory] = Registry(
    "trigger type",
    {
        "detection": "capture.triggers.detection:DetectionTrigger",
        "file": "capture.triggers.file:FileTrigger",
        "gpio": "capture.triggers.gpio:GpioTrigger",
        "http": "capture.triggers.http:HttpTrigger",
        "interval": "capture.triggers.interval:IntervalTrigger",
        "modbus": "capture.triggers.modbus:ModbusTrigger",
        "mqtt": "capture.triggers.mqtt:MqttTrigger",
        "opcua": "capture.triggers.opcua:OpcuaTrigger",
        "serial": "capture.triggers.serial:SerialTrigger",
    },
)


#: Trigger kinds whose library is an optional extra of the package: kind ->
#: (the library's import name, the extra). A Pi without a factory network
#: does not carry pymodbus or asyncua (and asyncua's cryptography).
OPTIONAL_LIBRARIES: dict[str, tuple[str, str]] = {
    "modbus": ("pymodbus", "modbus"),
    "opcua": ("asyncua", "opcua"),
}


def missing_library(kind: str) -> str | None:
    """What to install for trigger kind `kind` when its optional library is missing, else None."""
    if kind not in OPTIONAL_LIBRARIES:
        return None
    library, extra = OPTIONAL_LIBRARIES[kind]
    if importlib.util.find_spec(library) is not None:
        return None
    return (
        f"the {kind} trigger needs {library}, which is not installed: "
        f"pip install 'event-capture[{extra}]' (on a Pi: deploy/install.sh --extras {extra})"
    )


def trigger_factory(kind: str) -> TriggerFactory:
    """The builder of trigger kind `kind`, importing its module on first use."""
    return TRIGGER_KINDS.load(kind)


def build_trigger(name: str, config: Any, context: TriggerContext) -> Trigger:
    """Build the trigger `name` from its config model (one of `TriggerConfig`)."""
    missing = missing_library(config.type)
    if missing:
        raise TriggerError(name, f"cannot start: {missing}")
    try:
        factory = TRIGGER_KINDS.load(config.type)
    except KeyError as exc:
        raise TriggerError(name, exc.args[0]) from None
    return factory(name, config, context)


def event_at(trigger: str, values: Mapping[str, Value], monotonic: float) -> Event:
    """An event stamped at an earlier moment `monotonic`, e.g. the edge a debounce confirmed.

    The wall time is derived from the monotonic distance so a wall clock jump
    between the edge and now does not distort it.
    """
    age = max(0.0, time.monotonic() - monotonic)
    wall = datetime.now(UTC) - timedelta(seconds=age)
    return Event(trigger=trigger, values=values, wall_time=wall, monotonic=monotonic)
