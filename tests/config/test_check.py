"""Cross-reference checks: names, values, pins, each with its line and a suggestion."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import certifi
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


@pytest.mark.parametrize(("key", "refused"), [("trigger", False), ("camera", True), ("seq", True)])
def test_a_cooldown_keyed_on_a_per_picture_field_is_refused(key: str, refused: bool) -> None:
    """A cooldown is decided per event: `camera` or `seq` would silently be one per rule."""
    text = MINIMAL.replace(
        'when = "gate"', f'when = "gate"\ncooldown_s = 5\ncooldown_key = "{key}"'
    )
    if not refused:
        assert parse_rules(text, "rules.toml", {}).rules.rules[0].cooldown_key == key
        return
    [message] = problems_of(text)
    assert message.startswith(
        f"rules.toml:{line_of(text, 'cooldown_key')}: rules[0] (r1).cooldown_key:"
    )
    assert f"'{key}' is known only per picture" in message and "or on trigger" in message


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


def test_an_http_trigger_without_a_web_token_is_warned_it_cannot_fire() -> None:
    http = MINIMAL.replace('type = "gpio"\npin = 17', 'type = "http"')
    loaded = parse_rules(http, "rules.toml", {})
    line = line_of(http, 'type = "http"')
    assert [str(w) for w in loaded.warnings] == [
        f"rules.toml:{line}: warning: triggers.gate.type: every POST "
        "needs the [web] token and none is configured: this trigger cannot fire until [web] "
        "token_env or token_file is set"
    ]
    with_token = http.replace("[cameras.cam1]", '[web]\ntoken_env = "WEB_TOKEN"\n\n[cameras.cam1]')
    assert parse_rules(with_token, "rules.toml", {"WEB_TOKEN": "t0ken-for-test"}).warnings == []


def test_an_http_trigger_serving_only_a_disabled_rule_is_not_warned_about() -> None:
    http = MINIMAL.replace('type = "gpio"\npin = 17', 'type = "http"')
    disabled = http.replace('cameras = ["cam1"]', 'cameras = ["cam1"]\nenabled = false')
    assert parse_rules(disabled, "rules.toml", {}).warnings == []
    assert len(parse_rules(http, "rules.toml", {}).warnings) == 1


GENERIC = MINIMAL.replace(
    'vendor = "edimax"\nhost = "10.0.0.1"',
    'vendor = "generic"\nhost = "10.0.0.1"\npath = "/cgi-bin/snap.cgi?ch={channel}&pwd=Path-Pw-0042"',
)


@pytest.mark.parametrize("vendor", ["generic", "mjpeg"])
def test_a_camera_path_with_an_unknown_field_is_reported_at_its_line(vendor: str) -> None:
    text = GENERIC.replace('"generic"', f'"{vendor}"').replace("{channel}", "{chanel}")
    [message] = problems_of(text)
    assert message.startswith(
        f"rules.toml:{line_of(text, 'path =')}: cameras.cam1.path: path uses {{chanel}}; "
        "known fields: {channel}, {channel0}"
    ), message


def test_a_camera_path_that_is_no_template_is_reported_without_echoing_it() -> None:
    text = GENERIC.replace("{channel}", "{channel")
    [message] = problems_of(text)
    assert f"rules.toml:{line_of(text, 'path =')}: cameras.cam1.path: " in message
    assert "Path-Pw-0042" not in message


def test_a_camera_path_with_known_fields_passes() -> None:
    rules = parse_rules(GENERIC, "rules.toml", {}).rules
    assert rules.cameras["cam1"].path.startswith("/cgi-bin/snap.cgi")  # type: ignore[union-attr]


HTTPS = MINIMAL.replace('host = "10.0.0.1"', 'host = "10.0.0.1"\nscheme = "https"\nca_file = "CA"')


def test_a_missing_ca_file_is_reported_at_its_line(tmp_path: Path) -> None:
    text = HTTPS.replace('"CA"', f'"{tmp_path / "missing.pem"}"')
    [message] = problems_of(text)
    assert message == (
        f"rules.toml:{line_of(text, 'ca_file')}: cameras.cam1.ca_file: "
        f"cannot read CA file '{tmp_path / 'missing.pem'}': No such file or directory"
    )


def test_a_ca_file_that_holds_no_certificate_is_reported(tmp_path: Path) -> None:
    not_a_certificate = tmp_path / "camera.pem"
    not_a_certificate.write_text("this is the camera's manual, not its certificate\n")
    text = HTTPS.replace('"CA"', f'"{not_a_certificate}"')
    [message] = problems_of(text)
    assert f"cameras.cam1.ca_file: CA file '{not_a_certificate}' holds no usable PEM" in message


def test_a_readable_ca_file_passes_and_an_unused_one_is_not_opened(tmp_path: Path) -> None:
    text = HTTPS.replace('"CA"', f'"{certifi.where()}"')
    assert parse_rules(text, "rules.toml", {}).rules.cameras["cam1"].ca_file is not None
    unverified = HTTPS.replace('"CA"', f'"{tmp_path / "missing.pem"}"\nverify = false')
    parse_rules(unverified, "rules.toml", {})


def test_the_brokers_ca_file_is_checked_when_tls_is_on(tmp_path: Path) -> None:
    missing = tmp_path / "broker-ca.pem"
    text = MINIMAL.replace("[service]", f'[mqtt]\ntls = true\nca_file = "{missing}"\n\n[service]')
    [message] = problems_of(text)
    assert message.startswith(
        f"rules.toml:{line_of(text, 'ca_file')}: mqtt.ca_file: cannot read CA"
    )
    parse_rules(text.replace("tls = true", "tls = false"), "rules.toml", {})


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


def test_an_onvif_camera_without_its_library_is_an_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = MINIMAL.replace('vendor = "edimax"', 'vendor = "onvif"')
    parse_rules(text, "rules.toml", {})  # here the library is installed: no problem
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "onvif" else real_find_spec(name, *args),
    )
    [message] = problems_of(text)
    assert (
        f"rules.toml:{line_of(text, 'onvif')}: cameras.cam1.vendor: vendor = 'onvif' needs"
        in message
    )
    assert "pip install 'event-capture[onvif]'" in message


def test_onvif_over_https_must_say_it_is_unverified() -> None:
    text = MINIMAL.replace('vendor = "edimax"', 'vendor = "onvif"\nscheme = "https"')
    [message] = problems_of(text)
    assert "ONVIF over https cannot check the device's certificate" in message
    parse_rules(
        text.replace('scheme = "https"', 'scheme = "https"\nverify = false'), "rules.toml", {}
    )


def test_home_assistant_discovery_without_the_broker_is_an_error_at_its_line() -> None:
    text = "[mqtt]\nenabled = false\n\n[homeassistant]\nenabled = true\n\n" + MINIMAL
    [message] = problems_of(text)
    assert message == (
        "rules.toml:5: homeassistant.enabled: Home Assistant discovery goes over the broker: "
        "it needs [mqtt] enabled = true"
    )
    assert parse_rules(text.replace("enabled = false\n", ""), "rules.toml", {}).rules


def test_a_frame_before_the_trigger_from_a_snapshot_camera_is_warned_late() -> None:
    text = MINIMAL.replace('cameras = ["cam1"]', 'cameras = ["cam1"]\nframes_ms = [-500, 0]')
    loaded = parse_rules(text, "rules.toml", {})
    assert [str(w) for w in loaded.warnings] == [
        f"rules.toml:{line_of(text, 'frames_ms')}: warning: rules[0] (r1).frames_ms: camera 'cam1' "
        "takes snapshots: a frame at -500 ms is taken when the rule fires, after the trigger "
        "(add [cameras.cam1.live] to have it from before)"
    ]


def test_a_frame_further_back_than_the_buffer_is_an_error() -> None:
    text = MINIMAL.replace(
        'host = "10.0.0.1"',
        'host = "10.0.0.1"\npath = "/video.mjpg"\nlive = { url = "/video.mjpg", buffer_s = 2 }',
    ).replace('cameras = ["cam1"]', 'cameras = ["cam1"]\nframes_ms = [-3000]')
    [message] = problems_of(text)
    assert message == (
        f"rules.toml:{line_of(text, 'frames_ms')}: rules[0] (r1).frames_ms: -3000 ms reaches back "
        "further than camera 'cam1' buffers (live.buffer_s = 2); raise buffer_s or the offset"
    )


def test_upload_without_its_library_is_an_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = (
        MINIMAL
        + '\n[upload]\nenabled = true\nendpoint = "http://10.0.0.5:9000"\nbucket = "pictures"\n'
    )
    parse_rules(text, "rules.toml", {})  # here the library is installed: no problem
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "minio" else real_find_spec(name, *args),
    )
    [message] = problems_of(text)
    assert message.startswith(f"rules.toml:{line_of(text, 'enabled = true')}: upload.enabled:")
    assert "deploy/install.sh --extras upload" in message
