"""The file trigger on real files with watchdog's real observers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import capture.triggers.file as file_module
from capture.config.schema import FileTrigger as FileConfig
from capture.triggers import Trigger, TriggerContext, TriggerError
from capture.triggers.file import MAX_OPEN_FILES, FileTrigger
from tests.conftest import wait_for
from tests.triggers.conftest import Collector

Start = Callable[[Trigger], Trigger]


def watch(path: Path | str, **options: object) -> FileTrigger:
    config = FileConfig(type="file", path=str(path), **{"value_name": "temp", **options})
    return FileTrigger("thermo", config, TriggerContext())


def append(path: Path, text: str) -> None:
    with path.open("a") as handle:
        handle.write(text)


@pytest.fixture(params=[False, True], ids=["inotify", "polling"])
def polling(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def test_new_lines_fire_history_is_not_replayed(
    tmp_path: Path, start: Start, events: Collector, polling: bool
) -> None:
    log = tmp_path / "thermo.log"
    log.write_text("T=35.0\nT=35.1\n")
    start(watch(log, polling=polling, poll_interval_s=0.05))
    append(log, "T=36.6\n")
    append(log, "T=37.9\n")
    wait_for(lambda: len(events) == 2)
    assert events.values("temp") == [36.6, 37.9]
    assert events.values("file") == [str(log), str(log)]
    assert events.values("line") == ["T=36.6", "T=37.9"]


def test_a_half_written_line_waits_for_its_newline(
    tmp_path: Path, start: Start, events: Collector
) -> None:
    log = tmp_path / "thermo.log"
    log.touch()
    start(watch(log))
    append(log, "T=37.0\nT=36.")  # the sensor is still writing the second line
    wait_for(lambda: len(events) == 1)  # the partial line was read in the same pass
    append(log, "9\n")
    wait_for(lambda: len(events) == 2)
    assert events.values("temp") == [37.0, 36.9]


def test_rotation_finishes_the_old_file_and_follows_the_new_one(
    tmp_path: Path, start: Start, events: Collector
) -> None:
    log = tmp_path / "thermo.log"
    log.touch()
    start(watch(log))
    with log.open("a") as sensor:
        sensor.write("T=1\n")
        sensor.flush()
        wait_for(lambda: len(events) == 1)
        sensor.write("T=2\n")  # written just before logrotate moves the file
        sensor.flush()
        log.rename(tmp_path / "thermo.log.1")
    log.write_text("T=3\n")  # the sensor reopens its log: a new file
    wait_for(lambda: len(events) == 3)
    assert events.values("temp") == [1, 2, 3]
    append(log, "T=4\n")
    wait_for(lambda: len(events) == 4)
    assert events.values("temp") == [1, 2, 3, 4]  # the new file is read once, not again


def test_truncation_starts_again_from_the_top(
    tmp_path: Path, start: Start, events: Collector
) -> None:
    log = tmp_path / "thermo.log"
    log.write_text("T=0\n")
    start(watch(log))
    append(log, "T=5\n")
    wait_for(lambda: len(events) == 1)
    log.write_text("T=6\n")  # truncated and rewritten to the very same size
    wait_for(lambda: len(events) == 2)
    log.write_text("")
    append(log, "T=7\n")
    wait_for(lambda: len(events) == 3)
    assert events.values("temp") == [5, 6, 7]


def test_glob_picks_up_a_new_file_from_its_start_and_skips_hidden_ones(
    tmp_path: Path, start: Start, events: Collector
) -> None:
    (tmp_path / "a.csv").write_text("S1;35.0\n")
    start(watch(tmp_path / "*.csv", parser="csv", columns=["station", "temp"], delimiter=";"))
    (tmp_path / ".b.csv").write_text("S9;99\n")  # an editor's or a writer's temp file
    (tmp_path / "b.csv").write_text("S2;36.5\n")
    wait_for(lambda: len(events) == 1)
    append(tmp_path / "a.csv", "S1;37.2\n")
    wait_for(lambda: len(events) == 2)
    assert [(e.values["station"], e.values["temp"], e.values["file"]) for e in events.events] == [
        ("S2", 36.5, str(tmp_path / "b.csv")),
        ("S1", 37.2, str(tmp_path / "a.csv")),
    ]


def test_a_glob_over_many_old_logs_holds_few_files_open_and_misses_no_line(
    tmp_path: Path, start: Start, events: Collector, polling: bool
) -> None:
    """Daily logs nobody removes: one open file each would use up the process's descriptors."""
    logs = [tmp_path / f"thermo-{day:03d}.log" for day in range(MAX_OPEN_FILES * 3)]
    for log in logs:
        log.write_text("T=20.0\n")

    def open_here() -> int:
        return sum(
            os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path))
            for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")
        )

    start(watch(tmp_path / "thermo-*.log", polling=polling, poll_interval_s=0.05))
    assert open_here() <= MAX_OPEN_FILES
    # The oldest log was closed long ago: a line added to it fires, and only that line.
    append(logs[0], "T=36.6\n")
    wait_for(lambda: len(events) == 1)
    append(logs[-1], "T=37.9\n")
    wait_for(lambda: len(events) == 2)
    assert events.values("temp") == [36.6, 37.9]
    assert events.values("file") == [str(logs[0]), str(logs[-1])]
    assert open_here() <= MAX_OPEN_FILES


def test_lines_that_do_not_parse_are_counted_not_fired(
    tmp_path: Path, start: Start, events: Collector
) -> None:
    log = tmp_path / "thermo.log"
    log.touch()
    trigger = start(watch(log, parser="regex", pattern=r"T=(?P<temp>\d+\.\d)"))
    append(log, "SELFTEST OK\n" + "x" * 70_000 + "\nT=36.8\n")
    wait_for(lambda: len(events) == 1)
    assert events.values("temp") == [36.8]
    assert trigger.stats().rejected == 2


def test_replace_mode_reads_an_atomically_replaced_file(
    tmp_path: Path, start: Start, events: Collector, polling: bool
) -> None:
    reading = tmp_path / "reading.json"
    reading.write_text('{"temp": 35.0}')
    start(watch(reading, mode="replace", parser="json", polling=polling, poll_interval_s=0.05))
    for temp in (36.1, 37.7):
        temporary = tmp_path / "reading.json.tmp"
        temporary.write_text(json.dumps({"temp": temp, "sensor": {"id": "wall-1"}}))
        os.replace(temporary, reading)
        wait_for(lambda temp=temp: temp in events.values("temp"))
    assert events.values("temp") == [36.1, 37.7]
    assert events.values("sensor.id") == ["wall-1", "wall-1"]


def test_replace_mode_reads_an_in_place_rewrite_once_when_closed(
    tmp_path: Path, start: Start, events: Collector
) -> None:
    reading = tmp_path / "reading.txt"
    reading.write_text("36.0\n")
    start(watch(reading, mode="replace"))
    with reading.open("w") as writer:  # truncate, then write in two steps
        writer.write("Temp ")
        writer.flush()
        writer.write("38.2 C\n")
    wait_for(lambda: len(events) == 1)
    temporary = tmp_path / "next.tmp"  # a marker: everything before it has been handled
    temporary.write_text("36.4")
    os.replace(temporary, reading)
    wait_for(lambda: len(events) == 2)
    assert events.values("temp") == [38.2, 36.4]


def test_replace_mode_reads_a_version_renamed_in_from_another_folder_once(
    tmp_path: Path, start: Start, events: Collector, polling: bool
) -> None:
    """A writer that stages in a sibling folder: inotify sees an unpaired move, a creation."""
    watched, staging = tmp_path / "thermo", tmp_path / "staging"
    watched.mkdir()
    staging.mkdir()
    reading = watched / "reading.txt"
    reading.write_text("35.0\n")
    start(watch(reading, mode="replace", polling=polling, poll_interval_s=0.05))
    for temp in (36.1, 37.7):
        (staging / "reading.txt").write_text(f"{temp}\n")
        os.replace(staging / "reading.txt", reading)
        wait_for(lambda temp=temp: temp in events.values("temp"))
    marker = watched / "marker.tmp"  # everything before it has been handled
    marker.write_text("38.0\n")
    os.replace(marker, reading)
    wait_for(lambda: 38.0 in events.values("temp"))
    assert events.values("temp") == [36.1, 37.7, 38.0]  # each version once


def test_a_missing_folder_is_a_clear_start_error(tmp_path: Path) -> None:
    trigger = watch(tmp_path / "nope" / "thermo.log")
    with pytest.raises(
        TriggerError,
        match=r"trigger thermo \(file .*thermo.log\): cannot start: folder .* does not exist",
    ):
        trigger.start(lambda event: None)
    trigger.stop()


def test_a_glob_in_the_folder_part_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TriggerError, match="a glob may only be in the file name"):
        watch(tmp_path / "*" / "thermo.log").start(lambda event: None)


def test_stop_is_idempotent_and_nothing_fires_after_it(
    tmp_path: Path, start: Start, events: Collector, polling: bool
) -> None:
    log = tmp_path / "thermo.log"
    log.touch()
    stopped = Collector()
    trigger = watch(log, polling=polling, poll_interval_s=0.05)
    trigger.start(stopped)
    trigger.stop()
    trigger.stop()
    # A second trigger on the same file, still running, is the witness: once it has seen
    # the lines, a stopped trigger whose observer lived on would have seen them too.
    start(watch(log, polling=polling, poll_interval_s=0.05))
    append(log, "T=1\n")
    append(log, "T=2\n")
    wait_for(lambda: events.values("temp") == [1, 2])
    assert len(stopped) == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_a_clear_start_error(tmp_path: Path) -> None:
    log = tmp_path / "thermo.log"
    log.write_text("T=1\n")
    log.chmod(0)
    with pytest.raises(TriggerError, match=r"cannot start: cannot read: .*Permission denied"):
        watch(log).start(lambda event: None)


def test_replace_mode_over_ever_new_names_remembers_a_bounded_number_of_versions(
    tmp_path: Path, start: Start, events: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_module, "MAX_REMEMBERED_VERSIONS", 3)
    trigger = start(watch(tmp_path / "reading-*.txt", mode="replace"))
    assert isinstance(trigger, FileTrigger)
    for n in range(6):
        (tmp_path / f"reading-{n}.txt").write_text(f"{30 + n}.5\n")
        wait_for(lambda n=n: len(events) == n + 1)
    assert events.values("temp") == [30.5, 31.5, 32.5, 33.5, 34.5, 35.5]
    assert len(trigger._versions) == 3
