"""Runs one event through the real pipeline outside the service, for `capture fire`.

It builds the same engine, cameras, storage and journal as the service, so a
technician's test shot is named, journaled and announced exactly like a real
one, then tears everything down. Its MQTT client id gets a `-fire` suffix so
it never takes over the running service's session, and it does not replay
the service's outbox.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

from capture.cameras import build_camera
from capture.config.schema import RuleFile
from capture.engine import Engine, FiringReport
from capture.events import Event
from capture.journal import Journal
from capture.publish import Publisher
from capture.service import JOURNAL_NAME
from capture.storage import Storage

CONNECT_WAIT_S = 3.0


class OneShot:
    """A short-lived engine for explicit events; use as a context manager."""

    def __init__(self, rules: RuleFile) -> None:
        self.rules = rules
        self.storage = Storage(rules.storage)
        self.journal = Journal(Path(rules.storage.root) / JOURNAL_NAME)
        self.cameras = {name: build_camera(name, config) for name, config in rules.cameras.items()}
        self.publisher: Publisher | None = None
        if rules.mqtt.enabled:
            client_id = rules.mqtt.client_id_for(rules.service.site) + "-fire"
            self.publisher = Publisher(
                rules.mqtt.model_copy(update={"client_id": client_id}),
                rules.service.site,
                rules.service.timezone,
                self.journal,
                replay_outbox=False,
            )
            self.publisher.start()
            self.publisher.wait_connected(CONNECT_WAIT_S)
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
