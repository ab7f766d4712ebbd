"""The gpio trigger on gpiozero's MockFactory: edges, contact bounce, short pulses, no GPIO."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from capture.config.schema import GpioTrigger as GpioConfig
from capture.triggers import Trigger, TriggerContext, TriggerError
from capture.triggers.gpio import GpioTrigger
from tests.conftest import wait_for
from tests.triggers.conftest import Collector

Start = Callable[[Trigger], Trigger]


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    instance = MockFactory()
    yield instance
    instance.close()


def gpio(factory: MockFactory, **options: object) -> GpioTrigger:
    config = GpioConfig(type="gpio", **{"pin": 17, **options})
    return GpioTrigger("gate_in", config, TriggerContext(pin_factory=factory))


def let_time_pass(seconds: float) -> None:
    """Debouncing is about time: wait until `seconds` of it have really passed."""
    deadline = time.monotonic() + seconds
    wait_for(lambda: time.monotonic() >= deadline)


def test_activation_of_a_pulled_up_input_fires_at_once(
    factory: MockFactory, start: Start, events: Collector
) -> None:
    start(gpio(factory, bounce_ms=0))
    before = time.monotonic()
    factory.pin(17).drive_low()  # NPN sensor / dry contact pulls the input to GND
    assert len(events) == 1  # fired in gpiozero's callback, not later
    event = events.events[0]
    assert event.trigger == "gate_in"
    assert dict(event.values) == {"pin": "GPIO17", "state": "active", "duration_ms": None}
    assert event.monotonic >= before


def test_pull_down_input_is_active_high(
    factory: MockFactory, start: Start, events: Collector
) -> None:
    start(gpio(factory, pull_up=False, bounce_ms=0))
    factory.pin(17).drive_high()
    assert events.values("state") == ["active"]


def test_externally_pulled_input_with_active_state(
    factory: MockFactory, start: Start, events: Collector
) -> None:
    start(gpio(factory, pull_up=None, active_state=False, bounce_ms=0))
    pin = factory.pin(17)
    pin.drive_high()
    pin.drive_low()
    assert events.values("state") == ["active"]


def test_board_pin_names_resolve_to_the_gpio_name(
    factory: MockFactory, start: Start, events: Collector
) -> None:
    start(gpio(factory, pin="BOARD11", bounce_ms=0))
    factory.pin(17).drive_low()
    assert events.values("pin") == ["GPIO17"]


def test_contact_bounce_gives_one_event_per_press_and_release(
    factory: MockFactory, start: Start, events: Collector
) -> None:
    start(gpio(factory, bounce_ms=30, edge="both"))
    pin = factory.pin(17)
    for _ in range(3):  # a relay contact closing: low, high, low, high, low
        pin.drive_low()
        pin.drive_high()
    pin.drive_low()
    let_time_pass(0.1)
    for _ in range(3):  # and opening again
        pin.drive_high()
        pin.drive_low()
    pin.drive_high()
    let_time_pass(0.1)
    assert events.values("state") == ["active", "inactive"]
    assert events.events[1].values["duration_ms"] >= 100


def test_a_release_inside_the_bounce_window_is_not_lost(
    factory: MockFactory, start: Start, events: Collector
) -> None:
    start(gpio(factory, bounce_ms=30, edge="both"))
    pin = factory.pin(17)
    pin.drive_low()
    pin.drive_high()  # a genuine 0 ms pulse: the input stays inactive
    wait_for(lambda: len(events) == 2)
    assert events.values("state") == ["active", "inactive"]


def test_deactivated_edge_fires_at_the_end_with_the_pulse_length(
    factory: MockFactory, start: Start, events: Collector
) -> None:
    start(gpio(factory, bounce_ms=0, edge="deactivated"))
    pin = factory.pin(17)
    pin.drive_low()
    assert len(events) == 0
    let_time_pass(0.05)
    pin.drive_high()
    assert events.values("state") == ["inactive"]
    assert events.events[0].values["duration_ms"] >= 50


@pytest.mark.parametrize(
    ("bounce_ms", "min_active_ms"),
    [(0, 80), (20, 15)],  # the second: docs/triggers.md's own example, bounce_ms > min_active_ms
)
def test_a_pulse_shorter_than_min_active_fires_nothing(
    factory: MockFactory, start: Start, events: Collector, bounce_ms: int, min_active_ms: int
) -> None:
    trigger = start(gpio(factory, bounce_ms=bounce_ms, min_active_ms=min_active_ms, edge="both"))
    pin = factory.pin(17)
    pin.drive_low()
    pin.drive_high()  # a spike on a long cable
    let_time_pass(0.15)  # past min_active_ms and the bounce window: it must stay ignored
    assert len(events) == 0 and trigger.stats().ignored == 1
    pin.drive_low()  # a part: held past both, then gone
    let_time_pass(0.15)
    pin.drive_high()
    wait_for(lambda: len(events) == 2)
    assert events.values("state") == ["active", "inactive"]


def test_a_long_enough_pulse_fires_once_confirmed_stamped_at_its_start(
    factory: MockFactory, start: Start, events: Collector
) -> None:
    start(gpio(factory, bounce_ms=0, min_active_ms=50, edge="both"))
    pin = factory.pin(17)
    began = time.monotonic()
    pin.drive_low()
    assert len(events) == 0  # not yet known to be more than noise
    wait_for(lambda: len(events) == 1)
    confirmed = events.events[0]
    assert confirmed.values["state"] == "active"
    assert confirmed.values["duration_ms"] >= 50
    assert confirmed.monotonic == pytest.approx(began, abs=0.02)  # the moment the part arrived
    pin.drive_high()
    assert events.values("state") == ["active", "inactive"]


@pytest.fixture
def late_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadline thread never runs, as on a CPU too busy to wake it in time."""
    monkeypatch.setattr(GpioTrigger, "_run", lambda self: None)


def test_a_long_enough_pulse_the_worker_could_not_confirm_in_time_fires_at_its_end(
    factory: MockFactory, start: Start, events: Collector, late_worker: None
) -> None:
    start(gpio(factory, bounce_ms=0, min_active_ms=5))
    pin = factory.pin(17)
    began = time.monotonic()
    pin.drive_low()
    let_time_pass(0.03)
    pin.drive_high()  # six times min_active_ms: a part, not a spike
    assert events.values("state") == ["active"]
    assert events.events[0].monotonic == pytest.approx(began, abs=0.01)


def test_a_pulse_starting_inside_the_last_release_bounce_window_is_caught_by_a_late_worker(
    factory: MockFactory, start: Start, events: Collector, late_worker: None
) -> None:
    start(gpio(factory, bounce_ms=20, edge="both"))
    pin = factory.pin(17)
    pin.drive_low()
    let_time_pass(0.03)
    pin.drive_high()
    second = time.monotonic()
    pin.drive_low()  # the next part, 0 ms after: inside the bounce window, absorbed for now
    let_time_pass(0.03)
    pin.drive_high()
    assert events.values("state") == ["active", "inactive", "active", "inactive"]
    assert events.events[2].monotonic == pytest.approx(second, abs=0.01)


def test_stop_releases_the_pin_and_is_idempotent(factory: MockFactory, events: Collector) -> None:
    trigger = gpio(factory, bounce_ms=0)
    trigger.start(events)
    trigger.stop()
    trigger.stop()
    factory.pin(17).drive_low()
    assert len(events) == 0
    again = gpio(factory, bounce_ms=0)  # the pin is free again
    again.start(events)
    again.stop()


def test_two_triggers_on_one_pin_is_a_clear_error(factory: MockFactory, start: Start) -> None:
    start(gpio(factory))
    with pytest.raises(
        TriggerError, match=r"trigger gate_in \(gpio pin 17\): cannot start: .*in use"
    ):
        gpio(factory).start(lambda event: None)


def _on_a_pi() -> bool:
    model = Path("/proc/device-tree/model")
    return model.exists() and "Raspberry" in model.read_text(errors="replace")


@pytest.mark.skipif(_on_a_pi(), reason="this machine has GPIO")
def test_a_machine_without_gpio_names_the_trigger_and_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(Device, "pin_factory", None)
    config = GpioConfig(type="gpio", pin="GPIO17")
    trigger = GpioTrigger("gate_in", config, TriggerContext())
    with pytest.raises(TriggerError) as caught:
        trigger.start(lambda event: None)
    message = str(caught.value)
    assert message.startswith("trigger gate_in (gpio pin GPIO17): cannot start:")
    assert "no GPIO pin factory available (not a Raspberry Pi?)" in message
    assert "lgpio" in message
    trigger.stop()


def test_pull_down_on_a_pin_with_a_fixed_pull_up_says_what_to_do(factory: MockFactory) -> None:
    trigger = gpio(factory, pin="GPIO2", pull_up=False)
    with pytest.raises(TriggerError, match=r"fixed pull-up resistor .*set pull_up = true"):
        trigger.start(lambda event: None)
    trigger.stop()
