"""Secrets never leave: not in logs, journal, MQTT messages, CLI output, web pages or errors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from capture.journal import JournalReader
from capture.mqtt_close import close_client
from capture.service import JOURNAL_NAME
from capture.simulator import Simulator
from tests.broker import Broker, free_port
from tests.conftest import SIM_PASSWORD, wait_for
from tests.e2e.conftest import base_sections, camera_sections
from tests.faults.conftest import (
    MQTT_PASSWORD,
    WEB_TOKEN,
    WRONG_PASSWORD,
    FaultServiceFactory,
    with_cam_b,
)
from tests.mqtt_client import Recorder, publish

ENVIRON = {
    "E2E_CAMERA_PASSWORD": SIM_PASSWORD,
    "FAULT_WRONG_PASSWORD": WRONG_PASSWORD,
    "FAULT_MQTT_PASSWORD": MQTT_PASSWORD,
    "FAULT_WEB_TOKEN": WEB_TOKEN,
}
SECRETS = (SIM_PASSWORD, WRONG_PASSWORD, MQTT_PASSWORD, WEB_TOKEN)

RULES = """
[triggers.plc]
type = "mqtt"
topic = "secret/in"
payload = "json"
fields = ["id"]

[[rules]]
name = "part"
when = "plc"
cameras = ["cam_a", "cam_b"]
filename = "parts/{camera}_{id}.jpg"

[[rules]]
name = "nowhere"
when = "plc"
condition = "id > 100"
cameras = ["cam_c"]
filename = "x/{id}.jpg"

[cameras.cam_c]
vendor = "generic"
host = "127.0.0.1"
port = {closed}
path = "/snap.jpg"
user = "admin"
password_env = "E2E_CAMERA_PASSWORD"
timeout_s = 1
deadline_s = 2
"""


@dataclass(frozen=True)
class SecuredBroker:
    """A mosquitto with an open listener (`broker.port`, for the test's clients) and one that
    needs user `capture` with MQTT_PASSWORD (`port`, for the service)."""

    broker: Broker
    port: int


def refused_anonymously(host: str, port: int) -> bool:
    """Whether the broker answers an anonymous CONNECT with a refusal."""
    answered: list[bool] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda _c, _u, _f, reason, _p: answered.append(reason.is_failure)
    client.connect(host, port)
    client.loop_start()
    try:
        wait_for(lambda: answered)
    finally:
        close_client(client)
    return answered[0]


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[SecuredBroker]:
    """A private broker that checks the service's MQTT password against a password file."""
    broker = Broker(tmp_path / "mosquitto")
    passwords = broker.workdir / "passwords"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(passwords), "capture", MQTT_PASSWORD], check=True
    )
    port = free_port()
    open_listener = broker.config.read_text(encoding="utf-8")
    broker.config.write_text(
        "per_listener_settings true\n"
        + open_listener
        + f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwords}\n",
        encoding="utf-8",
    )
    broker.start()
    try:
        assert refused_anonymously(broker.host, port)
        yield SecuredBroker(broker, port)
    finally:
        broker.stop()


def configured(root: Path, secured: SecuredBroker, simulator: Simulator, web_port: int) -> str:
    broker = secured.broker
    base = base_sections(root, broker, prefix="secret")
    assert f"port = {broker.port}\n" in base
    base = base.replace(f"port = {broker.port}\n", f"port = {secured.port}\n")
    base = base.replace(
        'topic_prefix = "secret"',
        'topic_prefix = "secret"\nusername = "capture"\npassword_env = "FAULT_MQTT_PASSWORD"',
    )
    base = base.replace(
        "[web]\nenabled = false",
        f'[web]\nbind = "127.0.0.1"\nport = {web_port}\ntoken_env = "FAULT_WEB_TOKEN"',
    )
    cameras = with_cam_b(camera_sections(simulator), password_env='"FAULT_WRONG_PASSWORD"')
    return base + cameras + RULES.replace("{closed}", str(free_port()))


def run_cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "capture", *args],
        env={**os.environ, **ENVIRON},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout + done.stderr


def test_no_secret_appears_anywhere_a_user_or_a_log_can_see(
    tmp_path: Path,
    secured: SecuredBroker,
    simulator: Simulator,
    fault_service: FaultServiceFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="capture")
    simulator.faults("dahua").lockout_after = 2
    root = tmp_path / "data"
    broker = secured.broker
    text = configured(root, secured, simulator, free_port())
    service = fault_service(text, ENVIRON)
    # The broker checks the password: the service's connection proves it was sent.
    assert service.publisher is not None and service.publisher.wait_connected(10)
    everything = Recorder(broker, "#")
    for part_id in (1, 2, 3, 101):
        publish(broker, "secret/in", json.dumps({"id": part_id}))
    wait_for(
        lambda: len([m for t, m in everything.messages if t.startswith("secret/events/")]) >= 5,
        timeout=30,
    )
    assert service.engine.wait_idle(10)
    service.journal.flush()
    rows = JournalReader(root / JOURNAL_NAME).query(limit=10000)
    errors = {row.error_type for row in rows if row.error_type}
    assert "Unreachable" in errors and errors & {"AuthFailed", "LockedOut"}, errors

    haystacks: dict[str, str] = {
        "logs": "\n".join(
            f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records
        ),
        "journal": json.dumps([row.as_json() for row in rows]),
        "mqtt": "\n".join(f"{t} {m!r}" for t, m in everything.messages),
        "check": run_cli("check", "-c", str(tmp_path / "rules.toml")),
        "events": run_cli("events", "-c", str(tmp_path / "rules.toml"), "--json", "--limit", "1000")
        + run_cli("events", "-c", str(tmp_path / "rules.toml")),
        "repr": repr(service.rules) + str(service.rules.model_dump()),
    }
    assert service.web is not None, "the dashboard did not start"
    headers = {"Authorization": f"Bearer {WEB_TOKEN}"}
    with httpx.Client(base_url=service.web.url, headers=headers, timeout=10) as client:
        for page in ("/", "/events", "/api/cameras", "/api/events"):
            answer = client.get(page)
            assert answer.status_code == 200, page
            haystacks[f"web {page}"] = answer.text
    everything.close()

    assert "AuthFailed" in haystacks["journal"]  # the wrong password was really sent
    assert caplog.records and len(haystacks["mqtt"]) > 1000
    assert "part" in haystacks["events"] and "error" not in haystacks["check"].lower()
    for where, text_seen in haystacks.items():
        for secret in SECRETS:
            assert secret not in text_seen, f"{secret!r} found in {where}"
