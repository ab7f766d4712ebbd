"""The interval trigger: a drift-free tick, within working hours and days."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from capture.config.schema import IntervalTrigger as IntervalConfig
from capture.events import Event
from capture.triggers import Trigger, TriggerContext
from capture.triggers.interval import IntervalTrigger, Schedule
from tests.conftest import wait_for
from tests.triggers.conftest import Collector

Start = Callable[[Trigger], Trigger]
BERLIN = ZoneInfo("Europe/Berlin")


def local(text: str, zone: ZoneInfo = BERLIN) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def test_ticks_every_period_counting_up_on_a_grid(events: Collector) -> None:
    period, busy = 0.05, 0.04

    def slow_engine(event: Event) -> None:
        events(event)
        time.sleep(busy)  # each tick's own work must not push the next one later

    trigger = IntervalTrigger(
        "dvr_view", IntervalConfig(type="interval", every_s=period), TriggerContext()
    )
    trigger.start(slow_engine)
    try:
        wait_for(lambda: len(events) >= 8)
    finally:
        trigger.stop()
    ticks = events.events[:8]
    assert [tick.values["count"] for tick in ticks] == list(range(1, 9))
    offsets = [tick.monotonic - ticks[0].monotonic for tick in ticks]
    assert all(offset >= k * period - 0.005 for k, offset in enumerate(offsets))  # never early
    # A timer restarted after each tick would be at 7 * (period + busy) = 0.63 s or later;
    # the grid puts the eighth tick at 0.35 s, whatever load delays the ones before it.
    assert offsets[7] < 7 * (period + busy)


def test_ticks_outside_the_days_are_skipped_and_not_counted(
    start: Start, events: Collector
) -> None:
    now = [local("2026-11-29 10:00")]  # a Sunday
    clock_lock = threading.Lock()

    def clock() -> datetime:
        with clock_lock:
            return now[0]

    config = IntervalConfig(
        type="interval", every_s=0.02, hours="06:00-22:00", days=["mon", "tue", "wed", "thu", "fri"]
    )
    trigger = start(
        IntervalTrigger("dvr_view", config, TriggerContext(timezone=BERLIN), clock=clock)
    )
    wait_for(lambda: trigger.stats().ignored >= 3)
    assert len(events) == 0
    with clock_lock:
        now[0] = local("2026-11-30 06:00")  # Monday, start of the shift
    wait_for(lambda: len(events) >= 2)
    assert events.values("count")[:2] == [1, 2]


@pytest.mark.parametrize(
    ("hours", "days", "moment", "allowed"),
    [
        ("06:00-22:00", None, "2026-11-25 06:00", True),
        ("06:00-22:00", None, "2026-11-25 05:59", False),
        ("06:00-22:00", None, "2026-11-25 22:00", False),
        ("06:00-22:00", None, "2026-11-25 21:59", True),
        ("22:00-06:00", None, "2026-11-25 23:30", True),
        ("22:00-06:00", None, "2026-11-25 03:00", True),
        ("22:00-06:00", None, "2026-11-25 12:00", False),
        # A night shift belongs to the day it starts: Friday night runs into Saturday.
        ("22:00-06:00", ["fri"], "2026-11-27 23:00", True),
        ("22:00-06:00", ["fri"], "2026-11-28 02:00", True),
        ("22:00-06:00", ["fri"], "2026-11-27 02:00", False),
        ("00:00-00:00", ["sat"], "2026-11-28 13:00", True),
        ("06:00-24:00", None, "2026-11-25 23:59", True),
        (None, ["mon"], "2026-11-30 03:00", True),
        (None, ["mon"], "2026-12-01 03:00", False),
    ],
)
def test_schedule_hours_and_days(
    hours: str | None, days: list[str] | None, moment: str, allowed: bool
) -> None:
    assert Schedule(hours, days, BERLIN).allows(local(moment)) is allowed


def test_schedule_uses_the_service_time_zone_not_utc() -> None:
    schedule = Schedule("06:00-22:00", None, BERLIN)
    # 05:30 UTC is 06:30 in Berlin in winter: inside the shift.
    assert schedule.allows(datetime(2026, 11, 25, 5, 30, tzinfo=UTC))
    assert not schedule.allows(datetime(2026, 11, 25, 4, 30, tzinfo=UTC))


def test_stop_is_prompt_even_with_a_long_period(events: Collector) -> None:
    trigger = IntervalTrigger(
        "daily", IntervalConfig(type="interval", every_s=86400), TriggerContext()
    )
    trigger.start(events)
    trigger.stop()
    trigger.stop()
    assert len(events) == 0
