"""A running Service with its web server on a free port, against simulated cameras on two lines."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from capture.service import Service
from capture.simulator import SimulatedCamera, Simulator
from tests.broker import free_port
from tests.conftest import SIM_PASSWORD, wait_for

TOKEN = "web-Token-31337-do-not-leak"
ENVIRON = {"WEB_CAMERA_PASSWORD": SIM_PASSWORD, "WEB_TOKEN": TOKEN}


@pytest.fixture
def web_simulator() -> Iterator[Simulator]:
    """An NVR with two channels (Line A) and a Dahua and a generic camera (Line B)."""
    cameras = [
        SimulatedCamera("nvr", "hikvision", password=SIM_PASSWORD, channels=2),
        SimulatedCamera("dahua", "dahua", password=SIM_PASSWORD),
        SimulatedCamera("gate", "generic", auth="none"),
    ]
    with Simulator(cameras) as sim:
        yield sim


def rule_file(sim: Simulator, root: Path, web: str, extra: str = "") -> str:
    """A rule file with four cameras on two lines (one stream-backed), an http trigger, two rules."""
    camera = 'host = "127.0.0.1"\ntimeout_s = 3\ndeadline_s = 5\n'
    auth = 'user = "admin"\npassword_env = "WEB_CAMERA_PASSWORD"\n'
    return (
        f"""
[service]
site = "web-test-plant"
line = "Line A"
timezone = "Europe/Berlin"
shutdown_grace_s = 5

[storage]
root = {json.dumps(str(root))}
retention_interval_s = 3600

[mqtt]
enabled = false

[web]
{web}

[cameras.cam_a]
vendor = "hikvision"
port = {sim.port_of("nvr")}
channel = 1
line = "Line A"
description = "Press 1 outfeed"
{camera}{auth}
[cameras.cam_b]
vendor = "hikvision"
port = {sim.port_of("nvr")}
channel = 2
line = "Line A"
{camera}{auth}
[cameras.cam_c]
vendor = "dahua"
port = {sim.port_of("dahua")}
line = "Line B"
{camera}{auth}
[cameras.gate_cam]
vendor = "generic"
port = {sim.port_of("gate")}
path = "/snap.jpg"
line = "Line B"
{camera}
# Stream-backed, with a stream the camera does not have: down, its snapshots the fallback.
[cameras.gate_cam.live]
url = "/no-such-stream.mjpg"
reconnect_max_s = 1

[triggers.plc]
type = "http"
fields = ["result", "part"]

[[rules]]
name = "plc_check"
when = "plc"
condition = 'result == "NG"'
cameras = ["cam_a"]
burst = 2
interval_ms = 50
filename = "{{line}}/{{date}}/{{rule}}_{{camera}}_{{part}}_{{seq}}.jpg"

[[rules]]
name = "line_b_view"
when = "plc"
condition = 'result == "VIEW"'
cameras = ["line:Line B"]
"""
        + extra
    )


def with_detection(text: str, folder: Path) -> str:
    """The rule file with object detection (tests/detect/models.py's colour model) on line_b_view."""
    from tests.detect.models import detection_section  # noqa: PLC0415 - onnx, for these tests only

    text = text.replace(
        'cameras = ["line:Line B"]\n', 'cameras = ["line:Line B"]\ndetect = { min_score = 0.05 }\n'
    )
    return text + detection_section(folder)


@dataclass
class Running:
    """A started service and an HTTP client pointed at its dashboard."""

    service: Service
    sim: Simulator
    root: Path
    base_url: str
    client: httpx.Client

    def journal_rows(self, **query: object) -> list:
        return self.service.journal.query(**query)  # type: ignore[arg-type]

    def snap(self, camera: str) -> str:
        """Snap one camera through the API; the event id once its picture is journaled."""
        answer = self.client.post("/api/snap", json={"camera": camera})
        assert answer.status_code == 202, answer.text
        event_id = answer.json()["event_id"]
        wait_for(
            lambda: (
                self.journal_rows(camera=camera, limit=5)
                and any(r.event_id == event_id for r in self.journal_rows(camera=camera, limit=5))
            )
        )
        return event_id


WebFactory = Callable[..., Running]
WEB_DEFAULT = 'enabled = true\nbind = "127.0.0.1"\nport = 0'
#: Appended to [web]: an [upload] section whose store never answers, so pictures wait.
UNREACHABLE_STORE = f"""

[upload]
enabled = true
endpoint = "http://127.0.0.1:{free_port()}"
bucket = "pictures"
"""


@pytest.fixture
def start_web(tmp_path: Path, web_simulator: Simulator) -> Iterator[WebFactory]:
    """Start a Service with `[web]` as given (default: loopback, no token, free port)."""
    started: list[Running] = []

    def start(
        web: str = WEB_DEFAULT,
        headers: dict | None = None,
        extra: str = "",
        *,
        detection: bool = False,
    ) -> Running:
        root = tmp_path / f"snapshots{len(started)}"
        path = tmp_path / f"rules{len(started)}.toml"
        text = rule_file(web_simulator, root, web, extra)
        if detection:
            text = with_detection(text, tmp_path)
        path.write_text(text, encoding="utf-8")
        service = Service(path, environ=ENVIRON)
        service.start()
        assert service.web is not None, "the web server did not start"
        base = f"http://127.0.0.1:{service.web.port}"
        client = httpx.Client(base_url=base, timeout=10, trust_env=False, headers=headers)
        # As a person's browser does: without a configured token, opening the dashboard
        # is what lets its buttons (here: the client's POSTs) change anything.
        client.get("/")
        running = Running(service, web_simulator, root, base, client)
        started.append(running)
        return running

    yield start
    for running in started:
        running.client.close()
        running.service.stop()


@pytest.fixture
def web(start_web: WebFactory) -> Running:
    """The default: loopback, no token, a client that opened the dashboard page."""
    return start_web()
