"""`capture discover`: the section it prints is accepted by `capture check` and takes pictures."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from capture.cameras.jpeg import validate_jpeg
from capture.cli import main
from capture.simulator import SimulatedCamera, Simulator
from tests.cameras.onvif_device import OnvifDevice
from tests.e2e.conftest import base_sections

PASSWORD = "Discover-Pass-77"
WRONG_PASSWORD = "Discover-Wrong-78"
ENVIRON = {"DOCK_CAMERA_PASSWORD": PASSWORD}
WRONG_ENVIRON = {"DOCK_CAMERA_PASSWORD": WRONG_PASSWORD}

RULE = """
[triggers.dock_gate]
type = "http"

[[rules]]
name = "dock_arrival"
when = "dock_gate"
cameras = ["{camera}"]
filename = "{{line}}/arrival_{{camera}}_{{seq}}.jpg"
"""


@pytest.fixture
def device() -> Iterator[OnvifDevice]:
    camera = SimulatedCamera("dock", "generic", password=PASSWORD, auth="digest")
    with Simulator([camera]) as sim:
        snapshot = sim.url_of("dock") + "/snap.jpg?profile={token}"
        with OnvifDevice("admin", PASSWORD, snapshot) as onvif:
            yield onvif


def discover(
    device: OnvifDevice, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, str, str]:
    code = main(["discover", "127.0.0.1", "--port", str(device.port), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_discover_prints_the_device_its_profiles_and_a_section_check_accepts_and_fire_uses(
    device: OnvifDevice,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("DOCK_CAMERA_PASSWORD", PASSWORD)
    code, out, err = discover(
        device, capsys, "--user", "admin", "--password-env", "DOCK_CAMERA_PASSWORD"
    )
    assert code == 0, err
    assert "HIKVISION DS-2CD2143G0-I, firmware V5.5.82 build 190909" in out
    assert 'Profile_2 "subStream" H264 640x360' in out
    assert "rtsp://127.0.0.1:554/Streaming/Channels/101?transportmode=unicast" in out
    assert PASSWORD not in out + err
    section = out[out.index("[cameras.") :]
    assert 'password_env = "DOCK_CAMERA_PASSWORD"' in section
    assert 'profile = "Profile_1"' in section and "password =" not in section
    name = re.match(r"\[cameras\.([^\]]+)\]", section)
    assert name is not None and name.group(1) == "ds-2cd2143g0-i"

    root = tmp_path / "data"
    rules = tmp_path / "rules.toml"
    rules.write_text(
        base_sections(root, None).replace("[web]\nenabled = false", "[web]\nenabled = true")
        + "\n"
        + section
        + "\n"
        + RULE.format(camera=name.group(1))
    )
    assert main(["check", "-c", str(rules)]) == 0, capsys.readouterr()
    capsys.readouterr()

    fired = subprocess.run(
        [sys.executable, "-m", "capture", "fire", "-c", str(rules), "dock_gate"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **ENVIRON},
    )  # fmt: skip
    assert fired.returncode == 0, fired.stdout + fired.stderr
    [picture] = (root / "Line 3").iterdir()
    assert picture.name == "arrival_ds-2cd2143g0-i_1.jpg"
    assert validate_jpeg(picture.read_bytes()).width > 0
    assert PASSWORD not in fired.stdout + fired.stderr


def test_a_wrong_password_is_a_clear_typed_error_and_no_section(
    device: OnvifDevice, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCK_CAMERA_PASSWORD", WRONG_PASSWORD)
    code, out, err = discover(
        device, capsys, "--user", "admin", "--password-env", "DOCK_CAMERA_PASSWORD"
    )
    assert code == 1
    assert "AuthFailed" in err and "refused the login" in err and "user 'admin'" in err
    assert "[cameras." not in out
    assert WRONG_PASSWORD not in out + err


def test_without_credentials_the_device_s_refusal_says_what_to_give(
    device: OnvifDevice, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = discover(device, capsys)
    assert code == 1
    assert "needs --user and --password-env" in err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--user", "admin"], "--user needs --password-env VAR"),
        (["--password-env", "DOCK_CAMERA_PASSWORD"], "--password-env needs --user"),
        (["--user", "admin", "--password-env", "NOT_SET_ANYWHERE"], "NOT_SET_ANYWHERE is not set"),
    ],
)
def test_credentials_come_only_from_an_environment_variable(
    capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    assert main(["discover", "192.0.2.1", *arguments]) == 1
    assert message in capsys.readouterr().err


def test_a_host_with_a_password_in_it_is_refused_without_being_echoed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["discover", f"admin:{PASSWORD}@192.0.2.1"]) == 1
    err = capsys.readouterr().err
    assert "give the host alone" in err and PASSWORD not in err
