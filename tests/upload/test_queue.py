"""The upload queue on a real journal file: one row per saved frame, states, backlog, pruning."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from capture.config.schema import RuleFile
from capture.events import CaptureResult
from capture.journal import Journal
from capture.journal.schema import MIGRATIONS, SCHEMA_VERSION
from capture.upload.queue import UploadQueue, key_namer


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    instance = Journal(tmp_path / "journal.sqlite3")
    yield instance
    instance.close()


def saved(n: int) -> CaptureResult:
    return CaptureResult(f"ev{n}", "ng", "cam1", 1, path=f"pics/{n}.jpg", bytes=1000 + n)


def queued(journal: Journal) -> UploadQueue:
    queue = UploadQueue(journal)
    journal.with_result = queue.hook(lambda result: f"plant/{result.path}")
    return queue


def test_a_saved_picture_is_queued_in_its_capture_commit_and_a_failure_is_not(
    journal: Journal,
) -> None:
    queue = queued(journal)
    journal.record_result(saved(1))
    journal.record_result(CaptureResult("ev2", "ng", "cam1", 1, error_type="Timeout"))
    journal.flush()

    (waiting,) = queue.waiting(10)
    assert (waiting.path, waiting.key, waiting.bytes) == ("pics/1.jpg", "plant/pics/1.jpg", 1001)
    assert journal.select("SELECT COUNT(*) FROM captures")[0][0] == 2
    backlog = queue.backlog()
    assert (backlog.waiting, backlog.waiting_bytes) == (1, 1001) and backlog.oldest is not None


def test_uploaded_and_gone_rows_leave_the_backlog_and_keep_their_state(journal: Journal) -> None:
    queue = queued(journal)
    for n in range(3):
        journal.record_result(saved(n))
    journal.flush()
    first, second, third = queue.waiting(10)

    queue.done([first])
    queue.given_up([(second, "pics/1.jpg: no longer on local disk")])
    queue.failed([(third, "object store down")])
    journal.flush()

    assert [u.path for u in queue.waiting(10)] == ["pics/2.jpg"]
    assert queue.waiting(10)[0].attempts == 1
    assert queue.waiting_paths() == ["pics/2.jpg"]
    states = journal.select("SELECT path, state, error FROM uploads ORDER BY id")
    assert [tuple(row) for row in states] == [
        ("pics/0.jpg", "uploaded", None),
        ("pics/1.jpg", "gone", "pics/1.jpg: no longer on local disk"),
        ("pics/2.jpg", "waiting", "object store down"),
    ]


def test_pruning_forgets_finished_rows_only(journal: Journal) -> None:
    queue = queued(journal)
    for n in range(2):
        journal.record_result(saved(n))
    journal.flush()
    queue.done(queue.waiting(1))

    assert queue.prune(datetime.now(UTC) - timedelta(days=1)) == 0
    assert queue.prune(datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert [u.path for u in queue.waiting(10)] == ["pics/1.jpg"]


def test_a_version_4_journal_is_migrated_to_the_queue_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    old = sqlite3.connect(path)
    for version, statement in enumerate(MIGRATIONS[:4], start=1):
        old.executescript(statement)
        old.execute(f"PRAGMA user_version = {version}")
    old.execute(
        "INSERT INTO outbox (topic, payload, qos, retain, created) VALUES ('t', x'00', 1, 0, 'x')"
    )
    old.commit()
    old.close()

    journal = Journal(path)
    try:
        assert journal.select("PRAGMA user_version")[0][0] == SCHEMA_VERSION == 8
        assert journal.select("SELECT COUNT(*) FROM outbox")[0][0] == 1
        assert UploadQueue(journal).backlog().waiting == 0
    finally:
        journal.close()


def test_keys_follow_the_site_and_lines_of_the_rule_file_in_force_with_the_first_template() -> None:
    """A reload moving a camera to another line names its next pictures by the new line."""

    def rule_file(site: str, line: str, key: str) -> RuleFile:
        return RuleFile.model_validate(
            {
                "service": {"site": site, "line": "Line 1"},
                "cameras": {
                    "cam1": {
                        "vendor": "generic",
                        "host": "127.0.0.1",
                        "path": "/s.jpg",
                        "line": line,
                    }
                },
                "upload": {
                    "enabled": True,
                    "endpoint": "http://127.0.0.1:9",
                    "bucket": "pictures",
                    "key": key,
                },
            }
        )

    started = rule_file("plant", "Line 2", "{site}/{line}/{path}")
    in_force = [started]
    key_of = key_namer(started, lambda: in_force[0])
    assert key_of(saved(1)) == "plant/Line 2/pics/1.jpg"
    # [upload] applies after a restart: the reloaded template is not used, site and line are.
    in_force[0] = rule_file("plant-b", "Line 3", "{path}")
    assert key_of(saved(2)) == "plant-b/Line 3/pics/2.jpg"
    assert key_of(CaptureResult("ev3", "snap", "gone", 1, path="x.jpg")) == "plant-b/Line 1/x.jpg"
