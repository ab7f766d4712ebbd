"""The upload worker: drains the journal's upload queue into the object store, off the capture path.

A capture only adds a row (in the commit of its capture row) and wakes this
thread; the pictures are uploaded here, `[upload].concurrency` at a time.
Each batch that reached the store is marked uploaded in one commit together
with its follow-up MQTT messages (`{prefix}/uploads/{rule}`, the key and
URL, docs/integration.md), and only then released to local retention. While
the store is unreachable the worker backs off (1 s doubling to
`retry_max_s`) and logs the outage once when it starts and once when it
ends; nothing is dropped. A kill at any moment leaves each picture queued
(uploaded again at the next start: a PUT of the same key replaces the
object, so the store holds it once) or uploaded and announced.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from capture.clock import site_iso
from capture.config.schema import UploadConfig
from capture.events import CaptureResult
from capture.journal import Journal, JournalError
from capture.journal.writer import Work
from capture.outbox import insert_messages
from capture.upload.queue import Backlog, Upload, UploadQueue
from capture.upload.store import (
    Metadata,
    ObjectRefused,
    ObjectStore,
    StoreUnavailable,
    UploadError,
)

log = logging.getLogger(__name__)

SCHEMA = "event-capture/upload/1"
#: Pictures read from the queue per round; each round's successes commit together.
BATCH = 64
#: Back-off while the store is unreachable: from this, doubling to [upload].retry_max_s.
RETRY_MIN_S = 1.0
#: How often an idle worker looks at the queue anyway (rows another process added).
IDLE_POLL_S = 1.0


class Holder(Protocol):
    """Local retention (capture.storage.Storage): keeps held pictures."""

    def hold(self, relatives: Any) -> None: ...

    def release(self, relatives: Any) -> None: ...


class Announcer(Protocol):
    """Who sends committed outbox rows (capture.publish.Publisher)."""

    prefix: str
    config: Any

    def send_outbox(self) -> None: ...


class Uploader:
    """Owns the upload queue's worker thread and the store's client."""

    def __init__(
        self,
        config: UploadConfig,
        journal: Journal,
        root: Path,
        *,
        site: str,
        key_of: Callable[[CaptureResult], str],
        holder: Holder,
        announcer: Announcer | None = None,
        timezone: str = "UTC",
        store: ObjectStore | None = None,
    ) -> None:
        self.config = config
        self.queue = UploadQueue(journal)
        self.store = store or ObjectStore(config)
        self._journal = journal
        self._root = root
        self._site = site
        self._holder = holder
        self._announcer = announcer
        self._zone = ZoneInfo(timezone)
        self._rows = self.queue.hook(key_of)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(config.concurrency, thread_name_prefix="upload")
        self._thread = threading.Thread(target=self._run, name="uploader", daemon=True)
        self.uploaded = 0
        self.last_error: str | None = None  # set while the store refuses or is unreachable

    # ------------------------------------------------------------------ lifecycle

    def attach(self) -> None:
        """Queue every picture the journal records from now on, and hold what still waits.

        Call before anything is captured or retention runs (the service does, at start).
        """
        self._journal.with_result = self._on_result
        self._holder.hold(self.queue.waiting_paths())

    def start(self) -> None:
        """Start uploading what waits, then whatever is saved."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the uploads in flight (within `timeout`); what waits stays queued for the next start."""
        self._stopping.set()
        self._wake.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout)
        # A PUT the store does not answer ends with its read time-out; a stop does not wait for it.
        self._pool.shutdown(wait=not self._thread.is_alive(), cancel_futures=True)
        self.store.close()

    @property
    def alive(self) -> bool:
        """Whether the worker thread runs (False before start and after stop)."""
        return self._thread.is_alive()

    def backlog(self) -> Backlog:
        """What waits for the store."""
        return self.queue.backlog()

    # ------------------------------------------------------------------ the capture side

    def _on_result(self, result: CaptureResult) -> Work | None:
        """The journal's hook, on the capture's thread: hold the picture, add its row, wake up."""
        if result.path is None:
            return None
        self._holder.hold([str(result.path)])
        work = self._rows(result)
        self._wake.set()
        return work

    # ------------------------------------------------------------------ the worker thread

    def _run(self) -> None:
        retry = _Backoff(self.config.retry_max_s)
        woken = True
        while not self._stopping.is_set():
            try:
                if woken:
                    self._journal.flush()  # the row that woke it may not be committed yet
                batch = self.queue.waiting(BATCH)
            except JournalError as exc:
                log.error("upload: cannot read the queue, trying again: %s", exc)
                batch = []
            if not batch:
                woken = self._wake.wait(IDLE_POLL_S)
                self._wake.clear()
                continue
            woken = True
            try:
                # Rows `capture fire` added were held by no one in this process.
                self._holder.hold([upload.path for upload in batch])
                outage, self.last_error = self._upload(batch)
            except Exception as exc:
                # A bug must not end uploading (and, through the watchdog, the service).
                log.exception("upload: a round failed")
                outage = self.last_error = f"{type(exc).__name__}: {exc}"
            if outage is None:
                if retry.in_outage:
                    retry.succeeded(self.backlog_count())
                continue
            self._stopping.wait(retry.failed(outage, self.backlog_count()))

    def backlog_count(self) -> int:
        """Pictures waiting, or -1 when the journal cannot say."""
        try:
            return self.queue.backlog().waiting
        except JournalError:
            return -1

    def _upload(self, batch: list[Upload]) -> tuple[str | None, str | None]:
        """Upload a batch and commit what arrived; return (why to wait before the next round,
        the round's problem for the dashboard), each None when there is none.

        The first `StoreUnavailable` of a round skips the rest of the batch:
        an unreachable store answers each request with a time-out, not at once.
        A picture the store refused by itself (`ObjectRefused`) waits a back-off
        of its own (1 s doubling with its attempts, up to `retry_max_s`), so the
        pictures behind it go on; a round in which the store refused every
        picture waits like an outage. A picture that can never be uploaded
        (gone, unreadable, refused for good) is given up with its reason.
        """
        outage = threading.Event()
        outcomes = list(self._pool.map(lambda upload: self._put(upload, outage), batch))
        stored = [upload for upload, error in outcomes if error is None]
        failed: list[tuple[Upload, str]] = []
        refused: list[tuple[Upload, str]] = []
        lost: list[tuple[Upload, str]] = []
        for upload, error in outcomes:
            if error is None or isinstance(error, _Skipped):
                continue
            if isinstance(error, StoreUnavailable):
                failed.append((upload, str(error)))
            elif isinstance(error, ObjectRefused):
                refused.append((upload, str(error)))
            else:
                lost.append((upload, str(error)))
        if stored:
            self._commit(stored)
        if lost:
            for upload, why in lost:
                log.warning("upload: given up path=%s: %s", upload.path, why)
            self.queue.given_up(lost)
            self._holder.release([upload.path for upload, _ in lost])
        for upload, why in refused:
            wait = min(RETRY_MIN_S * 2 ** min(upload.attempts, 32), self.config.retry_max_s)
            log.log(
                logging.WARNING if upload.attempts == 0 else logging.DEBUG,
                "upload: refused path=%s, tried again in %.0f s: %s",
                upload.path, wait, why,
            )  # fmt: skip
            self.queue.failed([(upload, why)], retry_in_s=wait)
        if failed:
            self.queue.failed(failed)
        problems = [why for _, why in failed or refused]
        problem = problems[0] if problems else None
        return (problem if failed or not stored else None), problem

    def _put(self, upload: Upload, outage: threading.Event) -> tuple[Upload, UploadError | None]:
        if self._stopping.is_set() or outage.is_set():
            return upload, _Skipped()
        metadata = Metadata(self._site, upload.event_id, upload.rule, upload.camera, upload.seq)
        try:
            self.store.put(upload.key, self._root / upload.path, metadata)
        except StoreUnavailable as exc:
            outage.set()
            return upload, exc
        except UploadError as exc:
            return upload, exc
        except Exception as exc:
            # Not the store's answer: a bug here or in minio. This picture waits its back-off.
            log.exception("upload: unexpected failure path=%s", upload.path)
            return upload, ObjectRefused(f"{type(exc).__name__}: {exc}")
        return upload, None

    def _commit(self, stored: list[Upload]) -> None:
        """Mark uploads done with their follow-up messages in one commit, then release them."""
        messages = self._messages(stored)
        try:
            self.queue.done(
                stored,
                (lambda connection: insert_messages(connection, messages)) if messages else None,
            )
        except JournalError as exc:
            # Uploaded but not recorded: they are uploaded again (same keys) once the journal takes it.
            log.error(
                "upload: cannot record %d upload(s), they are tried again: %s", len(stored), exc
            )
            return
        self.uploaded += len(stored)
        self._holder.release([upload.path for upload in stored])
        if messages and self._announcer is not None:
            self._announcer.send_outbox()
        for upload in stored:
            log.debug("uploaded path=%s key=%s", upload.path, upload.key)

    def _messages(self, stored: list[Upload]) -> list[tuple[str, bytes, int, bool]]:
        if self._announcer is None:
            return []
        now = site_iso(datetime.now(UTC), self._zone)
        return [
            (
                f"{self._announcer.prefix}/uploads/{upload.rule}",
                json.dumps(self.message(upload, now), separators=(",", ":")).encode(),
                self._announcer.config.qos,
                False,
            )
            for upload in stored
        ]

    def message(self, upload: Upload, uploaded: str | None) -> dict[str, Any]:
        """The follow-up message of one uploaded picture (docs/integration.md)."""
        return {
            "schema": SCHEMA,
            "event_id": upload.event_id,
            "rule": upload.rule,
            "site": self._site,
            "camera": upload.camera,
            "seq": upload.seq,
            "path": upload.path,
            "bytes": upload.bytes,
            "bucket": self.store.bucket,
            "key": upload.key,
            "url": self.store.url(upload.key),
            "uploaded": uploaded,
        }


class _Skipped(UploadError):
    """Not tried this round (the store failed first, or the worker stops): still waiting."""


class _Backoff:
    """Waits between rounds while the store fails; logs an outage when it starts and ends."""

    def __init__(self, maximum: float) -> None:
        self._maximum = maximum
        self._delay = RETRY_MIN_S
        self._since: float | None = None

    @property
    def in_outage(self) -> bool:
        """Whether the last round failed."""
        return self._since is not None

    def failed(self, error: str, waiting: int) -> float:
        """Note a failed round; return how long to wait before the next."""
        if self._since is None:
            self._since = time.monotonic()
            log.error(
                "upload: %s; %d picture(s) wait on local disk, retrying every %.0f-%.0f s",
                error, waiting, RETRY_MIN_S, self._maximum,
            )  # fmt: skip
        delay = self._delay
        self._delay = min(self._delay * 2, self._maximum)
        return delay

    def succeeded(self, waiting: int) -> None:
        assert self._since is not None
        log.warning(
            "upload: object store reachable again after %.0f s; %d picture(s) still to upload",
            time.monotonic() - self._since, waiting,
        )  # fmt: skip
        self._since = None
        self._delay = RETRY_MIN_S
