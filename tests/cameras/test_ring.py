"""The live buffer: bounded by age and bytes, the nearest frame, keyframes kept with their frames."""

from __future__ import annotations

from datetime import UTC, datetime

from capture.cameras.ring import BufferedFrame, FrameRing


class Clock:
    """A clock the test moves by hand: waits in `nearest` cost no real time when none is asked."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def frame(at: float, size: int = 10, *, keyframe: bool = True) -> BufferedFrame:
    return BufferedFrame(at, datetime.now(UTC), bytes([int(at * 10) % 256]) * size, keyframe)


def test_frames_older_than_the_buffer_are_dropped() -> None:
    ring = FrameRing(seconds=1.0, max_bytes=1_000_000)
    for tenth in range(30):
        ring.add(frame(100 + tenth / 10))
    assert len(ring) == 11  # 101.9 back to 100.9: one second
    assert ring.span_s() == 1.0


def test_bytes_bound_drops_the_oldest_first_but_keeps_the_newest() -> None:
    ring = FrameRing(seconds=60, max_bytes=25)
    ring.add(frame(1.0, 10))
    ring.add(frame(2.0, 10))
    ring.add(frame(3.0, 10))
    assert len(ring) == 2
    assert ring.size_bytes == 20
    ring.add(frame(4.0, 100))  # larger than the whole bound: still kept, alone
    assert len(ring) == 1


def test_nearest_picks_the_closer_side_of_the_moment() -> None:
    ring = FrameRing(seconds=10, max_bytes=1_000_000, clock=Clock())
    for at in (100.0, 100.1, 100.2):
        ring.add(frame(at))
    chosen = ring.nearest(100.14, wait_s=0)
    assert chosen is not None and chosen[-1].arrived == 100.1
    chosen = ring.nearest(100.16, wait_s=0)
    assert chosen is not None and chosen[-1].arrived == 100.2
    chosen = ring.nearest(99.0, wait_s=0)
    assert chosen is not None and chosen[-1].arrived == 100.0


def test_a_moment_after_the_newest_frame_gets_the_newest_when_nothing_comes() -> None:
    ring = FrameRing(seconds=10, max_bytes=1_000_000, clock=Clock())
    ring.add(frame(100.0))
    chosen = ring.nearest(105.0, wait_s=0)
    assert chosen is not None and chosen[-1].arrived == 100.0
    assert FrameRing(1, 100).nearest(1.0, wait_s=0) is None


def test_nearest_starts_at_the_keyframe_and_groups_age_out_whole() -> None:
    ring = FrameRing(seconds=1.0, max_bytes=1_000_000)
    ring.add(frame(100.0))
    for tenth in range(1, 6):
        ring.add(frame(100 + tenth / 10, keyframe=False))
    chosen = ring.nearest(100.3, wait_s=0)
    assert chosen is not None
    assert [f.arrived for f in chosen] == [100.0, 100.1, 100.2, 100.3]
    ring.add(frame(101.0, keyframe=True))
    ring.add(frame(101.05, keyframe=False))
    # 100.0 is older than a second, but 100.1-100.5 are not and decode only from it: kept.
    assert [f.arrived for f in ring.nearest(100.2, wait_s=0) or []] == [100.0, 100.1, 100.2]
    ring.add(frame(101.6, keyframe=False))
    # Now every frame of that group is older than a second: it went, all of it.
    assert [f.arrived for f in ring.nearest(100.0, wait_s=0) or []] == [101.0]
    assert len(ring) == 3


def test_a_keyframe_interval_longer_than_the_buffer_still_gives_decodable_frames() -> None:
    """A camera sending a keyframe every 6 s (H.264+, a bandwidth setting), buffer_s = 3."""
    ring = FrameRing(seconds=3.0, max_bytes=1_000_000)
    for n in range(120):  # 12 s at 10 fps
        ring.add(frame(100 + n / 10, keyframe=n % 60 == 0))
    held = list(ring._frames)
    assert held[0].keyframe and held[0].arrived == 106.0  # the group of the last 3 s, whole
    chosen = ring.nearest(110.0, wait_s=0)
    assert chosen is not None and chosen[0].arrived == 106.0 and chosen[-1].arrived == 110.0


def test_frames_with_no_keyframe_before_them_are_not_kept() -> None:
    ring = FrameRing(seconds=10, max_bytes=1_000_000)
    ring.add(frame(100.0, keyframe=False))  # a connection that joined mid-group
    assert len(ring) == 0 and ring.nearest(100.0, wait_s=0) is None
    ring.add(frame(100.1))
    ring.add(frame(100.2, keyframe=False))
    ring.new_connection()  # the stream reconnected: 100.3 is not the group of 100.1
    ring.add(frame(100.3, keyframe=False))
    assert [f.arrived for f in ring._frames] == [100.1, 100.2]
    ring.add(frame(100.4))
    ring.add(frame(100.5, keyframe=False))
    assert [f.arrived for f in ring.nearest(100.5, wait_s=0) or []] == [100.4, 100.5]


def test_a_group_larger_than_the_bytes_bound_is_dropped_until_the_next_keyframe() -> None:
    ring = FrameRing(seconds=60, max_bytes=25)
    ring.add(frame(1.0, 10))
    ring.add(frame(1.1, 10, keyframe=False))
    ring.add(frame(1.2, 10, keyframe=False))  # 30 bytes in one group: none of it can stay
    assert len(ring) == 0 and ring.size_bytes == 0
    ring.add(frame(1.3, 10, keyframe=False))  # its group is gone: undecodable
    assert len(ring) == 0
    ring.add(frame(1.4, 10))
    assert [f.arrived for f in ring._frames] == [1.4]
