"""Shared pieces of the fault suite: the factory of tests/e2e plus a few checks."""

from __future__ import annotations

from pathlib import Path

from capture.cameras.jpeg import validate_jpeg
from tests.broker import Broker
from tests.e2e.conftest import start_service  # noqa: F401  (fixture re-exported)


def snapshots(root: Path) -> list[Path]:
    """Every saved picture under the storage root, the latest/ copies left out."""
    return sorted(p for p in root.rglob("*.jpg") if "latest" not in p.parts)


def assert_every_jpeg_valid(root: Path) -> None:
    """Every .jpg anywhere under `root` (latest/ included) is a complete JPEG."""
    for path in root.rglob("*.jpg"):
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
