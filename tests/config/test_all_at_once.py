"""One run reports every problem: schema, secrets and cross-references together, in file order.

What failed validation is left out of the later phases, and they must not
blame what was kept for its absence (no "unknown camera" for a camera whose
own section is broken).
"""

from __future__ import annotations

import pytest

from capture.config.loader import parse_rules
from capture.config.problems import ConfigError
from tests.config.conftest import line_of
from tests.config.test_loader import MINIMAL

TWO_CAMERAS = MINIMAL.replace(
    "[triggers.gate]",
    '[cameras.cam2]\nvendor = "dahua"\nhost = "10.0.0.2"\npassword_env = "CAM2_PW"\n\n'
    "[triggers.gate]",
)


def problems_of(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_rules(text, "rules.toml", environ or {})
    return [str(problem) for problem in caught.value.problems]


def test_a_misspelt_camera_and_an_unset_env_var_are_reported_together() -> None:
    text = TWO_CAMERAS.replace('cameras = ["cam1"]', 'cameras = ["cam1", "cma2"]')
    assert problems_of(text) == [
        f"rules.toml:{line_of(text, 'CAM2_PW')}: cameras.cam2.password_env: "
        "environment variable 'CAM2_PW' is not set",
        f"rules.toml:{line_of(text, 'cma2')}: rules[0] (r1).cameras[1]: "
        "unknown camera 'cma2' (did you mean 'cam2'?)",
    ]


def test_a_schema_error_and_an_independent_unset_env_var_are_reported_together() -> None:
    text = TWO_CAMERAS.replace('host = "10.0.0.1"', 'host = "10.0.0.1"\nport = 70000')
    messages = problems_of(text)
    assert len(messages) == 2, messages
    assert messages[0].startswith(f"rules.toml:{line_of(text, 'port = 70000')}: cameras.cam1.port:")
    assert messages[1] == (
        f"rules.toml:{line_of(text, 'CAM2_PW')}: cameras.cam2.password_env: "
        "environment variable 'CAM2_PW' is not set"
    )


def test_a_schema_error_and_a_cross_reference_error_are_reported_in_file_order() -> None:
    text = TWO_CAMERAS.replace("pin = 17", "pin = 17\nbounce_ms = -1").replace(
        'cameras = ["cam1"]', 'cameras = ["cam1", "cma1"]'
    )
    messages = problems_of(text, {"CAM2_PW": "x"})
    assert [message.split(":")[1] for message in messages] == [
        str(line_of(text, "bounce_ms")),
        str(line_of(text, "cma1")),
    ]
    assert "unknown camera 'cma1'" in messages[1]


def test_a_rule_naming_a_camera_that_failed_validation_is_not_told_it_is_unknown() -> None:
    text = TWO_CAMERAS.replace('vendor = "dahua"', 'vendor = "dahau"')
    [message] = problems_of(text)
    assert "cameras.cam2.vendor: unknown vendor 'dahau'" in message
    text = text.replace('cameras = ["cam1"]', 'cameras = ["cam2", "line:Line 1"]')
    [message] = problems_of(text)
    assert "cameras.cam2.vendor: unknown vendor 'dahau'" in message


def test_a_rule_using_a_trigger_that_failed_validation_gets_no_consequential_errors() -> None:
    text = MINIMAL.replace("pin = 17", "pin = 99").replace(
        'when = "gate"', 'when = "gate"\ncondition = "temp > 1"\nfilename = "{temp}.jpg"'
    )
    [message] = problems_of(text)
    assert "triggers.gate.pin: GPIO 99 does not exist" in message


def test_problems_after_a_broken_rule_keep_their_own_rule_number_and_line() -> None:
    text = (
        MINIMAL.replace('name = "r1"', 'name = "r1"\nburst = 0')
        + '\n[[rules]]\nname = "r2"\nwhen = "gate"\ncameras = ["cma1"]\n'
    )
    messages = problems_of(text)
    assert len(messages) == 2, messages
    assert messages[0].startswith(f"rules.toml:{line_of(text, 'burst = 0')}: rules[0] (r1).burst:")
    assert messages[1] == (
        f"rules.toml:{line_of(text, 'cma1')}: rules[1] (r2).cameras[0]: "
        "unknown camera 'cma1' (did you mean 'cam1'?)"
    )


def test_a_trigger_used_only_by_a_broken_rule_is_not_called_unused() -> None:
    text = MINIMAL.replace('name = "r1"', 'name = "r1"\nburst = 0')
    messages = problems_of(text)
    assert len(messages) == 1, messages
    assert "no rule uses this trigger" not in messages[0]


def test_a_broken_service_section_does_not_empty_the_production_lines() -> None:
    text = MINIMAL.replace(
        'site = "plant"', 'site = "plant"\nline = "Line 3"\ntimezone = "Mars/Base"'
    )
    text = text.replace('cameras = ["cam1"]', 'cameras = ["line:Line 3"]')
    [message] = problems_of(text)
    assert "service.timezone: unknown time zone 'Mars/Base'" in message


def test_a_broken_environment_variable_is_reported_beside_the_file_s_problems() -> None:
    text = MINIMAL.replace('cameras = ["cam1"]', 'cameras = ["cma1"]')
    messages = problems_of(text, {"CAPTURE_MQTT": '{"host": '})
    assert len(messages) == 2, messages
    assert messages[0].startswith("environment CAPTURE_MQTT: mqtt: not valid JSON")
    assert "unknown camera 'cma1'" in messages[1]


def test_a_cameras_section_that_is_not_a_table_hides_no_other_section_s_problems() -> None:
    without_cameras = MINIMAL.replace('[cameras.cam1]\nvendor = "edimax"\nhost = "10.0.0.1"\n', "")
    text = "cameras = 5\n" + without_cameras.replace("pin = 17", "pin = 99")
    messages = problems_of(text)
    assert len(messages) == 2, messages
    assert messages[0].startswith("rules.toml:1: cameras: ")
    assert "triggers.gate.pin: GPIO 99 does not exist" in messages[1]


def test_an_unknown_option_does_not_hide_another_mistake_of_its_rule() -> None:
    text = MINIMAL.replace(
        'cameras = ["cam1"]', 'cameras = ["cam1"]\ncooldown = 3\nfilename = "{id}.jpg"'
    )
    assert problems_of(text) == [
        f"rules.toml:{line_of(text, 'cooldown')}: rules[0] (r1).cooldown: "
        "unknown option 'cooldown' (did you mean 'cooldown_s'?)",
        f"rules.toml:{line_of(text, 'filename')}: rules[0] (r1).filename: filename template: "
        "unknown value 'id'; this rule's triggers carry: duration_ms, pin, state "
        "(declare payload fields with `fields = [...]` on the trigger)",
    ]


def test_a_service_variable_is_text_and_read_leniently_while_the_file_is_strict() -> None:
    text = MINIMAL.replace("[service]", "[mqtt]\nport = 1883\n\n[service]")
    rules = parse_rules(text, "rules.toml", {"CAPTURE_MQTT__PORT": "1884"}).rules
    assert rules.mqtt.port == 1884
    [message] = problems_of(text.replace("port = 1883", 'port = "1883"'))
    assert "mqtt.port: expected a whole number" in message


@pytest.mark.parametrize(
    ("old", "new", "subjects", "second"),
    [
        # An optional number: dropped alone, its rule's file name is still checked.
        ('cameras = ["cam1"]', 'cameras = ["cam1"]\nburst = "3"\nfilename = "{id}.jpg"',
         ["rules[0] (r1).burst", "rules[0] (r1).filename"], "unknown value 'id'"),
        # A required one: its trigger is left out, and the rest is still checked.
        ('type = "gpio"\npin = 17\n\n[[rules]]\nname = "r1"\nwhen = "gate"\ncameras = ["cam1"]',
         'type = "interval"\nevery_s = "10"\n\n[[rules]]\nname = "r1"\nwhen = "gate"\ncameras = ["cma1"]',
         ["triggers.gate.every_s", "rules[0] (r1).cameras[0]"], "unknown camera 'cma1'"),
    ],
)  # fmt: skip
def test_a_number_written_as_text_does_not_hide_the_other_mistakes(
    old: str, new: str, subjects: list[str], second: str
) -> None:
    assert old in MINIMAL
    messages = problems_of(MINIMAL.replace(old, new))
    assert [message.split(": ", 2)[1] for message in messages] == subjects
    assert second in messages[1]


@pytest.mark.parametrize("value", ["[[[[]]]]", '[["17"]]', '{ a = "1" }'])
def test_a_wrongly_nested_value_fails_its_part_with_a_located_problem(value: str) -> None:
    """A type error below an option (inside a list or table) cannot be dropped alone.

    Found by the mutated-reload fault test: `pin = [[[[]]]]` crashed the loader.
    """
    text = MINIMAL.replace("pin = 17", f"pin = {value}")
    messages = problems_of(text)
    assert messages
    assert all(
        message.startswith(f"rules.toml:{line_of(text, 'pin = ')}: ") for message in messages
    )
    assert all("triggers.gate.pin" in message for message in messages)
