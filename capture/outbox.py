"""The MQTT outbox: event messages kept in the journal's file until the broker acknowledges them.

A message is committed here before the publisher hands it to paho, and
deleted only once the broker acknowledged it, so a crash at any moment
leaves each message in the outbox or delivered (at least once, in order).
The table lives in the journal's file and its rows share the journal's
writer: a message announcing a rule firing ends that firing's journal row in
the same commit (see capture.journal).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from capture.journal import Journal, close_firings
from capture.journal.schema import db_time

_INSERT = "INSERT INTO outbox (topic, payload, qos, retain, created) VALUES (?, ?, ?, ?, ?)"
_DELETE = "DELETE FROM outbox WHERE id = ?"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """An MQTT message waiting for the broker's acknowledgement."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: datetime


#: What `put_many` takes: (topic, payload, qos, retain).
Message = tuple[str, bytes, int, bool]


def insert_messages(connection: sqlite3.Connection, messages: Sequence[Message]) -> list[int]:
    """Add messages inside a commit another table's owner runs; return their ids, in order.

    For rows that must commit with the message announcing them (capture.upload:
    an upload marked done and its follow-up message); the publisher then sends
    them (`Publisher.send_outbox`).
    """
    created = db_time(datetime.now(UTC))
    ids = []
    for topic, body, qos, retain in messages:
        cursor = connection.execute(_INSERT, (topic, body, qos, int(retain), created))
        assert cursor.lastrowid is not None  # an INSERT into a rowid table sets it
        ids.append(cursor.lastrowid)
    return ids


class Outbox:
    """The outbox table of `journal`'s file; safe from several threads, like the journal."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def put(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        """Store a message for the broker (committed on return) and return its id."""
        return self.put_many([(topic, payload, qos, retain)])[0]

    def put_many(
        self, messages: Sequence[Message], closing: Iterable[tuple[str, str]] = ()
    ) -> list[int]:
        """Store several messages in one commit, in order; return their ids.

        `closing` names the firings (event id, rule) these messages announce:
        they end in the same commit, so a crash leaves each firing either open
        or announced, never neither.
        """
        ended = list(closing)

        def insert(connection: sqlite3.Connection) -> list[int]:
            ids = insert_messages(connection, messages)
            close_firings(connection, ended)
            return ids

        return list(self._journal.write(insert, "outbox"))

    def done(self, ids: Iterable[int]) -> None:
        """Forget messages the broker acknowledged (queued; a crash first only means a resend)."""
        gone = [(message_id,) for message_id in ids]
        self._journal.queue_write(
            lambda connection: connection.executemany(_DELETE, gone), "outbox"
        )

    def pending(self, limit: int) -> list[OutboxMessage]:
        """Messages not yet acknowledged by the broker, oldest first."""
        rows = self._journal.select(
            "SELECT id, topic, payload, qos, retain, created FROM outbox ORDER BY id LIMIT ?",
            (limit,),
        )
        return [
            OutboxMessage(
                id=row[0],
                topic=row[1],
                payload=bytes(row[2]),
                qos=row[3],
                retain=bool(row[4]),
                created=datetime.fromisoformat(row[5]),
            )
            for row in rows
        ]

    def count(self) -> int:
        """How many messages wait for the broker."""
        return int(self._journal.select("SELECT COUNT(*) FROM outbox")[0][0])
