"""SIGKILL as a power cut mid-burst, several times: every accepted firing still ends in one story.

`capture run` is killed at a random moment of a busy line (firings overlap,
two cameras, bursts of 5) and restarted, round after round; a last run is
stopped cleanly. Then an independent subscriber must have heard one final
event message per accepted firing, and every planned frame must be either a
complete JPEG with its journal row or a journaled failure, with no other file
on disk.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

from capture.cameras.jpeg import validate_jpeg
from capture.service import JOURNAL_NAME
from capture.simulator import Simulator
from tests.broker import Broker
from tests.conftest import wait_for
from tests.e2e.conftest import ENVIRON, base_sections, camera_sections
from tests.mqtt_client import Recorder

ROUNDS = 5
BURST = 5
CAMERAS = ("cam_a", "cam_b")
BUSY_LINE = f"""
[triggers.tick]
type = "interval"
every_s = 0.2

[[rules]]
name = "burst"
when = "tick"
cameras = {json.dumps(list(CAMERAS))}
burst = {BURST}
interval_ms = 100
filename = "bursts/{{event_id}}_{{camera}}_{{seq}}.jpg"
"""


class Line:
    """`capture run` on one rule file and storage root, started and stopped as a process."""

    def __init__(self, tmp_path: Path, simulator: Simulator, broker: Broker) -> None:
        self.root = tmp_path / "data"
        self.rules = tmp_path / "rules.toml"
        self.rules.write_text(
            base_sections(self.root, broker, prefix="powercut")
            + camera_sections(simulator)
            + BUSY_LINE
        )
        self.log = tmp_path / "capture.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "capture", "run", "-c", str(self.rules)],
                env={**os.environ, **ENVIRON},
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def stop(self, sig: signal.Signals) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(60)

    def snapshots(self) -> set[str]:
        return {
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file() and "latest" not in path.parts and path.suffix == ".jpg"
        }


def journal_state(root: Path) -> tuple[dict[str, list[str]], list[tuple[Any, ...]], int]:
    """Events with the rules they fired, every capture row, and the firings still open."""
    with closing(sqlite3.connect(root / JOURNAL_NAME)) as db:
        assert db.execute("PRAGMA quick_check").fetchall() == [("ok",)]
        events = {
            row[0]: json.loads(row[1]) for row in db.execute("SELECT id, rules_json FROM events")
        }
        captures = db.execute(
            "SELECT event_id, rule, camera, seq, path, error_type FROM captures"
        ).fetchall()
        open_firings = db.execute("SELECT COUNT(*) FROM firings").fetchone()[0]
    return events, captures, open_firings


def test_sigkill_mid_burst_round_after_round_loses_no_firing_frame_or_message(
    tmp_path: Path, simulator: Simulator, broker: Broker
) -> None:
    chance = random.Random()  # kill moments, not secrets
    seed = chance.randrange(1 << 30)
    chance.seed(seed)
    simulator.faults("nvr").latency_s = 0.03
    simulator.faults("dahua").latency_s = 0.03
    events = Recorder(broker, "powercut/events/#")
    line = Line(tmp_path, simulator, broker)
    try:
        for _ in range(ROUNDS):
            before = len(line.snapshots())
            line.start()
            more = chance.randint(1, 60)  # the kill lands at a random frame of the run
            wait_for(lambda before=before, more=more: len(line.snapshots()) >= before + more, 30)
            assert line.stop(signal.SIGKILL) == -signal.SIGKILL
        line.start()  # finishes the last kill's firings, then runs on until stopped cleanly
        before = len(line.snapshots())
        wait_for(lambda: len(line.snapshots()) >= before + 10, 30)
        assert line.stop(signal.SIGTERM) == 0, line.log.read_text()[-3000:]

        fired, captures, still_open = journal_state(line.root)
        accepted = {(event, rule) for event, rules in fired.items() for rule in rules}
        assert accepted and still_open == 0, f"seed {seed}"

        # One final event message per accepted firing, heard by an independent subscriber;
        # a resend of a message the broker had acknowledged just before a kill is the same
        # bytes again (at least once), never a second, different story.
        wait_for(lambda: {(m["event_id"], m["rule"]) for m in events.json()} >= accepted, 30)
        payloads = Counter(events.payloads())
        messages = {(m["event_id"], m["rule"]): m for m in map(json.loads, payloads)}
        assert len(messages) == len(payloads), f"two different messages for a firing, seed {seed}"
        assert set(messages) == accepted, f"seed {seed}"
        interrupted = [m for m in messages.values() if m["interrupted"]]
        assert interrupted, f"no kill landed mid-firing, seed {seed}"

        # Every planned frame has exactly one outcome, and the message tells the journal's story.
        outcomes = Counter(
            (event, rule, camera, seq) for event, rule, camera, seq, _, _ in captures
        )
        planned = {
            (event, rule, camera, seq)
            for event, rule in accepted
            for camera in CAMERAS
            for seq in range(1, BURST + 1)
        }
        assert set(outcomes) == planned and set(outcomes.values()) == {1}, f"seed {seed}"
        for event, rule, camera, seq, path, error in captures:
            reported = {(c["camera"], c["seq"]): c for c in messages[event, rule]["captures"]}[
                camera, seq
            ]
            assert reported["path"] == path
            assert (reported["error"] or {}).get("type") == error
        failures = Counter(error for *_, error in captures if error)
        assert set(failures) <= {"Interrupted"}, failures

        # Every file on disk is a complete JPEG with its row, and every row's file is there.
        saved = {path for *_, path, error in captures if error is None}
        assert line.snapshots() == saved, f"seed {seed}"
        for path in saved:
            validate_jpeg((line.root / path).read_bytes())
        assert not list(line.root.rglob("*.tmp"))
    finally:
        if line.process is not None and line.process.poll() is None:
            line.process.kill()
            line.process.wait()
        events.close()
