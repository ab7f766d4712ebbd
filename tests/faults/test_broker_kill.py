"""The broker SIGKILLed in the middle of a QoS 1 trigger stream: nothing is lost."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from capture.journal import JournalReader
from capture.mqtt_close import close_client
from capture.service import JOURNAL_NAME, Service
from capture.simulator import Simulator
from tests.broker import Broker
from tests.conftest import wait_for
from tests.e2e.conftest import base_sections, camera_sections
from tests.faults.conftest import (
    FaultServiceFactory,
    assert_every_jpeg_valid,
    kill_broker,
    persisted_after,
    snapshots,
)
from tests.mqtt_client import Recorder

TRIGGERS = 60
RATE_PER_S = 20
KILL_AT = 30

STREAM_RULE = """
[triggers.plc]
type = "mqtt"
topic = "plc/+/part"
payload = "json"
fields = ["id"]

[[rules]]
name = "part"
when = "plc"
cameras = ["cam_a"]
filename = "parts/{id}.jpg"
"""


class Sender:
    """A PLC-like publisher: persistent session, fixed client id, QoS 1, counting acknowledgements."""

    def __init__(self, broker: Broker) -> None:
        self.acked = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="fault-plc-sender", clean_session=False
        )
        self.client.on_publish = self._on_publish
        self.client.reconnect_delay_set(0.05, 0.5)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_publish(self, *_: object) -> None:
        with self._lock:
            self.acked += 1

    def send(self, part_id: int) -> None:
        # Disconnected, paho queues the QoS 1 message and sends it on reconnect.
        self.client.publish("plc/S1/part", json.dumps({"id": part_id}), qos=1)

    def close(self) -> None:
        close_client(self.client)


@pytest.mark.slow
def test_broker_sigkill_mid_stream_loses_no_trigger_and_no_event_message(
    tmp_path: Path, broker_fresh: Broker, simulator: Simulator, fault_service: FaultServiceFactory
) -> None:
    root = tmp_path / "data"
    service: Service = fault_service(
        base_sections(root, broker_fresh, prefix="kill") + camera_sections(simulator) + STREAM_RULE
    )
    assert service.publisher is not None and service.publisher.wait_connected(10)
    events = Recorder(broker_fresh, "kill/events/#", client_id="kill-consumer", persistent=True)
    sender = Sender(broker_fresh)
    subscribed_at = time.time()
    try:
        for part_id in range(TRIGGERS):
            if part_id == KILL_AT:
                # A broker that has run for a while has saved the trigger session; one
                # killed before its first save forgets it (see docs/testing.md).
                wait_for(lambda: persisted_after(broker_fresh, subscribed_at), timeout=15)
                kill_broker(broker_fresh)
                broker_fresh.start()
            sender.send(part_id)
            time.sleep(1 / RATE_PER_S)  # the pace of the line, not a wait for a result
        wait_for(lambda: sender.acked >= TRIGGERS, timeout=30)

        def captured_ids() -> set[int]:
            # A redelivered trigger is captured again as "{id}_2.jpg": at least once.
            return {int(p.stem.split("_")[0]) for p in snapshots(root)}

        if not _settles(lambda: len(captured_ids()) == TRIGGERS, 30):
            pytest.fail(f"triggers never captured: {sorted(set(range(TRIGGERS)) - captured_ids())}")
        assert service.engine.wait_idle(10)
        service.journal.flush()
        rows = JournalReader(root / JOURNAL_NAME).query(rule="part", limit=10000)
        assert sorted({row.values["id"] for row in rows}) == list(range(TRIGGERS))
        assert all(row.ok for row in rows)

        def events_by_id() -> dict[object, set[str]]:
            found: dict[object, set[str]] = defaultdict(set)
            for message in events.json():
                found[message["values"]["id"]].add(message["event_id"])
            return found

        wait_for(lambda: len(events_by_id()) == TRIGGERS, timeout=60)
    finally:
        sender.close()
        events.close()
    by_id = events_by_id()
    lost = sorted(set(range(TRIGGERS)) - set(by_id))
    assert lost == []
    # Every journaled event reached the consumer (duplicates allowed, none missing).
    published = {event_id for ids in by_id.values() for event_id in ids}
    assert {row.event_id for row in rows} <= published
    assert {f"{i}.jpg" for i in range(TRIGGERS)} <= {p.name for p in snapshots(root)}
    assert_every_jpeg_valid(root)


def _settles(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
