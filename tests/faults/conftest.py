"""Shared pieces of the fault suite: the factory of tests/e2e plus a few checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from capture.cameras.jpeg import validate_jpeg
from capture.service import Service
from tests.broker import Broker
from tests.e2e.conftest import ENVIRON

WRONG_PASSWORD = "Wrong-Pass-0815"
"""A password the simulator rejects, under the variable FAULT_WRONG_PASSWORD."""

FAULT_ENVIRON = {**ENVIRON, "FAULT_WRONG_PASSWORD": WRONG_PASSWORD}

FaultServiceFactory = Callable[..., Service]


@pytest.fixture
def fault_service(tmp_path: Path) -> Iterator[FaultServiceFactory]:
    """Like tests/e2e's `start_service`, with the environment (secrets) chosen by the test."""
    started: list[Service] = []
    pins = MockFactory()

    def start(text: str, environ: Mapping[str, str] = FAULT_ENVIRON) -> Service:
        path = tmp_path / "rules.toml"
        path.write_text(text, encoding="utf-8")
        service = Service(path, pin_factory=pins, environ=environ)
        service.start()
        started.append(service)
        return service

    start.pins = pins  # type: ignore[attr-defined]
    yield start
    for service in started:
        service.stop()
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
