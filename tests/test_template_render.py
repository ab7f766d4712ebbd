"""Rendering fields: the fast time formatter gives what strftime gives."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from capture.template_render import time_formatter

BERLIN = ZoneInfo("Europe/Berlin")


@given(
    st.datetimes(
        min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(BERLIN)
    ),
    st.sampled_from(
        [
            "%Y-%m-%d",
            "%H%M%S",
            "%Y%m%d_%H%M%S",
            "%H%M%S_%f",
            "%y%m%d {x} %% %a",
            "%Y/%m",
            "plain",
            "%d",
        ]
    ),
)
@settings(deadline=None)  # timing varies on a loaded CI machine; the property does not
def test_the_fast_time_formatter_matches_strftime(moment: datetime, time_format: str) -> None:
    assert time_formatter(time_format)(moment) == moment.strftime(time_format)
