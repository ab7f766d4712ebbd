"""Runs one event through the real pipeline outside the service, for `capture fire`.

It builds the same engine, cameras, storage and journal as the service, so a
technician's test shot is named, journaled and announced exactly like a real
one, then tears everything down. It publishes the event messages only: no
`online`/`offline` status and no last will (the running service's retained
`online` stays true), no command subscription, and a client id of its own,
`<service's id>-fire-<pid>`, since a second connection with the service's id
would make the broker drop the service's. It does not replay the service's
outbox.

Its event messages go through the same outbox as the service's, committed
before they are sent. When the broker cannot be reached (or does not
acknowledge in time), they stay there: the running service on the same
storage root sends them when it next connects to the broker, or at its next
start. `undelivered` says how many, for the CLI to tell the technician.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType

from capture.cameras import build_camera
from capture.config.schema import MqttConfig, RuleFile
from capture.engine import Engine
from capture.events import Event, FiringReport
from capture.journal import Journal
from capture.publish import Publisher
from capture.sanitize import JOURNAL_NAME
from capture.storage import Storage
from capture.upload.queue import UploadQueue, key_namer

CONNECT_WAIT_S = 3.0
#: The longest client id the service itself uses ([mqtt].client_id's own limit).
MAX_CLIENT_ID = 128


def fire_client_id(config: MqttConfig, site: str) -> str:
    """The service's client id with `-fire-<pid>`, shortened to stay distinct from it.

    `client_id_for` cuts ids at 128 characters, so a suffix appended to a
    128-character id and cut again would give back the service's own id.
    """
    suffix = f"-fire-{os.getpid()}"
    return config.client_id_for(site)[: MAX_CLIENT_ID - len(suffix)] + suffix


class OneShot:
    """A short-lived engine for explicit events; use as a context manager."""

    def __init__(self, rules: RuleFile) -> None:
        self.rules = rules
        self.storage = Storage(rules.storage)
        self.journal = Journal(
            Path(rules.storage.root) / JOURNAL_NAME, sync_firings=rules.storage.fsync
        )
        if rules.upload.enabled:
            # Queued in the journal only: the running service uploads them (capture.upload).
            self.journal.with_result = UploadQueue(self.journal).hook(key_namer(rules))
        self.cameras = {name: build_camera(name, config) for name, config in rules.cameras.items()}
        self.publisher: Publisher | None = None
        self.broker_reachable = True
        #: Event messages the broker had not acknowledged when `close` gave up on it.
        self.undelivered = 0
        if rules.mqtt.enabled:
            self.publisher = Publisher(
                rules.mqtt,
                rules.service.site,
                rules.service.timezone,
                self.journal,
                replay_outbox=False,
                announce_status=False,
                client_id=fire_client_id(rules.mqtt, rules.service.site),
            )
            self.publisher.start()
            self.broker_reachable = self.publisher.wait_connected(CONNECT_WAIT_S)
        self.engine = Engine(rules, self.cameras, self.storage, self.journal, self.publisher)
        self._reports: list[FiringReport] = []
        self._lock = threading.Lock()
        self.engine.add_report_listener(self._collect)

    def _collect(self, report: FiringReport) -> None:
        with self._lock:
            self._reports.append(report)

    def fire(self, event: Event, timeout: float = 120.0) -> list[FiringReport]:
        """Submit `event`, wait until its captures are done, return its firings."""
        self.engine.submit(event)
        self.engine.wait_idle(timeout)
        with self._lock:
            return [report for report in self._reports if report.event.id == event.id]

    def close(self) -> None:
        """Stop the engine, flush MQTT, close cameras and the journal."""
        self.engine.stop(self.rules.service.shutdown_grace_s)
        if self.publisher is not None:
            self.publisher.stop()
            self.undelivered = self.publisher.unacknowledged
        for camera in self.cameras.values():
            camera.close()
        self.journal.close()
        self.storage.close()

    def __enter__(self) -> OneShot:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()
