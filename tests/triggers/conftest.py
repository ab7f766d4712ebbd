"""Fixtures for trigger tests: an event collector, and triggers that are always stopped."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from capture.events import Event
from capture.triggers import Trigger


class Collector:
    """The engine's side of `emit`: thread-safe, non-blocking, remembers every event."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> list[Event]:
        """A copy of the events so far."""
        with self._lock:
            return list(self._events)

    def values(self, key: str) -> list[object]:
        """One value of every event so far."""
        return [event.values.get(key) for event in self.events]

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)


@pytest.fixture
def events() -> Collector:
    """Collects what triggers emit."""
    return Collector()


@pytest.fixture
def start(events: Collector) -> Iterator[Callable[[Trigger], Trigger]]:
    """Start a trigger emitting into `events`; every started trigger is stopped after the test."""
    started: list[Trigger] = []

    def starter(trigger: Trigger) -> Trigger:
        trigger.start(events)
        started.append(trigger)
        return trigger

    yield starter
    for trigger in reversed(started):
        trigger.stop()
