"""Finishes, at start, the rule firings a kill or a power cut left unannounced.

The engine journals every firing with its planned frames before it stores a
picture, and the firing's journal row ends in the commit that puts its event
message in the outbox. A row still open at start therefore means the service
stopped in the middle of that firing. Each frame then gets its one outcome:
the row the journal already has; a complete file that reached its planned
name (or a `_2`, `_3`... variant of it) but not the journal, adopted; or an
`Interrupted` failure. A file there that is not a complete JPEG is removed.
The firing is then announced like any other, with `interrupted: true`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

from capture.cameras.jpeg import JpegError, validate_jpeg
from capture.events import CaptureResult, Event, FiringReport, PlannedFrame
from capture.journal import Journal, OpenFiring, owner_alive
from capture.template import with_suffix_counter

log = logging.getLogger(__name__)

INTERRUPTED = "Interrupted"
#: Suffixed names (`_2`, `_3`...) looked at for a frame's file; a save takes the first free one.
MAX_SUFFIX_PROBE = 100
#: How far before the oldest open firing journaled file names are looked up: a file named
#: like a planned one but recorded by an earlier firing is that firing's, not an orphan.
RECORDED_LOOKBACK = timedelta(days=1)
#: A firing's pictures are written after its row is committed, so a file older than the
#: firing (by more than a coarse file system's 2 s timestamps) is an earlier picture.
MTIME_SLACK = timedelta(seconds=2)


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What finishing the interrupted firings did."""

    firings: int
    adopted: int
    removed: int
    interrupted: int

    def __str__(self) -> str:
        return (
            f"interrupted_firings={self.firings} files_adopted={self.adopted} "
            f"partial_files_removed={self.removed} frames_interrupted={self.interrupted}"
        )


class _Pass:
    """One recovery pass: the storage root, the names already spoken for, the counts."""

    def __init__(self, root: Path, recorded: set[str]) -> None:
        self.root = root
        self.taken = set(recorded)
        self.adopted = 0
        self.removed = 0
        self.interrupted = 0

    def outcome(self, firing: OpenFiring, event: Event, frame: PlannedFrame) -> CaptureResult:
        """The frame's file if one reached the disk, else its `Interrupted` failure."""
        removed = False
        for n in range(1, MAX_SUFFIX_PROBE):
            relative = with_suffix_counter(PurePosixPath(frame.path), n).as_posix()
            path = self.root / relative
            if not path.is_file():
                break
            if relative in self.taken or self._older_than(firing, path):
                continue  # another firing's: the save took the next free name
            adopted = self._adopt(firing, event, frame, relative, path)
            if adopted is not None:
                return adopted
            removed = True
        self.interrupted += 1
        message = (
            f"camera {frame.camera}: the service stopped (killed or power lost) before this "
            "frame was taken"
        )
        if removed:
            message += "; an incomplete file of it was removed"
        return replace(_frame_of(firing, frame), error_type=INTERRUPTED, error_message=message)

    @staticmethod
    def _older_than(firing: OpenFiring, path: Path) -> bool:
        """Whether the file predates the firing: an earlier picture of the same name (a
        template without a date, a part seen again days later), not this firing's."""
        try:
            mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except OSError:
            return False  # vanished: _adopt says so
        return mtime < firing.opened - MTIME_SLACK

    def _adopt(
        self, firing: OpenFiring, event: Event, frame: PlannedFrame, relative: str, path: Path
    ) -> CaptureResult | None:
        try:
            data = path.read_bytes()
            info = validate_jpeg(data)
            stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except JpegError as exc:
            log.warning("removing an incomplete snapshot path=%s error=%s", relative, exc)
            path.unlink(missing_ok=True)
            self.removed += 1
            return None
        except OSError as exc:
            log.warning("cannot read a snapshot to adopt path=%s error=%s", relative, exc)
            return None
        self.taken.add(relative)
        self.adopted += 1
        delay_ms = max(0.0, (stamp - event.wall_time).total_seconds() * 1000)
        return replace(
            _frame_of(firing, frame),
            path=relative,
            bytes=len(data),
            trigger_to_image_ms=round(delay_ms, 3),
            image_time=stamp,
            width=info.width,
            height=info.height,
        )


def _frame_of(firing: OpenFiring, frame: PlannedFrame) -> CaptureResult:
    """Which frame an outcome is of; the caller fills in the outcome."""
    return CaptureResult(
        event_id=firing.event_id,
        rule=firing.rule,
        camera=frame.camera,
        seq=frame.seq,
        offset_ms=frame.offset_ms,
    )


def finish_interrupted_firings(
    journal: Journal,
    root: Path,
    site: str,
    announce: Callable[[FiringReport], None] | None,
) -> RecoveryReport:
    """Give every frame of every interrupted firing its outcome, journal it, announce the firing.

    `announce` (the engine's `announce_recovered`) ends each firing's journal
    row with its outbox message; without MQTT the row is ended here. Firings
    of another live process (a `capture fire` running right now) are left to it.
    """
    journal.flush()  # what this process queued counts as journaled
    firings = [
        firing
        for firing in journal.open_firings()
        if firing.owner == journal.owner or not owner_alive(firing.owner)
    ]
    if not firings:
        return RecoveryReport(0, 0, 0, 0)
    since = min(firing.opened for firing in firings) - RECORDED_LOOKBACK
    recovery = _Pass(root, journal.recorded_paths_since(since))
    for firing in firings:
        _finish(journal, recovery, firing, site, announce)
    journal.flush()
    report = RecoveryReport(len(firings), recovery.adopted, recovery.removed, recovery.interrupted)
    log.warning("finished firings the last stop interrupted: %s", report)
    return report


def _finish(
    journal: Journal,
    recovery: _Pass,
    firing: OpenFiring,
    site: str,
    announce: Callable[[FiringReport], None] | None,
) -> None:
    event = journal.event(firing.event_id) or Event(
        trigger="", wall_time=firing.opened, id=firing.event_id
    )
    journaled = journal.results_of(firing.event_id, firing.rule)
    known = {(result.camera, result.seq): result for result in journaled}
    for frame in firing.frames:
        if (frame.camera, frame.seq) not in known:
            result = recovery.outcome(firing, event, frame)
            journal.record_result(result)
            known[frame.camera, frame.seq] = result
    report = FiringReport(
        event=event,
        rule=firing.rule,
        site=site,
        results=_in_plan_order(firing.frames, known),
        manual=firing.manual,
        interrupted=True,
    )
    if announce is not None:
        announce(report)
    else:
        journal.close_firing(firing.event_id, firing.rule)


def _in_plan_order(
    frames: Iterable[PlannedFrame], known: dict[tuple[str, int], CaptureResult]
) -> list[CaptureResult]:
    """Results camera by camera, frame by frame, as the engine orders a firing's message."""
    order = {camera: n for n, camera in enumerate(dict.fromkeys(f.camera for f in frames))}
    return sorted(known.values(), key=lambda r: (order.get(r.camera, len(order)), r.seq))
