"""Off loopback, nobody without the token makes the service take a picture: refused, nothing journaled or saved."""

from __future__ import annotations

from pathlib import Path

import httpx

from capture.simulator import Simulator
from tests.broker import Broker
from tests.conftest import wait_for
from tests.e2e.conftest import base_sections, camera_sections
from tests.faults.conftest import FAULT_ENVIRON, WEB_TOKEN, FaultServiceFactory, snapshots
from tests.mqtt_client import Recorder

ENVIRON = {**FAULT_ENVIRON, "FAULT_WEB_TOKEN": WEB_TOKEN}

WEB = """
[web]
enabled = true
bind = "0.0.0.0"
port = 0
token_env = "FAULT_WEB_TOKEN"
"""

RULE = """
[triggers.plc]
type = "http"
fields = ["result"]

[[rules]]
name = "part"
when = "plc"
cameras = ["cam_a"]
filename = "parts/{event_id}.jpg"
"""

POSTS = [("/api/trigger/plc", {"result": "NG"}), ("/api/snap", {"camera": "cam_a"})]

UNAUTHENTICATED = {
    "no credentials": {},
    "a wrong bearer token": {"Authorization": f"Bearer {WEB_TOKEN}x"},
    "the token as Basic credentials": {"Authorization": f"Basic {WEB_TOKEN}"},
    "the token without a scheme": {"Authorization": WEB_TOKEN},
    "a forged session cookie": {"Cookie": "capture_session=0123456789abcdef"},
}
"""Every way of asking without the token."""


def test_off_loopback_unauthenticated_posts_are_refused_and_take_no_picture(
    tmp_path: Path, broker: Broker, simulator: Simulator, fault_service: FaultServiceFactory
) -> None:
    root = tmp_path / "data"
    prefix = f"web-{tmp_path.name}"
    text = base_sections(root, broker, prefix=prefix).replace("[web]\nenabled = false\n", WEB)
    assert WEB in text
    service = fault_service(text + camera_sections(simulator) + RULE, environ=ENVIRON)
    assert service.web is not None and service.rules.web.bind == "0.0.0.0"
    events = Recorder(broker, f"{prefix}/events/#")
    base = f"http://127.0.0.1:{service.web.port}"

    # The intruder comes from another address than the PLC, so that the throttle of
    # wrong tokens (per address) can never hold up the PLC's requests below.
    intruder = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=base, timeout=10, trust_env=False, transport=intruder) as client:
        for how, headers in UNAUTHENTICATED.items():
            for path, body in POSTS:
                answer = client.post(path, json=body, headers=headers)
                assert answer.status_code in (401, 403, 429), (how, path, answer.status_code)
                assert WEB_TOKEN not in answer.text
    # Then the same requests with the token go through: the refusals were the token's.
    with httpx.Client(base_url=base, timeout=10, trust_env=False) as plc:
        bearer = {"Authorization": f"Bearer {WEB_TOKEN}"}
        accepted = [plc.post(path, json=body, headers=bearer) for path, body in POSTS]
    assert [answer.status_code for answer in accepted] == [202, 202], [a.text for a in accepted]
    wanted = {answer.json()["event_id"] for answer in accepted}

    # Once the two accepted events are journaled and announced, nothing else is.
    rows = wait_for(lambda: len(service.journal.query()) >= 2 and service.journal.query())
    assert isinstance(rows, list)
    assert service.engine.wait_idle(10)
    wait_for(lambda: len(events.json()) >= 2)
    events.close()
    assert {row.event_id for row in service.journal.query()} == wanted
    assert {message["event_id"] for message in events.json()} == wanted
    assert len(snapshots(root)) == 2
