"""Which files retention takes, decided on the in-memory index alone (no files here)."""

from __future__ import annotations

from pathlib import Path

import pytest

import capture.retention as retention_module
from capture.config.schema import StorageConfig
from capture.retention import MIB, IndexEntry, RetentionIndex, RetentionPass

DAY_NS = 86_400 * 10**9
NOW_NS = 1_000 * DAY_NS


def index_of(*files: tuple[str, str | None, int, float]) -> RetentionIndex:
    """(path, camera, size in bytes, age in days), saved in this order."""
    index = RetentionIndex()
    for order, (relative, camera, size, age_days) in enumerate(files, start=1):
        index.add(IndexEntry(relative, camera, size, NOW_NS - int(age_days * DAY_NS), order))
    return index


def config(**limits: object) -> StorageConfig:
    limits.setdefault("min_free_mb", 0)
    return StorageConfig(root=Path("/unused"), **limits)  # type: ignore[arg-type]


def take_all(
    index: RetentionIndex, limits: StorageConfig, free: int = 10**12, extra: int = 0
) -> tuple[list[str], RetentionPass]:
    pass_ = RetentionPass(free=free)
    taken: list[str] = []
    while True:
        taken += [entry.relative for entry in index.take_due(limits, pass_, NOW_NS, extra)]
        if pass_.done:
            return taken, pass_


def test_age_takes_the_old_files_oldest_first_but_never_a_cameras_newest() -> None:
    index = index_of(
        ("a/40.jpg", "cam_a", 10, 40), ("b/39.jpg", "cam_b", 10, 39), ("a/35.jpg", "cam_a", 10, 35),
        ("x/34.jpg", None, 10, 34), ("a/1.jpg", "cam_a", 10, 1),
    )  # fmt: skip

    taken, pass_ = take_all(index, config(keep_days=30))

    assert taken == ["a/40.jpg", "a/35.jpg", "x/34.jpg"]  # b/39 is cam_b's only picture
    assert pass_.kept == {"b/39.jpg"} and pass_.reasons == {"age": 3}
    assert sorted(index.entries) == ["a/1.jpg", "b/39.jpg"] and index.total_bytes == 20


def test_a_held_picture_is_never_due_until_released() -> None:
    """[upload]: a picture the object store does not have yet survives every limit."""
    index = index_of(
        ("a/40.jpg", "cam_a", 10, 40), ("a/39.jpg", "cam_a", 10, 39), ("a/1.jpg", "cam_a", 10, 1),
    )  # fmt: skip
    index.hold(["a/40.jpg"])

    taken, pass_ = take_all(index, config(keep_days=30, max_total_mb=0.000001))

    assert taken == ["a/39.jpg"] and set(index.parked) == {"a/40.jpg"} and pass_.kept == {"a/1.jpg"}
    assert take_all(index, config(keep_days=30))[0] == []
    index.release(["a/40.jpg"])
    taken, _ = take_all(index, config(keep_days=30))
    assert taken == ["a/40.jpg"] and not index.parked


def test_held_pictures_that_came_due_leave_the_heap_so_passes_skip_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A store down for days: thousands held and due, sifted once, not on every pass under
    the lock that saves need."""
    monkeypatch.setattr(retention_module, "CHUNK", 10)
    held = [(f"h/{n}.jpg", "cam_h", 10, 40 - n / 1000) for n in range(35)]
    index = index_of(
        *held,
        ("o/1.jpg", "cam_o", 10, 35),
        ("o/2.jpg", "cam_o", 10, 1),
        ("h/new.jpg", "cam_h", 10, 1),
    )
    index.hold(relative for relative, *_ in held)
    chunks = 0
    pass_ = RetentionPass(free=10**12)
    while not pass_.done:  # each chunk looks at no more than CHUNK pictures
        index.take_due(config(keep_days=30), pass_, NOW_NS, 0)
        chunks += 1
    assert chunks == 4 and len(index.parked) == 35
    assert sorted(item[2] for item in index.heap) == ["h/new.jpg", "o/2.jpg"]
    assert "o/1.jpg" not in index.entries  # taken, though 35 held pictures came before it
    index.release(["h/3.jpg"])
    taken, _ = take_all(index, config(keep_days=30))
    assert taken == ["h/3.jpg"] and len(index.parked) == 34


def test_size_takes_the_oldest_until_the_total_fits() -> None:
    index = index_of(*[(f"s/{n}.jpg", f"cam{n % 2}", MIB // 4, 10 - n) for n in range(8)])

    taken, pass_ = take_all(index, config(max_total_mb=1))

    assert taken == ["s/0.jpg", "s/1.jpg", "s/2.jpg", "s/3.jpg"]
    assert index.total_bytes == MIB and pass_.reasons == {"size": 4}


def test_free_space_counts_what_the_pass_has_already_chosen() -> None:
    index = index_of(*[(f"f/{n}.jpg", "cam", MIB, 10 - n) for n in range(5)])

    taken, pass_ = take_all(index, config(min_free_mb=1), free=0, extra=2 * MIB)

    assert taken == ["f/0.jpg", "f/1.jpg", "f/2.jpg"]  # 3 MiB: min_free 1 + the extra 2
    assert pass_.reasons == {"free_space": 3} and pass_.selected_bytes == 3 * MIB


def test_a_long_pass_comes_in_chunks_and_a_resaved_name_counts_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retention_module, "CHUNK", 2)
    index = index_of(*[(f"c/{n}.jpg", "cam", 10, 50 - n) for n in range(6)])
    index.add(IndexEntry("c/0.jpg", "cam", 10, NOW_NS - 45 * DAY_NS, 99))  # saved again
    index.add(IndexEntry("c/new.jpg", "cam", 10, NOW_NS - DAY_NS, 100))  # the camera's newest
    pass_ = RetentionPass(free=10**12)

    first = index.take_due(config(keep_days=30), pass_, NOW_NS, 0)

    assert len(first) == 2 and not pass_.done  # the caller deletes, then asks again
    rest, _ = take_all(index, config(keep_days=30))
    taken = [entry.relative for entry in first] + rest
    assert sorted(taken) == [f"c/{n}.jpg" for n in range(6)]
    assert len(taken) == len(set(taken))  # the superseded heap item of c/0 is skipped
