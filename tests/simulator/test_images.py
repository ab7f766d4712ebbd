"""Generated pictures: valid JPEGs of realistic size, unique per response, redrawn over time."""

from __future__ import annotations

from capture.simulator.images import FrameSource, with_comment
from tests.conftest import wait_for
from tests.simulator.helpers import comment_of, decoded


def test_pictures_are_valid_jpegs_of_realistic_size():
    source = FrameSource("line3_cam2", "Line 3")
    jpeg = source.jpeg(1, 640, 480)
    image = decoded(jpeg)
    assert image.size == (640, 480)
    assert 15_000 < len(jpeg) < 120_000


def test_every_response_is_unique_through_its_comment_counter():
    source = FrameSource("cam", "")
    first, second = source.jpeg(1, 320, 240), source.jpeg(1, 320, 240)
    assert first != second
    assert comment_of(first) == b"sim cam #1"
    assert comment_of(second) == b"sim cam #2"


def test_the_comment_goes_after_the_jfif_header():
    jpeg = FrameSource("cam", "").picture(1, 64, 48)
    marked = with_comment(jpeg, "hello")
    assert marked[2:4] == b"\xff\xe0"  # APP0 still right after SOI
    assert comment_of(marked) == b"hello"
    decoded(marked)


def test_channels_look_different_and_pictures_change_over_time():
    source = FrameSource("cam", "")
    one = decoded(source.picture(1, 160, 120)).tobytes()
    assert decoded(source.picture(2, 160, 120)).tobytes() != one
    wait_for(lambda: decoded(source.picture(1, 160, 120)).tobytes() != one, timeout=5)
