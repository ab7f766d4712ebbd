"""First-frame extraction from MJPEG streams as real cameras bend the multipart format."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.cameras.jpeg import JpegError
from capture.cameras.multipart import (
    MAX_STREAM_BYTES,
    FirstFrameReader,
    MjpegError,
    boundary_from_content_type,
)
from tests.cameras.helpers import make_jpeg

FRAME_1 = make_jpeg(64, 48, colour=(255, 0, 0))
FRAME_2 = make_jpeg(64, 48, colour=(0, 255, 0))
THUMBNAIL_FRAME = make_jpeg(64, 48, thumbnail=True)
MULTIPART = "multipart/x-mixed-replace; boundary=myboundary"


def part(
    frame: bytes,
    *,
    delimiter: bytes = b"--myboundary",
    eol: bytes = b"\r\n",
    length: int | None = -1,
    headers: bool = True,
) -> bytes:
    """One multipart part as a camera writes it; length -1 means the true length."""
    head = b""
    if headers:
        head = b"Content-Type: image/jpeg" + eol
        if length is not None:
            head += b"Content-Length: %d" % (len(frame) if length == -1 else length) + eol
        head += eol
    return delimiter + eol + head + frame + eol


def first_frame(stream: bytes, content_type: str | None = MULTIPART, chunk: int = 4096) -> bytes:
    reader = FirstFrameReader(content_type)
    for start in range(0, len(stream), chunk):
        frame = reader.feed(stream[start : start + chunk])
        if frame is not None:
            return frame.data
    raise reader.finish()


STANDARD = part(FRAME_1) + part(FRAME_2)


@pytest.mark.parametrize(
    ("stream", "content_type"),
    [
        (STANDARD, MULTIPART),
        (
            part(FRAME_1, delimiter=b"--myboundary") + part(FRAME_2),
            "multipart/x-mixed-replace; boundary=--myboundary",
        ),
        (
            part(FRAME_1, delimiter=b"----myboundary") + part(FRAME_2, delimiter=b"----myboundary"),
            "multipart/x-mixed-replace; boundary=--myboundary",
        ),
        (
            part(FRAME_1, delimiter=b"--myboundary") + part(FRAME_2),
            'multipart/x-mixed-replace;boundary="myboundary"',
        ),
        (part(FRAME_1)[len(b"--myboundary\r\n") :] + part(FRAME_2), MULTIPART),
        (part(FRAME_1, length=None) + part(FRAME_2, length=None), MULTIPART),
        (part(FRAME_1, length=len(FRAME_1) - 48) + part(FRAME_2), MULTIPART),
        (part(FRAME_1, length=len(FRAME_1) + 500) + part(FRAME_2), MULTIPART),
        (part(FRAME_1, eol=b"\n") + part(FRAME_2, eol=b"\n"), MULTIPART),
        (STANDARD, None),
        (STANDARD, "image/jpeg"),
        (STANDARD, "text/plain"),
        (part(FRAME_1, headers=False) + part(FRAME_2, headers=False), MULTIPART),
        (b"\r\n\r\n" + part(FRAME_1).replace(b"\r\n\r\n", b"\r\n\r\n\r\n", 1), MULTIPART),
        (FRAME_1 + b"dhav\x00\x00\x00\x00", "image/jpeg"),
        (FRAME_1 + FRAME_2, None),
    ],
    ids=[
        "standard",
        "boundary-declared-with-dashes",
        "four-dash-delimiter",
        "quoted-boundary-no-space",
        "no-first-delimiter",
        "no-part-length",
        "part-length-48-short",
        "part-length-too-long",
        "lf-only",
        "no-content-type",
        "wrong-content-type-image",
        "wrong-content-type-text",
        "parts-without-headers",
        "extra-blank-lines",
        "single-jpeg-with-trailer",
        "bare-concatenated-jpegs",
    ],
)
def test_first_complete_frame_is_returned(stream: bytes, content_type: str | None) -> None:
    assert first_frame(stream, content_type) == FRAME_1


def test_frame_is_returned_before_the_next_delimiter_arrives() -> None:
    # A 1 fps camera sends the next delimiter only with the next frame: we must not wait for it.
    reader = FirstFrameReader(MULTIPART)
    frame = reader.feed(b"--myboundary\r\nContent-Type: image/jpeg\r\n\r\n" + FRAME_1)
    assert frame is not None and frame.data == FRAME_1


def test_truncated_first_part_is_skipped_for_the_next_frame() -> None:
    cut = FRAME_1[: len(FRAME_1) // 2]
    stream = part(cut, length=None) + part(FRAME_2)
    reader = FirstFrameReader(MULTIPART)
    frame = reader.feed(stream)
    assert frame is not None and frame.data == FRAME_2
    assert reader.bad_parts and "invalid JPEG part" in reader.bad_parts[0]


def test_truncated_frame_without_boundary_never_yields_its_exif_thumbnail() -> None:
    broken = THUMBNAIL_FRAME[: len(THUMBNAIL_FRAME) - 200]
    assert first_frame(broken + FRAME_2, None) == FRAME_2


def test_error_parts_are_reported_with_an_excerpt() -> None:
    xml = b"<?xml version='1.0'?><ResponseStatus><statusCode>3</statusCode></ResponseStatus>"
    error_part = b"--myboundary\r\nContent-Type: application/xml\r\n\r\n" + xml + b"\r\n"
    with pytest.raises(MjpegError, match=r"application/xml part.*ResponseStatus"):
        first_frame(error_part * 10)


def test_stream_ending_mid_frame_is_reported_as_truncated() -> None:
    stream = part(FRAME_1)[:-300]
    with pytest.raises(MjpegError, match="truncated"):
        first_frame(stream)


def test_final_delimiter_ends_the_search() -> None:
    stream = part(FRAME_1[:100], length=None) + b"--myboundary--\r\n"
    with pytest.raises(MjpegError, match="final delimiter"):
        first_frame(stream)


def test_endless_garbage_is_bounded() -> None:
    reader = FirstFrameReader(MULTIPART)
    chunk = b"x" * (1024 * 1024)
    with pytest.raises(MjpegError, match="no complete JPEG frame"):
        for _ in range(MAX_STREAM_BYTES // len(chunk) + 2):
            reader.feed(chunk)
    assert len(reader._buffer) <= 20 * 1024 * 1024  # memory stays bounded while skipping


def test_mjpeg_error_is_a_jpeg_error() -> None:
    assert issubclass(MjpegError, JpegError)


@pytest.mark.parametrize(
    ("header", "boundary"),
    [
        ("multipart/x-mixed-replace; boundary=myboundary", b"myboundary"),
        ("multipart/x-mixed-replace;boundary=--myboundary", b"myboundary"),
        ('multipart/x-mixed-replace; boundary="--ab cd"', b"ab cd"),
        ("multipart/x-mixed-replace", None),
        (None, None),
    ],
)
def test_boundary_is_read_without_its_dashes(header: str | None, boundary: bytes | None) -> None:
    assert boundary_from_content_type(header) == boundary


STREAMS = [
    (STANDARD, MULTIPART),
    (part(FRAME_1, eol=b"\n", length=None) + part(FRAME_2, eol=b"\n"), None),
    (part(THUMBNAIL_FRAME, length=7) + part(FRAME_2), MULTIPART),
]


@settings(max_examples=150, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=len(STREAMS) - 1),
    chunk=st.integers(min_value=1, max_value=700),
)
def test_chunking_never_changes_the_frame(index: int, chunk: int) -> None:
    stream, content_type = STREAMS[index]
    expected = first_frame(stream, content_type, chunk=len(stream))
    assert first_frame(stream, content_type, chunk=chunk) == expected
