"""`capture check` on the example file and on broken copies of it, as a technician runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.config.conftest import EXAMPLE, line_of

PASSWORDS = re.findall(r'^password = "([^"]+)"', EXAMPLE.read_text(), flags=re.MULTILINE)


def run_in(
    folder: Path | None, *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CAPTURE_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "capture", *argv],
        capture_output=True,
        text=True,
        env=environ,
        cwd=folder,
        timeout=60,
        check=False,
    )


def run_check(
    path: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_in(None, "check", "-c", str(path), *extra, env=env)


def assert_no_password(result: subprocess.CompletedProcess[str]) -> None:
    assert PASSWORDS, "the example should demonstrate passwords"
    for password in PASSWORDS:
        assert password not in result.stdout + result.stderr


def test_example_passes_with_summary() -> None:
    result = run_check(EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    assert 'ng_part: plc_result if state == "NG"' in result.stdout
    assert "line3_press, line3_inspection, 3 frames every 200 ms" in result.stdout
    assert (
        "overview_moment: ir_gate -> line4_overview, frames at -500, +0, +200 ms" in result.stdout
    )
    assert "dvr_view: refresh -> line3_infeed, line3_press" in result.stdout
    assert_no_password(result)


def test_the_example_checks_clean_and_quiet_and_still_shows_the_http_trigger() -> None:
    result = run_check(EXAMPLE, "-q")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert "  mes_order         http     POST /api/trigger/mes_order\n" in run_check(EXAMPLE).stdout


def check_broken_copy(tmp_path: Path, old: str, new: str) -> tuple[Path, str, str]:
    """Write the example with `old` replaced by `new`, check it: it must fail, leaking no password."""
    text = EXAMPLE.read_text()
    assert old in text
    text = text.replace(old, new)
    path = tmp_path / "rules.toml"
    path.write_text(text)
    result = run_check(path)
    assert result.returncode == 1
    assert_no_password(result)
    return path, text, result.stderr


def test_misspelt_camera_in_rule(tmp_path: Path) -> None:
    path, text, stderr = check_broken_copy(
        tmp_path, 'cameras = ["line3_infeed"]', 'cameras = ["line3_infeeed"]'
    )
    assert (
        f"{path}:{line_of(text, 'line3_infeeed')}: rules[1] (infeed).cameras[0]: unknown camera "
        "'line3_infeeed' (did you mean 'line3_infeed'?)"
    ) in stderr


def test_broken_toml_line(tmp_path: Path) -> None:
    path, text, stderr = check_broken_copy(tmp_path, "every_s = 300", "every_s = = 300")
    assert f"{path}:{line_of(text, 'every_s = = 300')}:" in stderr
    assert "TOML syntax error" in stderr


def test_unknown_key(tmp_path: Path) -> None:
    path, text, stderr = check_broken_copy(tmp_path, "bounce_ms = 20 ", "bounce_msec = 20 ")
    assert (
        f"{path}:{line_of(text, 'bounce_msec')}: triggers.ir_gate.bounce_msec: unknown option "
        "'bounce_msec' (did you mean 'bounce_ms'?)"
    ) in stderr


def test_password_env_not_set(tmp_path: Path) -> None:
    path, text, stderr = check_broken_copy(
        tmp_path, 'password = "Dahua-Robot-7"', 'password_env = "LINE4_ROBOT_PASSWORD"'
    )
    assert (
        f"{path}:{line_of(text, 'LINE4_ROBOT_PASSWORD')}: cameras.line4_robot.password_env: "
        "environment variable 'LINE4_ROBOT_PASSWORD' is not set"
    ) in stderr
    ok = run_check(path, env={"LINE4_ROBOT_PASSWORD": "Robot-From-Env"})
    assert ok.returncode == 0, ok.stderr
    assert "Robot-From-Env" not in ok.stdout + ok.stderr


def test_version_and_help() -> None:
    version = subprocess.run(
        [sys.executable, "-m", "capture", "--version"], capture_output=True, text=True, check=True
    )
    assert re.fullmatch(r"capture \d+\.\d+\.\d+\n", version.stdout)
    helptext = subprocess.run(
        [sys.executable, "-m", "capture", "check", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "-c FILE, --config FILE" in helptext.stdout


def test_a_string_left_open_that_swallows_a_password_line_never_shows_it(tmp_path: Path) -> None:
    """Found by the fault suite's mutations: a vendor read the next lines, a password's too."""
    press = 'vendor = "hikvision"\nhost = "192.168.10.20"\nchannel = 2\nstream = "main"\n'
    press += 'user = "capture"\npassword = "Nvr-Line3-2026"\nline = "Line 3"\n'
    _path, _text, stderr = check_broken_copy(
        tmp_path, press, press.replace('"hikvision"', '"""').replace('"Line 3"', '"""')
    )
    assert "cameras.line3_press.vendor: unknown vendor; known: hikvision" in stderr, stderr


def test_the_summary_masks_a_password_swallowed_into_a_value(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace(
        'line = "Line 4"\ntimeout_s = 8',
        'line = """\npassword = "Swallowed-Pw-31"\n"""\ntimeout_s = 8',
    )
    assert "Swallowed-Pw-31" in text
    path = tmp_path / "rules.toml"
    path.write_text(text)
    result = run_check(path)
    assert result.returncode == 0, result.stderr
    assert "line4_robot" in result.stdout and "***" in result.stdout
    assert "Swallowed-Pw-31" not in result.stdout + result.stderr


def test_an_empty_file_is_refused_by_check_as_by_the_service(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("")
    result = run_check(path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"{path}:1: no [[rules]] in the file (empty or half-written?): it would capture nothing; "
        "add a [[rules]] section (see rules.example.toml), or stop the service to stop capturing\n"
        f"{path}: 1 error; nothing was changed\n"
    )
    service = run_in(None, "run", "-c", str(path))
    assert (service.returncode, service.stdout) == (1, "")
    assert service.stderr == (
        result.stderr.splitlines(keepends=True)[0]
        + "the rule file has errors; fix them and try again (capture check)\n"
    )


def test_quoted_numbers_and_units_are_refused_with_what_to_write(tmp_path: Path) -> None:
    timeout = 'timeout_s = "10s"'
    text = (
        EXAMPLE.read_text()
        .replace("timeout_s = 8", timeout)
        .replace("burst = 3 ", 'burst = "3" ')
        .replace("port = 1883", 'port = "1883"')
    )
    path = tmp_path / "rules.toml"
    path.write_text(text)
    result = run_check(path)
    assert result.returncode == 1
    strict = "(without quotes: the rule file is strict about types)"
    assert result.stderr.splitlines() == [
        f"{path}:{line_of(text, 'port = ')}: mqtt.port: expected a whole number, "
        f'got the text "1883"; write port = 1883 {strict}',
        f"{path}:{line_of(text, timeout)}: cameras.line4_robot.timeout_s: "
        f'expected a number, got the text "10s"; write timeout_s = 10 {strict}',
        f"{path}:{line_of(text, 'burst = ')}: rules[0] (ng_part).burst: expected a whole number, "
        f'got the text "3"; write burst = 3 {strict}',
        f"{path}: 3 errors; nothing was changed",
    ]


def test_an_unclosed_string_and_typographic_quotes_are_named(tmp_path: Path) -> None:
    path, text, stderr = check_broken_copy(tmp_path, 'site = "plant-a"', 'site = "plant-a')
    line = line_of(text, "site = ")
    end = len(text.splitlines()[line - 1]) + 1
    assert stderr.splitlines()[0] == (
        f"{path}:{line}:{end}: TOML syntax error: Illegal character '\\n'; "
        "a string is not closed: add the missing quote at the end of the value"
    )
    path, text, stderr = check_broken_copy(tmp_path, 'site = "plant-a"', "site = “plant-a”")
    assert stderr.splitlines()[0] == (
        f"{path}:{line_of(text, 'site = ')}:8: TOML syntax error: Invalid value; the line has "
        "typographic quotes (“ ” ‘ ’), as a word processor writes them: "
        "type plain quotes \" or ' instead"
    )


START = (
    "To start: `capture demo` runs simulated cameras on a rule file of its own "
    "(demo-data/rules.toml); or copy the example, `cp rules.example.toml rules.toml`, "
    "edit it and run `capture check`"
)


@pytest.mark.skipif(
    Path("/etc/event-capture/rules.toml").exists(), reason="this machine has an installed rule file"
)
@pytest.mark.parametrize("command", ["check", "run"])
def test_no_rule_file_names_the_places_searched_and_how_to_start(
    tmp_path: Path, command: str
) -> None:
    result = run_in(tmp_path, command)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "rules.toml: no rule file: looked for -c FILE (not given), $CAPTURE_CONFIG (not set), "
        f"/etc/event-capture/rules.toml (missing), ./rules.toml (missing). {START}\n"
    )


def test_a_missing_file_named_by_option_or_variable_says_which(tmp_path: Path) -> None:
    result = run_in(tmp_path, "check", "-c", "line3.toml")
    assert result.stderr == f"line3.toml: no rule file: no such file (given with -c). {START}\n"
    result = run_in(tmp_path, "run", env={"CAPTURE_CONFIG": "/srv/line3.toml"})
    assert result.stderr == (
        "/srv/line3.toml: no rule file: $CAPTURE_CONFIG names /srv/line3.toml, "
        f"which does not exist. {START}\n"
    )


def test_a_missing_file_given_with_c_is_named_as_given_even_under_a_default_name(
    tmp_path: Path,
) -> None:
    result = run_in(tmp_path, "check", "-c", "rules.toml")
    assert result.stderr == f"rules.toml: no rule file: no such file (given with -c). {START}\n"
