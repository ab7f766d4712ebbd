"""A small MQTT test client that records what arrives on a topic filter."""

from __future__ import annotations

import json
import threading
from typing import Any

import paho.mqtt.client as mqtt

from capture.mqtt_close import close_client
from tests.broker import Broker
from tests.conftest import wait_for


class Recorder:
    """Subscribes to a filter and keeps every message; optionally with a persistent session."""

    def __init__(
        self, broker: Broker, topic: str, *, client_id: str = "", persistent: bool = False
    ) -> None:
        self.topic = topic
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent
        )
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        wait_for(self._subscribed.is_set)

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload))

    def json(self) -> list[dict[str, Any]]:
        """Every JSON payload received so far, in arrival order."""
        with self._lock:
            return [json.loads(payload) for _, payload in self.messages]

    def payloads(self) -> list[bytes]:
        """Every raw payload received so far."""
        with self._lock:
            return [payload for _, payload in self.messages]

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        close_client(self.client)


def publish(
    broker: Broker, topic: str, payload: bytes | str, qos: int = 1, *, retain: bool = False
) -> None:
    """Publish one message and wait until the broker acknowledged it."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)
    finally:
        close_client(client)
