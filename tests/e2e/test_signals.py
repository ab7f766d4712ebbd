"""`capture run` as a process: SIGTERM or SIGINT mid-burst finishes cleanly, SIGKILL leaves no partial file."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from capture.cameras.jpeg import validate_jpeg
from capture.journal import JournalReader
from capture.service import JOURNAL_NAME
from capture.simulator import Simulator
from tests.conftest import wait_for
from tests.e2e.conftest import ENVIRON, base_sections, camera_sections

BURSTS = """
[triggers.tick]
type = "interval"
every_s = 0.3

[[rules]]
name = "burst"
when = "tick"
cameras = ["cam_a", "cam_b"]
burst = 20
interval_ms = 40
filename = "bursts/{event_id}_{camera}_{seq}.jpg"
"""


def start_capture(tmp_path: Path, simulator: Simulator) -> tuple[subprocess.Popen[bytes], Path]:
    root = tmp_path / "data"
    rules = tmp_path / "rules.toml"
    rules.write_text(base_sections(root, None) + camera_sections(simulator) + BURSTS)
    simulator.faults("nvr").latency_s = 0.03
    simulator.faults("dahua").latency_s = 0.03
    process = subprocess.Popen(
        [sys.executable, "-m", "capture", "run", "-c", str(rules)],
        env={**os.environ, **ENVIRON},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return process, root


def snapshots(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.jpg") if "latest" not in p.parts]


def assert_only_complete_files(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file() and path.suffix == ".jpg":
            validate_jpeg(path.read_bytes())  # raises on a torn file
    leftovers = [p for p in root.rglob("*.tmp")]
    assert leftovers == []


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_mid_burst_finishes_in_flight_captures_and_exits_0(
    tmp_path: Path, simulator: Simulator, stop: signal.Signals
) -> None:
    """systemd stops with SIGTERM, a technician with Ctrl-C (SIGINT): both finish cleanly."""
    process, root = start_capture(tmp_path, simulator)
    try:
        wait_for(lambda: len(snapshots(root)) >= 3, timeout=30)
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert_only_complete_files(root)
    rows = JournalReader(root / JOURNAL_NAME).query(rule="burst", limit=10_000)
    saved = {row.path for row in rows if row.ok}
    assert saved == {str(p.relative_to(root)) for p in snapshots(root)}
    # every burst that had started was completed within the grace period
    frames: dict[tuple[str, str], set[int]] = {}
    for path in snapshots(root):
        event_id, rest = path.stem.split("_", 1)  # {event_id}_{camera}_{seq}; ids have no "_"
        camera, seq = rest.rsplit("_", 1)
        frames.setdefault((event_id, camera), set()).add(int(seq))
    assert frames and all(seqs == set(range(1, 21)) for seqs in frames.values()), frames


def test_sigkill_mid_burst_leaves_no_partial_file_and_journal_reopens(
    tmp_path: Path, simulator: Simulator
) -> None:
    process, root = start_capture(tmp_path, simulator)
    try:
        wait_for(lambda: len(snapshots(root)) >= 10, timeout=30)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        process.kill()
    for path in snapshots(root):
        validate_jpeg(path.read_bytes())
    # The journal a kill left behind (its write-ahead log included) opens cleanly ...
    with contextlib.closing(sqlite3.connect(root / JOURNAL_NAME)) as journal:
        assert journal.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    # ... and every capture it lists as completed is there, a complete JPEG.
    rows = JournalReader(root / JOURNAL_NAME).query(rule="burst", limit=10_000)
    completed = [row.path for row in rows if row.ok]
    assert completed, "the journal lists what completed before the kill"
    for path in completed:
        assert path is not None
        validate_jpeg((root / path).read_bytes())  # raises on a missing or torn file
    # A restart sweeps temp files a kill left behind.
    before = len(snapshots(root))
    process, root = start_capture(tmp_path, simulator)
    try:
        wait_for(lambda: len(snapshots(root)) > before, timeout=30)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    finally:
        process.kill()
    assert_only_complete_files(root)
