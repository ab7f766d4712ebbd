"""Loading rule files: every problem reported with file:line, secrets resolved, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from capture.config.loader import load_rule_file, load_rules, parse_rules
from capture.config.problems import ConfigError
from tests.config.conftest import line_of

MINIMAL = """\
[service]
site = "plant"

[cameras.cam1]
vendor = "edimax"
host = "10.0.0.1"

[triggers.gate]
type = "gpio"
pin = 17

[[rules]]
name = "r1"
when = "gate"
cameras = ["cam1"]
"""


def problems_of(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_rules(text, "rules.toml", environ or {})
    return [str(problem) for problem in caught.value.problems]


def test_minimal_file_loads_with_defaults() -> None:
    rules = parse_rules(MINIMAL, "rules.toml", {}).rules
    assert rules.cameras["cam1"].effective_port == 80
    assert rules.rules[0].when == ["gate"]
    assert rules.rules[0].cameras == ["cam1"]
    assert rules.storage.filename.endswith(".jpg")


def test_toml_syntax_error_names_line_and_column() -> None:
    text = MINIMAL.replace('host = "10.0.0.1"', 'host = "10.0.0.1')
    [message] = problems_of(text)
    assert message.startswith(f"rules.toml:{line_of(text, 'host =')}:")
    assert "TOML syntax error" in message


def test_unknown_key_is_an_error_with_suggestion() -> None:
    text = MINIMAL.replace('host = "10.0.0.1"', 'host = "10.0.0.1"\nhots = "x"')
    [message] = problems_of(text)
    assert message == (
        f"rules.toml:{line_of(text, 'hots')}: cameras.cam1.hots: unknown option 'hots' (did you mean 'host'?)"
    )


def test_unknown_vendor_and_trigger_type_are_named() -> None:
    text = MINIMAL.replace('vendor = "edimax"', 'vendor = "hikvison"').replace(
        'type = "gpio"', 'type = "gpoi"'
    )
    messages = problems_of(text)
    assert any(
        m.startswith(
            f"rules.toml:{line_of(text, 'hikvison')}: cameras.cam1.vendor: unknown vendor 'hikvison' (did you mean 'hikvision'?)"
        )
        for m in messages
    ), messages
    assert any(
        "triggers.gate.type: unknown type 'gpoi' (did you mean 'gpio'?)" in m for m in messages
    )


def test_all_schema_errors_are_reported_at_once() -> None:
    text = MINIMAL.replace("pin = 17", "pin = 99").replace(
        'host = "10.0.0.1"', 'host = "10.0.0.1"\nport = 70000'
    )
    messages = problems_of(text)
    assert len(messages) == 2
    assert any(f":{line_of(text, 'port = 70000')}: cameras.cam1.port:" in m for m in messages)
    assert any(
        f":{line_of(text, 'pin = 99')}: triggers.gate.pin: GPIO 99 does not exist" in m
        for m in messages
    )


def test_rule_errors_name_the_rule() -> None:
    text = MINIMAL.replace('name = "r1"', 'name = "r1"\nburst = 0')
    [message] = problems_of(text)
    assert f"rules.toml:{line_of(text, 'burst = 0')}: rules[0] (r1).burst:" in message


def test_missing_password_env_is_an_error_and_value_never_shown() -> None:
    text = MINIMAL.replace('host = "10.0.0.1"', 'host = "10.0.0.1"\npassword_env = "CAM1_PW"')
    [message] = problems_of(text)
    assert message == (
        f"rules.toml:{line_of(text, 'password_env')}: cameras.cam1.password_env: "
        "environment variable 'CAM1_PW' is not set"
    )
    rules = parse_rules(text, "rules.toml", {"CAM1_PW": "s3cret-Value"}).rules
    secret = rules.cameras["cam1"].password
    assert secret is not None and secret.get_secret_value() == "s3cret-Value"
    assert "s3cret-Value" not in repr(rules) and "s3cret-Value" not in str(rules)


def test_password_file_is_read_and_trailing_newline_dropped(tmp_path: Path) -> None:
    secret_file = tmp_path / "cam1.password"
    secret_file.write_text("from-file\n")
    text = MINIMAL.replace(
        'host = "10.0.0.1"', f'host = "10.0.0.1"\npassword_file = "{secret_file}"'
    )
    rules = parse_rules(text, "rules.toml", {}).rules
    assert rules.cameras["cam1"].password.get_secret_value() == "from-file"  # type: ignore[union-attr]
    secret_file.unlink()
    [message] = problems_of(text)
    assert "cannot read secret file" in message and "from-file" not in message


def test_two_sources_for_one_secret_is_an_error() -> None:
    text = MINIMAL.replace(
        'host = "10.0.0.1"', 'host = "10.0.0.1"\npassword = "x-inline-x"\npassword_env = "X"'
    )
    [message] = problems_of(text, {"X": "y"})
    assert "give only one of password, password_env" in message
    assert "x-inline-x" not in message


def test_invalid_inline_password_type_does_not_echo_it() -> None:
    text = MINIMAL.replace("[service]", "[mqtt]\npassword = 123456789\n\n[service]")
    messages = problems_of(text)
    assert messages and not any("123456789" in m for m in messages)


def test_env_overrides_service_settings() -> None:
    environ = {
        "CAPTURE_MQTT__HOST": "broker.local",
        "CAPTURE_MQTT__PORT": "1884",
        "CAPTURE_SERVICE__LOG_LEVEL": "debug",
        "CAPTURE_MQTT__PASSWORD": "env-secret",
    }
    text = MINIMAL.replace("[service]", '[mqtt]\npassword_env = "OTHER"\n\n[service]')
    rules = parse_rules(text, "rules.toml", environ).rules
    assert (rules.mqtt.host, rules.mqtt.port, rules.service.log_level) == (
        "broker.local",
        1884,
        "debug",
    )
    assert rules.mqtt.password.get_secret_value() == "env-secret"  # type: ignore[union-attr]


def test_bad_env_override_names_the_variable() -> None:
    [message] = problems_of(MINIMAL, {"CAPTURE_MQTT__PORT": "not-a-port"})
    assert message.startswith("environment CAPTURE_MQTT__PORT: mqtt.port:")


def test_web_off_loopback_requires_token() -> None:
    text = MINIMAL.replace("[service]", '[web]\nbind = "0.0.0.0"\n\n[service]')
    [message] = problems_of(text)
    assert "web: bind '0.0.0.0' is reachable from the network" in message


def test_unreadable_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_rule_file(tmp_path / "missing.toml")
    assert "no rule file: no such file (given with -c)" in str(caught.value)
    folder = tmp_path / "rules.toml"
    folder.mkdir()
    with pytest.raises(ConfigError) as caught:
        load_rule_file(folder)
    assert str(caught.value) == f"{folder}: cannot read rule file: Is a directory"


def test_load_rules_reads_from_disk(write_rules) -> None:  # type: ignore[no-untyped-def]
    loaded = load_rules(write_rules(MINIMAL), environ={})
    assert loaded.rules.rules[0].name == "r1"
    assert loaded.source.endswith("rules.toml")


XRC = MINIMAL.replace('vendor = "edimax"', 'vendor = "xrc"')


def test_xrc_session_can_come_from_an_env_var_or_a_file(tmp_path: Path) -> None:
    text = XRC.replace('host = "10.0.0.1"', 'host = "10.0.0.1"\nsession_env = "GATE_SESSION"')
    rules = parse_rules(text, "rules.toml", {"GATE_SESSION": "sess-7731"}).rules
    assert rules.cameras["cam1"].session.get_secret_value() == "sess-7731"  # type: ignore[union-attr]
    assert "sess-7731" in rules.secret_values()  # so logs scrub it
    assert "sess-7731" not in repr(rules)

    session_file = tmp_path / "gate.session"
    session_file.write_text("sess-from-file\n")
    text = XRC.replace('host = "10.0.0.1"', f'host = "10.0.0.1"\nsession_file = "{session_file}"')
    rules = parse_rules(text, "rules.toml", {}).rules
    assert rules.cameras["cam1"].session.get_secret_value() == "sess-from-file"  # type: ignore[union-attr]


def test_xrc_session_env_unset_is_reported_at_its_line() -> None:
    text = XRC.replace('host = "10.0.0.1"', 'host = "10.0.0.1"\nsession_env = "GATE_SESSION"')
    [message] = problems_of(text)
    assert message == (
        f"rules.toml:{line_of(text, 'session_env')}: cameras.cam1.session_env: "
        "environment variable 'GATE_SESSION' is not set"
    )


def test_xrc_session_given_twice_is_an_error_without_echoing_it() -> None:
    text = XRC.replace(
        'host = "10.0.0.1"', 'host = "10.0.0.1"\nsession = "sess-inline-9"\nsession_env = "S"'
    )
    [message] = problems_of(text, {"S": "other"})
    assert "give only one of session, session_env" in message
    assert "sess-inline-9" not in message


@pytest.mark.parametrize(
    ("host", "advice"),
    [
        ("10.0.0.1:8080", "give the port as `port = N`, not in host"),
        ("https://10.0.0.1", "the scheme goes in `scheme`"),
        ("admin:Host-Pw-0042@10.0.0.1", "the user goes in `user`"),
        ("10.0.0.1/snapshot.jpg", "no path, brackets or spaces"),
        ("[fe80::1]", "no path, brackets or spaces"),
    ],
)
def test_a_camera_host_with_more_than_a_host_in_it_is_refused_without_echoing_it(
    host: str, advice: str
) -> None:
    text = MINIMAL.replace('host = "10.0.0.1"', f'host = "{host}"')
    [message] = problems_of(text)
    assert message.startswith(f"rules.toml:{line_of(text, 'host =')}: cameras.cam1.host: ")
    assert advice in message
    assert host not in message and "Host-Pw-0042" not in message


def test_a_camera_host_may_be_a_name_or_an_ipv4_or_ipv6_address() -> None:
    for host in ("cam-3.line.local", "10.0.0.1", "fe80::1", "fe80::1%eth0"):
        rules = parse_rules(MINIMAL.replace("10.0.0.1", host), "rules.toml", {}).rules
        assert rules.cameras["cam1"].host == host


def test_retention_figures_past_their_bounds_are_errors_at_their_line() -> None:
    """keep_days = 1000000 once passed the check and then stopped retention for good."""
    text = MINIMAL.replace('site = "plant"', 'site = "plant"\n\n[storage]\nkeep_days = 1000000')
    [message] = problems_of(text)
    assert message.startswith(f"rules.toml:{line_of(text, 'keep_days')}: storage.keep_days:")
    assert "36500" in message


@pytest.mark.parametrize(
    "text",
    [
        MINIMAL + "\n[camera.cam2]\n",
        "camera.cam2.host = 'x'  # a dotted key at the top\n" + MINIMAL,
    ],
    ids=["table", "dotted-key"],
)
def test_a_misspelt_section_is_reported_at_its_line(text: str) -> None:
    [message] = problems_of(text)
    assert message.startswith(f"rules.toml:{line_of(text, 'camera.cam2')}: camera: unknown option")
    assert "did you mean 'cameras'" in message


def test_a_rule_file_saved_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    """Notepad's "UTF-8 with BOM" puts U+FEFF before `[service]`: not a TOML error."""
    path = tmp_path / "rules.toml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_rule_file(path, {}).service.site == "plant"


def test_text_written_without_quotes_is_told_to_take_them_without_echoing_it() -> None:
    """A numeric camera password is common; the message must not show it."""
    text = MINIMAL.replace('host = "10.0.0.1"', "host = 10\npassword = 424242")
    host, password = problems_of(text)
    assert host == (
        f"rules.toml:{line_of(text, 'host =')}: cameras.cam1.host: expected text in quotes, "
        'got a number; write host = "..." with quotes'
    )
    assert password.endswith('write password = "..." with quotes') and "424242" not in password
