"""Shared pieces of the fault suite: the factory of tests/e2e, a few checks, and more secret sweeping.

Every test of the whole suite runs under the sweep of tests/conftest.py (log
records at DEBUG, what the test printed). Here it also sees every MQTT message
on the broker of every service the fault suite starts, and every byte those
services leave under their storage root (journal included). The fault suite's
secrets are below; the sweep collects them (and every other test module's) by
their names. A hit fails the test that caused it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from gpiozero.pins.mock import MockFactory

from capture.cameras.jpeg import validate_jpeg
from capture.mqtt_close import close_client
from capture.service import Service
from tests.broker import Broker
from tests.conftest import SIM_PASSWORD, SecretSweep
from tests.e2e.conftest import ENVIRON

WRONG_PASSWORD = "Wrong-Pass-0815"
"""A password the simulator rejects, under the variable FAULT_WRONG_PASSWORD."""

MQTT_PASSWORD = "Mqtt-Secret-9931"
"""The service's broker password in test_secrets (a real mosquitto password file)."""

WEB_TOKEN = "Web-Token-Secret-5521"
"""The dashboard token in test_secrets."""

RELOAD_SECRET = "Reload-Secret-7731"
"""A password written in clear in the rule file of the hot-reload test."""

RULE_FILE_ENVIRON = {"LINE3_NVR_PASSWORD": "Env-Secret-0042", "CAPTURE_WEB_TOKEN": "Env-Token-0042"}
"""The environment the mutated rules.example.toml is read with (its *_env secrets)."""

EXAMPLE = (Path(__file__).parents[2] / "rules.example.toml").read_text(encoding="utf-8")
EXAMPLE_SECRETS = tuple(
    sorted(set(re.findall(r'^\s*(?:password|token)\s*=\s*"([^"]+)"', EXAMPLE, re.M)))
)
"""Passwords rules.example.toml writes in clear."""

SECRETS: tuple[str, ...] = (
    SIM_PASSWORD,
    WRONG_PASSWORD,
    MQTT_PASSWORD,
    WEB_TOKEN,
    RELOAD_SECRET,
    *RULE_FILE_ENVIRON.values(),
    *EXAMPLE_SECRETS,
)
"""Every secret configured anywhere in the fault suite: none may ever be seen."""

FAULT_ENVIRON = {**ENVIRON, "FAULT_WRONG_PASSWORD": WRONG_PASSWORD}

FaultServiceFactory = Callable[..., Service]


class MqttSweep:
    """Shows the sweep every message on a service's broker, logged in as the service is."""

    _ids = itertools.count()

    def __init__(self, service: Service, sweep: SecretSweep) -> None:
        config = service.rules.mqtt
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"fault-sweep-{next(self._ids)}"
        )
        if config.username:
            password = config.password.get_secret_value() if config.password else None
            self.client.username_pw_set(config.username, password)
        self.client.on_connect = lambda client, *_: client.subscribe("#")
        self.client.on_message = lambda _c, _u, message: sweep.look(
            f"MQTT message on {message.topic}", message.topic.encode() + b" " + message.payload
        )
        self.client.reconnect_delay_set(0.1, 0.5)  # brokers get killed in this suite
        self.client.connect_async(config.host, config.port)
        self.client.loop_start()

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        close_client(self.client)


@pytest.fixture
def fault_service(tmp_path: Path, secret_sweep: SecretSweep) -> Iterator[FaultServiceFactory]:
    """Like tests/e2e's `start_service`, with the environment (secrets) chosen by the test.

    Every service it starts is watched by the sweep: its broker's messages while
    it runs, its storage root (journal included) once it has stopped.
    """
    started: list[tuple[Service, MqttSweep | None]] = []
    pins = MockFactory()

    def start(text: str, environ: Mapping[str, str] = FAULT_ENVIRON) -> Service:
        path = tmp_path / "rules.toml"
        path.write_text(text, encoding="utf-8")
        service = Service(path, pin_factory=pins, environ=environ)
        watcher = MqttSweep(service, secret_sweep) if service.rules.mqtt.enabled else None
        service.start()
        started.append((service, watcher))
        return service

    start.pins = pins  # type: ignore[attr-defined]
    yield start
    for service, watcher in started:
        service.stop()
        if watcher is not None:
            watcher.close()
        secret_sweep.look_under(Path(service.rules.storage.root))
    pins.close()


def with_cam_b(sections: str, **options: object) -> str:
    """`camera_sections` with options of cam_b replaced or added (values as TOML literals)."""
    head, cam_b = sections.split("[cameras.cam_b]")
    lines = cam_b.strip().splitlines()
    for key, value in options.items():
        lines = [line for line in lines if not line.startswith(f"{key} =")]
        lines.append(f"{key} = {value}")
    return head + "[cameras.cam_b]\n" + "\n".join(lines) + "\n"


def snapshots(root: Path) -> list[Path]:
    """Every saved picture under the storage root, the latest/ copies left out."""
    return sorted(p for p in root.rglob("*.jpg") if p.is_file() and "latest" not in p.parts)


def assert_every_jpeg_valid(root: Path) -> None:
    """Every .jpg anywhere under `root` (latest/ included) is a complete JPEG."""
    for path in filter(Path.is_file, root.rglob("*.jpg")):
        validate_jpeg(path.read_bytes())  # raises InvalidImage on a torn or foreign file


def kill_broker(broker: Broker) -> None:
    """SIGKILL the broker (no goodbye, no persistence save); `broker.start()` brings it back."""
    process = broker.process
    assert process is not None, "broker is not running"
    process.kill()
    process.wait()
    if process.stderr:
        process.stderr.close()
    broker.process = None


def persisted_after(broker: Broker, moment: float) -> bool:
    """Whether mosquitto saved its persistence file (sessions, queues) after `moment` (epoch s)."""
    database = broker.workdir / "mosquitto.db"
    return database.exists() and database.stat().st_mtime > moment
