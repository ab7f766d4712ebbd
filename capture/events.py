"""The plain data that flows one way through the service.

A trigger produces an `Event`; the engine turns it into capture jobs; each job
ends as a `CaptureResult`, and each rule firing as a `FiringReport` that the
publisher, the journal's recovery and the web read without importing the
engine. Nothing here does I/O, so every stage can be tested
with values it builds itself.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

#: A value a trigger provides: what conditions compare and templates render.
Value = str | int | float | bool | None

_sequence = itertools.count(1)
_process_tag = f"{os.getpid() & 0xFFFF:04x}"


def new_event_id(wall_time: datetime) -> str:
    """Return an id that sorts by time and is unique within and across restarts.

    A readable time prefix lets technicians find an event in the journal by its
    id alone; the pid tag and counter separate events created in the same
    millisecond, also across a restart that reuses no pid within a millisecond.
    """
    stamp = wall_time.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    millis = wall_time.microsecond // 1000
    return f"{stamp}.{millis:03d}Z-{_process_tag}{next(_sequence) % 0xFFFFFF:06x}"


def _frozen(values: Mapping[str, Value]) -> Mapping[str, Value]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True, slots=True)
class Event:
    """Something happened that may deserve a picture.

    `wall_time` is what people and file names see; `monotonic` is what delays,
    cooldowns and trigger-to-image latencies are measured against, because the
    wall clock of a Pi without RTC can jump when NTP syncs.
    """

    trigger: str
    values: Mapping[str, Value] = field(default_factory=dict)
    wall_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    monotonic: float = field(default_factory=time.monotonic)
    id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", _frozen(self.values))
        if not self.id:
            object.__setattr__(self, "id", new_event_id(self.wall_time))

    @classmethod
    def now(cls, trigger: str, values: Mapping[str, Value] | None = None) -> Event:
        """Build an event stamped with the current wall and monotonic clocks."""
        return cls(trigger=trigger, values=values or {})


@dataclass(frozen=True, slots=True)
class CaptureResult:
    """The outcome of one frame of one camera for one rule firing.

    Exactly one of `path` and `error_type` is set. `trigger_to_image_ms` is the
    delay from the trigger to the moment the image arrived, the figure a user
    checks to see how close the picture is to the moment that mattered;
    negative for a frame a stream-backed camera had buffered before the
    trigger. `offset_ms` is the moment the rule asked for (frames_ms, or
    delay_ms and the burst's interval), so the two side by side say how
    near the picture came. `via` says how it was taken: "snapshot",
    "stream" (from the camera's buffer) or "fallback" (a snapshot because
    the camera's stream was down).
    """

    event_id: str
    rule: str
    camera: str
    seq: int
    path: str | None = None
    bytes: int = 0
    latency_ms: float = 0.0
    trigger_to_image_ms: float = 0.0
    image_time: datetime | None = None
    width: int | None = None
    height: int | None = None
    stale: bool = False
    error_type: str | None = None
    error_message: str | None = None
    #: Values the file name uses that the event did not carry (written as "unknown").
    missing_fields: tuple[str, ...] = ()
    #: When the frame's event happened (its `Event.wall_time`); the engine sets it so
    #: that readers (the dashboard's status) compare outcomes by it. None when unknown.
    event_time: datetime | None = None
    offset_ms: int | None = None
    via: str | None = None

    @property
    def ok(self) -> bool:
        """True when a valid JPEG was written."""
        return self.error_type is None


@dataclass(frozen=True, slots=True)
class PlannedFrame:
    """One frame a rule firing means to take, and the file name its template gave it.

    Journaled before the first capture, so that after a crash the next start
    knows which frames were never taken and which file on disk was whose.
    """

    camera: str
    seq: int
    path: str
    #: The moment the rule asked for (capture.config.schema's `offset_ms`), so a frame a
    #: restart finishes reports it like a frame taken on time. None in plans journaled
    #: before it was recorded.
    offset_ms: int | None = None


@dataclass
class FiringReport:
    """Everything one rule firing produced, for the event message."""

    event: Event
    rule: str
    site: str
    results: list[CaptureResult]
    manual: bool = False
    #: The service stopped (a kill, a power cut) before this firing was announced;
    #: the next start finished it (capture.recovery).
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        """True when every frame of every camera was saved."""
        return all(result.ok for result in self.results)


def firing_line(report: FiringReport) -> str:
    """The one log line of a rule firing: what fired it and what became of every frame."""
    results = report.results
    saved = [result for result in results if result.ok]
    failed = sorted({f"{r.camera} {r.error_type}" for r in results if not r.ok})
    slowest = max((result.trigger_to_image_ms for result in saved), default=0.0)
    text = (
        f"event={report.event.id} trigger={report.event.trigger} rule={report.rule}: "
        f"{len(saved)}/{len(results)} frame(s) saved"
    )
    if saved:
        text += f" within {slowest:.0f} ms of the trigger, first {saved[0].path}"
    if failed:
        text += f"; failed: {', '.join(failed)}"
    return text
