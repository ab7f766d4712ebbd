"""The detection worker when it falls behind: pictures kept, marked not analysed, counted.

In a whole service with cameras and a broker: tests/e2e/test_detection.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from capture.config.schema import DetectOptions, StorageConfig
from capture.detect import Detection, Detector
from capture.detect.journal import read_event
from capture.detect.onnx import OnnxDetector, read_labels
from capture.detect.worker import DetectionWorker
from capture.events import CaptureResult, Event, FiringReport
from capture.journal import Journal
from capture.storage import Storage
from tests.conftest import wait_for
from tests.detect.models import GatedDetector, colour_detector


@dataclass
class Harness:
    """A started worker with its storage root, journal and the messages it sent."""

    worker: DetectionWorker
    root: Path
    journal: Journal
    sent: list[tuple[str, bytes]]


@contextmanager
def running(tmp_path: Path, detector: Detector, queue_size: int) -> Iterator[Harness]:
    root = tmp_path / "data"
    storage = Storage(StorageConfig(root=root, fsync=False))
    journal = Journal(root / "journal.sqlite3")
    sent: list[tuple[str, bytes]] = []
    worker = DetectionWorker(
        detector,
        root=root,
        store=storage,
        journal=journal,
        options_for=lambda rule, camera: DetectOptions(),
        queue_size=queue_size,
        publish=lambda topic, payload: sent.append((topic, payload)),
    )
    worker.start()
    try:
        yield Harness(worker, root, journal, sent)
    finally:
        worker.stop()
        journal.close()
        storage.close()


def test_when_the_detector_falls_behind_pictures_are_not_analysed_counted_and_kept(
    tmp_path: Path,
) -> None:
    model, labels = colour_detector(tmp_path)
    detector = GatedDetector(OnnxDetector(model, read_labels(labels)))
    try:
        with running(tmp_path, detector, queue_size=1) as harness:
            _fall_behind(harness.worker, detector, harness.root, harness.journal, harness.sent)
    finally:
        detector.gate.set()


def _fall_behind(
    worker: DetectionWorker,
    detector: GatedDetector,
    root: Path,
    journal: Journal,
    sent: list[tuple[str, bytes]],
) -> None:
    reports = []
    for number in range(4):
        name = f"p{number}.jpg"
        Image.new("RGB", (64, 48), (255, 0, 0)).save(root / name)
        event = Event.now("plc")
        result = CaptureResult(event.id, "r", "cam", 1, path=name)
        reports.append(FiringReport(event, "r", "site", [result]))
    worker.offer(reports[0])
    assert detector.entered.wait(10)  # the first is being analysed, the queue is empty
    for report in reports[1:]:
        worker.offer(report)  # one fits in the queue, two do not: never blocks
    assert worker.stats.not_analysed == 2 and worker.queued() == 1
    detector.gate.set()
    wait_for(lambda: worker.stats.analysed == 2)
    journal.flush()
    statuses = [read_event(journal, report.event.id)[0]["status"] for report in reports]
    assert statuses == ["analysed", "analysed", "not_analysed", "not_analysed"]
    assert all((root / f"p{n}.jpg").is_file() for n in range(4))
    assert [json.loads(payload)["pictures"][0]["status"] for _, payload in sent].count(
        "not_analysed"
    ) == 2


class _BrokenOnce:
    """The colour detector, raising what no one expects on its first picture."""

    def __init__(self, inner: OnnxDetector) -> None:
        self.inner = inner
        self.labels = inner.labels
        self.input_size = inner.input_size
        self.calls = 0

    def detect(self, picture: Image.Image, min_score: float) -> list[Detection]:
        self.calls += 1
        if self.calls == 1:
            raise ValueError("x1 must be greater than or equal to x0")
        return self.inner.detect(picture, min_score)


def test_an_unexpected_error_on_one_picture_fails_that_picture_not_the_firing(
    tmp_path: Path,
) -> None:
    model, labels = colour_detector(tmp_path)
    detector = _BrokenOnce(OnnxDetector(model, read_labels(labels)))
    with running(tmp_path, detector, queue_size=4) as harness:
        event = Event.now("plc")
        results = []
        for seq in (1, 2):
            Image.new("RGB", (64, 48), (255, 0, 0)).save(harness.root / f"p{seq}.jpg")
            results.append(CaptureResult(event.id, "r", "cam", seq, path=f"p{seq}.jpg"))
        harness.worker.offer(FiringReport(event, "r", "site", results))
        wait_for(lambda: len(harness.sent) == 1)
        harness.journal.flush()
        rows = read_event(harness.journal, event.id)
        assert [row["status"] for row in rows] == ["failed", "analysed"]
        assert rows[0]["error"] == "ValueError: x1 must be greater than or equal to x0"
        pictures = json.loads(harness.sent[0][1])["pictures"]
        assert [picture["status"] for picture in pictures] == ["failed", "analysed"]
        assert harness.worker.stats.failed == 1 and harness.worker.stats.analysed == 1
