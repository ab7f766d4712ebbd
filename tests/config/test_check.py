"""Cross-reference checks: names, values, pins, each with its line and a suggestion."""

from __future__ import annotations

import pytest

from capture.config.loader import parse_rules
from capture.config.problems import ConfigError
from tests.config.conftest import line_of
from tests.config.test_loader import MINIMAL


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_rules(text, "rules.toml", {})
    return [str(problem) for problem in caught.value.errors]


def test_unknown_camera_in_rule_suggests_the_close_name() -> None:
    text = MINIMAL.replace('cameras = ["cam1"]', 'cameras = ["cam1", "cma1"]')
    [message] = problems_of(text)
    assert message == (
        f"rules.toml:{line_of(text, 'cma1')}: rules[0] (r1).cameras[1]: unknown camera 'cma1' (did you mean 'cam1'?)"
    )


def test_unknown_trigger_in_rule() -> None:
    text = MINIMAL.replace('when = "gate"', 'when = "gaet"')
    [message] = problems_of(text)
    assert "rules[0] (r1).when[0]: unknown trigger 'gaet' (did you mean 'gate'?)" in message


def test_line_selector_without_cameras() -> None:
    text = MINIMAL.replace('cameras = ["cam1"]', 'cameras = ["line:Line 9"]')
    [message] = problems_of(text)
    assert "no camera belongs to line 'Line 9'" in message


def test_line_selector_selects_cameras_of_the_line() -> None:
    text = MINIMAL.replace('cameras = ["cam1"]', 'cameras = ["line:Line 1"]')
    rules = parse_rules(text, "rules.toml", {}).rules
    assert rules.rule_cameras(rules.rules[0]) == ["cam1"]


def test_condition_syntax_and_unknown_values() -> None:
    text = MINIMAL.replace('when = "gate"', 'when = "gate"\ncondition = "state = 1"')
    [message] = problems_of(text)
    assert (
        f"rules.toml:{line_of(text, 'condition')}: rules[0] (r1).condition: invalid condition:"
        in message
    )
    text = MINIMAL.replace('when = "gate"', 'when = "gate"\ncondition = "temp >= 37.5"')
    [message] = problems_of(text)
    assert "unknown value 'temp'" in message and "duration_ms, pin, state" in message


def test_template_with_unknown_field_is_an_error() -> None:
    text = MINIMAL.replace('when = "gate"', 'when = "gate"\nfilename = "{camera}_{tmep}.jpg"')
    [message] = problems_of(text)
    assert (
        f":{line_of(text, 'filename')}: rules[0] (r1).filename: filename template: unknown value 'tmep'"
        in message
    )


def test_declared_fields_make_payload_values_known() -> None:
    text = MINIMAL.replace(
        'type = "gpio"\npin = 17', 'type = "mqtt"\ntopic = "plc/+/ng"\nfields = ["station"]'
    ).replace(
        'when = "gate"',
        'when = "gate"\ncondition = \'station == "S1"\'\nfilename = "{topic_2}/{station}_{seq}.jpg"',
    )
    rules = parse_rules(text, "rules.toml", {}).rules
    assert rules.rules[0].condition == 'station == "S1"'


def test_same_gpio_pin_spelt_two_ways_is_caught() -> None:
    text = MINIMAL.replace(
        "[[rules]]", '[triggers.gate2]\ntype = "gpio"\npin = "BOARD11"\n\n[[rules]]'
    ).replace('when = "gate"', 'when = ["gate", "gate2"]')
    [message] = problems_of(text)
    assert (
        f":{line_of(text, 'BOARD11')}: triggers.gate2.pin: GPIO17 is already used by trigger 'gate'"
        in message
    )


def test_duplicate_rule_names() -> None:
    text = MINIMAL + '\n[[rules]]\nname = "r1"\nwhen = "gate"\ncameras = ["cam1"]\n'
    [message] = problems_of(text)
    assert "rules[1] (r1).name: duplicate rule name 'r1'" in message


def test_unused_trigger_is_only_a_warning() -> None:
    text = MINIMAL.replace(
        "[[rules]]", '[triggers.spare]\ntype = "interval"\nevery_s = 5\n\n[[rules]]'
    )
    loaded = parse_rules(text, "rules.toml", {})
    assert [str(w) for w in loaded.warnings] == [
        f"rules.toml:{line_of(text, 'triggers.spare')}: warning: triggers.spare: no rule uses this trigger"
    ]


def test_a_default_template_field_a_rule_lacks_is_reported_at_storage_filename() -> None:
    text = MINIMAL.replace("[service]", '[storage]\nfilename = "{camera}_{tmep}.jpg"\n\n[service]')
    [message] = problems_of(text)
    assert message.startswith(
        f"rules.toml:{line_of(text, 'filename =')}: storage.filename: filename template: "
        "unknown value 'tmep' (did you mean 'time'?); rules[0] (r1) has no filename of its own and its triggers carry: "
        "duration_ms, pin, state"
    ), message


def test_a_default_template_field_is_known_only_if_every_rule_using_it_carries_it() -> None:
    text = MINIMAL.replace(
        "[service]", '[storage]\nfilename = "{camera}_{state}_{temp}.jpg"\n\n[service]'
    ).replace(
        "[[rules]]",
        '[triggers.thermo]\ntype = "serial"\nport = "/dev/ttyUSB0"\nvalue_name = "temp"\n\n[[rules]]',
    )
    text += '\n[[rules]]\nname = "r2"\nwhen = "thermo"\ncameras = ["cam1"]\n'
    messages = problems_of(text)
    at = f"rules.toml:{line_of(text, 'filename =')}: storage.filename: filename template: "
    assert messages == [
        f"{at}unknown value 'temp'; rules[0] (r1) has no filename of its own and its triggers "
        "carry: duration_ms, pin, state (declare payload fields with `fields = [...]` on the trigger)",
        f"{at}unknown value 'state' (did you mean 'site'?); rules[1] (r2) has no filename of its own and its triggers "
        "carry: line, port, temp (declare payload fields with `fields = [...]` on the trigger)",
    ]


def test_a_default_template_no_rule_uses_may_only_use_built_in_fields() -> None:
    text = MINIMAL.replace(
        "[service]", '[storage]\nfilename = "{camera}_{order}.jpg"\n\n[service]'
    ).replace('when = "gate"', 'when = "gate"\nfilename = "{camera}_{state}.jpg"')
    [message] = problems_of(text)
    assert message.startswith(
        f"rules.toml:{line_of(text, 'filename =')}: storage.filename: filename template: "
        "unknown value 'order'; no rule uses this default template, so only built-in fields"
    ), message
    parse_rules(text.replace("{camera}_{order}.jpg", "{camera}.jpg"), "rules.toml", {})


def test_a_default_template_with_a_syntax_error_is_reported_at_storage_filename() -> None:
    text = MINIMAL.replace("[service]", '[storage]\nfilename = "{camera"\n\n[service]')
    [message] = problems_of(text)
    assert f":{line_of(text, 'filename =')}: storage.filename: invalid filename template" in message
