"""The plain rows the journal gives back: outcomes, camera health, open firings.

Also who owns an open firing (`process_owner`, `owner_alive`): a start must
not finish a firing that a live `capture fire` is still taking.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from capture.clock import milliseconds, site_iso
from capture.events import CaptureResult, PlannedFrame, Value
from capture.journal.schema import parse_db_time


@dataclass(frozen=True, slots=True)
class OpenFiring:
    """A rule firing accepted but not yet announced: a crash left it, or it is still running.

    `owner` names the process that runs it (see `process_owner`), so a start
    does not take over a firing that a live `capture fire` is still taking.
    """

    event_id: str
    rule: str
    manual: bool
    frames: tuple[PlannedFrame, ...]
    owner: str
    opened: datetime


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown-boot"


def process_owner() -> str:
    """This process, as firings name their owner: `<boot id>/<pid>`, unique across reboots."""
    return f"{_boot_id()}/{os.getpid()}"


def owner_alive(owner: str) -> bool:
    """Whether the process that opened a firing still runs (same boot, live pid)."""
    boot, _, pid = owner.rpartition("/")
    if boot != _boot_id() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One capture outcome with its event, or an event that matched no rule.

    `time` is the event's time, the moment that mattered; `recorded` is when
    the outcome was journaled (None for an event that matched no rule). `ok`
    is None for an event that matched no rule (or whose conditions were all
    false); `matched_rules` lists the rules the engine fired for the event.
    """

    event_id: str
    time: datetime
    recorded: datetime | None
    trigger: str | None
    values: Mapping[str, Value]
    matched_rules: tuple[str, ...]
    rule: str | None = None
    camera: str | None = None
    seq: int | None = None
    ok: bool | None = None
    path: str | None = None
    bytes: int = 0
    latency_ms: float | None = None
    trigger_to_image_ms: float | None = None
    image_time: datetime | None = None
    width: int | None = None
    height: int | None = None
    stale: bool = False
    error_type: str | None = None
    error_message: str | None = None
    #: Values the file name used that the event did not carry (written as "unknown").
    missing_fields: tuple[str, ...] = ()
    #: The moment the rule asked for, in ms after the trigger; how the picture was taken.
    offset_ms: int | None = None
    via: str | None = None
    #: [upload]: `waiting`, `uploaded` or `gone` (given up, see `upload_error`); None: not queued.
    upload: str | None = None
    #: The object's key in the store (set when queued; the object exists once `uploaded`).
    object_key: str | None = None
    #: Why the last upload attempt failed (while it waits), or why it was given up.
    upload_error: str | None = None

    def as_json(self, zone: tzinfo = UTC) -> dict[str, Any]:
        """The row as a JSON-ready dict, times in `zone` (the site's); field names are stable.

        The fields are listed in docs/storage-and-journal.md.
        """

        def iso(moment: datetime | None) -> str | None:
            return site_iso(moment, zone)

        return {
            "event_id": self.event_id,
            "time": iso(self.time),
            "recorded": iso(self.recorded),
            "trigger": self.trigger,
            "values": dict(self.values),
            "matched_rules": list(self.matched_rules),
            "rule": self.rule,
            "camera": self.camera,
            "seq": self.seq,
            "ok": self.ok,
            "path": self.path,
            "bytes": self.bytes,
            "latency_ms": milliseconds(self.latency_ms),
            "trigger_to_image_ms": milliseconds(self.trigger_to_image_ms),
            "image_time": iso(self.image_time),
            "width": self.width,
            "height": self.height,
            "stale": self.stale,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "missing_fields": list(self.missing_fields),
            "offset_ms": self.offset_ms,
            "via": self.via,
            "upload": self.upload,
            "object_key": self.object_key,
        }


@dataclass(frozen=True, slots=True)
class CameraStats:
    """A camera's health over a period, as the dashboard shows it.

    Times are those of the events the captures belong to. Medians are over the camera's last 1000 successful captures in the period.
    """

    camera: str
    captures: int
    ok: int
    failed: int
    success_rate: float | None
    median_latency_ms: float | None
    median_trigger_to_image_ms: float | None
    last_ok_time: datetime | None
    last_error_time: datetime | None
    last_error_type: str | None
    last_error_message: str | None


#: The `captures` columns `capture_result` reads, in its order.
RESULT_COLUMNS = (
    "event_id, rule, camera, seq, path, bytes, latency_ms, trigger_to_image_ms, image_time, "
    "width, height, stale, error_type, error_message, missing_fields, offset_ms, via"
)


def capture_result(row: Sequence[Any]) -> CaptureResult:
    """A `captures` row, selected as RESULT_COLUMNS, as the outcome the engine gave."""
    return CaptureResult(
        event_id=row[0],
        rule=row[1],
        camera=row[2],
        seq=row[3],
        path=row[4],
        bytes=row[5],
        latency_ms=row[6],
        trigger_to_image_ms=row[7],
        image_time=parse_db_time(row[8]),
        width=row[9],
        height=row[10],
        stale=bool(row[11]),
        error_type=row[12],
        error_message=row[13],
        missing_fields=tuple(row[14].split(",")) if row[14] else (),
        offset_ms=row[15],
        via=row[16],
    )
