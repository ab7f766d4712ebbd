"""The trigger registry, errors and statistics shared by every kind."""

from __future__ import annotations

import typing

import pytest

from capture.config import schema
from capture.events import Event
from capture.triggers import (
    TRIGGER_KINDS,
    PayloadError,
    Trigger,
    TriggerContext,
    TriggerError,
    build_trigger,
)
from capture.triggers.base import StatsKeeper, event_at


def _config_kinds() -> dict[str, type]:
    union = typing.get_args(schema.TriggerConfig)[0]
    return {
        typing.get_args(model.model_fields["type"].annotation)[0]: model
        for model in typing.get_args(union)
    }


def test_registry_has_exactly_one_adapter_per_trigger_config_kind() -> None:
    assert set(TRIGGER_KINDS) == set(_config_kinds())


EXAMPLES: dict[str, dict[str, object]] = {
    "gpio": {"pin": 17},
    "mqtt": {"topic": "line1/#"},
    "file": {"path": "/tmp/thermo.log"},
    "serial": {"port": "/dev/ttyUSB0"},
    "interval": {"every_s": 60},
    "http": {},
    "modbus": {"host": "10.0.0.9"},
    "opcua": {"endpoint": "opc.tcp://10.0.0.20:4840", "nodes": ["ns=2;s=Line1.Gate"]},
    "detection": {"rules": ["ng_part"]},
}


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_build_trigger_returns_a_named_trigger_of_the_configured_kind(kind: str) -> None:
    model = _config_kinds()[kind]
    trigger = build_trigger("t1", model(type=kind, **EXAMPLES[kind]), TriggerContext())
    assert isinstance(trigger, Trigger)
    assert trigger.name == "t1"
    assert type(trigger).__module__ == f"capture.triggers.{kind}"
    assert trigger.stats().emitted == 0


def test_examples_cover_every_kind() -> None:
    assert set(EXAMPLES) == set(TRIGGER_KINDS)


def test_trigger_error_names_trigger_and_source() -> None:
    error = TriggerError("gate_in", "cannot start: no GPIO", "gpio pin GPIO17")
    assert str(error) == "trigger gate_in (gpio pin GPIO17): cannot start: no GPIO"
    assert error.trigger == "gate_in"


def test_payload_error_is_both_a_trigger_error_and_a_value_error() -> None:
    error = PayloadError("plc", "bad request body: not an object")
    assert isinstance(error, TriggerError)
    assert isinstance(error, ValueError)


def test_a_failing_engine_handoff_is_recorded_not_raised_into_the_library_thread() -> None:
    stats = StatsKeeper()

    def broken_emit(event: Event) -> None:
        raise RuntimeError("queue closed")

    stats.deliver(broken_emit, Event(trigger="t"))
    snapshot = stats.snapshot()
    assert snapshot.emitted == 0
    assert snapshot.last_error is not None and "queue closed" in snapshot.last_error


def test_event_at_stamps_the_earlier_moment_on_both_clocks() -> None:
    now = Event(trigger="t")
    earlier = event_at("t", {"x": 1}, now.monotonic - 0.5)
    assert earlier.monotonic == pytest.approx(now.monotonic - 0.5)
    assert (now.wall_time - earlier.wall_time).total_seconds() == pytest.approx(0.5, abs=0.05)
    assert earlier.values == {"x": 1}


def test_context_shares_one_object_per_key() -> None:
    context = TriggerContext()
    first = context.shared("k", object)
    assert context.shared("k", object) is first
