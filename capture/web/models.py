"""The JSON documents of the web API as pydantic models: what /openapi.json describes.

The API builds its documents as plain dicts (capture.web.api, which shares
`capture_json` with the MQTT event messages); these models describe them for
integrators, and tests/web/test_openapi.py validates real answers against
them with unknown keys forbidden, so the description cannot drift from what
is sent.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Scalar = str | int | float | bool | None
"""An event value: the trigger's fields, nested ones by dotted name."""


class Document(BaseModel):
    """Base of every documented payload: closed, so the description lists every key."""

    model_config = ConfigDict(extra="forbid")


class ErrorDocument(Document):
    """Every 4xx/5xx answer of the API."""

    error: str = Field(description="What is wrong and what to do, for a person.")


class LatestPicture(Document):
    """A camera's newest picture."""

    time: str = Field(description="When it was saved, ISO 8601 with the site's offset.")
    image_url: str = Field(description="The picture; `?v=` names its version (see Pictures).")
    thumb_url: str = Field(description="Its thumbnail, at most 480x360.")


class CameraErrorInfo(Document):
    """The camera's most recent failure."""

    type: str | None = Field(description="Error type, e.g. `Timeout`, `AuthFailed`.")
    message: str | None = Field(description="What the camera or the network said.")
    time: str | None = Field(description="When the outcome was known, ISO 8601.")


class CameraFigures(Document):
    """Figures over the last `stats_period_s` seconds."""

    captures: int
    ok: int
    failed: int
    success_rate: float | None = Field(description="0 to 1, four decimals; null without captures.")
    median_latency_ms: float | None = Field(description="Median fetch time of successful frames.")
    median_trigger_to_image_ms: float | None = Field(
        description="Median delay from the trigger to the image's arrival."
    )


class StreamFigures(Document):
    """A stream-backed camera's stream: is it up, and what it costs (bandwidth, memory)."""

    source: str = Field(description="The stream's address, secrets masked.")
    up: bool
    fps: float = Field(description="Frames per second over the buffer.")
    kbit_s: float = Field(description="Bandwidth the stream takes, over the buffer.")
    buffered_s: float
    buffered_kib: int
    reconnects: int
    last_error: str | None
    down_since: str | None


class CameraTile(Document):
    """One camera as the dashboard's tile shows it."""

    name: str
    line: str = Field(description="Production line ([service].line unless the camera says).")
    vendor: str
    description: str
    latest: LatestPicture | None = Field(description="Null until the camera has a picture.")
    status: Literal["ok", "error", "unknown"] = Field(
        description="After the camera's newest outcome, live or in the journal's last hour."
    )
    last_error: CameraErrorInfo | None = Field(
        description="The most recent error, also after the camera recovered."
    )
    stats: CameraFigures
    stream: StreamFigures | None = Field(
        None, description="Null for a snapshot camera; its stream for a stream-backed one."
    )


class LineOfCameras(Document):
    """The cameras of one production line."""

    name: str
    cameras: list[CameraTile]


class RuleSummary(Document):
    """A rule of the rule file, for its dashboard button."""

    name: str
    cameras: list[str] = Field(description="The rule's cameras, `line:` entries expanded.")
    enabled: bool
    description: str


class TriggerHealth(Document):
    """A trigger of the rule file, as the dashboard's trigger list shows it."""

    name: str
    type: str = Field(description="Trigger kind: gpio, mqtt, modbus, opcua...")
    description: str
    status: Literal["ok", "waiting", "failed"] = Field(
        description="failed: it did not start (see error); waiting: its device, server or "
        "broker does not answer and it keeps trying; ok otherwise."
    )
    error: str | None = Field(
        description="Why it did not start, or its last problem (shown also after it recovered)."
    )
    emitted: int = Field(description="Events fired since it started.")
    rejected: int = Field(description="Input that could not be read (a sender to fix).")
    ignored: int = Field(description="Input dropped on purpose (a pulse too short...).")
    connected: bool | None = Field(
        description="Whether its device, server or broker answers; null for kinds without one."
    )
    last_event: str | None = Field(
        description="When it last fired, ISO 8601 with the site's offset."
    )


class UploadBacklog(Document):
    """Pictures saved here and not yet in the object store ([upload])."""

    bucket: str | None
    waiting: int = Field(description="Pictures waiting for upload.")
    waiting_bytes: int
    oldest: str | None = Field(description="When the oldest waiting picture was queued.")


class CamerasDocument(Document):
    """GET /api/cameras."""

    site: str
    time: str = Field(description="The server's time, ISO 8601 with the site's offset.")
    timezone: str = Field(description="[service].timezone, e.g. Europe/Berlin.")
    stats_period_s: int
    lines: list[LineOfCameras]
    rules: list[RuleSummary]
    triggers: list[TriggerHealth] = Field(
        description="Every trigger of the rule file with its health, in file order."
    )
    upload: UploadBacklog | None = Field(description="Null when [upload] is off.")


class FrameError(Document):
    """Why a frame has no picture."""

    type: str | None
    message: str | None


class Capture(Document):
    """One frame: as in the MQTT event message, plus its rule and picture URLs."""

    camera: str
    seq: int = Field(description="Frame number within the burst, from 1.")
    ok: bool
    path: str | None = Field(description="File under the storage root; null for a failure.")
    bytes: int
    latency_ms: float = Field(description="Fetch time.")
    trigger_to_image_ms: float = Field(
        description="Delay from the trigger to the image (negative: buffered before it)."
    )
    image_time: str | None = Field(description="The device's timestamp, else the arrival time.")
    offset_ms: int | None = Field(
        None, description="The moment the rule asked for, in ms after the trigger."
    )
    via: str | None = Field(
        None, description="snapshot, stream (the camera's buffer) or fallback (stream down)."
    )
    width: int | None
    height: int | None
    stale: bool = Field(description="The device sent the same image as for the previous frame.")
    missing_fields: list[str] = Field(
        description='Values the file name uses that the event lacked (written as "unknown").'
    )
    error: FrameError | None
    rule: str = Field(description="The rule (`snap` for a single camera's snap).")
    image_url: str | None = Field(description="Null for a failed frame.")
    thumb_url: str | None = Field(description="Null for a failed frame.")


class DetectedObject(Document):
    """One object found on a picture (docs/detection.md)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    class_: str = Field(alias="class", description="The class, as the model's label file names it.")
    score: float = Field(description="0-1.")
    box: list[int] = Field(description="[left, top, right, bottom] in the picture's pixels.")


class PictureDetections(Document):
    """What object detection made of one frame's picture."""

    rule: str
    camera: str
    seq: int
    status: Literal["analysed", "not_analysed", "failed"] = Field(
        description="not_analysed: the detector was behind or stopping; failed: see error."
    )
    objects: list[DetectedObject]
    error: str | None


class EventDocument(Document):
    """An event with every frame of every rule it fired."""

    event_id: str
    time: str = Field(description="When the trigger fired, ISO 8601 with the site's offset.")
    trigger: str = Field(
        description="The trigger's name; `dashboard` for snaps, `command` for MQTT."
    )
    values: dict[str, Scalar]
    rules: list[str]
    ok: bool | None = Field(description="Every frame saved; null before the first frame.")
    captures: list[Capture]
    detections: list[PictureDetections] = Field(
        description="Object detection's outcome per picture, once it has run (docs/detection.md)."
    )


class EventsPage(Document):
    """GET /api/events: a page of events, newest first."""

    events: list[EventDocument]
    limit: int
    offset: int
    more: bool = Field(description="Whether an older page exists.")


class SnapRequest(Document):
    """POST /api/snap: either `camera` or `rule` (with optional `values`)."""

    camera: str | None = Field(None, description="Take one picture of this camera now.")
    rule: str | None = Field(
        None, description="Fire this rule on all its cameras, ignoring condition and cooldown."
    )
    values: dict[str, Any] = Field(
        default_factory=dict,
        description="Values for the rule's file name; nested objects become dotted names.",
    )


class SnapAccepted(Document):
    """The snap is queued; its outcome arrives on the event stream and in the journal."""

    event_id: str
    camera: str | None = Field(None, description="Present for a camera snap.")
    rule: str | None = Field(None, description="Present for a rule snap.")


class TriggerAccepted(Document):
    """The event was handed to the rules."""

    event_id: str
    trigger: str


class CaptureMessage(Capture):
    """Stream message `capture`: one frame finished."""

    event_id: str
    time: str = Field(description="When the outcome was known.")
    line: str | None
    latest: LatestPicture | None = Field(description="The camera's new latest picture, or null.")


class FiringMessage(Document):
    """Stream message `firing`: a rule firing finished; the MQTT event message with URLs."""

    schema_: str = Field(alias="schema", description="`event-capture/event/1`.")
    event_id: str
    time: str
    site: str
    rule: str
    trigger: str
    manual: bool = Field(description="Fired by a snap request, not by its trigger.")
    interrupted: bool = Field(description="Finished at start-up after a power cut or a kill.")
    values: dict[str, Scalar]
    ok: bool
    captures: list[Capture]


class DetectionsMessage(Document):
    """Stream message `detections`: a firing's pictures were analysed, their rows committed."""

    event_id: str
    rule: str = Field(description="The firing's rule; read the objects with GET /api/events/<id>.")
