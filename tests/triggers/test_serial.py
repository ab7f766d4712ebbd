"""The serial trigger on a real pseudo-terminal pair, unplugged and plugged back."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from capture.config.schema import SerialTrigger as SerialConfig
from capture.triggers import Trigger, TriggerContext
from capture.triggers import serial as serial_module
from capture.triggers.serial import SerialTrigger
from tests.conftest import wait_for
from tests.triggers.conftest import Collector

Start = Callable[[Trigger], Trigger]


class Device:
    """A serial device behind a stable path, like /dev/serial/by-id/...: a pty and a symlink to it."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master: int | None = None

    def plug(self) -> None:
        """Connect a new device (a new pty) behind the same path."""
        master, slave = os.openpty()
        self.link.unlink(missing_ok=True)
        self.link.symlink_to(os.ttyname(slave))
        os.close(slave)  # the trigger opens it by path, as it would /dev/ttyUSB0
        self.master = master

    def unplug(self) -> None:
        """Pull the cable: the pty disappears, and udev removes the by-id link."""
        self.link.unlink(missing_ok=True)
        if self.master is not None:
            os.close(self.master)
            self.master = None

    def send(self, data: bytes) -> None:
        """What the thermometer prints."""
        assert self.master is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self.master, view) :]


@pytest.fixture
def device(tmp_path: Path) -> Iterator[Device]:
    instance = Device(tmp_path / "ttyUSB0")
    yield instance
    instance.unplug()


def serial(device: Device, **options: object) -> SerialTrigger:
    config = SerialConfig(
        type="serial",
        port=str(device.link),
        reconnect_s=0.05,
        **{"parser": "regex", "pattern": r"T=(?P<temp>-?\d+\.\d)", **options},
    )
    return SerialTrigger("thermo", config, TriggerContext())


def connected(trigger: SerialTrigger) -> bool:
    return bool(trigger.stats().connected)


def test_lines_are_parsed_into_events(device: Device, start: Start, events: Collector) -> None:
    device.plug()
    trigger = start(serial(device))
    wait_for(lambda: connected(trigger))
    device.send(b"T=36.9\r\nT=37.")
    wait_for(lambda: len(events) == 1)
    device.send(b"6\r\nERR\r\n")
    wait_for(lambda: trigger.stats().rejected == 1)
    assert events.values("temp") == [36.9, 37.6]
    assert events.values("port") == [str(device.link)] * 2
    assert events.values("line") == ["T=36.9", "T=37.6"]


def test_garbage_without_line_ends_is_dropped_and_reading_goes_on(
    device: Device, start: Start, events: Collector
) -> None:
    device.plug()
    trigger = start(serial(device))
    wait_for(lambda: connected(trigger))
    device.send(b"\x00\xff" * 40_000 + b"\nT=36.1\n")
    wait_for(lambda: len(events) == 1)
    assert events.values("temp") == [36.1]
    assert trigger.stats().rejected == 1


def test_unplug_and_replug_resumes_logging_the_outage_once(
    device: Device, start: Start, events: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    device.plug()
    trigger = start(serial(device))
    wait_for(lambda: connected(trigger))
    device.send(b"T=36.5\n")
    wait_for(lambda: len(events) == 1)
    caplog.set_level(logging.INFO, logger="capture.triggers.serial")
    device.unplug()
    wait_for(lambda: not connected(trigger))
    retries_until = time.monotonic() + 0.5  # about ten attempts at reconnect_s = 0.05
    wait_for(lambda: time.monotonic() >= retries_until)
    device.plug()
    wait_for(lambda: connected(trigger))
    device.send(b"T=37.1\n")
    wait_for(lambda: len(events) == 2)
    assert events.values("temp") == [36.5, 37.1]
    messages = [record.getMessage() for record in caplog.records]
    assert sum("serial port unavailable" in message for message in messages) == 1
    assert sum("serial port back" in message for message in messages) == 1


def test_a_device_plugged_in_after_start_is_picked_up(
    device: Device, start: Start, events: Collector
) -> None:
    trigger = start(serial(device, parser="text", value_name="code", pattern=None))
    assert not connected(trigger)
    assert "ttyUSB0" in (trigger.stats().last_error or "")
    device.plug()
    wait_for(lambda: connected(trigger))
    device.send(b"4006381333931\r")  # a barcode scanner ends lines with CR only
    wait_for(lambda: len(events) == 1)
    assert events.values("code") == ["4006381333931"]


def test_stop_is_prompt_and_idempotent(
    device: Device, events: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read that is waited out, not cancelled, would hold stop for 30 s.
    monkeypatch.setattr(serial_module, "READ_TIMEOUT_S", 30.0)
    device.plug()
    trigger = serial(device)
    trigger.start(events)
    wait_for(lambda: connected(trigger))
    began = time.monotonic()
    trigger.stop()
    trigger.stop()
    assert time.monotonic() - began < 10  # a blocked read is cancelled, not waited out
    assert not connected(trigger)
