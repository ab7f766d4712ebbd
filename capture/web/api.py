"""The JSON API's documents and commands, independent of HTTP (docs/web.md is their reference).

Frames use `capture.publish.capture_json` and firings `event_message`, so a
picture looks the same in an MQTT event and in the API, plus the URLs of its
image and thumbnail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from capture.clock import milliseconds, site_iso
from capture.errors import CaptureError
from capture.events import CaptureResult, Event, FiringReport, Value
from capture.journal import CameraStats
from capture.publish import capture_json, event_message
from capture.rules import RuleDisabled
from capture.triggers.base import PayloadError, TriggerError
from capture.triggers.http import HttpTrigger
from capture.triggers.values import PayloadFormatError
from capture.upload.queue import backlog_of
from capture.web.live import LiveFeed
from capture.web.media import Media
from capture.web.queries import EventEntry, EventFilter, EventQueries
from capture.web.view import ServiceView, http_trigger

log = logging.getLogger(__name__)

STATS_PERIOD = timedelta(hours=1)
"""Success rate and median latency are over this period, as the dashboard shows them."""
SNAP_TRIGGER = "dashboard"
"""Trigger name of the events a snap request creates (journal, file names, MQTT)."""
DEFAULT_PAGE = 24
MAX_PAGE = 200
MAX_OFFSET = 1_000_000


class ApiError(CaptureError):
    """A request the API refuses; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Api:
    """Builds the API's JSON documents from the running service and carries out its commands."""

    def __init__(self, service: ServiceView, media: Media, queries: EventQueries) -> None:
        self.service = service
        self.media = media
        self.queries = queries
        self.feed = LiveFeed(self.capture_message, self.firing_message)

    @property
    def zone(self) -> ZoneInfo:
        """The site's time zone; times in documents carry its offset."""
        return ZoneInfo(self.service.rules.service.timezone)

    # ------------------------------------------------------------------ documents

    def cameras(self) -> dict[str, Any]:
        """GET /api/cameras: every camera by production line, with health and latest picture."""
        rules = self.service.rules
        now = datetime.now(UTC)
        stats = self.queries.camera_stats(now - STATS_PERIOD)
        lines: dict[str, list[dict[str, Any]]] = {}
        for name in rules.cameras:
            lines.setdefault(rules.camera_line(name), []).append(self.camera(name, stats.get(name)))
        return {
            "site": rules.service.site,
            "time": site_iso(now, self.zone),
            "timezone": rules.service.timezone,
            "stats_period_s": int(STATS_PERIOD.total_seconds()),
            "lines": [{"name": line, "cameras": cameras} for line, cameras in lines.items()],
            "rules": [
                {
                    "name": rule.name,
                    "cameras": rules.rule_cameras(rule),
                    "enabled": rule.enabled,
                    "description": rule.description,
                }
                for rule in rules.rules
            ],
            "triggers": [self.trigger_health(name) for name in rules.triggers],
            "upload": self.upload(),
        }

    def trigger_health(self, name: str) -> dict[str, Any]:
        """A trigger's kind, state and counters, for the dashboard's trigger list."""
        config = self.service.rules.triggers[name]
        trigger = self.service.triggers.get(name)
        failure = self.service.trigger_failures.get(name)
        stats = trigger.stats() if trigger is not None else None
        if stats is None:
            status = "failed" if failure else "waiting"
        else:
            status = "waiting" if stats.connected is False else "ok"
        last_event = stats.last_event if stats else None
        return {
            "name": name,
            "type": config.type,
            "description": config.description,
            "status": status,
            "error": failure or (stats.last_error if stats else None),
            "emitted": stats.emitted if stats else 0,
            "rejected": stats.rejected if stats else 0,
            "ignored": stats.ignored if stats else 0,
            "connected": stats.connected if stats else None,
            "last_event": site_iso(last_event, self.zone) if last_event else None,
        }

    def upload(self) -> dict[str, Any] | None:
        """The object store's backlog ([upload]); None when upload is off."""
        config = self.service.rules.upload
        if not config.enabled:
            return None
        backlog = backlog_of(self.queries)
        return {
            "bucket": config.bucket,
            "waiting": backlog.waiting,
            "waiting_bytes": backlog.waiting_bytes,
            "oldest": site_iso(backlog.oldest, self.zone) if backlog.oldest else None,
        }

    def camera(self, name: str, stats: CameraStats | None) -> dict[str, Any]:
        """One camera's tile: latest picture, status badge, last error, figures."""
        config = self.service.rules.cameras[name]
        return {
            "name": name,
            "line": self.service.rules.camera_line(name),
            "vendor": config.vendor,
            "description": config.description,
            "latest": self.latest(name),
            **self._health(name, stats),
            "stream": self._stream(name),
            "stats": {
                "captures": stats.captures if stats else 0,
                "ok": stats.ok if stats else 0,
                "failed": stats.failed if stats else 0,
                "success_rate": round(stats.success_rate, 4)
                if stats and stats.success_rate is not None
                else None,
                "median_latency_ms": milliseconds(stats.median_latency_ms if stats else None),
                "median_trigger_to_image_ms": milliseconds(
                    stats.median_trigger_to_image_ms if stats else None
                ),
            },
        }

    def _stream(self, name: str) -> dict[str, Any] | None:
        """A stream-backed camera's stream figures (the bandwidth it takes), else None."""
        camera = self.service.cameras.get(name)
        state = camera.state().stream if camera is not None else None
        if state is None:
            return None
        return {
            "source": state.source,
            "up": state.up,
            "fps": state.fps,
            "kbit_s": state.kbit_s,
            "buffered_s": state.buffered_s,
            "buffered_kib": state.buffered_kib,
            "reconnects": state.reconnects,
            "last_error": state.last_error,
            "down_since": site_iso(state.down_since, self.zone),
        }

    def latest(self, camera: str) -> dict[str, Any] | None:
        """The camera's newest picture: time and versioned URLs, or None."""
        media = self.media.latest(camera)
        if media is None:
            return None
        return {
            "time": site_iso(datetime.fromtimestamp(media.mtime_ns / 1e9, UTC), self.zone),
            "image_url": self.media.image_url(media.relative, media.version),
            "thumb_url": self.media.thumb_url(media.relative, media.version),
        }

    def _health(self, name: str, stats: CameraStats | None) -> dict[str, Any]:
        """Status after the camera's newest outcome, seen live or in the journal's last hour.

        The engine journals a frame a moment before it tells the live feed, so
        a request in between finds the journal newer: outcomes are compared by
        their events' times, and on a tie the live feed (which knows the order
        frames finished in) wins.
        """
        outcomes: list[_Outcome] = []
        if (last := self.feed.last(name)) is not None:
            error = None
            if not last.result.ok:
                error = {
                    "type": last.result.error_type,
                    "message": last.result.error_message,
                    "time": site_iso(last.time, self.zone),
                }
            outcomes.append(_Outcome(last.event_time, 2, error))
        if stats is not None and stats.last_error_time is not None:
            error = {
                "type": stats.last_error_type,
                "message": stats.last_error_message,
                "time": site_iso(stats.last_error_time, self.zone),
            }
            outcomes.append(_Outcome(_to_millisecond(stats.last_error_time), 1, error))
        if stats is not None and stats.last_ok_time is not None:
            outcomes.append(_Outcome(_to_millisecond(stats.last_ok_time), 0, None))
        if not outcomes:
            return {"status": "unknown", "last_error": None}
        newest = max(outcomes, key=lambda outcome: (outcome.event_time, outcome.rank))
        errors = [outcome for outcome in outcomes if outcome.error is not None]
        last_error = max(errors, key=lambda o: (o.event_time, o.rank)).error if errors else None
        return {"status": "ok" if newest.error is None else "error", "last_error": last_error}

    def events(
        self,
        *,
        line: str | None = None,
        camera: str | None = None,
        rule: str | None = None,
        failed: bool = False,
        detected: str | None = None,
        limit: int = DEFAULT_PAGE,
        offset: int = 0,
    ) -> dict[str, Any]:
        """GET /api/events: the gallery's page of events, newest first (bounds checked by the route)."""
        rules = self.service.rules
        cameras: list[str] | None = None
        if line:
            cameras = [name for name in rules.cameras if rules.camera_line(name) == line]
        if camera:
            cameras = [camera] if cameras is None or camera in cameras else []
        where = EventFilter(
            cameras=cameras, rule=rule or None, failed_only=failed, detected=detected or None
        )
        # One more than asked tells whether a next page exists without a COUNT(*).
        entries = self.queries.events(where, limit + 1, offset)
        return {
            "events": [self.event_json(entry) for entry in entries[:limit]],
            "limit": limit,
            "offset": offset,
            "more": len(entries) > limit,
        }

    def event(self, event_id: str) -> dict[str, Any]:
        """GET /api/events/<id>: one event, every frame of every rule, the trigger's values."""
        entry = self.queries.entry(event_id) if len(event_id) <= 64 else None
        if entry is None:
            raise ApiError(404, f"no event {event_id[:64]!r} in the journal")
        return self.event_json(entry)

    def event_json(self, entry: EventEntry) -> dict[str, Any]:
        """An event with its frames as the API shows it."""
        return {
            "event_id": entry.id,
            "time": site_iso(entry.time, self.zone),
            "trigger": entry.trigger,
            "values": entry.values,
            "rules": list(entry.rules),
            "ok": all(frame.ok for frame in entry.frames) if entry.frames else None,
            "captures": [self.frame_json(frame) for frame in entry.frames],
            "detections": entry.detections,
        }

    def frame_json(self, result: CaptureResult) -> dict[str, Any]:
        """A frame as in MQTT event messages, plus its rule and the URLs of its pictures."""
        entry = capture_json(result, self.zone)
        entry["rule"] = result.rule
        entry["image_url"], entry["thumb_url"] = self._urls(result.path)
        return entry

    def _urls(self, path: str | None) -> tuple[str | None, str | None]:
        """A frame's picture and thumbnail URLs, versioned so browsers may keep them."""
        if not path:
            return None, None
        version = self.media.version(path)
        return self.media.image_url(path, version), self.media.thumb_url(path, version)

    def capture_message(self, result: CaptureResult) -> dict[str, Any]:
        """The stream's `capture` message: a frame, its event and the camera's new latest picture."""
        message = self.frame_json(result)
        message["event_id"] = result.event_id
        message["time"] = site_iso(datetime.now(UTC), self.zone)
        rules = self.service.rules
        message["line"] = (
            rules.camera_line(result.camera) if result.camera in rules.cameras else None
        )
        message["latest"] = self.latest(result.camera) if result.ok else None
        return message

    def firing_message(self, report: FiringReport) -> dict[str, Any]:
        """The stream's `firing` message: the MQTT event message with picture URLs."""
        message = event_message(report, self.zone)
        for capture, result in zip(message["captures"], report.results, strict=True):
            capture["rule"] = result.rule
            capture["image_url"], capture["thumb_url"] = self._urls(result.path)
        return message

    # ------------------------------------------------------------------ commands

    def snap(self, body: object) -> dict[str, Any]:
        """POST /api/snap: `{"camera": NAME}` or `{"rule": NAME, "values": {...}}`."""
        if not isinstance(body, dict):
            raise ApiError(400, 'give {"camera": NAME} or {"rule": NAME, "values": {...}}')
        values = _values(body.get("values", {}))
        engine = self.service.engine
        event = Event.now(SNAP_TRIGGER, values)
        camera, rule = body.get("camera"), body.get("rule")
        if camera is not None and rule is not None:
            # Silently picking one would take a picture nobody asked for.
            raise ApiError(400, 'give either "camera" or "rule", not both')
        if isinstance(camera, str):
            if camera not in self.service.rules.cameras:
                raise ApiError(404, f"no camera {camera[:64]!r} in the rule file")
            if not engine.snap_camera(camera, event):
                raise ApiError(503, "the service is stopping; try again after it restarted")
            log.info("snap requested camera=%s event=%s", camera, event.id)
            return {"event_id": event.id, "camera": camera}
        if isinstance(rule, str):
            if rule not in {config.name for config in self.service.rules.rules}:
                raise ApiError(404, f"no rule {rule[:64]!r} in the rule file")
            try:
                fired = engine.fire_rule(rule, event)
            except RuleDisabled as exc:
                raise ApiError(400, str(exc)) from exc
            if not fired:
                raise ApiError(503, "the service is stopping; try again after it restarted")
            log.info("rule fired on request rule=%s event=%s", rule, event.id)
            return {"event_id": event.id, "rule": rule}
        raise ApiError(400, 'give {"camera": NAME} or {"rule": NAME, "values": {...}}')

    def trigger(self, name: str, body: object, client: str) -> dict[str, Any]:
        """POST /api/trigger/<name>: fire an `http` trigger with the posted values.

        The trigger validates the body itself, so rejected bodies count in its stats.
        """
        trigger = http_trigger(self.service, name)
        if trigger is None:
            raise ApiError(404, f"no running http trigger {name[:64]!r}")
        try:
            event = trigger.fire(body, client)  # type: ignore[arg-type]  # validated inside
        except PayloadError as exc:
            raise ApiError(400, str(exc)) from exc
        except TriggerError as exc:
            raise ApiError(503, str(exc)) from exc
        return {"event_id": event.id, "trigger": name}


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One candidate for a camera's newest outcome; `rank` breaks ties (live, error, ok)."""

    event_time: datetime
    rank: int
    error: dict[str, Any] | None


def _to_millisecond(moment: datetime) -> datetime:
    """Journal times to the millisecond, the precision the live feed's event times are compared at."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _values(raw: object) -> dict[str, Value]:
    try:
        return HttpTrigger.validate(raw)
    except PayloadFormatError as exc:
        raise ApiError(400, f"values: {exc}") from exc
