"""docs/fleet.md's bridge: a line broker forwards events and status to the central one, snap commands back, nothing else."""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broker import Broker
from tests.conftest import wait_for
from tests.mqtt_client import Recorder, publish

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "fleet.md"
PREFIX = "plant-a/line3/capture"
# Lines of the documented block that need a real central broker with TLS and users.
SITE_SPECIFIC = re.compile(r"^(address|bridge_cafile|remote_username|remote_password) ")


def documented_bridge() -> str:
    """The bridge.conf block of the fleet guide, as a technician would copy it."""
    [block] = re.findall(r"```conf\n(connection .*?)```", GUIDE.read_text(), re.S)
    return block


def broker_with(workdir: Path, extra: str = "") -> Broker:
    """A Broker whose config is a plain anonymous listener plus `extra` lines."""
    broker = Broker(workdir)
    run_as = f"user {getpass.getuser()}\n" if os.geteuid() == 0 else ""
    broker.config.write_text(
        f"listener {broker.port} 127.0.0.1\nallow_anonymous true\nlog_dest stderr\n"
        f"persistence true\npersistence_location {workdir}/\n{run_as}{extra}"
    )
    return broker


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[tuple[Broker, Broker]]:
    """(line, central): the line broker runs the guide's bridge to the central one."""
    central = broker_with(tmp_path / "central")
    kept = [line for line in documented_bridge().splitlines() if not SITE_SPECIFIC.match(line)]
    bridge = "\n".join(kept).replace(
        "connection plant-a-central",
        f"connection plant-a-central\naddress 127.0.0.1:{central.port}",
    )
    line = broker_with(tmp_path / "line", bridge + "\n")
    central.start()
    line.start()
    yield line, central
    line.stop()
    central.stop()


def test_events_and_status_go_out_snap_commands_come_in_plc_traffic_stays(
    brokers: tuple[Broker, Broker],
) -> None:
    line, central = brokers
    bridge_state = Recorder(central, "$SYS/broker/connection/+/state")
    seen_centrally = Recorder(central, "plant-a/#")
    commands_on_line = Recorder(line, f"{PREFIX}/cmd/snap")
    try:
        wait_for(lambda: b"1" in bridge_state.payloads())
        publish(line, "plant-a/line3/plc/S2/result", b'{"state":"NG"}')
        publish(line, f"{PREFIX}/status", b"online")
        publish(line, f"{PREFIX}/events/ng_part", b'{"rule":"ng_part"}')
        wait_for(
            lambda: (f"{PREFIX}/events/ng_part", b'{"rule":"ng_part"}') in seen_centrally.messages
        )
        # The bridge subscribed centrally before it forwarded the event: a command now comes in.
        publish(central, f"{PREFIX}/cmd/snap", b'{"camera":"line3_press"}')
        wait_for(lambda: commands_on_line.payloads() == [b'{"camera":"line3_press"}'])
        # The central recorder hears the command on its own connection, maybe after the line.
        wait_for(
            lambda: (
                [topic for topic, _ in seen_centrally.messages]
                == [f"{PREFIX}/status", f"{PREFIX}/events/ng_part", f"{PREFIX}/cmd/snap"]
            )
        )
    finally:
        for recorder in (bridge_state, seen_centrally, commands_on_line):
            recorder.close()
