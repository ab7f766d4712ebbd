"""What the web needs from the running service, as protocols: the web never imports the service.

The service passes itself (`WebServer(service)`); anything with these few
members will do, which keeps the import graph one-way (service -> web) and
tells a reader exactly what the dashboard can see and do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, cast

from capture.cameras import Camera
from capture.config.schema import RuleFile
from capture.events import CaptureResult, Event, FiringReport
from capture.triggers.base import Trigger

HTTP_KIND = "http"
"""The trigger kind the web serves at POST /api/trigger/NAME: its name in
`capture.triggers.base.TRIGGER_KINDS` and in the rule file (`type = "http"`)."""


class EngineView(Protocol):
    """The engine's commands and notifications the dashboard uses."""

    def snap_camera(self, camera: str, event: Event) -> bool:
        """Queue one picture of `camera`; False for an unknown camera or while stopping."""
        ...

    def fire_rule(self, rule_name: str, event: Event) -> bool:
        """Fire a rule now; False for an unknown rule or while stopping."""
        ...

    def add_listener(self, listener: Callable[[CaptureResult], None]) -> None:
        """Be told of every frame's outcome."""
        ...

    def add_report_listener(self, listener: Callable[[FiringReport], None]) -> None:
        """Be told of every finished rule firing."""
        ...


class JournalView(Protocol):
    """Where the journal lives: the web reads it on its own connection."""

    @property
    def path(self) -> Path:
        """The SQLite file."""
        ...

    def when_committed(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on another thread) once what the service queued is committed."""
        ...


class DetectionView(Protocol):
    """Object detection, which tells the event pages when a firing's pictures were analysed."""

    def add_listener(self, listener: Callable[[FiringReport, Any], None]) -> None:
        """Be told of each analysed firing (with its analyses, which the web reads from the journal)."""
        ...


class PostedTrigger(Protocol):
    """A running trigger of the http kind: fired by a posted JSON object."""

    def fire(self, values: Mapping[str, object], client: str) -> Event:
        """Validate and emit; `PayloadError` (400) or `TriggerError` (503) when it cannot."""
        ...


class ServiceView(Protocol):
    """The running service as the web sees it."""

    @property
    def rules(self) -> RuleFile:
        """The rule file in force (it changes on reload)."""
        ...

    @property
    def engine(self) -> EngineView:
        """Takes pictures and tells of their outcomes."""
        ...

    @property
    def journal(self) -> JournalView:
        """The journal the gallery reads."""
        ...

    @property
    def triggers(self) -> Mapping[str, Trigger]:
        """The running triggers by name."""
        ...

    @property
    def cameras(self) -> Mapping[str, Camera]:
        """The running cameras by name (their state: a stream-backed camera's stream)."""
        ...

    @property
    def detection(self) -> DetectionView | None:
        """Object detection, when [detection] runs."""
        ...

    @property
    def trigger_failures(self) -> Mapping[str, str]:
        """Why each trigger of the rule file that did not start did not, by name."""
        ...


def http_trigger_names(view: ServiceView) -> list[str]:
    """The http triggers of the rule file in force that are running, sorted."""
    triggers = view.triggers
    return sorted(
        name
        for name, config in view.rules.triggers.items()
        if config.type == HTTP_KIND and name in triggers
    )


def http_trigger(view: ServiceView, name: str) -> PostedTrigger | None:
    """The running http trigger `name`, found by its kind in the rule file, or None."""
    config = view.rules.triggers.get(name)
    trigger = view.triggers.get(name)
    if config is None or config.type != HTTP_KIND or trigger is None:
        return None
    # A trigger built for the http kind (TRIGGER_KINDS["http"]) takes posts.
    return cast(PostedTrigger, trigger)
