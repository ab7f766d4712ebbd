"""The http trigger's side of POST /api/trigger/NAME: validation, event, emit."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from capture.config.schema import HttpTrigger as HttpConfig
from capture.triggers import PayloadError, Trigger, TriggerContext, TriggerError
from capture.triggers.http import MAX_STRING_CHARS, HttpTrigger
from capture.triggers.values import MAX_DEPTH, MAX_VALUES
from tests.triggers.conftest import Collector

Start = Callable[[Trigger], Trigger]


def http() -> HttpTrigger:
    return HttpTrigger("plc_done", HttpConfig(type="http"), TriggerContext())


def test_posted_values_fire_an_event_that_is_returned_and_emitted(
    start: Start, events: Collector
) -> None:
    trigger = start(http())
    event = trigger.fire(
        {"station": "S3", "part": {"id": "A-7"}, "temp": "37.5"}, client="10.0.0.7"
    )
    assert events.events == [event]
    assert event.trigger == "plc_done"
    assert dict(event.values) == {
        "station": "S3",
        "part.id": "A-7",
        "temp": 37.5,
        "client": "10.0.0.7",
    }
    assert trigger.stats().emitted == 1


def test_an_empty_body_is_a_plain_trigger(start: Start) -> None:
    assert dict(start(http()).fire({}, client="10.0.0.7").values) == {"client": "10.0.0.7"}


def test_the_body_cannot_forge_the_client(start: Start) -> None:
    event = start(http()).fire({"client": "someone-else"}, client="10.0.0.7")
    assert event.values["client"] == "10.0.0.7"


def _deep() -> dict[str, object]:
    body: dict[str, object] = {"v": 1}
    for _ in range(MAX_DEPTH + 1):
        body = {"n": body}
    return body


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([1, 2], "expected a JSON object"),
        ("go", "expected a JSON object"),
        (_deep(), "nested deeper"),
        ({f"k{i}": i for i in range(MAX_VALUES + 1)}, f"more than {MAX_VALUES}"),
        ({"note": "x" * (MAX_STRING_CHARS + 1)}, "longer than"),
        ({"": 1}, "non-empty strings"),
    ],
)
def test_bad_bodies_are_rejected_with_a_typed_value_error(
    start: Start, events: Collector, body: object, reason: str
) -> None:
    trigger = start(http())
    with pytest.raises(PayloadError, match=reason) as caught:
        trigger.fire(body, client="10.0.0.7")  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith(
        "trigger plc_done (http POST /api/trigger/plc_done): bad request body"
    )
    assert len(events) == 0
    assert trigger.stats().rejected == 1


def test_a_stopped_trigger_refuses_without_emitting(events: Collector) -> None:
    trigger = http()
    trigger.start(events)
    trigger.stop()
    with pytest.raises(TriggerError, match="not running") as caught:
        trigger.fire({}, client="10.0.0.7")
    assert not isinstance(caught.value, ValueError)
    assert len(events) == 0
