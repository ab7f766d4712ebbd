"""Thumbnails: small, made once per picture version, and a cache that stays within its byte bound."""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image

from capture.web.media import Media, MediaFile
from capture.web.thumbnails import THUMB_SIZE, Thumbnails


def picture(
    root: Path, name: str, size: tuple[int, int] = (1920, 1080), seed: int = 0
) -> MediaFile:
    """A noisy JPEG (so thumbnails have realistic sizes) found through Media like a URL would."""
    image = Image.effect_noise(size, 64 + seed).convert("RGB")
    image.save(root / name, "JPEG", quality=90)
    found = Media(root).find(name)
    assert found is not None
    return found


def test_a_thumbnail_fits_the_box_and_keeps_the_aspect_ratio(tmp_path: Path) -> None:
    thumbnails = Thumbnails()
    data = thumbnails.get(picture(tmp_path, "wide.jpg", (1920, 1080)))
    with Image.open(io.BytesIO(data)) as thumb:
        assert thumb.format == "JPEG"
        assert thumb.width <= THUMB_SIZE[0]
        assert thumb.height <= THUMB_SIZE[1]
        assert abs(thumb.width / thumb.height - 1920 / 1080) < 0.02
    assert len(data) < (tmp_path / "wide.jpg").stat().st_size / 4


def test_the_cache_stays_within_its_bound_and_drops_the_least_recently_used(
    tmp_path: Path,
) -> None:
    pictures = [picture(tmp_path, f"p{index}.jpg", seed=index) for index in range(6)]
    one = len(Thumbnails().get(pictures[0]))
    thumbnails = Thumbnails(max_bytes=int(one * 3.5))  # room for about three
    for media in pictures[:3]:
        thumbnails.get(media)
    thumbnails.get(pictures[0])  # p0 is now the most recently used
    assert (thumbnails.made, thumbnails.hits) == (3, 1)
    for media in pictures[3:]:
        thumbnails.get(media)
        assert 0 < thumbnails.cached_bytes <= thumbnails.max_bytes
    made = thumbnails.made
    thumbnails.get(pictures[5])
    assert thumbnails.made == made  # the newest is still cached
    thumbnails.get(pictures[1])
    assert thumbnails.made == made + 1  # p1 was least recently used: made again


def test_a_replaced_picture_gets_a_new_thumbnail(tmp_path: Path) -> None:
    thumbnails = Thumbnails()
    first = thumbnails.get(picture(tmp_path, "latest.jpg", seed=1))
    replacement = tmp_path / "new.jpg"
    Image.new("RGB", (640, 480), "white").save(replacement, "JPEG")
    os.replace(replacement, tmp_path / "latest.jpg")  # as storage replaces latest/ pictures
    second = Media(tmp_path).find("latest.jpg")
    assert second is not None
    assert thumbnails.get(second) != first
    assert thumbnails.made == 2
