"""Live updates: capture results, finished firings and their detections fanned out to SSE clients.

The engine calls `on_result` and `on_firing` from its worker threads, so
they only format a message and drop it into each client's bounded queue;
a client too slow to keep up is disconnected (its browser reconnects and
reloads the state) rather than ever slowing a capture down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from capture.events import CaptureResult, FiringReport

log = logging.getLogger(__name__)

MAX_CLIENTS = 32
"""Concurrent event-stream clients; each holds a connection of the web server's 64."""
CLIENT_QUEUE = 256
"""Messages buffered per client before it counts as too slow."""


@dataclass(frozen=True, slots=True)
class LastResult:
    """A camera's most recent outcome seen since the service started."""

    result: CaptureResult
    time: datetime

    @property
    def event_time(self) -> datetime:
        """When the outcome's event happened (to the millisecond, as the journal keeps it).

        A result without its event's time counts as newest: the live feed is then trusted.
        """
        stamp = self.result.event_time
        if stamp is None:
            return datetime.max.replace(tzinfo=UTC)
        return stamp.astimezone(UTC).replace(microsecond=stamp.microsecond // 1000 * 1000)


class Subscription:
    """One client's queue of encoded SSE messages; None in the queue ends the stream.

    The engine's threads put, the web server's event loop reads: a put wakes
    the reader through its loop (`call_soon_threadsafe`), so a waiting client
    holds no thread.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.queue: queue.Queue[bytes | None] = queue.Queue(CLIENT_QUEUE)
        self._loop = loop
        self._ready = asyncio.Event()

    def put_nowait(self, message: bytes | None) -> None:
        """Queue a message (`queue.Full` when the client is too slow) and wake the reader."""
        self.queue.put_nowait(message)
        self._wake()

    def _wake(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody reads any more
                self._loop.call_soon_threadsafe(self._ready.set)

    async def next(self, timeout: float) -> bytes | None:
        """The next message; b"" when none came within `timeout`, None when the stream ends."""
        while True:
            with contextlib.suppress(queue.Empty):
                return self.queue.get_nowait()
            self._ready.clear()
            if not self.queue.empty():
                continue  # put between the two looks: its wake-up may predate the clear
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return b""


def sse_message(kind: str, data: dict[str, Any]) -> bytes:
    """One Server-Sent Events message (JSON has no raw newlines, so one data line)."""
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class LiveFeed:
    """Fans engine results out to stream clients and remembers each camera's last outcome."""

    def __init__(
        self,
        capture_message: Callable[[CaptureResult], dict[str, Any]],
        firing_message: Callable[[FiringReport], dict[str, Any]],
    ) -> None:
        self._capture_message = capture_message
        self._firing_message = firing_message
        self._clients: set[Subscription] = set()
        self._last: dict[str, LastResult] = {}
        self._lock = threading.Lock()
        self._closed = False

    def last(self, camera: str) -> LastResult | None:
        """The camera's latest outcome since start, or None."""
        return self._last.get(camera)

    def on_result(self, result: CaptureResult) -> None:
        """Engine listener: one frame finished (saved or failed)."""
        self._last[result.camera] = LastResult(result, datetime.now(UTC))
        if self._clients:
            self._publish(sse_message("capture", self._capture_message(result)))

    def on_firing(self, report: FiringReport) -> None:
        """Engine report listener: every frame of a rule firing finished."""
        if self._clients:
            self._publish(sse_message("firing", self._firing_message(report)))

    def on_detections(self, event_id: str, rule: str) -> None:
        """Detection listener: a firing's pictures were analysed and journaled."""
        if self._clients:
            self._publish(sse_message("detections", {"event_id": event_id, "rule": rule}))

    @property
    def watched(self) -> bool:
        """Whether any client is connected (a message for nobody is not worth preparing)."""
        return bool(self._clients)

    def subscribe(self, loop: asyncio.AbstractEventLoop | None = None) -> Subscription | None:
        """A new client's subscription, read on `loop`; None when MAX_CLIENTS are connected or closing."""
        with self._lock:
            if self._closed or len(self._clients) >= MAX_CLIENTS:
                return None
            subscription = Subscription(loop)
            self._clients.add(subscription)
            return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a client whose connection ended."""
        with self._lock:
            self._clients.discard(subscription)

    def close(self) -> None:
        """End every stream (server stopping)."""
        with self._lock:
            self._closed = True
            clients, self._clients = self._clients, set()
        for client in clients:
            self._end(client)

    def _publish(self, message: bytes) -> None:
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            try:
                client.put_nowait(message)
            except queue.Full:
                log.warning("event stream client too slow, disconnecting it")
                self.unsubscribe(client)
                self._end(client)

    @staticmethod
    def _end(client: Subscription) -> None:
        # Make room for the end marker: a full queue belongs to a client being dropped anyway.
        while True:
            try:
                client.put_nowait(None)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    client.queue.get_nowait()
