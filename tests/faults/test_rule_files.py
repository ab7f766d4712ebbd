"""Mutated rule files: always a ConfigError naming file and line, never a traceback or a secret."""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from pathlib import Path
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capture.cli import main as capture_cli
from capture.config.loader import parse_rules
from capture.config.problems import ConfigError
from capture.simulator import Simulator
from tests.conftest import SIM_PASSWORD, wait_for
from tests.e2e.conftest import base_sections, camera_sections
from tests.e2e.test_service import GATE, pulse
from tests.faults.conftest import (
    EXAMPLE,
    EXAMPLE_SECRETS,
    RELOAD_SECRET,
    RULE_FILE_ENVIRON,
    FaultServiceFactory,
    snapshots,
)

LINES = EXAMPLE.splitlines()
SECRETS = (*EXAMPLE_SECRETS, *RULE_FILE_ENVIRON.values())
ENVIRON = RULE_FILE_ENVIRON

HOSTILE_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["9" * 400, "-9" + "9" * 30, "1e999", "nan", "inf", "-0", "0x7fffffffffffffffff",
         '"\x00"', '"\\u0000"', "[[[[]]]]", "{ a = { b = { c = 1 } } }", '"""', "'''", "true",
         '"../../etc/passwd"', '"' + "x" * 5000 + '"', "1979-05-27T07:32:00Z", '"\u202e\U0001f4f7"']
    ),
)  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, original: list[str]) -> str:
    """`original` after 1-4 edits a careless hand or a broken editor could make."""
    lines = list(original)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        match draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "garble"])):
            case "delete":
                del lines[i]
            case "duplicate":
                lines.insert(i, lines[i])
            case "swap":
                j = draw(st.integers(0, len(lines) - 1))
                lines[i], lines[j] = lines[j], lines[i]
            case "insert":
                lines.insert(i, draw(st.text(max_size=60)))
            case "garble":
                assignments = [n for n, line in enumerate(lines) if re.match(r"\s*\w+\s*=", line)]
                n = draw(st.sampled_from(assignments))
                key = lines[n].split("=", 1)[0]
                lines[n] = f"{key}= {draw(HOSTILE_VALUES)}"
        if not lines:
            lines = [""]
    return "\n".join(lines) + "\n"


def located(line: str, file: str) -> bool:
    """`file:LINE: ` or `file:LINE:COLUMN: ` first, or a problem of the environment (no line)."""
    return line.startswith("environment ") or bool(
        re.match(re.escape(file) + r":\d+(:\d+)?: ", line)
    )


def test_the_example_itself_is_valid() -> None:
    parse_rules(EXAMPLE, "rules.toml", ENVIRON)
    assert SECRETS  # the search below is only worth something with secrets to look for


def test_a_string_left_open_to_the_end_of_the_file_is_located_on_the_last_line() -> None:
    """tomllib says only "at end of document" here; the first mutation run found it unlocated."""
    text = re.sub(r'(?m)^site = ".*$', 'site = """', EXAMPLE, count=1)
    assert text != EXAMPLE
    try:
        parse_rules(text, "rules.toml", ENVIRON)
    except ConfigError as exc:
        [line] = str(exc).splitlines()
        assert line.startswith(f"rules.toml:{len(text.splitlines())}: TOML syntax error: "), line
    else:
        raise AssertionError("an unterminated string was accepted")


def test_a_file_whose_rules_headers_were_deleted_is_refused_on_located_lines() -> None:
    """CI's mutation run found "no [[rules]]" without a line; it points where one would go."""
    text = (
        '[cameras.cam1]\nvendor = "generic"\nurl = "http://127.0.0.1:9/snapshot.jpg"\n\n'
        '[triggers.gate]\ntype = "gpio"\npin = "GPIO17"\n\n'
        "# [[rules]] deleted here: the keys below now belong to [triggers.gate]\n"
        'name = "gate"\nwhen = "gate"\ncameras = ["cam1"]\n'
    )
    try:
        parse_rules(text, "rules.toml", ENVIRON)
    except ConfigError as exc:
        lines = str(exc).splitlines()
        assert all(located(line, "rules.toml") for line in lines), lines
        assert f"rules.toml:{len(text.splitlines())}: no [[rules]] in the file" in str(exc)
    else:
        raise AssertionError("a file without [[rules]] was accepted")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=mutated(LINES))
def test_mutated_rule_file_gives_only_located_config_errors_without_secrets(text: str) -> None:
    try:
        parse_rules(text, "rules.toml", ENVIRON)
    except ConfigError as exc:
        message = str(exc)
        assert exc.problems and message
        for line in message.splitlines():
            assert located(line, "rules.toml"), line
        for secret in SECRETS:
            assert secret not in message
    # Any other exception fails the test: hypothesis shows the smallest file that raises it.


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=mutated(LINES))
def test_capture_check_on_a_mutated_file_answers_with_located_errors_or_a_summary(
    text: str,
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rules.toml"
        path.write_text(text, encoding="utf-8")
        out, err = io.StringIO(), io.StringIO()
        with (
            mock.patch.dict(os.environ, ENVIRON),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            status = capture_cli(["check", "-c", str(path)])
    said = out.getvalue() + err.getvalue()
    assert "Traceback" not in said
    if status == 1:
        *problems, last = err.getvalue().splitlines()
        assert problems, said
        for line in problems:
            assert located(line, str(path)), line
        # The closing count is the only line without a line number.
        assert re.fullmatch(re.escape(str(path)) + r": \d+ errors?; nothing was changed", last), (
            last
        )
    else:
        assert status == 0 and out.getvalue().startswith(f"{path}: OK"), said
    for secret in SECRETS:
        assert secret not in said


BROKEN_RELOADS = [
    "[[rules]\nname = ",  # TOML syntax
    "",  # empty file: no cameras, no triggers
    "\x00\xff garbage \ud7ff",
    GATE.replace('cameras = ["cam_a"]', 'cameras = ["cam_x"]'),  # unknown camera
    GATE.replace('pin = "GPIO17"', "pin = 9" + "9" * 300),  # huge number
]


def test_reload_of_broken_files_keeps_the_running_rules(
    tmp_path: Path, simulator: Simulator, fault_service: FaultServiceFactory
) -> None:
    root = tmp_path / "data"
    sections = base_sections(root, None) + camera_sections(simulator)
    service = fault_service(sections + GATE)
    path = tmp_path / "rules.toml"
    pin = fault_service.pins.pin(17)  # type: ignore[attr-defined]
    for n, broken in enumerate(BROKEN_RELOADS, start=1):
        path.write_text(broken if n <= 3 else sections + broken, encoding="utf-8")
        assert service.reload() is False
        assert service.reload_errors
        assert all(error.startswith(f"{path}:") for error in service.reload_errors)
        pulse(pin)
        wait_for(lambda n=n: len(snapshots(root)) == n)
    assert service.reloads == 0


def test_mutated_reloads_never_raise_and_a_refused_one_keeps_the_rules_running(
    tmp_path: Path, simulator: Simulator, fault_service: FaultServiceFactory
) -> None:
    root = tmp_path / "data"
    cameras = camera_sections(simulator)
    head, cam_b = cameras.split("[cameras.cam_b]")
    cam_b = cam_b.replace('password_env = "E2E_CAMERA_PASSWORD"', f'password = "{RELOAD_SECRET}"')
    pristine = base_sections(root, None) + head + "[cameras.cam_b]" + cam_b + GATE
    service = fault_service(pristine)
    path = tmp_path / "rules.toml"
    pin = fault_service.pins.pin(17)  # type: ignore[attr-defined]
    outside_before = {p for p in tmp_path.rglob("*") if root not in p.parents}
    refused = 0

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(text=mutated(pristine.splitlines()))
    def reload_once(text: str) -> None:
        nonlocal refused
        path.write_text(pristine, encoding="utf-8")
        assert service.reload(), service.reload_errors  # back to the known rules
        running = service.rules
        path.write_text(text, encoding="utf-8")
        if service.reload():
            return  # a harmless edit (a comment, a blank line, a value that is still valid)
        refused += 1
        # By value: the file watcher may have re-applied the same pristine file meanwhile.
        assert service.rules == running
        assert service.reload_errors
        for error in service.reload_errors:
            assert located(error, str(path)), error
            assert RELOAD_SECRET not in error and SIM_PASSWORD not in error
        taken = len(snapshots(root))
        pulse(pin)
        wait_for(lambda: len(snapshots(root)) == taken + 1)

    reload_once()
    assert refused >= 10  # the mutations were mostly harmful, so the check above ran
    outside_after = {p for p in tmp_path.rglob("*") if root not in p.parents}
    assert outside_after == outside_before
