"""Times and durations as a person reads them: one clock, the site's, everywhere.

The journal and event ids keep UTC; every time shown (file names, `capture
events` as a table or JSON, the web API, MQTT event messages) is in
[service].timezone as ISO 8601 with its offset, so one moment reads the same
in each, and durations are rounded to the microsecond, as a float's noise
(5.692926999927295 ms) tells nobody anything.
"""

from __future__ import annotations

from datetime import datetime, tzinfo


def site_iso(moment: datetime | None, zone: tzinfo) -> str | None:
    """`moment` in the site's time zone as ISO 8601 to the millisecond, with its offset.

    A naive moment (a device's own clock without a zone) is shown as it is: it
    already is the device's local time.
    """
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.isoformat(timespec="milliseconds")
    return moment.astimezone(zone).isoformat(timespec="milliseconds")


def milliseconds(value: float | None) -> float | None:
    """A duration in milliseconds rounded to the microsecond (3 decimals)."""
    return None if value is None else round(value, 3)
