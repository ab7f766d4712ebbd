"""The `mqtt` trigger: messages from PLCs and MES systems on the broker of [mqtt].

All mqtt triggers of a service share one paho client, so the broker sees one
connection with one persistent session (clean_session = false): QoS 1
messages sent while the service was stopped or reconnecting are queued by
the broker and delivered when it is back. Each trigger subscribes its topic
filter, and messages are routed to every trigger whose filter matches.

The broker sends a session's queued messages as soon as the connection is up,
which is when the first trigger attaches, not the last (the service starts its
mqtt triggers one right after another, but a trigger may still start later);
a reload re-attaches a changed trigger while the others keep receiving. So for
`HOLD_S` after the connection comes up or a trigger attaches or detaches, a
message that no attached trigger wants is held, bounded, and a trigger that
attaches within that time gets the held messages its filter matches, in order,
unless a trigger of its name already had them. A message some trigger took is
not held: the steady path, and a burst right after start, keep no payloads.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from capture.config import schema
from capture.events import Event, Value
from capture.mqtt_close import close_client
from capture.triggers.base import (
    Emit,
    StatsKeeper,
    TriggerContext,
    TriggerError,
    TriggerStats,
)
from capture.triggers.values import PayloadFormatError, flatten, parse_json, to_number

log = logging.getLogger(__name__)

MAX_TOPIC_LEVELS = 32
"""Topic levels turned into `topic_N` values; deeper levels are still in `topic`."""

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30

HOLD_S = 10.0
"""How long after a connect, attach or detach messages are held for triggers still to attach."""
HOLD_MAX_MESSAGES = 10_000
HOLD_MAX_BYTES = 16 * 1024 * 1024


@dataclass(slots=True)
class _Held:
    """A message kept for a trigger that may still attach, and who has had it."""

    arrived: float
    message: paho.MQTTMessage
    delivered_to: set[str]


class MqttTriggerConnection:
    """The one broker connection all mqtt triggers of a service share.

    It connects when the first trigger attaches and disconnects (keeping the
    broker-side session and its subscriptions) when the last one detaches.
    Triggers are never unsubscribed: that is what lets the broker queue their
    messages while the service is down.
    """

    def __init__(self, config: schema.MqttConfig, client_id: str) -> None:
        self.config = config
        self.client_id = client_id
        self._lock = threading.Lock()
        # Held while routing a message and while an attaching trigger catches up, so
        # the held messages reach it before any newer one.
        self._routing = threading.Lock()
        self._triggers: list[MqttTrigger] = []
        self._client: paho.Client | None = None
        self._connected = False
        self._outage_logged = False
        self._held: deque[_Held] = deque()
        self._held_bytes = 0
        self._hold_until = 0.0
        self._overflow_logged = False
        # SUBSCRIBE packets not yet acknowledged, by message id, with the triggers they are
        # for: a trigger counts as connected only once the broker has its subscription, so
        # "connected" means its messages are being delivered. `_early_acks` keeps the
        # SUBACKs that paho's thread handled before the subscribing thread recorded the id.
        self._awaiting: dict[int, list[tuple[str, list[MqttTrigger]]]] = {}
        self._early_acks: dict[int, list[bool]] = {}

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up."""
        return self._connected

    def attach(self, trigger: MqttTrigger) -> None:
        """Route matching messages to `trigger`, connecting if it is the first.

        Messages held since the connection came up (or since its previous
        incarnation detached) that match its filter are handed to it first.
        """
        with self._routing:
            with self._lock:
                if self._client is None:
                    self._client = self._connect(trigger)
                self._triggers.append(trigger)
                client, subscribe_now = self._client, self._connected
                catch_up = self._take_held_for(trigger)
                self._extend_hold()
            for message in catch_up:
                self._hand(trigger, message)
        if catch_up:
            log.info(
                "mqtt trigger %s: %d message(s) that arrived before it started handed over",
                trigger.name,
                len(catch_up),
            )
        # Outside our lock: paho's thread may be waiting for it in _on_connect.
        # If it connects meanwhile, _on_connect subscribes this filter too (harmless twice).
        if subscribe_now:
            result, mid = client.subscribe(trigger.config.topic, qos=self.config.qos)
            if result == paho.MQTT_ERR_SUCCESS and mid is not None:
                # Else not connected after all: _on_connect subscribes it with the others.
                self._expect_ack(mid, [(trigger.config.topic, [trigger])])

    def detach(self, trigger: MqttTrigger) -> None:
        """Stop routing to `trigger`; the last one out disconnects and joins paho's thread."""
        with self._lock:
            if trigger in self._triggers:
                self._triggers.remove(trigger)
            client = self._client if not self._triggers else None
            if client is not None:
                self._client = None
            self._extend_hold()  # a reload starts its replacement in a moment
        trigger.note_connected(False)
        if client is not None:
            close_client(client)
            self._set_connected(False)
            log.info("mqtt trigger connection closed client_id=%s", self.client_id)

    def _connect(self, first: MqttTrigger) -> paho.Client:
        config = self.config
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,
            protocol=paho.MQTTv311,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        if config.username is not None:
            password = config.password.get_secret_value() if config.password else None
            client.username_pw_set(config.username, password)
        try:
            if config.tls:
                client.tls_set(
                    ca_certs=str(config.ca_file) if config.ca_file else None,
                    cert_reqs=ssl.CERT_REQUIRED if config.verify else ssl.CERT_NONE,
                )
                client.tls_insecure_set(not config.verify)
            client.connect_async(config.host, config.port, keepalive=config.keepalive_s)
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise TriggerError(
                first.name, f"cannot start: {exc}; check [mqtt] tls and ca_file", first.source
            ) from exc
        client.loop_start()
        log.info(
            "mqtt trigger connection starting client_id=%s broker=%s:%d tls=%s",
            self.client_id,
            config.host,
            config.port,
            config.tls,
        )
        return client

    # paho's network thread -----------------------------------------------------

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            self._report_outage(f"broker refused the connection: {reason}")
            return
        with self._lock:
            triggers = list(self._triggers)
            filters = sorted({trigger.config.topic for trigger in triggers})
            # Together with reading the filters: a trigger attaching from now on subscribes
            # itself, one attached before is in `filters`; none falls in between.
            self._connected = True
            self._extend_hold()  # the session's queued messages come now
        if filters:
            result, mid = client.subscribe([(topic, int(self.config.qos)) for topic in filters])
            if result == paho.MQTT_ERR_SUCCESS and mid is not None:
                by_filter = [
                    (topic, [t for t in triggers if t.config.topic == topic]) for topic in filters
                ]
                self._expect_ack(mid, by_filter)
        self._outage_logged = False
        self._set_connected(True)
        log.info(
            "mqtt trigger connection up broker=%s:%d session_present=%s filters=%s",
            self.config.host,
            self.config.port,
            flags.session_present,
            ",".join(filters),
        )

    def _expect_ack(self, mid: int, subscribed: list[tuple[str, list[MqttTrigger]]]) -> None:
        """Remember which triggers wait for SUBSCRIBE `mid` (one entry per filter, in order)."""
        with self._lock:
            granted = self._early_acks.pop(mid, None)
            if granted is None:
                self._awaiting[mid] = subscribed
        if granted is not None:
            self._note_subscribed(subscribed, granted)

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, reasons: list[Any], properties: Any
    ) -> None:
        granted = [not reason.is_failure for reason in reasons]  # one per filter, in order
        with self._lock:
            subscribed = self._awaiting.pop(mid, None)
            if subscribed is None:
                self._early_acks[mid] = granted
                return
        self._note_subscribed(subscribed, granted)

    def _note_subscribed(
        self, subscribed: list[tuple[str, list[MqttTrigger]]], granted: list[bool]
    ) -> None:
        with self._lock:
            attached = set(self._triggers)
        for (topic, triggers), ok in zip(subscribed, granted, strict=False):
            for trigger in (t for t in triggers if t in attached):
                if ok:
                    trigger.note_connected(True)
                    continue
                message = f"the broker refused the subscription to {topic!r}"
                log.error("mqtt trigger %s: %s; check the broker's ACL", trigger.name, message)
                trigger.note_error(message)

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:  # the reason first: a trigger shown down always says why
            self._report_outage(f"connection lost: {reason}")
        self._set_connected(False)

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        self._report_outage("cannot connect to the broker")

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._routing:
            with self._lock:
                targets = [
                    t
                    for t in self._triggers
                    if paho.topic_matches_sub(t.config.topic, message.topic)
                ]
                now = time.monotonic()
                if self._held:
                    self._expire(now)
                if not targets:
                    if now < self._hold_until:
                        self._hold(_Held(now, message, set()))
                    else:
                        log.debug("mqtt message for no trigger topic=%s", message.topic)
            for trigger in targets:
                self._hand(trigger, message)

    @staticmethod
    def _hand(trigger: MqttTrigger, message: paho.MQTTMessage) -> None:
        try:
            trigger.handle(message)
        except Exception:
            # An exception here would end paho's network thread, and with it every mqtt trigger.
            log.exception(
                "mqtt message handling failed trigger=%s topic=%s", trigger.name, message.topic
            )

    # held messages (callers hold _lock) ------------------------------------------

    def _extend_hold(self) -> None:
        self._hold_until = time.monotonic() + HOLD_S

    def _hold(self, held: _Held) -> None:
        self._expire(held.arrived)
        self._held.append(held)
        self._held_bytes += len(held.message.payload)
        while len(self._held) > HOLD_MAX_MESSAGES or self._held_bytes > HOLD_MAX_BYTES:
            oldest = self._held.popleft()
            self._drop(oldest)
            if not oldest.delivered_to and not self._overflow_logged:
                self._overflow_logged = True
                log.warning(
                    "mqtt: more than %d messages (%d MiB) arrived before their triggers "
                    "started; the oldest of those no trigger had yet are dropped",
                    HOLD_MAX_MESSAGES,
                    HOLD_MAX_BYTES // (1024 * 1024),
                )

    def _take_held_for(self, trigger: MqttTrigger) -> list[paho.MQTTMessage]:
        """The held messages `trigger` should have had, marked as now delivered to it."""
        self._expire(time.monotonic())
        messages = []
        for held in self._held:
            if trigger.name not in held.delivered_to and paho.topic_matches_sub(
                trigger.config.topic, held.message.topic
            ):
                held.delivered_to.add(trigger.name)
                messages.append(held.message)
        return messages

    def _expire(self, now: float) -> None:
        while self._held and now - self._held[0].arrived > HOLD_S:
            self._drop(self._held.popleft())
        if not self._held:
            self._overflow_logged = False

    def _drop(self, held: _Held) -> None:
        self._held_bytes -= len(held.message.payload)
        if not held.delivered_to:
            log.debug("mqtt message for no trigger topic=%s", held.message.topic)

    def _report_outage(self, why: str) -> None:
        message = f"broker {self.config.host}:{self.config.port}: {why}"
        with self._lock:
            triggers = list(self._triggers)
        for trigger in triggers:
            trigger.note_error(message)
        if not self._outage_logged:
            self._outage_logged = True
            log.warning(
                "mqtt trigger connection down broker=%s:%d reason=%r; retrying every %d-%d s",
                self.config.host,
                self.config.port,
                why,
                RECONNECT_MIN_S,
                RECONNECT_MAX_S,
            )

    def _set_connected(self, state: bool) -> None:
        """The connection's state; triggers hear of it going down (up: on their SUBACK)."""
        self._connected = state
        if state:
            return
        with self._lock:
            triggers = list(self._triggers)
            self._awaiting.clear()  # a reconnect subscribes every filter again
            self._early_acks.clear()
        for trigger in triggers:
            trigger.note_connected(False)


def shared_connection(context: TriggerContext) -> MqttTriggerConnection:
    """The service's one trigger connection, created on first use."""
    client_id = f"{context.mqtt.client_id_for(context.site)}-triggers"
    return context.shared("mqtt-triggers", lambda: MqttTriggerConnection(context.mqtt, client_id))


class MqttTrigger:
    """Fires on each message on its topic filter.

    Values: `topic`, `topic_1`... (its levels) and the payload: a JSON
    object's fields by dotted path (`part.id`), or the payload as `value_name`.
    """

    def __init__(self, name: str, config: schema.MqttTrigger, context: TriggerContext) -> None:
        self.name = name
        self.config = config
        self.source = f"mqtt topic {config.topic}"
        self._context = context
        self._stats = StatsKeeper(connected=False)
        self._emit: Emit | None = None
        self._connection: MqttTriggerConnection | None = None

    def start(self, emit: Emit) -> None:
        """Subscribe on the shared connection; connecting happens in the background."""
        if self._connection is not None:
            return
        if not self._context.mqtt.enabled:
            raise TriggerError(
                self.name,
                "cannot start: [mqtt] enabled = false; enable it or remove this trigger",
                self.source,
            )
        self._emit = emit
        connection = shared_connection(self._context)
        connection.attach(self)  # connected once the broker acknowledges the subscription
        self._connection = connection

    def stop(self) -> None:
        """Stop receiving; the broker keeps queueing QoS 1 messages for the next start."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.detach(self)
        self._emit = None

    def stats(self) -> TriggerStats:
        """Messages fired, payloads rejected, and the broker connection state."""
        return self._stats.snapshot()

    def note_connected(self, state: bool) -> None:
        """Called by the connection: up once the broker acknowledged this trigger's
        subscription (its messages are delivered from then on), down with the connection."""
        self._stats.connected(state)

    def note_error(self, message: str) -> None:
        """Called by the connection on a broker problem."""
        self._stats.error(message)

    def handle(self, message: paho.MQTTMessage) -> None:
        """Turn one message into an event; a bad payload is logged and counted, never raised."""
        emit = self._emit
        if emit is None:
            return
        if message.retain:
            # A retained message is old news replayed on subscribe, not a trigger.
            self._stats.ignored()
            log.info("mqtt retained message ignored trigger=%s topic=%s", self.name, message.topic)
            return
        try:
            values = self.payload_values(bytes(message.payload))
        except PayloadFormatError as exc:
            self._stats.rejected(f"topic {message.topic}: {exc}")
            log.warning(
                "mqtt payload rejected trigger=%s topic=%s bytes=%d reason=%r",
                self.name,
                message.topic,
                len(message.payload),
                str(exc),
            )
            return
        values.update(topic_values(message.topic))
        self._stats.deliver(emit, Event(trigger=self.name, values=values))

    def payload_values(self, payload: bytes) -> dict[str, Value]:
        """The values of a payload in the configured mode; `PayloadFormatError` if unusable."""
        limit = self.config.max_payload_bytes
        if len(payload) > limit:
            raise PayloadFormatError(f"{len(payload)} bytes, more than max_payload_bytes = {limit}")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadFormatError(f"not valid UTF-8 at byte {exc.start}") from exc
        mode, name = self.config.payload, self.config.value_name
        if mode == "json":
            return flatten(parse_json(text), name)
        if mode == "number":
            number = to_number(text)
            if number is None:
                raise PayloadFormatError(f"not a number: {text[:40]!r}")
            return {name: number}
        if mode == "text":
            return {name: text.strip()}
        return _auto_values(text, name)


def _auto_values(text: str, name: str) -> dict[str, Value]:
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        return flatten(parse_json(stripped), name)
    number = to_number(stripped)
    if number is not None:
        return {name: number}
    try:
        return flatten(parse_json(stripped), name)  # true, false, null, "quoted"
    except PayloadFormatError:
        return {name: stripped}


def topic_values(topic: str) -> dict[str, Value]:
    """`topic` and its levels as `topic_1`, `topic_2`...: `line1/gate/in` -> topic_2 = "gate"."""
    levels = topic.split("/")[:MAX_TOPIC_LEVELS]
    values: dict[str, Value] = {f"topic_{index}": level for index, level in enumerate(levels, 1)}
    values["topic"] = topic
    return values
