"""deploy/mosquitto/: the real mosquitto on the example configuration enforces every right in the ACL."""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from capture.mqtt_close import close_client
from tests.broker import Broker
from tests.conftest import wait_for

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
USERS = ("line3-capture", "line3-plc", "line3-mes", "line3-monitor", "homeassistant")
PREFIX = "plant-a/line3/capture"


def password(user: str) -> str:
    return f"{user}-Secret-9"


@pytest.fixture(scope="module")
def line_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """mosquitto on line.conf as shipped, its port and paths moved into a temporary folder."""
    work = tmp_path_factory.mktemp("line-broker")
    broker = Broker(work)
    passwd = work / "passwd"
    for index, user in enumerate(USERS):
        create = ["-c"] if index == 0 else []
        subprocess.run(
            ["mosquitto_passwd", *create, "-b", str(passwd), user, password(user)], check=True
        )
    (work / "acl").write_text((DEPLOY / "acl.example").read_text())
    text = (DEPLOY / "line.conf").read_text()
    replacements = {
        r"(?m)^listener 1883$": f"listener {broker.port} 127.0.0.1",
        r"(?m)^pid_file .*$": f"pid_file {work}/mosquitto.pid",
        r"(?m)^password_file .*$": f"password_file {passwd}",
        r"(?m)^acl_file .*$": f"acl_file {work}/acl",
        r"(?m)^persistence_location .*$": f"persistence_location {work}/",
        r"(?m)^log_dest syslog$": "log_dest stderr",
    }
    for pattern, replacement in replacements.items():
        text, count = re.subn(pattern, replacement, text)
        assert count == 1, f"line.conf no longer has {pattern!r}"
    if os.geteuid() == 0:
        text += (
            "user root\n"  # as root mosquitto would switch to 'mosquitto', who cannot write here
        )
    broker.config.write_text(text)
    broker.start()
    yield broker
    broker.stop()


class Client:
    """One user's connection; records what its subscriptions deliver."""

    def __init__(self, broker: Broker, user: str, secret: str | None = None) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.refused: Any = None
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{user}")
        self.client.username_pw_set(user, password(user) if secret is None else secret)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.refused = reason
        self._connected.set()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload))

    def wait_connected(self) -> None:
        wait_for(self._connected.is_set)
        assert self.refused is None, f"broker refused: {self.refused}"

    def subscribe(self, topic: str) -> None:
        self.wait_connected()
        self._subscribed.clear()
        self.client.subscribe(topic, qos=1)
        wait_for(self._subscribed.is_set)

    def publish(self, topic: str, payload: str) -> None:
        self.wait_connected()
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def received(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        close_client(self.client)


@pytest.fixture
def clients(line_broker: Broker) -> Iterator[dict[str, Client]]:
    """Every user of the ACL connected; the monitor subscribed to everything of the line."""
    connected = {user: Client(line_broker, user) for user in USERS}
    connected["line3-monitor"].subscribe("plant-a/line3/#")
    yield connected
    for client in connected.values():
        client.close()


def delivered(clients: dict[str, Client], sender: str, topic: str, payload: str) -> bool:
    """Whether `sender`'s publish on `topic` reaches the monitor.

    A marker the sender may publish follows it: messages of one client arrive
    in order, so once the marker is there the first one either came or never will.
    """
    marker_topic = {
        "line3-capture": f"{PREFIX}/status",
        "line3-plc": "plant-a/line3/plc/marker",
        "line3-mes": f"{PREFIX}/cmd/snap",
    }[sender]
    marker = f"marker after {payload}"
    clients[sender].publish(topic, payload)
    clients[sender].publish(marker_topic, marker)
    monitor = clients["line3-monitor"]
    wait_for(lambda: (marker_topic, marker.encode()) in monitor.received())
    return (topic, payload.encode()) in monitor.received()


@pytest.mark.parametrize(
    ("sender", "topic", "allowed"),
    [
        ("line3-capture", f"{PREFIX}/events/ng_part", True),
        ("line3-capture", f"{PREFIX}/detections/ng_part", True),
        ("line3-plc", f"{PREFIX}/detections/ng_part", False),
        ("line3-capture", f"{PREFIX}/status", True),
        ("line3-capture", "plant-a/line3/plc/S2/result", False),  # the service cannot fake the PLC
        ("line3-capture", f"{PREFIX}/cmd/snap", False),
        ("line3-capture", "plant-a/line4/capture/events/x", False),  # nor speak for another line
        ("line3-plc", "plant-a/line3/plc/S2/result", True),
        ("line3-plc", f"{PREFIX}/events/ng_part", False),  # nor the PLC announce a picture
        ("line3-plc", f"{PREFIX}/cmd/snap", True),
        ("line3-mes", f"{PREFIX}/cmd/snap", True),
        ("line3-mes", "plant-a/line3/plc/S2/result", False),
        ("line3-mes", f"{PREFIX}/events/ng_part", False),
    ],
)
def test_acl_delivers_allowed_publishes_and_drops_forbidden_ones(
    clients: dict[str, Client], sender: str, topic: str, allowed: bool
) -> None:
    assert delivered(clients, sender, topic, f"from {sender} to {topic}") is allowed


def test_service_hears_commands_and_plc_but_the_monitor_cannot_command(
    clients: dict[str, Client],
) -> None:
    service = clients["line3-capture"]
    service.subscribe(f"{PREFIX}/cmd/#")
    service.subscribe("plant-a/line3/plc/#")
    mes = clients["line3-mes"]
    mes.subscribe(f"{PREFIX}/events/#")

    clients["line3-monitor"].publish(f"{PREFIX}/cmd/snap", '{"camera": "from-monitor"}')
    mes.publish(f"{PREFIX}/cmd/snap", '{"camera": "line3_press"}')
    clients["line3-plc"].publish("plant-a/line3/plc/S2/result", '{"state": "NG"}')
    clients["line3-capture"].publish(f"{PREFIX}/events/ng_part", '{"event_id": "1"}')

    wait_for(lambda: len(service.received()) == 2)
    assert sorted(service.received()) == [
        (f"{PREFIX}/cmd/snap", b'{"camera": "line3_press"}'),
        ("plant-a/line3/plc/S2/result", b'{"state": "NG"}'),
    ]
    wait_for(mes.received)
    assert mes.received() == [(f"{PREFIX}/events/ng_part", b'{"event_id": "1"}')]


def test_mes_cannot_read_the_plc(clients: dict[str, Client]) -> None:
    mes = clients["line3-mes"]
    mes.subscribe("plant-a/#")
    clients["line3-plc"].publish("plant-a/line3/plc/S2/result", "secret recipe")
    clients["line3-capture"].publish(f"{PREFIX}/status", "online")
    wait_for(lambda: (f"{PREFIX}/status", b"online") in mes.received())
    assert [topic for topic, _ in mes.received()] == [f"{PREFIX}/status"]


@pytest.mark.parametrize(("user", "secret"), [("line3-mes", "wrong"), ("", "")])
def test_wrong_password_and_anonymous_clients_are_refused(
    line_broker: Broker, user: str, secret: str
) -> None:
    client = Client(line_broker, user, secret)
    try:
        wait_for(client._connected.is_set)
        assert client.refused is not None and "not authorized" in str(client.refused).lower()
    finally:
        client.close()


def test_home_assistant_gets_this_pi_s_discovery_and_pictures_and_nothing_else(
    clients: dict[str, Client],
) -> None:
    home = clients["homeassistant"]
    home.subscribe("homeassistant/#")
    home.subscribe("plant-a/+/capture/#")
    service = clients["line3-capture"]
    own = "homeassistant/image/event-capture-plant-a-line3/cam/config"
    service.subscribe("homeassistant/+/event-capture-plant-a-line3/+/config")
    service.subscribe("homeassistant/status")
    service.publish("homeassistant/image/another-pi/cam/config", '{"name": "not ours"}')
    service.publish("homeassistant/status", "online")  # only Home Assistant announces itself
    service.publish(own, '{"name": "cam"}')
    service.publish(f"{PREFIX}/cameras/cam/image", "JPEG")
    home.publish("homeassistant/status", "online")
    wait_for(lambda: len(home.received()) == 3)
    assert sorted(home.received()) == [
        ("homeassistant/image/event-capture-plant-a-line3/cam/config", b'{"name": "cam"}'),
        ("homeassistant/status", b"online"),
        (f"{PREFIX}/cameras/cam/image", b"JPEG"),
    ]
    wait_for(lambda: len(service.received()) == 2)
    assert sorted(service.received()) == [
        (own, b'{"name": "cam"}'),
        ("homeassistant/status", b"online"),
    ]
