"""The `http` trigger: `POST /api/trigger/NAME` from PLCs and MES systems that speak HTTP.

The web server owns the socket and the token check; this module owns what a
posted body means: it validates the values, creates the event at once and
hands it to the engine, so HTTP and MQTT triggers carry the same kind of values.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from capture.config import schema
from capture.events import Event, Value
from capture.triggers.base import (
    Emit,
    PayloadError,
    StatsKeeper,
    TriggerContext,
    TriggerError,
    TriggerStats,
)
from capture.triggers.values import MAX_VALUES, PayloadFormatError, flatten

log = logging.getLogger(__name__)

MAX_STRING_CHARS = 4096
"""Longest string value accepted in a posted body."""


class HttpTrigger:
    """Fires when the web server calls `fire` for a posted request.

    Values: the posted JSON object's fields (nested ones by dotted path, as
    with mqtt) and `client`, the caller's address, which a body cannot
    override.
    """

    def __init__(self, name: str, config: schema.HttpTrigger, context: TriggerContext) -> None:
        self.name = name
        self.config = config
        self.source = f"http POST /api/trigger/{name}"
        self._stats = StatsKeeper()
        self._emit: Emit | None = None

    def start(self, emit: Emit) -> None:
        """Accept posts from now on."""
        self._emit = emit

    def stop(self) -> None:
        """Refuse posts from now on."""
        self._emit = None

    def stats(self) -> TriggerStats:
        """Posts fired and bodies rejected."""
        return self._stats.snapshot()

    def fire(self, values: Mapping[str, object], client: str) -> Event:
        """Validate posted `values`, emit the event and return it.

        Raises `PayloadError` (a ValueError: answer 400) for a body that is not
        a flat-enough JSON object of scalars within limits, and `TriggerError`
        (answer 503) when the trigger is not running.
        """
        emit = self._emit
        if emit is None:
            raise TriggerError(self.name, "not running (service starting or stopping)", self.source)
        try:
            event_values = self.validate(values)
        except PayloadFormatError as exc:
            self._stats.rejected(f"from {client}: {exc}")
            log.warning(
                "http trigger body rejected trigger=%s client=%s reason=%r",
                self.name,
                client,
                str(exc),
            )
            raise PayloadError(self.name, f"bad request body: {exc}", self.source) from exc
        event_values["client"] = client
        event = Event(trigger=self.name, values=event_values)
        self._stats.deliver(emit, event)
        log.info("http trigger fired trigger=%s client=%s event=%s", self.name, client, event.id)
        return event

    @staticmethod
    def validate(values: object) -> dict[str, Value]:
        """The event values of a posted body; `PayloadFormatError` when it is unusable."""
        if not isinstance(values, Mapping):
            raise PayloadFormatError(
                f"expected a JSON object of values, got {type(values).__name__}"
            )
        if len(values) > MAX_VALUES:
            raise PayloadFormatError(f"more than {MAX_VALUES} values")
        for key in values:
            if not isinstance(key, str) or not key:
                raise PayloadFormatError(f"value names must be non-empty strings, got {key!r}")
        flat = flatten(values)
        for key, value in flat.items():
            if isinstance(value, str) and len(value) > MAX_STRING_CHARS:
                raise PayloadFormatError(f"{key}: longer than {MAX_STRING_CHARS} characters")
        return flat
