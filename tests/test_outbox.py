"""The MQTT outbox on a real journal file: order, acknowledgement, restarts, a refusing disk."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from capture.journal import Journal, JournalError
from capture.journal.schema import MIGRATIONS
from capture.outbox import Outbox


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    instance = Journal(tmp_path / "journal.sqlite3")
    yield instance
    instance.close()


def test_outbox_keeps_messages_in_order_until_acknowledged_and_across_restarts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite3"
    first = Journal(path)
    outbox = Outbox(first)
    ids = [outbox.put(f"ec/events/r{n}", f'{{"n": {n}}}'.encode(), 1, n == 2) for n in range(5)]
    outbox.done([ids[1]])
    first.close()

    reopened = Journal(path)
    outbox = Outbox(reopened)
    try:
        pending = outbox.pending(limit=10)
        assert [m.id for m in pending] == [ids[0], ids[2], ids[3], ids[4]]
        assert [m.payload for m in pending][:2] == [b'{"n": 0}', b'{"n": 2}']
        assert [m.retain for m in pending] == [False, True, False, False]
        assert pending[0].topic == "ec/events/r0" and pending[0].qos == 1
        assert [m.id for m in outbox.pending(limit=2)] == [ids[0], ids[2]]
        outbox.done(ids)  # queued, like every record: flush to see it committed
        reopened.flush()
        assert outbox.pending(limit=10) == [] and outbox.count() == 0
        assert outbox.put("ec/x", b"", 0, False) > ids[-1]  # ids are never reused
    finally:
        reopened.close()


def test_a_failing_outbox_put_raises_and_the_journal_carries_on(
    journal: Journal, tmp_path: Path
) -> None:
    saboteur = sqlite3.connect(tmp_path / "journal.sqlite3", isolation_level=None)
    saboteur.execute(
        "CREATE TRIGGER full BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    with pytest.raises(JournalError, match="disk full"):
        Outbox(journal).put("ec/events/r1", b"{}", 1, False)
    saboteur.execute("DROP TRIGGER full")
    saboteur.close()

    assert Outbox(journal).put("ec/events/r1", b"{}", 1, False) >= 1
    assert Outbox(journal).count() == 1


def test_a_version_3_outbox_keeps_its_messages_and_loses_the_unused_column(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite3"
    connection = sqlite3.connect(path)
    connection.executescript(";".join(MIGRATIONS[:3]) + ";PRAGMA user_version = 3;")
    connection.execute(
        "INSERT INTO outbox (topic, payload, qos, retain, created, attempts) "
        "VALUES ('ec/events/r1', x'7b7d', 1, 0, '2026-12-01T08:00:00.000000+00:00', 0)"
    )
    connection.commit()
    connection.close()

    journal = Journal(path)
    try:
        [message] = Outbox(journal).pending(limit=10)
        columns = [row[1] for row in journal.select("PRAGMA table_info(outbox)")]
    finally:
        journal.close()
    assert (message.topic, message.payload, message.qos) == ("ec/events/r1", b"{}", 1)
    assert "attempts" not in columns and "created" in columns


def test_a_message_announcing_a_firing_ends_the_firing_in_its_own_commit(
    journal: Journal,
) -> None:
    journal.open_firing("E1", "r1", False, []).wait(5)
    journal.open_firing("E1", "r2", False, []).wait(5)

    Outbox(journal).put_many([("ec/events/r1", b"{}", 1, False)], closing=[("E1", "r1")])

    # No flush: the firing ended with the message's commit, which put_many waited for.
    assert [(f.event_id, f.rule) for f in journal.open_firings()] == [("E1", "r2")]
