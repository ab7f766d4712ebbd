"""Hostile MQTT payloads: no crash, bounded memory, nothing outside the storage root, sane names."""

from __future__ import annotations

import gc
import json
import logging
import os
import random
import tracemalloc
from collections.abc import Callable, Iterable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from capture.mqtt_close import close_client
from capture.service import Service
from capture.simulator import Simulator
from tests.broker import Broker
from tests.conftest import wait_for
from tests.e2e.conftest import base_sections, camera_sections
from tests.faults.conftest import FaultServiceFactory, assert_every_jpeg_valid, snapshots

RULE = """
[triggers.plc]
type = "mqtt"
topic = "hostile/in"
payload = "json"
fields = ["id", "station"]

[[rules]]
name = "part"
when = "plc"
cameras = ["cam_a"]
filename = "{station}/{id}.jpg"
"""

HOSTILE_STRINGS = [
    "../../etc/passwd", "/abs", "/etc/cron.d/x", "a\x00b", "..", ".", "", " ", "x" * 10_000,
    "CON", "NUL.txt", "\U0001f4f7\U0001f525", "\u202eevil\u202c", "\u200f.jpg", "a/../../b",
    "..\\..\\windows", "~root", "$(reboot)", "%2e%2e%2f", "\n", ".hidden", "-rf",
]  # fmt: skip


def hostile_payloads() -> list[bytes]:
    rng = random.Random(4711)
    payloads = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000))) for _ in range(20)]
    payloads += [
        json.dumps({"id": "x" * 2_000_000, "station": "S1"}).encode(),  # oversized
        b"[" * 10_000 + b"]" * 10_000,  # deep nesting
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        b"null", b"[]", b'"string"', b"1e999", b"{}", b"\xef\xbb\xbf{}", b"",
        json.dumps({"id": [1, 2], "station": {"x": 1}}).encode(),
        json.dumps({"id": None, "station": True}).encode(),
        json.dumps({"id": 1e308, "station": -0.0}).encode(),
        json.dumps({"id": 10**400, "station": "S1"}).encode(),
    ]  # fmt: skip
    for text in HOSTILE_STRINGS:
        payloads.append(json.dumps({"id": text, "station": "S1"}).encode())
        payloads.append(json.dumps({"id": 1, "station": text}).encode())
        payloads.append(json.dumps({"id": text, "station": text}).encode())
    return payloads


def publish_all(broker: Broker, payloads: Iterable[bytes | str]) -> None:
    """Publish each payload with QoS 1 to the trigger's topic, in order, acknowledged."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for payload in payloads:
            client.publish("hostile/in", payload, qos=1).wait_for_publish(10)
    finally:
        close_client(client)


def files_outside(tmp_path: Path, root: Path) -> set[Path]:
    return {p for p in tmp_path.rglob("*") if root not in p.parents and p != root}


def assert_sane_name(part: str) -> None:
    assert part not in ("", ".", "..") and len(part.encode()) <= 255, part
    assert "\x00" not in part and "/" not in part and "\\" not in part, part
    assert not part.startswith("."), part


@pytest.fixture
def hostile_service_factory(
    tmp_path: Path, broker: Broker, simulator: Simulator, fault_service: FaultServiceFactory
) -> Callable[[], tuple[Service, Path]]:
    """Starts a service whose mqtt trigger names files `{station}/{id}.jpg`; gives it and its root."""

    def start() -> tuple[Service, Path]:
        root = tmp_path / "data"
        text = base_sections(root, broker, prefix=f"hostile-{tmp_path.name}")
        return fault_service(text + camera_sections(simulator) + RULE), root

    return start


@pytest.fixture
def hostile_service(
    hostile_service_factory: Callable[[], tuple[Service, Path]],
) -> tuple[Service, Path]:
    """A running service whose mqtt trigger names files `{station}/{id}.jpg`, and its root."""
    return hostile_service_factory()


def test_hostile_payloads_neither_crash_nor_escape_the_storage_root(
    tmp_path: Path, broker: Broker, hostile_service: tuple[Service, Path]
) -> None:
    service, root = hostile_service
    before = files_outside(tmp_path, root)
    publish_all(broker, [*hostile_payloads(), json.dumps({"id": 4711, "station": "S9"})])

    wait_for((root / "S9" / "4711.jpg").is_file, timeout=30)
    assert service.engine.wait_idle(10)
    assert all(thread.is_alive() for thread in service._threads)
    assert files_outside(tmp_path, root) == before
    assert not Path("/abs").exists() and not Path("/etc/cron.d/x").exists()
    for path in snapshots(root):
        relative = path.relative_to(root)
        assert root.resolve() in path.resolve().parents
        for part in relative.parts:
            assert_sane_name(part)
    assert_every_jpeg_valid(root)
    leftovers = [p for p in root.rglob("*") if p.name.startswith(".") and p.parent != root]
    assert leftovers == [] and os.listdir(root)


ROUNDS = 4


def test_hostile_payloads_leave_no_memory_behind(
    broker: Broker, hostile_service_factory: Callable[[], tuple[Service, Path]]
) -> None:
    # Started just now: the mqtt triggers' start-up hold (capture/triggers/mqtt.py) is
    # on, and must keep none of these payloads, as a trigger takes every one of them.
    service, root = hostile_service_factory()
    payloads = hostile_payloads()
    payload_bytes = sum(map(len, payloads))

    def flood(round_number: int) -> None:
        # The good message last: once its picture exists, the whole round was handled.
        marker = {"id": 9000 + round_number, "station": "MEM"}
        publish_all(broker, [*payloads, json.dumps(marker)])
        wait_for((root / "MEM" / f"{marker['id']}.jpg").is_file, timeout=30)
        assert service.engine.wait_idle(10)

    flood(0)  # first-use allocations (connections, caches, thread stacks) are not a leak
    gc.collect()
    # pytest keeps every log record of a test (and the objects in its args) for
    # the report: the harness's memory, not the service's.
    logging.disable()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for round_number in range(1, ROUNDS + 1):
            flood(round_number)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - baseline
        top = [
            f"{s.traceback} {s.size} B"
            for s in tracemalloc.take_snapshot().statistics("lineno")[:3]
        ]
    finally:
        tracemalloc.stop()
        logging.disable(logging.NOTSET)
    # Keeping any part of every payload would grow by several MiB; what stays is
    # bookkeeping of the pictures taken (the storage index, ~320 bytes each).
    assert payload_bytes * ROUNDS > 8 * 2**20
    assert grown < 2**20, f"{grown} bytes kept after {ROUNDS} rounds, most by {top}"
    assert all(thread.is_alive() for thread in service._threads)
