"""The JPEG structure walk: what it accepts, trims and refuses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.cameras.jpeg import JpegError, JpegScanner, validate_jpeg
from tests.cameras.helpers import make_jpeg

BASELINE = make_jpeg(64, 48)
PROGRESSIVE = make_jpeg(80, 60, progressive=True)
RESTARTS = make_jpeg(64, 48, restart_interval=True)
WITH_THUMBNAIL = make_jpeg(64, 48, thumbnail=True)


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (BASELINE, (64, 48)),
        (PROGRESSIVE, (80, 60)),
        (RESTARTS, (64, 48)),
        (WITH_THUMBNAIL, (64, 48)),
    ],
    ids=["baseline", "progressive", "restart-markers", "exif-thumbnail"],
)
def test_valid_jpegs_are_accepted_with_their_size(data: bytes, size: tuple[int, int]) -> None:
    info = validate_jpeg(data)
    assert (info.width, info.height) == size
    assert info.data == data


def test_restart_marker_fixture_really_has_restart_markers() -> None:
    assert any(bytes([0xFF, code]) in RESTARTS for code in range(0xD0, 0xD8))


def test_exif_thumbnail_is_skipped_not_taken_for_the_image() -> None:
    # The thumbnail is a complete JPEG (16x12) inside APP1; a byte search for FF D9 would stop there.
    assert WITH_THUMBNAIL.count(b"\xff\xd9") == 2
    info = validate_jpeg(WITH_THUMBNAIL)
    assert (info.width, info.height) == (64, 48)
    assert len(info.data) == len(WITH_THUMBNAIL)


@pytest.mark.parametrize("trailer", [b"dhav\x00\x01\x02\x03", b"\xff" * 32, b"\x00" * 100])
def test_bytes_after_eoi_are_trimmed(trailer: bytes) -> None:
    info = validate_jpeg(BASELINE + trailer)
    assert info.data == BASELINE


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty body"),
        (b"<?xml version='1.0'?><ResponseStatus/>", "SOI"),
        (b"Error\r\n", "SOI"),
        (BASELINE[: len(BASELINE) // 2], "truncated"),
        (BASELINE[:-2], "truncated"),
        (BASELINE[:2] + b"\xff\xd9", "EOI before any image data"),
        (BASELINE[: BASELINE.index(b"\xff\xda") + 40] + BASELINE, "second SOI"),
    ],
    ids=["empty", "xml", "dahua-error", "half", "no-eoi", "eoi-only", "restarted"],
)
def test_non_jpegs_are_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(JpegError, match=reason):
        validate_jpeg(body)


def test_jpeg_error_is_a_value_error() -> None:
    assert issubclass(JpegError, ValueError)


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=0, max_value=len(WITH_THUMBNAIL) - 1))
def test_every_proper_prefix_is_refused(cut: int) -> None:
    with pytest.raises(JpegError):
        validate_jpeg(WITH_THUMBNAIL[:cut])


@settings(max_examples=100, deadline=None)
@given(
    data=st.sampled_from([BASELINE, PROGRESSIVE, RESTARTS, WITH_THUMBNAIL]),
    cuts=st.lists(st.integers(min_value=1, max_value=2000), max_size=12),
)
def test_incremental_scan_finds_the_same_end_whatever_the_chunking(
    data: bytes, cuts: list[int]
) -> None:
    scanner = JpegScanner()
    buffer = bytearray()
    end = None
    for cut in [*sorted({c for c in cuts if c < len(data)}), len(data)]:
        buffer[:] = data[:cut]
        end = scanner.scan(buffer)
        if end is not None:
            break
    assert end == len(data)
    assert (scanner.width, scanner.height) == (
        validate_jpeg(data).width,
        validate_jpeg(data).height,
    )


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_never_crash_the_walk(data: bytes) -> None:
    try:
        info = validate_jpeg(data)
    except JpegError:
        return
    assert info.data.startswith(b"\xff\xd8") and info.data.endswith(b"\xff\xd9")
