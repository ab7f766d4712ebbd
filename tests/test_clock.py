"""One clock: the site's time zone with its offset, durations to the microsecond."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from capture.clock import milliseconds, site_iso


def test_a_moment_is_shown_in_the_sites_zone_with_its_offset() -> None:
    moment = datetime(2026, 7, 1, 6, 30, 0, 123456, tzinfo=UTC)
    assert site_iso(moment, ZoneInfo("Europe/Berlin")) == "2026-07-01T08:30:00.123+02:00"
    assert site_iso(None, ZoneInfo("Europe/Berlin")) is None


def test_a_devices_naive_local_time_is_shown_as_it_is() -> None:
    assert (
        site_iso(datetime(2026, 7, 1, 8, 30), ZoneInfo("Asia/Tokyo")) == "2026-07-01T08:30:00.000"
    )


def test_durations_lose_their_float_noise() -> None:
    assert milliseconds(5.692926999927295) == 5.693
    assert milliseconds(None) is None
