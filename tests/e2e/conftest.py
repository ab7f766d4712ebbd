"""A factory under test: rule-file sections for the shared `simulator` fixture, a real Service."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from capture.service import Service
from capture.simulator import Simulator
from tests.broker import Broker
from tests.conftest import SIM_PASSWORD

ENVIRON = {"E2E_CAMERA_PASSWORD": SIM_PASSWORD}


def camera_sections(sim: Simulator) -> str:
    """[cameras.*] for the simulator: cam_a (NVR channel 1) and cam_b (Dahua)."""
    return f"""
[cameras.cam_a]
vendor = "hikvision"
host = "127.0.0.1"
port = {sim.port_of("nvr")}
channel = 1
user = "admin"
password_env = "E2E_CAMERA_PASSWORD"
line = "Line 3"
timeout_s = 3
deadline_s = 5

[cameras.cam_b]
vendor = "dahua"
host = "127.0.0.1"
port = {sim.port_of("dahua")}
user = "admin"
password_env = "E2E_CAMERA_PASSWORD"
line = "Line 3"
timeout_s = 3
deadline_s = 5
"""


def client_id(root: Path) -> str:
    """An MQTT client id of this test's own: its folder's name and a digest of the storage root.

    Services keep persistent sessions on the session-wide broker; with one id for
    all of them a session (queued messages, subscriptions) would carry over from
    one test into the next. A service restarted on the same root is the same client.
    """
    test = re.sub(r"[^A-Za-z0-9_-]", "_", root.parent.name)[-40:]
    return f"e2e-{test}-{hashlib.sha256(str(root).encode()).hexdigest()[:8]}"


def base_sections(root: Path, broker: Broker | None, prefix: str = "e2e") -> str:
    """[service], [storage], [mqtt], [web] for a test."""
    mqtt = (
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\ntopic_prefix = "{prefix}"\n'
        f'client_id = "{client_id(root)}"\nkeepalive_s = 5\n'
        if broker
        else "[mqtt]\nenabled = false\n"
    )
    return f"""
[service]
site = "test-plant"
line = "Line 3"
timezone = "Europe/Berlin"
shutdown_grace_s = 10

[storage]
root = {json.dumps(str(root))}
retention_interval_s = 3600

{mqtt}
[web]
enabled = false
"""


ServiceFactory = Callable[[str], Service]


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[ServiceFactory]:
    """Write a rule file and start a Service on it (MockFactory pins); stopped at teardown."""
    started: list[Service] = []
    factory = MockFactory()

    def start(text: str) -> Service:
        path = tmp_path / "rules.toml"
        path.write_text(text, encoding="utf-8")
        service = Service(path, pin_factory=factory, environ=ENVIRON)
        service.start()
        started.append(service)
        return service

    start.pin_factory = factory  # type: ignore[attr-defined]
    yield start
    for service in started:
        service.stop()
    factory.close()
