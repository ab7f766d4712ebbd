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
"""

from __future__ import annotations

import json
import logging
import queue
import ssl
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt

from capture.config.schema import MqttConfig
from capture.engine import FiringReport
from capture.events import CaptureResult
from capture.journal import Journal

log = logging.getLogger(__name__)

#: Largest command payload accepted on {prefix}/cmd/snap.
MAX_COMMAND_BYTES = 16 * 1024
SCHEMA = "event-capture/event/1"
#: Most messages written to the outbox in one commit.
OUTBOX_BATCH = 500


def _iso(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return moment.astimezone(zone).isoformat(timespec="milliseconds") if moment else None


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
        "image_time": _iso(result.image_time, zone),
        "width": result.width,
        "height": result.height,
        "stale": result.stale,
        "error": None,
    }
    if not result.ok:
        entry["error"] = {"type": result.error_type, "message": result.error_message}
    return entry


def event_message(report: FiringReport, zone: ZoneInfo) -> dict[str, Any]:
    """The JSON document published on {prefix}/events/{rule}."""
    return {
        "schema": SCHEMA,
        "event_id": report.event.id,
        "time": _iso(report.event.wall_time, zone),
        "site": report.site,
        "rule": report.rule,
        "trigger": report.event.trigger,
        "manual": report.manual,
        "values": dict(report.event.values),
        "ok": report.ok,
        "captures": [capture_json(result, zone) for result in report.results],
    }


class Publisher:
    """Owns the service's MQTT connection for everything it publishes and its commands."""

    def __init__(
        self,
        config: MqttConfig,
        site: str,
        timezone: str,
        journal: Journal,
        on_command: Callable[[Mapping[str, Any]], None] | None = None,
        *,
        replay_outbox: bool = True,
    ) -> None:
        self.config = config
        self.prefix = config.topic_prefix
        self.status_topic = f"{self.prefix}/status"
        self.command_topic = f"{self.prefix}/cmd/snap"
        self._zone = ZoneInfo(timezone)
        self._journal = journal
        self._on_command = on_command
        self._replay_outbox = replay_outbox
        # (topic, payload, paho mid once handed over, else None); None stops the thread.
        self._outgoing: queue.Queue[tuple[str, bytes, int | None] | None] = queue.Queue()
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._in_flight: dict[int, int] = {}  # paho mid -> outbox id
        self._unregistered: set[int] = set()  # handed to paho, outbox row not yet written
        self._early_acks: set[int] = set()  # of those, the ones the broker acknowledged
        self._handover = threading.Lock()  # paho's order = the outbox's order
        self._replayed = threading.Event()
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self.published = 0
        self.rejected_commands = 0
        self._client = self._make_client(config, site)
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)

    # ------------------------------------------------------------------ lifecycle

    def _make_client(self, config: MqttConfig, site: str) -> mqtt.Client:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=config.client_id_for(site),
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
        client.will_set(self.status_topic, b"offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(100)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        """Connect in the background (retrying forever) and start publishing."""
        self._client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        self._client.loop_start()
        self._thread.start()

    def wait_connected(self, timeout: float) -> bool:
        """True once connected to the broker (for the demo and tests)."""
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up."""
        return self._connected.is_set()

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued, publish `offline`, disconnect."""
        self._outgoing.put(None)
        self._thread.join(timeout)
        if self._connected.is_set():
            info = self._client.publish(self.status_topic, b"offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                log.warning("mqtt: could not publish offline status before stopping")
            self._drain_acks()
        self._stopping.set()
        self._client.disconnect()
        self._client.loop_stop()

    # ------------------------------------------------------------------ publishing

    def publish_firing(self, report: FiringReport) -> None:
        """Queue the event message of a finished rule firing; never blocks."""
        payload = json.dumps(event_message(report, self._zone), separators=(",", ":"))
        self.publish(f"{self.prefix}/events/{report.rule}", payload.encode())

    def publish(self, topic: str, payload: bytes) -> None:
        """Hand one message to paho now (QoS as configured) and queue its outbox row; never blocks.

        Handing over on the caller's thread, not this publisher's, spares the
        event a thread switch on its way to the broker. Until the previous
        run's outbox has been re-sent, messages wait for the publisher thread,
        so the broker hears them in order.
        """
        with self._handover:
            mid = self._publish(topic, payload) if self._replayed.is_set() else None
            self._outgoing.put((topic, payload, mid))

    def _run(self) -> None:
        """The one thread that writes the outbox and forgets what the broker acknowledged.

        A message goes to paho first and into the outbox right after, in one
        commit for everything that queued up meanwhile: the broker hears of an
        event a database commit sooner. An acknowledgement that arrives before
        its message's outbox row exists is kept until the row does.
        """
        if self._replay_outbox:
            for message in self._journal.outbox_pending(limit=1_000_000):
                self._send(message.id, message.topic, message.payload)
        with self._handover:
            self._replayed.set()
        while True:
            try:
                batch = [self._outgoing.get(timeout=0.2)]
            except queue.Empty:
                self._drain_acks()
                continue
            while len(batch) < OUTBOX_BATCH:
                try:
                    batch.append(self._outgoing.get_nowait())
                except queue.Empty:
                    break
            stopping = None in batch
            messages = [item for item in batch if item is not None]
            if messages:
                with self._handover:
                    mids = [
                        self._publish(topic, payload) if mid is None else mid
                        for topic, payload, mid in messages
                    ]
                rows = [(topic, payload, self.config.qos, False) for topic, payload, _ in messages]
                ids = self._journal.outbox_put_many(rows)
                self._track(mids, ids)
            self._drain_acks()
            if stopping:
                return

    def _send(self, outbox_id: int, topic: str, payload: bytes) -> None:
        with self._handover:
            mid = self._publish(topic, payload)
        self._track([mid], [outbox_id])

    def _publish(self, topic: str, payload: bytes) -> int:
        """Hand a message to paho; the caller holds `_handover`."""
        mid = self._client.publish(topic, payload, qos=self.config.qos).mid
        self._unregistered.add(mid)
        return mid

    def _track(self, mids: list[int], outbox_ids: list[int]) -> None:
        """Remember which outbox row each paho message is; QoS 0 is done when sent."""
        if self.config.qos == 0:
            with self._handover:
                self._unregistered.difference_update(mids)
            self._journal.outbox_done(outbox_ids)
            return
        self._drain_acks()  # acknowledgements that came in while the rows were committed
        done: list[int] = []
        with self._handover:
            for mid, outbox_id in zip(mids, outbox_ids, strict=True):
                self._unregistered.discard(mid)
                if mid in self._early_acks:
                    self._early_acks.discard(mid)
                    done.append(outbox_id)
                else:
                    self._in_flight[mid] = outbox_id
        self._forget(done)

    def _drain_acks(self) -> None:
        done: list[int] = []
        while True:
            try:
                mid = self._acks.get_nowait()
            except queue.Empty:
                break
            outbox_id = self._in_flight.pop(mid, None)
            if outbox_id is not None:
                done.append(outbox_id)
                continue
            with self._handover:
                if mid in self._unregistered:  # not the status message's, say
                    self._early_acks.add(mid)
        self._forget(done)

    def _forget(self, done: list[int]) -> None:
        if done:
            self.published += len(done)
            self._journal.outbox_done(done)

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
        client.publish(self.status_topic, b"online", qos=1, retain=True)
        client.subscribe(self.command_topic, qos=1)
        self._connected.set()

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

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, _reason: Any, _props: Any
    ) -> None:
        self._acks.put(mid)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic != self.command_topic or self._on_command is None:
            return
        try:
            if len(message.payload) > MAX_COMMAND_BYTES:
                raise ValueError(f"larger than {MAX_COMMAND_BYTES} bytes")
            command = json.loads(message.payload)
            if not isinstance(command, dict):
                raise ValueError("not a JSON object")
            self._on_command(command)
        except (ValueError, RecursionError) as exc:
            self.rejected_commands += 1
            log.warning("mqtt: ignored command on %s: %s", message.topic, str(exc)[:200])
