"""The modbus trigger against pymodbus's own Modbus TCP server on loopback (tests/factory.py)."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any

import pytest

from capture.condition import parse_condition
from capture.config import schema
from capture.triggers import Trigger, TriggerContext, TriggerError, build_trigger
from capture.triggers.base import missing_library
from tests.conftest import wait_for
from tests.factory import ModbusDevice, free_port
from tests.triggers.conftest import Collector

Start = Callable[[Trigger], Trigger]


def modbus(device: ModbusDevice, **options: Any) -> Trigger:
    config = schema.ModbusTrigger(
        type="modbus", host=device.host, port=device.port, poll_ms=20, **options
    )
    return build_trigger("gate", config, TriggerContext())


def test_a_bit_flip_fires_exactly_once(
    modbus_device: ModbusDevice, start: Start, events: Collector
) -> None:
    trigger = start(modbus(modbus_device, count=4))
    modbus_device.set_bits(2, True)
    wait_for(lambda: len(events) == 1)
    wait_for(modbus_device.answered(5))  # five more reads of the bit, still set
    modbus_device.set_bits(2, False)  # edge = activated: the release does not fire
    wait_for(modbus_device.answered(5))
    assert len(events) == 1
    values = dict(events.events[0].values)
    assert values == {
        "host": "127.0.0.1",
        "unit_id": 1,
        "table": "discrete_inputs",
        "address": 2,
        "value": 1,
        "previous": 0,
        "state": "active",
        "duration_ms": None,
    }
    assert trigger.stats().emitted == 1 and trigger.stats().connected is True


def test_edge_both_fires_the_release_with_the_pulse_length(
    modbus_device: ModbusDevice, start: Start, events: Collector
) -> None:
    start(modbus(modbus_device, edge="both"))
    modbus_device.set_bits(0, True)
    wait_for(lambda: len(events) == 1)
    modbus_device.set_bits(0, False)
    wait_for(lambda: len(events) == 2)
    assert events.values("state") == ["active", "inactive"]
    assert events.values("value") == [1, 0]
    released = events.events[1]
    duration = released.values["duration_ms"]
    assert isinstance(duration, float) and duration > 0
    assert released.monotonic > events.events[0].monotonic


def test_an_input_already_set_at_start_is_not_a_new_pulse(
    modbus_device: ModbusDevice, start: Start, events: Collector
) -> None:
    modbus_device.set_bits(0, True)
    start(modbus(modbus_device))
    wait_for(modbus_device.answered(5))
    assert len(events) == 0


def test_a_pulse_shorter_than_min_active_is_ignored(
    modbus_device: ModbusDevice, start: Start, events: Collector
) -> None:
    # 5 s: far longer than the pulse below (two reads, 40 ms), even on a busy machine.
    trigger = start(modbus(modbus_device, edge="both", min_active_ms=5000))
    modbus_device.set_bits(0, True)
    wait_for(modbus_device.answered(2))
    modbus_device.set_bits(0, False)
    wait_for(lambda: trigger.stats().ignored == 1)
    wait_for(modbus_device.answered(2))
    assert len(events) == 0


def test_a_pulse_as_long_as_min_active_fires_once_stamped_at_its_start(
    modbus_device: ModbusDevice, start: Start, events: Collector
) -> None:
    start(modbus(modbus_device, edge="both", min_active_ms=300))
    set_at = time.monotonic()
    modbus_device.set_bits(0, True)
    wait_for(lambda: len(events) == 1)
    activation = events.events[0]
    assert activation.values["state"] == "active"
    duration = activation.values["duration_ms"]
    assert isinstance(duration, float) and duration >= 300
    assert activation.monotonic >= set_at  # stamped at the pulse's start, not at confirmation
    assert time.monotonic() - activation.monotonic >= 0.3
    wait_for(modbus_device.answered(5))
    assert len(events) == 1
    modbus_device.set_bits(0, False)
    wait_for(lambda: len(events) == 2)
    assert events.values("state") == ["active", "inactive"]


def test_a_bounce_inside_bounce_ms_is_absorbed(
    modbus_device: ModbusDevice, start: Start, events: Collector
) -> None:
    start(modbus(modbus_device, edge="both", bounce_ms=5000))
    modbus_device.set_bits(0, True)
    wait_for(lambda: len(events) == 1)
    for state in (False, True, False, True):  # contact chatter the reads see
        modbus_device.set_bits(0, state)
        wait_for(modbus_device.answered(2))
    assert events.values("state") == ["active"]


def test_a_register_change_fires_with_address_value_and_previous_for_conditions(
    modbus_device: ModbusDevice, start: Start, events: Collector
) -> None:
    start(modbus(modbus_device, table="holding_registers", address=4, count=2))
    crossing = parse_condition("value >= 500 and previous < 500")
    modbus_device.set_registers(5, 120)
    wait_for(lambda: len(events) == 1)
    modbus_device.set_registers(5, 640)
    wait_for(lambda: len(events) == 2)
    modbus_device.set_registers(5, 700)
    wait_for(lambda: len(events) == 3)
    assert [
        (e.values["address"], e.values["value"], e.values["previous"]) for e in events.events
    ] == [
        (5, 120, 0),
        (5, 640, 120),
        (5, 700, 640),
    ]
    assert [crossing.evaluate(event.values) for event in events.events] == [False, True, False]
    assert "state" not in events.events[0].values


def words(fmt: str, *values: float) -> list[int]:
    """`values` packed big-endian by `fmt` (struct), as 16-bit registers: what a PLC stores."""
    raw = struct.pack(">" + fmt, *values)
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


def test_float32_values_span_two_registers_and_are_named_by_their_first(
    modbus_device: ModbusDevice, start: Start, events: Collector
) -> None:
    start(modbus(modbus_device, table="holding_registers", address=4, count=2, data_type="float32"))
    modbus_device.set_registers(6, *words("f", 36.6))  # the second value: registers 6 and 7
    wait_for(lambda: len(events) == 1)
    modbus_device.set_registers(6, *words("f", -12.25))
    wait_for(lambda: len(events) == 2)
    assert [
        (e.values["address"], e.values["value"], e.values["previous"]) for e in events.events
    ] == [
        (6, 36.6, 0.0),  # 36.6 as the float32 36.59999847... printed as the device meant it
        (6, -12.25, 36.6),
    ]
    assert parse_condition("value < 0 and previous >= 0").evaluate(events.events[1].values)


@pytest.mark.parametrize(
    ("data_type", "word_order", "registers", "expected"),
    [
        ("int16", "big", words("h", -5), -5),
        ("uint32", "big", words("I", 70_000), 70_000),
        ("int32", "big", words("i", -70_000), -70_000),
        # "word swapped" (CDAB): the low word at the lower address
        ("int32", "little", words("i", -70_000)[::-1], -70_000),
        ("float32", "little", words("f", 1.5)[::-1], 1.5),
        ("uint64", "big", words("Q", 2**40 + 3), 2**40 + 3),
        ("float64", "big", words("d", 0.1), 0.1),
    ],
)
def test_each_data_type_and_word_order_decodes_what_the_plc_wrote(
    modbus_device: ModbusDevice,
    start: Start,
    events: Collector,
    data_type: str,
    word_order: str,
    registers: list[int],
    expected: float,
) -> None:
    start(
        modbus(
            modbus_device,
            table="holding_registers",
            address=8,
            data_type=data_type,
            word_order=word_order,
        )
    )
    modbus_device.set_registers(8, *registers)
    wait_for(lambda: len(events) == 1)
    assert events.values("value") == [expected]
    assert events.values("address") == [8]


def test_a_nan_reading_is_null_and_fires_once_not_on_every_poll(
    modbus_device: ModbusDevice, start: Start, events: Collector
) -> None:
    start(modbus(modbus_device, table="holding_registers", data_type="float32"))
    modbus_device.set_registers(0, *words("f", float("nan")))  # a broken wire on an analog input
    wait_for(lambda: len(events) == 1)
    wait_for(modbus_device.answered(5))
    # None: valid JSON in the event message, and missing for a condition
    assert events.values("value") == [None]
    assert len(events) == 1
    assert not parse_condition("value > 0").evaluate(events.events[0].values)


def test_a_device_restart_is_reported_survived_and_not_fired(
    modbus_device: ModbusDevice, start: Start, events: Collector
) -> None:
    trigger = start(modbus(modbus_device, reconnect_max_s=0.5))
    modbus_device.set_bits(0, True)
    wait_for(lambda: len(events) == 1)
    modbus_device.stop()
    wait_for(lambda: trigger.stats().connected is False)
    error = trigger.stats().last_error or ""
    assert error.startswith("trigger gate (modbus 127.0.0.1:") and "unit 1" in error
    modbus_device.set_bits(0, False)  # changed while the trigger could not see it
    modbus_device.start()
    wait_for(lambda: trigger.stats().connected is True)
    wait_for(modbus_device.answered(2))
    assert len(events) == 1  # the outage and the re-read state fired nothing
    modbus_device.set_bits(0, True)
    wait_for(lambda: len(events) == 2)
    assert events.values("address") == [0, 0]


def test_a_device_off_at_start_is_an_outage_not_an_error(start: Start, events: Collector) -> None:
    config = schema.ModbusTrigger(
        type="modbus", host="127.0.0.1", port=free_port(), timeout_s=0.5, reconnect_max_s=0.5
    )
    trigger = start(build_trigger("gate", config, TriggerContext()))
    stats = trigger.stats()
    assert stats.connected is False
    assert "cannot connect to 127.0.0.1" in (stats.last_error or "")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"unit_id": 7}, "unit 7 discrete_inputs 0 answered Modbus exception 4"),
        ({"address": 14, "count": 4}, "unit 1 discrete_inputs 14-17 answered Modbus exception 2"),
    ],
)
def test_a_wrong_unit_id_or_address_is_an_error_naming_the_trigger(
    modbus_device: ModbusDevice, options: dict[str, Any], expected: str
) -> None:
    trigger = modbus(modbus_device, **options)
    with pytest.raises(TriggerError) as caught:
        trigger.start(Collector())
    message = str(caught.value)
    assert message.startswith(f"trigger gate (modbus 127.0.0.1:{modbus_device.port} unit ")
    assert expected in message
    assert "check" in message
    trigger.stop()


def test_a_busy_device_or_gateway_at_start_is_an_outage_that_passes(
    modbus_device: ModbusDevice, start: Start, events: Collector
) -> None:
    """Exception 11 at start: the serial device behind a gateway is still booting."""
    modbus_device.exception = 11
    trigger = start(modbus(modbus_device))
    assert trigger.stats().connected is False
    assert "answered Modbus exception 11 (gateway target failed" in (
        trigger.stats().last_error or ""
    )
    modbus_device.exception = None
    wait_for(lambda: trigger.stats().connected is True)
    modbus_device.set_bits(0, True)
    wait_for(lambda: len(events) == 1)


def test_a_missing_pymodbus_is_an_error_telling_the_pip_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util  # noqa: PLC0415

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pymodbus" else real(name, *a)
    )
    assert missing_library("gpio") is None
    config = schema.ModbusTrigger(type="modbus", host="10.0.0.9")
    with pytest.raises(TriggerError) as caught:
        build_trigger("gate", config, TriggerContext())
    assert str(caught.value) == (
        "trigger gate: cannot start: the modbus trigger needs pymodbus, which is not installed: "
        "pip install 'event-capture[modbus]' (on a Pi: deploy/install.sh --extras modbus)"
    )
