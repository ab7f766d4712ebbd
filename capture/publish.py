"""MQTT out: one event message per rule firing, retained status, snap commands.

Nothing is lost while the broker is away: every message goes through the
journal's outbox and is deleted there only when the broker acknowledged it
(QoS 1). While disconnected, paho keeps unacknowledged messages in memory and
sends them in order on reconnect; the outbox covers a restart or a crash in
between, whose pending messages are sent first, in order, at the next start.
Delivery is at least once: a consumer deduplicates by `event_id` + `rule`.

Topics (prefix = [mqtt].topic_prefix):
- `{prefix}/events/{rule}`: the event message, schema in docs/integration.md;
- `{prefix}/status`: retained `online`; the broker publishes the retained last
  will `offline` if the service vanishes, the service publishes it on stop;
- `{prefix}/cmd/snap`: requests, `{"camera": "..."}` or `{"rule": "...", "values": {...}}`.

A one-shot publisher (`capture fire`: `announce_status=False`, no command
handler) publishes events only: no status, no last will, no subscription, so
the running service's retained `online` stays as it is.

Why ~460 lines: the one thread that owns the outbox, paho's callbacks and the
back-off for a refusing disk share the in-flight map and its order; the
message format is in docs/integration.md and the outbox's rows in
capture.outbox.
"""

from __future__ import annotations

import json
import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from capture.clock import site_iso
from capture.config.schema import MqttConfig
from capture.events import CaptureResult, FiringReport
from capture.journal import Journal, JournalError
from capture.mqtt_close import close_client
from capture.outbox import Outbox

log = logging.getLogger(__name__)

#: Largest command payload accepted on {prefix}/cmd/snap.
MAX_COMMAND_BYTES = 16 * 1024
SCHEMA = "event-capture/event/1"
#: Most messages written to the outbox in one commit.
OUTBOX_BATCH = 500
#: Event messages handed to paho and not acknowledged yet, at most; the rest wait in the
#: outbox, in order, and follow as acknowledgements come. paho numbers messages 1-65535 and
#: reuses a number still in use when it wraps (a long outage at 20 events/s), which would
#: delete a message never sent as acknowledged; it would also hold every payload in memory.
MAX_HANDED = 1000
#: Back-off between attempts to write the outbox while the journal refuses it (disk full).
OUTBOX_RETRY_MIN_S = 0.1
OUTBOX_RETRY_MAX_S = 5.0


def capture_json(result: CaptureResult, zone: ZoneInfo) -> dict[str, Any]:
    """One frame's outcome as it appears in event messages and the web API."""
    entry: dict[str, Any] = {
        "camera": result.camera,
        "seq": result.seq,
        "ok": result.ok,
        "path": result.path,
        "bytes": result.bytes,
        "latency_ms": round(result.latency_ms, 3),
        "trigger_to_image_ms": round(result.trigger_to_image_ms, 3),
        "image_time": site_iso(result.image_time, zone),
        "width": result.width,
        "height": result.height,
        "stale": result.stale,
        "missing_fields": list(result.missing_fields),
        "offset_ms": result.offset_ms,
        "via": result.via,
        "error": None,
    }
    if not result.ok:
        entry["error"] = {"type": result.error_type, "message": result.error_message}
    return entry


def firing_head(report: FiringReport, zone: ZoneInfo, schema: str) -> dict[str, Any]:
    """The fields every message about a rule firing starts with: which firing, where, when."""
    return {
        "schema": schema,
        "event_id": report.event.id,
        "time": site_iso(report.event.wall_time, zone),
        "site": report.site,
        "rule": report.rule,
    }


def event_message(report: FiringReport, zone: ZoneInfo) -> dict[str, Any]:
    """The JSON document published on {prefix}/events/{rule}."""
    return {
        **firing_head(report, zone, SCHEMA),
        "trigger": report.event.trigger,
        "manual": report.manual,
        "interrupted": report.interrupted,
        "values": dict(report.event.values),
        "ok": report.ok,
        "captures": [capture_json(result, zone) for result in report.results],
    }


class Companion(Protocol):
    """Something else the service keeps on the broker over this connection (capture.homeassistant).

    `subscriptions`, `connected`, `disconnected` and `message` run on paho's
    thread and must not block; `firing` sees every finished firing.
    """

    def subscriptions(self) -> list[str]: ...

    def connected(self, send: Callable[[str, bytes], bool]) -> None: ...

    def disconnected(self) -> None: ...

    def message(self, topic: str, payload: bytes) -> None: ...

    def firing(self, report: FiringReport) -> None: ...


class Publisher:
    """Owns the service's MQTT connection for everything it publishes and its commands.

    `announce_status=False` makes a one-shot publisher for `capture fire`: no
    retained status, no last will. Commands are subscribed only when
    `on_command` is given. `client_id` overrides `[mqtt].client_id`; a second
    connection with the service's own id would make the broker drop the
    service's connection.
    """

    def __init__(
        self,
        config: MqttConfig,
        site: str,
        timezone: str,
        journal: Journal,
        on_command: Callable[[Mapping[str, Any]], object] | None = None,
        *,
        replay_outbox: bool = True,
        announce_status: bool = True,
        client_id: str | None = None,
        companion: Companion | None = None,
    ) -> None:
        self.config = config
        self.prefix = config.topic_prefix
        self.status_topic = f"{self.prefix}/status"
        self.command_topic = f"{self.prefix}/cmd/snap"
        self.client_id = client_id or config.client_id_for(site)
        self._zone = ZoneInfo(timezone)
        self._journal = journal
        self.outbox = Outbox(journal)
        self._on_command = on_command
        self._replay_outbox = replay_outbox
        self._announce_status = announce_status
        self._companion = companion
        self._outgoing: queue.Queue[_Outgoing | None] = queue.Queue()  # None stops the thread
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._in_flight: dict[int, int] = {}  # paho mid -> outbox id; this thread's only
        #: Rows committed but not handed to paho (MAX_HANDED reached, or paho refused):
        #: until they are, newer rows wait behind them in the outbox. This thread's only.
        self._held_back = False
        self._until_connected = False  # held back because paho could not send: wait for it
        self._reconnected = threading.Event()  # look for rows another process left
        self._committed_elsewhere = threading.Event()  # rows another module committed (send_outbox)
        self._connected = threading.Event()
        self._subscribed = threading.Event()  # the broker confirmed the command subscription
        self._command_mid: int | None = None  # the command subscription's message id
        self._stopping = threading.Event()
        self.published = 0
        self.rejected_commands = 0
        self.outbox_error: str | None = None  # set while the outbox cannot be written
        self._client = self._make_client(config)
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)

    # ------------------------------------------------------------------ lifecycle

    def _make_client(self, config: MqttConfig) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=True,
        )
        if config.username:
            password = config.password.get_secret_value() if config.password else None
            client.username_pw_set(config.username, password)
        if config.tls:
            client.tls_set(
                ca_certs=str(config.ca_file) if config.ca_file else None,
                cert_reqs=ssl.CERT_REQUIRED if config.verify else ssl.CERT_NONE,
            )
            client.tls_insecure_set(not config.verify)
        if self._announce_status:
            client.will_set(self.status_topic, b"offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(100)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def start(self) -> None:
        """Connect in the background (retrying forever) and start publishing."""
        self._client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        self._client.loop_start()
        self._thread.start()

    def wait_connected(self, timeout: float) -> bool:
        """True once connected to the broker and, when it takes commands, subscribed to them.

        For the demo and tests: a command published after this returns is heard.
        """
        deadline = time.monotonic() + timeout
        if not self._connected.wait(timeout):
            return False
        return self._on_command is None or self._subscribed.wait(deadline - time.monotonic())

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up."""
        return self._connected.is_set()

    @property
    def alive(self) -> bool:
        """Whether the thread keeping the outbox runs (False before start and after stop).

        A full disk does not end it (see `outbox_error`); only a bug would, and
        then restarting the service is the cure: the systemd watchdog asks.
        """
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued, wait for the broker's acknowledgements, publish `offline`, disconnect."""
        deadline = time.monotonic() + timeout
        self._outgoing.put(None)
        self._thread.join(timeout)
        if self._connected.is_set():
            self._wait_acknowledged(deadline)
            if self._announce_status:
                info = self._client.publish(self.status_topic, b"offline", qos=1, retain=True)
                try:
                    info.wait_for_publish(max(0.1, deadline - time.monotonic()))
                except (RuntimeError, ValueError):
                    log.warning("mqtt: could not publish offline status before stopping")
            self._drain_acks()
        self._stopping.set()
        close_client(self._client)

    # ------------------------------------------------------------------ publishing

    def publish_firing(self, report: FiringReport) -> None:
        """Queue the event message of a finished rule firing; never blocks.

        Its outbox row ends the firing's journal row in the same commit.
        """
        payload = json.dumps(event_message(report, self._zone), separators=(",", ":"))
        topic = f"{self.prefix}/events/{report.rule}"
        self._outgoing.put(_Outgoing(topic, payload.encode(), (report.event.id, report.rule)))
        if self._companion is not None:
            self._companion.firing(report)

    def publish(self, topic: str, payload: bytes) -> None:
        """Queue one message (QoS as configured) for the outbox and then the broker; never blocks."""
        self._outgoing.put(_Outgoing(topic, payload))

    def send_outbox(self) -> None:
        """Send, soon, outbox rows another module committed (capture.upload's follow-up messages).

        Also when the publisher is stopping: rows committed just before a stop
        leave with it instead of waiting for the next start.
        """
        self._committed_elsewhere.set()

    def _run(self) -> None:
        """The one thread that writes the outbox, hands messages to paho and forgets acknowledged ones.

        Every message is committed to the outbox first and handed to paho
        right after, in one commit for everything that queued up meanwhile: an
        acknowledgement can then only come for a message that has its row, and
        a crash at any moment leaves each message in the outbox or delivered.
        While the journal refuses the rows (disk full), the messages wait here,
        in order, and go out once it takes them again. After a reconnect, rows
        another process left (`capture fire` while the broker was away) are
        sent too.
        """
        if self._replay_outbox:
            self._send_unowned()
        unwritten: list[_Outgoing] = []
        retry = _Retry()
        while True:
            wait = retry.wait() if unwritten else 0.2
            try:
                batch = [self._outgoing.get(timeout=wait)]
            except queue.Empty:
                batch = []
            while batch and len(batch) < OUTBOX_BATCH:
                try:
                    batch.append(self._outgoing.get_nowait())
                except queue.Empty:
                    break
            stopping = None in batch
            unwritten += [item for item in batch if item is not None]
            if unwritten and (stopping or retry.due()):
                unwritten = self._write_and_send(unwritten, retry, final=stopping)
            self._drain_acks()
            if self._reconnected.is_set() and not stopping:
                self._reconnected.clear()
                self._committed_elsewhere.clear()
                self._send_unowned()
            elif self._committed_elsewhere.is_set() or (
                self._held_back
                and not self._until_connected
                and len(self._in_flight) < MAX_HANDED // 2
            ):
                self._committed_elsewhere.clear()
                self._send_unowned(quiet=True)
            if stopping:
                return

    def _send_unowned(self, *, quiet: bool = False) -> None:
        """Send the outbox rows this publisher has not sent yet, oldest first.

        At start these are the previous run's; after a reconnect, those a
        `capture fire` left while the broker was away; `quiet` (not logged)
        for the follow-up messages other modules commit as they go. Acknowledged rows are
        deleted lazily, so the journal is flushed first: a row still listed is
        really not delivered (or is being sent by a live `capture fire`, which
        at worst delivers it twice).
        """
        try:
            self._journal.flush()
            # The oldest rows: those in flight, then as many as may be handed over now.
            limit = MAX_HANDED + len(self._in_flight)
            pending = self.outbox.pending(limit=limit)
        except JournalError as exc:
            log.error("mqtt: cannot read the outbox, its messages wait for the next try: %s", exc)
            return
        owned = set(self._in_flight.values())
        unowned = [message for message in pending if message.id not in owned]
        if unowned and not quiet:
            left = max(len(unowned), self.outbox.count() - len(owned))
            log.info("mqtt: sending %d event message(s) left in the outbox", left)
        self._held_back = self._until_connected = False
        for message in unowned:
            self._send([message.id], [message.topic], [message.payload])
            if self._held_back:
                return
        if len(pending) == limit:
            self._held_back = True  # more rows than were read: read on as acknowledgements come

    def _write_and_send(
        self, unwritten: list[_Outgoing], retry: _Retry, *, final: bool
    ) -> list[_Outgoing]:
        """Commit the outbox rows of `unwritten`, then hand them to paho; return what is still unwritten."""
        rows = [(item.topic, item.payload, self.config.qos, False) for item in unwritten]
        closing = [item.firing for item in unwritten if item.firing is not None]
        try:
            ids = self.outbox.put_many(rows, closing)
        except JournalError as exc:
            retry.failed(exc, len(unwritten), final=final)
            self.outbox_error = str(exc)
            return unwritten
        retry.succeeded(len(unwritten))
        self.outbox_error = None
        self._send(ids, [item.topic for item in unwritten], [item.payload for item in unwritten])
        return []

    def _send(self, outbox_ids: list[int], topics: list[str], payloads: list[bytes]) -> None:
        """Hand messages with their rows to paho, in order, at most MAX_HANDED unacknowledged;
        a QoS 0 message is done once paho has sent it.

        Only this thread publishes events and reads `_acks`, so each message's
        row is known here before its acknowledgement can be looked at. A row
        not handed over (the cap, or paho refusing it) stays in the outbox, and
        so do the rows after it, until `_send_unowned` reads them again.
        """
        qos = self.config.qos
        sent: list[int] = []
        for outbox_id, topic, payload in zip(outbox_ids, topics, payloads, strict=True):
            if self._held_back or len(self._in_flight) >= MAX_HANDED:
                self._held_back = True
                break
            info = self._client.publish(topic, payload, qos=qos)
            if info.rc == mqtt.MQTT_ERR_SUCCESS or (qos and info.rc == mqtt.MQTT_ERR_NO_CONN):
                # Without a connection paho keeps a QoS 1 message and sends it on
                # reconnect; a QoS 0 one it drops, so its row waits for the reconnect.
                if qos:
                    self._in_flight[info.mid] = outbox_id
                else:
                    sent.append(outbox_id)
            else:
                self._held_back = self._until_connected = True
                break
        self._forget(sent)

    def _wait_acknowledged(self, deadline: float) -> None:
        """After the thread ended: wait until the broker acknowledged every event sent."""
        while self._in_flight:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning(
                    "mqtt: %d event message(s) not acknowledged before stopping; "
                    "they stay in the outbox and are sent again at the next connection",
                    len(self._in_flight),
                )
                return
            self._drain_acks(wait=min(remaining, 0.2))

    @property
    def unacknowledged(self) -> int:
        """Event messages handed to the broker connection and not acknowledged yet."""
        return len(self._in_flight)

    def _drain_acks(self, wait: float = 0.0) -> None:
        """Forget what the broker acknowledged; `wait` for the first acknowledgement that long."""
        done: list[int] = []
        while True:
            try:
                mid = self._acks.get(timeout=wait) if wait > 0 else self._acks.get_nowait()
            except queue.Empty:
                break
            wait = 0.0
            outbox_id = self._in_flight.pop(mid, None)
            if outbox_id is not None:  # else the status message's
                done.append(outbox_id)
        self._forget(done)

    def _forget(self, done: list[int]) -> None:
        if done:
            self.published += len(done)
            self.outbox.done(done)

    # ------------------------------------------------------------------ paho callbacks (paho's thread)

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error(
                "mqtt: broker %s:%d refused the connection: %s",
                self.config.host,
                self.config.port,
                reason,
            )
            return
        log.info("mqtt: connected to %s:%d", self.config.host, self.config.port)
        if self._announce_status:
            client.publish(self.status_topic, b"online", qos=1, retain=True)
        if self._on_command is not None:
            self._command_mid = client.subscribe(self.command_topic, qos=1)[1]
        if self._replay_outbox:
            self._reconnected.set()
        self._connected.set()
        if self._companion is not None:
            for topic in self._companion.subscriptions():
                client.subscribe(topic, qos=1)
            self._companion.connected(self._send_retained)

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if self._connected.is_set() and not self._stopping.is_set():
            log.warning(
                "mqtt: disconnected from %s:%d (%s); reconnecting, events wait in the outbox",
                self.config.host,
                self.config.port,
                reason,
            )
        self._connected.clear()
        self._subscribed.clear()
        if self._companion is not None:
            self._companion.disconnected()

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, mid: int, *_: Any) -> None:
        if mid == self._command_mid:
            self._subscribed.set()

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, _reason: Any, _props: Any
    ) -> None:
        self._acks.put(mid)

    def _send_retained(self, topic: str, payload: bytes) -> bool:
        """A companion's retained message (QoS 1), outside the outbox: it is state, sent again on connect."""
        if not self._connected.is_set():
            return False
        return self._client.publish(topic, payload, qos=1, retain=True).rc == mqtt.MQTT_ERR_SUCCESS

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic != self.command_topic:
            if self._companion is not None:
                self._companion.message(message.topic, bytes(message.payload))
            return
        if self._on_command is None:
            return
        try:
            if len(message.payload) > MAX_COMMAND_BYTES:
                raise ValueError(f"larger than {MAX_COMMAND_BYTES} bytes")
            command = json.loads(message.payload)
            if not isinstance(command, dict):
                raise ValueError("not a JSON object")
            self._on_command(command)
        except (ValueError, RecursionError) as exc:
            log.warning("mqtt: ignored command on %s: %s", message.topic, str(exc)[:200])
            # Counted after the warning: whoever sees the count (a test, the
            # dashboard) can rely on the reason being in the log already.
            self.rejected_commands += 1


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """A message on its way to the outbox; `firing` is the (event id, rule) it announces."""

    topic: str
    payload: bytes
    firing: tuple[str, str] | None = None


class _Retry:
    """Back-off for outbox writes, logging an outage once when it starts and once when it ends."""

    def __init__(self) -> None:
        self._delay = OUTBOX_RETRY_MIN_S
        self._next = 0.0
        self._since: float | None = None

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def wait(self) -> float:
        """How long the thread may sleep before the next attempt (never long: acks need draining)."""
        return min(0.2, max(0.0, self._next - time.monotonic()))

    def failed(self, error: JournalError, waiting: int, *, final: bool) -> None:
        if final:
            log.error(
                "mqtt: stopping with %d event message(s) not in the outbox (%s); "
                "those the broker has not acknowledged yet are lost at a restart",
                waiting, error,
            )  # fmt: skip
            return
        if self._since is None:
            self._since = time.monotonic()
            log.error(
                "mqtt: cannot write the outbox (%s); %d event message(s) wait in memory, "
                "retrying every %.1f-%.0f s",
                error, waiting, OUTBOX_RETRY_MIN_S, OUTBOX_RETRY_MAX_S,
            )  # fmt: skip
        self._next = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, OUTBOX_RETRY_MAX_S)

    def succeeded(self, written: int) -> None:
        if self._since is not None:
            log.warning(
                "mqtt: outbox written again after %.1f s, %d event message(s) caught up",
                time.monotonic() - self._since, written,
            )  # fmt: skip
        self._since = None
        self._delay = OUTBOX_RETRY_MIN_S
        self._next = 0.0
