"""The `interval` trigger: a periodic tick, e.g. to refresh every camera's latest picture.

Ticks lie on a fixed monotonic grid (start + k * every_s), so they do not
drift however long each one takes, and a wall clock jump (NTP on a Pi
without RTC) neither bunches nor skips them. Working hours and days are
checked against the wall clock in the service's time zone at each tick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo

from capture.config import schema
from capture.events import Event
from capture.triggers.base import (
    Emit,
    StatsKeeper,
    TriggerContext,
    TriggerStats,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


class Schedule:
    """When an interval trigger may fire: `hours` and `days` in a time zone.

    A window that wraps midnight ("22:00-06:00") belongs to the day it starts:
    with days = ["fri"], Friday 23:00 and Saturday 02:00 are inside it.
    Equal start and end ("00:00-00:00") mean the whole day.
    """

    def __init__(self, hours: str | None, days: list[str] | None, timezone: tzinfo) -> None:
        self.timezone = timezone
        self.days = frozenset(days) if days else None
        if hours:
            start, end = hours.split("-")
            self.start, self.end = _minutes(start), _minutes(end)
        else:
            self.start = self.end = 0

    def allows(self, moment: datetime) -> bool:
        """Whether a tick at `moment` (aware) falls inside the hours and days."""
        local = moment.astimezone(self.timezone)
        minute = local.hour * 60 + local.minute
        if self.start < self.end:
            inside, day = self.start <= minute < self.end, local
        elif self.start > self.end:
            inside = minute >= self.start or minute < self.end
            day = local - timedelta(days=1) if minute < self.end else local
        else:
            inside, day = True, local
        return inside and (self.days is None or schema.WEEKDAYS[day.weekday()] in self.days)


class IntervalTrigger:
    """Fires every `every_s` seconds within its hours and days.

    Values: `count`, the number of this tick since the trigger started
    (1, 2, ...; ticks outside the hours are not counted). The first tick comes
    one period after start, so a restart or reload does not fire at once.
    """

    def __init__(
        self,
        name: str,
        config: schema.IntervalTrigger,
        context: TriggerContext,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.schedule = Schedule(config.hours, list(config.days or ()) or None, context.timezone)
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self._stats = StatsKeeper()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._count = 0

    def start(self, emit: Emit) -> None:
        """Start ticking in a thread of its own."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._count = 0
        self._thread = threading.Thread(
            target=self._run, args=(emit,), name=f"interval-{self.name}", daemon=True
        )
        self._thread.start()
        log.info(
            "interval trigger started trigger=%s every_s=%s hours=%s days=%s",
            self.name,
            self.config.every_s,
            self.config.hours or "all",
            ",".join(self.config.days) if self.config.days else "all",
        )

    def stop(self) -> None:
        """Stop ticking and join the thread."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def stats(self) -> TriggerStats:
        """Ticks fired, and ticks skipped outside the hours (as ignored)."""
        return self._stats.snapshot()

    def _run(self, emit: Emit) -> None:
        period = self.config.every_s
        due = time.monotonic() + period
        while not self._stopping.wait(max(0.0, due - time.monotonic())):
            self._tick(emit)
            due += period
            now = time.monotonic()
            if due < now:
                # Late by more than a period (suspended, overloaded): resume on
                # the grid instead of firing the missed ticks in a burst.
                missed = int((now - due) // period) + 1
                due += missed * period
                log.warning("interval trigger late trigger=%s missed_ticks=%d", self.name, missed)

    def _tick(self, emit: Emit) -> None:
        if not self.schedule.allows(self._clock()):
            self._stats.ignored()
            return
        self._count += 1
        self._stats.deliver(emit, Event(trigger=self.name, values={"count": self._count}))
