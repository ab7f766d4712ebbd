"""CAPTURE_* variables that cannot be used are problems naming the variable, never showing its value."""

from __future__ import annotations

import pytest

from capture.config.loader import parse_rules
from capture.config.problems import ConfigError
from tests.config.test_loader import MINIMAL

SECRET = "Mqtt-Env-Secret-4417"


def problems_of(environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_rules(MINIMAL, "rules.toml", environ)
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (
            f'{{"host": "plant-broker-7", "password": "{SECRET}"',
            "not valid JSON (Expecting ',' delimiter",
        ),
        (f'["plant-broker-7", "{SECRET}"]', "a JSON array, not an object"),
        (f'"{SECRET}"', "a JSON string, not an object"),
        ("1883", "a JSON number, not an object"),
    ],
)
def test_a_section_variable_that_is_not_a_json_object_is_named_without_its_value(
    value: str, reason: str
) -> None:
    [message] = problems_of({"CAPTURE_MQTT": value})
    assert message.startswith(f"environment CAPTURE_MQTT: mqtt: {reason}"), message
    assert SECRET not in message and "plant-broker-7" not in message


def test_every_broken_section_variable_is_reported_by_its_own_spelling() -> None:
    messages = problems_of({"capture_web": "{", "CAPTURE_SERVICE": "[]"})
    assert [message.split(":")[0] for message in messages] == [
        "environment CAPTURE_SERVICE",
        "environment capture_web",
    ]


def test_a_valid_section_variable_applies_and_its_errors_name_it() -> None:
    rules = parse_rules(MINIMAL, "rules.toml", {"CAPTURE_MQTT": '{"host": "broker", "port": 1884}'})
    assert (rules.rules.mqtt.host, rules.rules.mqtt.port) == ("broker", 1884)
    [message] = problems_of({"CAPTURE_MQTT": '{"port": 70000}'})
    assert message.startswith("environment CAPTURE_MQTT: mqtt.port: ")
    [message] = problems_of({"CAPTURE_MQTT": '{"host": "b"}', "CAPTURE_MQTT__PORT": "0"})
    assert message.startswith("environment CAPTURE_MQTT__PORT: mqtt.port: ")


def test_a_variable_the_environment_cannot_hold_is_named_without_its_value() -> None:
    [message] = problems_of({"CAPTURE_MQTT__PASSWORD": f"{SECRET}\x00", "CAPTURE_MQTT__HOST": "b"})
    assert message == (
        "environment CAPTURE_MQTT__HOST, CAPTURE_MQTT__PASSWORD: cannot be read, none of them "
        "applied (values are not shown: they may hold a password)"
    )
