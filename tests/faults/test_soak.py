"""bench/soak.py's verdict (the soak itself is not run in CI): lost events or growing RSS fail it."""

from __future__ import annotations

import pytest

from bench.soak import (
    INDEX_BYTES,
    MAX_RSS_GROWTH,
    MIB,
    RSS_STEP_MIB,
    failures,
    growth_mib,
    growth_per_minute,
    rss_limit,
)


def test_rss_growth_is_measured_over_the_second_half_of_the_run() -> None:
    warm_up_then_flat = [(0.0, 40.0), (150.0, 55.0), (300.0, 56.0), (450.0, 56.5), (600.0, 57.0)]
    assert growth_per_minute(warm_up_then_flat) == pytest.approx(0.2)  # 56 -> 57 in 5 min


def test_the_limit_allows_the_storage_index_only_when_every_picture_is_kept() -> None:
    kept = [(0.0, 0), (300.0, 15_000), (600.0, 30_000)]  # 3,000 pictures a minute
    assert rss_limit(MAX_RSS_GROWTH, kept, bounded=True) == MAX_RSS_GROWTH
    assert rss_limit(MAX_RSS_GROWTH, kept, bounded=False) == pytest.approx(
        MAX_RSS_GROWTH + 3_000 * INDEX_BYTES / MIB
    )


def test_the_soak_fails_on_a_lost_event_and_on_rss_growing_faster_than_its_limit() -> None:
    assert failures([], growth=0.07, limit=MAX_RSS_GROWTH, grown_mib=0.35) == []
    [lost] = failures([17], growth=0.0, limit=MAX_RSS_GROWTH, grown_mib=0.0)
    assert "1 trigger(s) never produced an event message" in lost
    [growing] = failures([], growth=0.9, limit=0.5, grown_mib=4.5)
    assert "0.90 MiB/min" in growing and "0.50" in growing
    assert len(failures([1, 2], growth=2.0, limit=0.5, grown_mib=10.0)) == 2


def test_one_step_of_the_heap_is_not_a_trend() -> None:
    """A flat 4-minute run: one 1.1 MiB step at 212 s made 0.47 MiB/min over its second half."""
    samples = [(float(t), 49.5) for t in range(2, 212, 10)] + [(212.0, 50.6), (240.0, 50.6)]
    assert growth_mib(samples) < RSS_STEP_MIB
    assert failures([], growth_per_minute(samples), 0.3, growth_mib(samples)) == []
