"""Mutated rule files: always a ConfigError naming file and line, never a traceback or a secret."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capture.config.loader import parse_rules
from capture.config.problems import ConfigError
from capture.simulator import Simulator
from tests.conftest import wait_for
from tests.e2e.conftest import base_sections, camera_sections
from tests.e2e.test_service import GATE, pulse
from tests.faults.conftest import FaultServiceFactory, snapshots

EXAMPLE = (Path(__file__).parents[2] / "rules.example.toml").read_text(encoding="utf-8")
LINES = EXAMPLE.splitlines()
SECRETS = sorted(set(re.findall(r'^\s*(?:password|token)\s*=\s*"([^"]+)"', EXAMPLE, re.M)))
ENVIRON = {"LINE3_NVR_PASSWORD": "Env-Secret-0042", "CAPTURE_WEB_TOKEN": "Env-Token-0042"}

HOSTILE_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["9" * 400, "-9" + "9" * 30, "1e999", "nan", "inf", "-0", "0x7fffffffffffffffff",
         '"\x00"', '"\\u0000"', "[[[[]]]]", "{ a = { b = { c = 1 } } }", '"""', "'''", "true",
         '"../../etc/passwd"', '"' + "x" * 5000 + '"', "1979-05-27T07:32:00Z", '"\u202e\U0001f4f7"']
    ),
)  # fmt: skip


@st.composite
def mutated_example(draw: st.DrawFn) -> str:
    """rules.example.toml after 1-4 edits a careless hand or a broken editor could make."""
    lines = list(LINES)
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


def test_the_example_itself_is_valid() -> None:
    parse_rules(EXAMPLE, "rules.toml", ENVIRON)
    assert SECRETS  # the search below is only worth something with secrets to look for


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=mutated_example())
def test_mutated_rule_file_gives_only_located_config_errors_without_secrets(text: str) -> None:
    try:
        parse_rules(text, "rules.toml", ENVIRON)
    except ConfigError as exc:
        message = str(exc)
        assert exc.problems and message
        for line in message.splitlines():
            assert line.startswith(("rules.toml:", "environment ")), line
        for secret in (*SECRETS, *ENVIRON.values()):
            assert secret not in message
    # Any other exception fails the test: hypothesis shows the smallest file that raises it.


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
