"""The detection worker: analyses saved pictures on a thread of its own, off the capture path.

It listens to the engine's finished firings (`offer`, called on the thread
that ended the firing) and only ever puts them on a bounded queue, without
waiting: the trigger -> file path never waits for a detector. When the queue
is full, the firing's pictures are journaled `not_analysed` and counted,
never dropped (they are on disk; only their analysis is skipped), and the
follow-up message still goes out, so a subscriber waiting for it learns
that none is coming. A stop marks what is still queued the same way.

For each picture the worker decodes the file, runs the detector, keeps the
classes, scores and number of objects the rule (or camera) asked for,
optionally saves the annotated copy and the crops (capture.detect.draw,
through the storage: atomic, never overwriting), journals the outcome
(capture.detect.journal) and, once per firing, hands the follow-up message
to the publisher: the event message has long left by then (it leaves when
the last frame is saved; docs/integration.md#detection-message).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from PIL import Image, UnidentifiedImageError

from capture.config.schema import DetectOptions
from capture.detect import DetectError, Detection, Detector
from capture.detect.draw import annotated, annotated_name, crop, crop_name
from capture.detect.journal import PictureAnalysis, Status, record
from capture.detect.picture import detect_file
from capture.events import CaptureResult, FiringReport
from capture.journal import Journal
from capture.publish import firing_head

log = logging.getLogger(__name__)

SCHEMA = "event-capture/detections/1"
#: The detection thread's nice value: below the captures, above nothing in particular.
NICE = 10


class DerivedStore(Protocol):
    """Where the annotated copies and crops go (capture.storage.Storage)."""

    def save(
        self, relative: PurePosixPath | str, jpeg: bytes, camera: str, *, taken: bool = True
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class _Job:
    report: FiringReport
    pictures: tuple[tuple[CaptureResult, DetectOptions], ...]


@dataclass
class DetectionStats:
    """Pictures by outcome since the start; `not_analysed` counts those the queue could not take."""

    analysed: int = 0
    not_analysed: int = 0
    failed: int = 0


class DetectionWorker:
    """Runs `detector` on the pictures of finished firings whose rule or camera asks for it."""

    def __init__(
        self,
        detector: Detector,
        *,
        root: Path,
        store: DerivedStore,
        journal: Journal,
        options_for: Callable[[str, str], DetectOptions | None],
        queue_size: int,
        publish: Callable[[str, bytes], None] | None = None,
        topic_prefix: str = "event-capture",
        zone: ZoneInfo | None = None,
        on_done: Callable[[FiringReport, list[PictureAnalysis]], None] | None = None,
    ) -> None:
        self._detector = detector
        self._root = root
        self._store = store
        self._journal = journal
        self._options_for = options_for
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_size)
        self._publish = publish
        self._prefix = topic_prefix
        self._zone = zone or ZoneInfo("UTC")
        self._listeners = [on_done] if on_done is not None else []
        self._lock = threading.Lock()
        self.stats = DetectionStats()
        self._thread = threading.Thread(target=self._run, name="detection", daemon=True)
        self._stopping = threading.Event()

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def add_listener(self, listener: Callable[[FiringReport, list[PictureAnalysis]], None]) -> None:
        """Call `listener` with each firing's analyses, once queued for the journal.

        On the detection thread, except for pictures skipped because the queue
        is full: those are reported on the thread that offered them, a
        capture's. A listener must therefore never block.
        """
        self._listeners.append(listener)

    @property
    def alive(self) -> bool:
        """Whether the worker thread runs (the service's health: pictures would go unanalysed)."""
        return self._thread.is_alive()

    def offer(self, report: FiringReport) -> None:
        """Queue the firing's pictures that ask for detection; never blocks (a report listener)."""
        pictures = tuple(
            (result, options)
            for result in report.results
            if result.ok
            and result.path is not None
            and (options := self._options_for(report.rule, result.camera)) is not None
        )
        if not pictures:
            return
        job = _Job(report, pictures)
        if self._stopping.is_set():
            self._skip(job, "the service is stopping")
            return
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self._skip(job, "the detector is behind (its queue is full)")

    def queued(self) -> int:
        """Firings waiting for the detector."""
        return self._queue.qsize()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the picture in progress; what still waits is journaled not_analysed."""
        self._stopping.set()
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                self._skip(job, "the service stopped first")
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        _yield_cpu_to_captures()
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                analyses = [self._analyse(job.report, *picture) for picture in job.pictures]
                self._finish(job.report, analyses)
            except Exception:
                # A bug on one firing must not end detection for the rest of the day.
                log.exception("detection of event=%s failed", job.report.event.id)

    def _analyse(
        self, report: FiringReport, result: CaptureResult, options: DetectOptions
    ) -> PictureAnalysis:
        assert result.path is not None
        started = time.perf_counter()
        try:
            found, _ = detect_file(self._detector, self._root / result.path, options.min_score)
            kept = _keep(found, options)
            derived = self._derive(result, kept, options)
        except (OSError, UnidentifiedImageError, DetectError) as exc:
            log.warning(
                "detection failed event=%s camera=%s path=%s: %s",
                report.event.id, result.camera, result.path, exc,
            )  # fmt: skip
            return self._analysis(report, result, "failed", error=str(exc)[:500])
        except Exception as exc:
            # A bug (ours, Pillow's, a model's odd output) on one picture: that picture's
            # row says so, and the firing still gets its rows, message and follow-ups.
            log.exception(
                "detection failed event=%s camera=%s path=%s",
                report.event.id, result.camera, result.path,
            )  # fmt: skip
            error = f"{type(exc).__name__}: {exc}"[:500]
            return self._analysis(report, result, "failed", error=error)
        elapsed = (time.perf_counter() - started) * 1000
        return self._analysis(
            report, result, "analysed", kept=kept, elapsed_ms=elapsed, derived=derived
        )

    def _derive(
        self, result: CaptureResult, kept: list[Detection], options: DetectOptions
    ) -> tuple[str, ...]:
        assert result.path is not None
        if not kept or not (options.annotate or options.crops):
            return ()
        source = PurePosixPath(result.path)
        files: list[tuple[PurePosixPath, bytes]] = []
        # Decoded anew, whole: the detector may have seen a reduced decode.
        with Image.open(self._root / source) as picture:
            picture.load()
            if options.annotate:
                files.append((annotated_name(source), annotated(picture, kept)))
            if options.crops:
                numbers: dict[str, int] = {}
                for detection in kept:
                    numbers[detection.label] = numbers.get(detection.label, 0) + 1
                    name = crop_name(source, detection.label, numbers[detection.label])
                    files.append((name, crop(picture, detection)))
        return tuple(
            str(self._store.save(name, jpeg, result.camera, taken=False).relative)
            for name, jpeg in files
        )

    def _analysis(
        self,
        report: FiringReport,
        result: CaptureResult,
        status: Status,
        *,
        kept: list[Detection] | None = None,
        elapsed_ms: float | None = None,
        derived: tuple[str, ...] = (),
        error: str | None = None,
    ) -> PictureAnalysis:
        return PictureAnalysis(
            event_id=report.event.id,
            rule=report.rule,
            camera=result.camera,
            seq=result.seq,
            path=str(result.path),
            status=status,
            detections=tuple(kept or ()),
            elapsed_ms=elapsed_ms,
            error=error,
            derived=derived,
        )

    def _skip(self, job: _Job, reason: str) -> None:
        analyses = [
            self._analysis(job.report, result, "not_analysed", error=reason)
            for result, _ in job.pictures
        ]
        log.warning(
            "detection skipped event=%s rule=%s pictures=%d: %s",
            job.report.event.id, job.report.rule, len(analyses), reason,
        )  # fmt: skip
        self._finish(job.report, analyses)

    def _finish(self, report: FiringReport, analyses: list[PictureAnalysis]) -> None:
        record(self._journal, analyses)
        if self._publish is not None:
            message = detection_message(report, analyses, self._zone)
            self._publish(
                f"{self._prefix}/detections/{report.rule}",
                json.dumps(message, separators=(",", ":")).encode(),
            )
        # Counted once journaled and sent: whoever sees the count finds the rows.
        with self._lock:
            for analysis in analyses:
                if analysis.status == "analysed":
                    self.stats.analysed += 1
                elif analysis.status == "failed":
                    self.stats.failed += 1
                else:
                    self.stats.not_analysed += 1
        for listener in self._listeners:
            try:
                listener(report, analyses)
            except Exception:
                log.exception("a detection listener failed event=%s", report.event.id)


def _yield_cpu_to_captures() -> None:
    """Lower this thread's scheduling priority (nice 10), Linux only, no privilege needed.

    With `threads = 1` onnxruntime computes on the calling thread, so this
    thread is where the detector's CPU goes; at nice 10 the kernel lets the
    camera and writer threads run first when both want a core, which keeps
    trigger -> file latency where it was (README, Performance).
    """
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or a sandbox refusing it
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)


def _keep(found: list[Detection], options: DetectOptions) -> list[Detection]:
    """The objects the rule asked for: its classes (all when none named), best first, capped."""
    wanted = set(options.classes)
    kept = [
        detection
        for detection in found
        if detection.score >= options.min_score and (not wanted or detection.label in wanted)
    ]
    return kept[: options.max_objects]


def detection_message(
    report: FiringReport, analyses: list[PictureAnalysis], zone: ZoneInfo
) -> dict[str, Any]:
    """The follow-up message published on {prefix}/detections/{rule} (docs/integration.md)."""
    return {
        **firing_head(report, zone, SCHEMA),
        "classes": sorted({d.label for analysis in analyses for d in analysis.detections}),
        "pictures": [analysis.as_json() for analysis in analyses],
    }
