"""The mqtt trigger against a real private mosquitto."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from capture.config.schema import MqttConfig
from capture.config.schema import MqttTrigger as MqttTriggerConfig
from capture.mqtt_close import close_client
from capture.triggers import Trigger, TriggerContext, TriggerError
from capture.triggers import mqtt as mqtt_module
from capture.triggers.mqtt import MqttTrigger, shared_connection, topic_values
from capture.triggers.values import PayloadFormatError
from tests.broker import Broker
from tests.conftest import wait_for
from tests.triggers.conftest import Collector

Start = Callable[[Trigger], Trigger]


@pytest.fixture
def prefix() -> str:
    """A topic root of this test's own, since the session broker is shared."""
    return f"t-{uuid.uuid4().hex[:8]}"


def context_for(broker: Broker) -> TriggerContext:
    config = MqttConfig(
        host=broker.host, port=broker.port, client_id=f"test-{uuid.uuid4().hex[:8]}"
    )
    return TriggerContext(mqtt=config)


def mqtt(context: TriggerContext, topic: str, name: str = "plc", **options: object) -> MqttTrigger:
    return MqttTrigger(name, MqttTriggerConfig(type="mqtt", topic=topic, **options), context)


def send(broker: Broker, topic: str, payload: bytes | str, retain: bool = False) -> None:
    """Publish with QoS 1 from another client, as a PLC would, and wait for the broker's ack."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"plc-{uuid.uuid4().hex[:8]}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(timeout=5)
    finally:
        close_client(client)


def started(trigger: MqttTrigger, start: Start) -> MqttTrigger:
    start(trigger)
    wait_for(lambda: trigger.stats().connected)
    return trigger


def test_json_fields_become_values_nested_by_dotted_path(
    broker: Broker, start: Start, events: Collector, prefix: str
) -> None:
    started(mqtt(context_for(broker), f"{prefix}/station/+/done"), start)
    body = {"part": {"id": "A-7", "ok": True}, "temp": "37.5", "station": "S3"}
    send(broker, f"{prefix}/station/s3/done", json.dumps(body))
    wait_for(lambda: len(events) == 1)
    values = events.events[0].values
    assert values["part.id"] == "A-7"
    assert values["part.ok"] is True
    assert values["temp"] == 37.5
    assert values["topic"] == f"{prefix}/station/s3/done"
    assert (values["topic_1"], values["topic_3"]) == (prefix, "s3")


def test_hash_wildcard_matches_the_parent_and_every_level_below(
    broker: Broker, start: Start, events: Collector, prefix: str
) -> None:
    started(mqtt(context_for(broker), f"{prefix}/#"), start)
    for topic in (prefix, f"{prefix}/a", f"{prefix}/a/b/c"):
        send(broker, topic, "1")
    send(broker, f"other-{prefix}/a", "1")
    wait_for(lambda: len(events) == 3)
    assert sorted(events.values("topic")) == sorted([prefix, f"{prefix}/a", f"{prefix}/a/b/c"])


def test_triggers_share_one_connection_and_each_gets_its_matches(
    broker: Broker, start: Start, events: Collector, prefix: str
) -> None:
    context = context_for(broker)
    gate = started(mqtt(context, f"{prefix}/gate/+", name="gate"), start)
    everything = started(mqtt(context, f"{prefix}/#", name="all"), start)
    send(broker, f"{prefix}/gate/in", "1")
    send(broker, f"{prefix}/other", "2")
    # Counted after the hand-off (on paho's thread): wait for the counts, not only the events.
    wait_for(lambda: gate.stats().emitted == 1 and everything.stats().emitted == 2)
    assert sorted(event.trigger for event in events.events) == ["all", "all", "gate"]
    assert shared_connection(context).client_id == f"{context.mqtt.client_id}-triggers"


def test_message_sent_while_the_service_was_stopped_arrives_after_restart(
    broker: Broker, events: Collector, prefix: str
) -> None:
    context = context_for(broker)
    trigger = mqtt(context, f"{prefix}/done")
    trigger.start(events)
    wait_for(lambda: trigger.stats().connected)
    trigger.stop()
    assert not trigger.stats().connected
    send(broker, f"{prefix}/done", '{"serial": "SN-1"}')  # nobody connected now
    assert len(events) == 0
    trigger.start(events)
    try:
        wait_for(lambda: len(events) == 1)
    finally:
        trigger.stop()
    assert events.events[0].values["serial"] == "SN-1"


@pytest.fixture
def tls_broker(tmp_path: Path, certificate: tuple[Path, Path]) -> Iterator[Broker]:
    """A broker of this test's own with a TLS listener (self-signed for 127.0.0.1)."""
    instance = Broker(tmp_path / "mosquitto", tls=certificate)
    instance.start()
    yield instance
    instance.stop()


def test_over_tls_the_trigger_verifies_the_broker_and_receives(
    tls_broker: Broker,
    certificate: tuple[Path, Path],
    start: Start,
    events: Collector,
    prefix: str,
) -> None:
    cert, _ = certificate
    assert tls_broker.tls_port is not None
    secure = MqttConfig(
        host=tls_broker.host, port=tls_broker.tls_port, tls=True, ca_file=cert,
        client_id=f"test-{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    started(mqtt(TriggerContext(mqtt=secure), f"{prefix}/done"), start)
    send(tls_broker, f"{prefix}/done", '{"serial": "SN-TLS"}')  # a PLC on the plain listener
    wait_for(lambda: events.values("serial") == ["SN-TLS"])


# paho leaves the socket of a failed TLS handshake to the garbage collector (a ResourceWarning).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_over_tls_a_broker_the_ca_does_not_vouch_for_is_never_talked_to(
    tls_broker: Broker, start: Start, events: Collector, prefix: str
) -> None:
    assert tls_broker.tls_port is not None
    untrusting = MqttConfig(  # verify on, system CAs: the self-signed broker is refused
        host=tls_broker.host, port=tls_broker.tls_port, tls=True,
        client_id=f"test-{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    trigger = start(mqtt(TriggerContext(mqtt=untrusting), f"{prefix}/done"))
    wait_for(lambda: "cannot connect" in (trigger.stats().last_error or ""))
    send(tls_broker, f"{prefix}/done", '{"serial": "SN-1"}')
    assert not trigger.stats().connected
    assert len(events) == 0


@pytest.mark.slow
def test_reconnects_after_a_broker_restart_and_keeps_its_subscription(
    broker_fresh: Broker, start: Start, events: Collector, prefix: str
) -> None:
    trigger = started(mqtt(context_for(broker_fresh), f"{prefix}/done"), start)
    broker_fresh.stop()
    wait_for(lambda: not trigger.stats().connected)
    assert "broker" in (trigger.stats().last_error or "")
    broker_fresh.start()
    send(broker_fresh, f"{prefix}/done", "after-restart")  # queued in the persisted session
    wait_for(lambda: len(events) == 1, timeout=20)
    assert events.values("value") == ["after-restart"]
    # The broker sends the session's queued message right after CONNACK, so it can arrive
    # before the SUBACK of the re-subscription that marks the trigger connected again.
    wait_for(lambda: trigger.stats().connected)


def test_garbage_and_oversized_payloads_are_counted_and_survived(
    broker: Broker, start: Start, events: Collector, prefix: str
) -> None:
    trigger = started(
        mqtt(context_for(broker), f"{prefix}/done", payload="json", max_payload_bytes=100), start
    )
    for garbage in (
        b"\xff\xfe\x00",
        b"{not json",
        b"[" * 90,
        json.dumps({"x": "y" * 200}).encode(),
    ):
        send(broker, f"{prefix}/done", garbage)
    send(broker, f"{prefix}/done", '{"ok": 1}')
    wait_for(lambda: len(events) == 1)
    stats = trigger.stats()
    assert stats.rejected == 4
    assert stats.connected
    assert "more than max_payload_bytes" in (stats.last_error or "")
    assert events.values("ok") == [1]


def test_a_retained_message_is_old_news_not_a_trigger(
    broker: Broker, start: Start, events: Collector, prefix: str
) -> None:
    send(broker, f"{prefix}/done", "stale", retain=True)
    trigger = started(mqtt(context_for(broker), f"{prefix}/done"), start)
    send(broker, f"{prefix}/done", "fresh")
    wait_for(lambda: len(events) == 1)
    assert events.values("value") == ["fresh"]
    assert trigger.stats().ignored == 1
    send(broker, f"{prefix}/done", "", retain=True)  # clear it for other runs


@pytest.mark.parametrize(
    ("mode", "payload", "expected"),
    [
        ("auto", b'{"a": {"b": 1}}', {"a.b": 1}),
        ("auto", b"37.5", {"value": 37.5}),
        ("auto", b"37,5\n", {"value": 37.5}),
        ("auto", b"0042", {"value": "0042"}),
        ("auto", b"true", {"value": True}),
        ("auto", b"go", {"value": "go"}),
        ("auto", b"", {"value": ""}),
        ("auto", b"[1, 2]", {"value.0": 1, "value.1": 2}),
        ("text", b'{"a": 1}', {"value": '{"a": 1}'}),
        ("number", b" 12 ", {"value": 12}),
        ("json", b"3", {"value": 3}),
    ],
)
def test_payload_modes(mode: str, payload: bytes, expected: dict[str, object]) -> None:
    trigger = mqtt(TriggerContext(), "x", payload=mode)
    assert trigger.payload_values(payload) == expected


@pytest.mark.parametrize(
    ("mode", "payload"),
    [
        ("number", b"abc"),
        ("json", b"go"),
        ("text", b"\xff"),
        ("auto", b"{" * 50_000),
        ("json", b""),
    ],
)
def test_payloads_a_mode_cannot_read_are_rejected(mode: str, payload: bytes) -> None:
    with pytest.raises(PayloadFormatError):
        mqtt(TriggerContext(), "x", payload=mode, max_payload_bytes=100_000).payload_values(payload)


def test_topic_levels_are_numbered_from_one() -> None:
    assert topic_values("line1/gate/in") == {
        "topic": "line1/gate/in",
        "topic_1": "line1",
        "topic_2": "gate",
        "topic_3": "in",
    }


def test_mqtt_trigger_with_mqtt_disabled_says_so() -> None:
    context = TriggerContext(mqtt=MqttConfig(enabled=False))
    with pytest.raises(
        TriggerError, match=r"trigger plc \(mqtt topic x\): cannot start: \[mqtt\] enabled = false"
    ):
        mqtt(context, "x").start(lambda event: None)


def test_a_missing_ca_file_is_a_clear_start_error_leaving_no_thread_behind(
    tmp_path: Path, broker: Broker, start: Start, events: Collector, prefix: str
) -> None:
    context = TriggerContext(
        mqtt=MqttConfig(
            host=broker.host, port=broker.port, tls=True, ca_file=tmp_path / "missing-ca.pem"
        )
    )
    with pytest.raises(
        TriggerError, match=r"trigger plc \(mqtt topic .*\): cannot start: .*ca_file"
    ):
        mqtt(context, f"{prefix}/done").start(events)
    assert not shared_connection(context).connected  # and no paho thread: see no_leaked_threads


def test_a_trigger_starting_while_the_connection_comes_up_is_subscribed(
    broker: Broker, events: Collector, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI once lost one: it attached after the filters were read, before "connected" was set."""
    context = context_for(broker)
    gate = mqtt(context, f"{prefix}/gate", name="gate")
    press = mqtt(context, f"{prefix}/press", name="press")
    window = threading.Event()
    real_subscribe = paho.Client.subscribe

    def subscribe(self: paho.Client, topic: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(topic, list) and not window.is_set():  # the connection's own, in _on_connect
            window.set()
            attach = threading.Thread(target=press.start, args=(events,))
            attach.start()  # press starts right inside that window
            attach.join(5)
        return real_subscribe(self, topic, *args, **kwargs)

    monkeypatch.setattr(paho.Client, "subscribe", subscribe)
    gate.start(events)
    try:
        wait_for(window.is_set)
        wait_for(lambda: press.stats().connected)
        send(broker, f"{prefix}/press", "for-press")
        wait_for(lambda: events.values("value") == ["for-press"])
    finally:
        press.stop()
        gate.stop()


def test_a_trigger_counts_as_connected_only_once_the_broker_has_its_subscription(
    broker: Broker, events: Collector, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before its SUBACK a message can still be lost: "connected" must not claim otherwise."""
    release = threading.Event()
    on_subscribe = mqtt_module.MqttTriggerConnection._on_subscribe

    def held(self: mqtt_module.MqttTriggerConnection, *args: Any) -> None:
        release.wait(10)  # paho's thread: the SUBACK is handled only when released
        on_subscribe(self, *args)

    monkeypatch.setattr(mqtt_module.MqttTriggerConnection, "_on_subscribe", held)
    gate = mqtt(context_for(broker), f"{prefix}/gate", name="gate")
    gate.start(events)
    try:
        wait_for(lambda: gate._connection is not None and gate._connection.connected)
        assert gate.stats().connected is False  # the connection is up, the SUBACK not handled
        release.set()
        wait_for(lambda: gate.stats().connected)
        send(broker, f"{prefix}/gate", "after")
        wait_for(lambda: events.values("value") == ["after"])
    finally:
        release.set()
        gate.stop()


def test_a_filter_the_broker_refuses_marks_only_its_own_trigger(
    broker: Broker, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """SUBACK codes come one per filter; mosquitto grants all, so the answer is built here."""
    context = context_for(broker)
    connection = mqtt_module.MqttTriggerConnection(context.mqtt, "unit-no-connect")
    gate = mqtt(context, f"{prefix}/gate", name="gate")
    press = mqtt(context, f"{prefix}/press", name="press")
    connection._triggers += [gate, press]  # attached, as attach() leaves them
    connection._expect_ack(7, [(f"{prefix}/gate", [gate]), (f"{prefix}/press", [press])])
    granted, refused = (
        ReasonCode(PacketTypes.SUBACK, identifier=1),
        ReasonCode(PacketTypes.SUBACK, identifier=0x80),
    )

    with caplog.at_level(logging.ERROR, logger="capture.triggers.mqtt"):
        connection._on_subscribe(None, None, 7, [granted, refused], None)  # type: ignore[arg-type]

    assert gate.stats().connected and gate.stats().last_error is None
    assert not press.stats().connected
    assert press.stats().last_error == f"the broker refused the subscription to '{prefix}/press'"
    assert "check the broker's ACL" in caplog.text


def subscribe_then_stop(config: MqttConfig, events: Collector, filters: dict[str, str]) -> None:
    """Leave a persistent session with these `name: filter` subscriptions on the broker.

    As a service that ran and stopped: what is published now is queued for it.
    """
    context = TriggerContext(mqtt=config)
    triggers = [mqtt(context, topic, name=name) for name, topic in filters.items()]
    for trigger in triggers:
        trigger.start(events)
    wait_for(lambda: all(trigger.stats().connected for trigger in triggers))
    for trigger in triggers:
        trigger.stop()  # the session and its subscriptions stay on the broker


def test_messages_queued_while_the_service_was_down_reach_triggers_that_start_apart(
    broker: Broker, events: Collector, prefix: str
) -> None:
    """The broker delivers the whole session's backlog when the first trigger connects."""
    config = context_for(broker).mqtt
    subscribe_then_stop(config, events, {"gate": f"{prefix}/gate", "press": f"{prefix}/press"})
    send(broker, f"{prefix}/press", "for-press")  # queued first, so it arrives first
    send(broker, f"{prefix}/gate", "for-gate")

    after = TriggerContext(mqtt=config)  # a restarted service: a new connection, same session
    gate = mqtt(after, f"{prefix}/gate", name="gate")
    press = mqtt(after, f"{prefix}/press", name="press")
    gate.start(events)
    try:
        wait_for(lambda: events.values("value") == ["for-gate"])  # press's message came before it
        press.start(events)
        wait_for(lambda: len(events) == 2)
    finally:
        gate.stop()
        press.stop()
    assert sorted((e.trigger, e.values["value"]) for e in events.events) == [
        ("gate", "for-gate"),
        ("press", "for-press"),
    ]


def test_a_message_arriving_while_a_reload_restarts_its_trigger_reaches_the_new_one(
    broker: Broker, start: Start, events: Collector, prefix: str
) -> None:
    context = context_for(broker)
    started(mqtt(context, f"{prefix}/gate", name="gate"), start)
    old = started(mqtt(context, f"{prefix}/press", name="press"), start)
    old.stop()  # the reload stops the changed trigger; the connection stays up for gate
    send(broker, f"{prefix}/press", "between")
    send(broker, f"{prefix}/gate", "marker")  # forwarded after "between" on the same connection
    wait_for(lambda: events.values("value") == ["marker"])
    started(mqtt(context, f"{prefix}/press", name="press", payload="text"), start)
    wait_for(lambda: len(events) == 2)
    assert [(e.trigger, e.values["value"]) for e in events.events] == [
        ("gate", "marker"),
        ("press", "between"),
    ]


def test_a_held_message_reaches_each_overlapping_filter_once_and_never_twice_per_trigger(
    broker: Broker, start: Start, events: Collector, prefix: str
) -> None:
    config = context_for(broker).mqtt
    filters = {"all": f"{prefix}/#", "gate": f"{prefix}/gate/+", "press": f"{prefix}/press"}
    subscribe_then_stop(config, events, filters)
    send(broker, f"{prefix}/gate/in", "part")

    after = TriggerContext(mqtt=config)
    started(mqtt(after, f"{prefix}/press", name="press"), start)  # connects; "part" is held
    first_gate = started(mqtt(after, f"{prefix}/gate/+", name="gate"), start)
    wait_for(lambda: len(events) == 1)  # "gate" had it from the hold
    started(mqtt(after, f"{prefix}/#", name="all"), start)
    wait_for(lambda: len(events) == 2)  # and "all", attached later, gets it too
    first_gate.stop()  # a reload restarting "gate" must not hand it the same message again
    started(mqtt(after, f"{prefix}/gate/+", name="gate"), start)
    send(broker, f"{prefix}/marker", "marker")  # anything held would have come before it
    wait_for(lambda: "marker" in events.values("value"))
    assert sorted((e.trigger, e.values["value"]) for e in events.events) == [
        ("all", "marker"),
        ("all", "part"),
        ("gate", "part"),
    ]


def test_a_message_a_trigger_took_is_not_held_so_a_burst_after_start_keeps_no_payloads(
    broker: Broker, start: Start, events: Collector, prefix: str
) -> None:
    context = context_for(broker)
    started(mqtt(context, f"{prefix}/done", name="plc"), start)  # within the hold window
    for n in range(20):
        send(broker, f"{prefix}/done", f'{{"n": {n}}}')
    wait_for(lambda: len(events) == 20)
    assert shared_connection(context)._held_bytes == 0


def test_the_hold_is_bounded_and_drops_the_oldest_saying_so(
    broker: Broker,
    events: Collector,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(mqtt_module, "HOLD_MAX_MESSAGES", 2)
    config = context_for(broker).mqtt
    subscribe_then_stop(config, events, {"gate": f"{prefix}/gate", "press": f"{prefix}/press"})
    for payload in ("p1", "p2", "p3"):
        send(broker, f"{prefix}/press", payload)
    send(broker, f"{prefix}/gate", "g")

    after = TriggerContext(mqtt=config)
    gate = mqtt(after, f"{prefix}/gate", name="gate")
    press = mqtt(after, f"{prefix}/press", name="press")
    with caplog.at_level(logging.WARNING, logger="capture.triggers.mqtt"):
        gate.start(events)
        try:
            wait_for(lambda: events.values("value") == ["g"])
            press.start(events)  # held messages are handed over before start returns
        finally:
            gate.stop()
            press.stop()
    assert [(e.trigger, e.values["value"]) for e in events.events] == [
        ("gate", "g"),
        ("press", "p2"),
        ("press", "p3"),
    ]
    assert "the oldest of those no trigger had yet are dropped" in caplog.text
