"""The private broker fixture really speaks MQTT and survives a restart."""

from __future__ import annotations

import paho.mqtt.client as mqtt

from capture.mqtt_close import close_client
from tests.broker import Broker
from tests.conftest import wait_for


def _roundtrip(broker: Broker) -> bytes:
    received: list[bytes] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, msg: received.append(msg.payload)
    client.connect(broker.host, broker.port)
    client.subscribe("fixture/test", qos=1)
    client.loop_start()
    try:
        client.publish("fixture/test", b"hello", qos=1).wait_for_publish(5)
        wait_for(lambda: received)
    finally:
        close_client(client)
    return received[0]


def test_broker_delivers_and_restarts_on_same_port(broker_fresh: Broker) -> None:
    assert _roundtrip(broker_fresh) == b"hello"
    port = broker_fresh.port
    broker_fresh.restart()
    assert broker_fresh.port == port
    assert _roundtrip(broker_fresh) == b"hello"
