"""The `detection` trigger: what object detection found on a rule's pictures, as an event.

Follow-up rules act on it (`condition = "person >= 1"`): announce, or take
more pictures, only when the detector saw something. It fires on the
detection worker's thread once a firing's pictures are analysed, long after
that firing's own pictures were saved and announced, so no capture ever waits
for it. The service hands it each finished analysis as plain values
(`fire`); this module knows nothing of the detector.
"""

from __future__ import annotations

from collections.abc import Mapping

from capture.config import schema
from capture.events import Event, Value
from capture.triggers.base import Emit, StatsKeeper, TriggerContext, TriggerStats


class DetectionTrigger:
    """Fires when the pictures of a firing (of one of `rules`, or any) have been analysed.

    Values: `rule` and `event` (the analysed firing's), `objects` (objects
    kept on all its pictures), `classes` (their classes, comma-separated),
    `analysed` and `not_analysed` (pictures), and one count per class found,
    named after it with spaces as `_` (`person`, `stop_sign`).
    """

    def __init__(self, name: str, config: schema.DetectionTrigger, context: TriggerContext) -> None:
        self.name = name
        self.config = config
        self.source = "detection of " + (", ".join(config.rules) or "every rule")
        self._stats = StatsKeeper()
        self._emit: Emit | None = None

    def start(self, emit: Emit) -> None:
        """Fire from now on."""
        self._emit = emit

    def stop(self) -> None:
        """Fire no more."""
        self._emit = None

    def stats(self) -> TriggerStats:
        """Analyses fired on (`emitted`), and those of other rules (`ignored`)."""
        return self._stats.snapshot()

    def fire(self, rule: str, values: Mapping[str, Value]) -> Event | None:
        """Emit an event for an analysed firing of `rule`, unless this trigger is not for it."""
        emit = self._emit
        if emit is None:
            return None
        if self.config.rules and rule not in self.config.rules:
            self._stats.ignored()
            return None
        event = Event(trigger=self.name, values=values)
        self._stats.deliver(emit, event)
        return event
