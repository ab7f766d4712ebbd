"""`capture simulate` and its TOML file: cameras and faults as configured, URLs printed, clean exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from capture.simulator.camera import SimulatorConfigError
from capture.simulator.config import load_simulator_file
from tests.broker import free_port

SIM_TOML = """
[simulator]
host = "127.0.0.1"

[[camera]]
name = "line1_hik"
vendor = "hikvision"
password = "hik-pass"
digest_algorithms = ["SHA-256", "MD5"]
channels = 4
line = "Line 1"

[[camera]]
name = "line1_dahua"
vendor = "dahua"
password = "dh-pass"
digest_qop = "none"

[camera.faults]
dahua_error_body = true
latency_s = 0.01
"""


def test_toml_file_describes_cameras_and_faults(tmp_path: Path):
    path = tmp_path / "sim.toml"
    path.write_text(SIM_TOML)
    setup = load_simulator_file(path)
    hik, dahua = setup.cameras
    assert (hik.name, hik.channels, hik.digest_algorithms) == ("line1_hik", 4, ("SHA-256", "MD5"))
    assert dahua.digest_qop is None
    assert setup.faults == {"line1_dahua": {"dahua_error_body": True, "latency_s": 0.01}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[camera]]\nname = "a"\nvendor = "sony"\n', r"camera #1 \(a\).*vendor must be one of"),
        ('[[camera]]\nname = "a"\nvendor = "edimax"\ncolour = 1\n', r"unknown key\(s\) colour"),
        (
            '[[camera]]\nname = "a"\nvendor = "edimax"\n[camera.faults]\ntrunc = true\n',
            r"unknown fault\(s\) trunc",
        ),
        ("[simulator]\n", "add at least one"),
        ("[[camera]\n", "not valid TOML"),
    ],
)
def test_toml_mistakes_are_errors_naming_the_file_and_camera(tmp_path: Path, text, message):
    path = tmp_path / "sim.toml"
    path.write_text(text)
    with pytest.raises(SimulatorConfigError, match=message) as caught:
        load_simulator_file(path)
    assert str(path) in str(caught.value)


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "capture", "simulate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _read_until_ready(process: subprocess.Popen[str]) -> list[str]:
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            return lines
    pytest.fail(f"simulate exited early: {lines} {process.stderr.read() if process.stderr else ''}")


def _start_on_free_ports() -> tuple[subprocess.Popen[str], int, list[str]]:
    """Start with a --base-port; other tests on this machine may grab a port, so retry."""
    for _ in range(5):
        base = free_port()
        process = _start("--base-port", str(base))
        assert process.stdout is not None
        first = process.stdout.readline()
        if "cannot listen" not in first:
            return process, base, [first.rstrip("\n"), *_read_until_ready(process)]
        process.wait()
        _close(process)
    pytest.fail("no free run of six ports found")


def _close(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.wait()
    for stream in (process.stdout, process.stderr):
        if stream:
            stream.close()


def test_cli_starts_every_vendor_prints_urls_and_exits_cleanly_on_ctrl_c():
    process, base, lines = _start_on_free_ports()
    try:
        output = "\n".join(lines)
        assert "SIMULATOR credentials" in output
        for vendor in ("hikvision", "dahua", "edimax", "xrc", "mjpeg", "generic"):
            assert f"sim-{vendor}" in output
        assert f"http://127.0.0.1:{base}/ISAPI/Streaming/channels/101/picture" in output
        xrc_url = next(line.split()[-1] for line in lines if line.startswith("sim-xrc"))
        assert "pwd=sim-password" in xrc_url
        assert httpx.get(xrc_url).status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        _close(process)


def test_cli_runs_a_toml_file_with_its_faults_and_stops_on_sigterm(tmp_path: Path):
    path = tmp_path / "sim.toml"
    path.write_text(SIM_TOML)
    process = _start("--config", str(path), "--vendor", "xrc")
    try:
        lines = _read_until_ready(process)
        assert any("line1_hik" in line and "hik-pass" in line for line in lines)
        dahua_url = next(line.split()[-1] for line in lines if line.startswith("line1_dahua"))
        answer = httpx.get(dahua_url, auth=httpx.DigestAuth("admin", "dh-pass"))
        assert (answer.status_code, answer.text) == (200, "Error\r\n")
        process.terminate()
        assert process.wait(timeout=10) == 0
    finally:
        _close(process)


def test_saving_the_file_switches_faults_live_and_a_broken_save_changes_nothing(
    tmp_path: Path,
):
    path = tmp_path / "sim.toml"
    path.write_text(SIM_TOML)
    process = _start("--config", str(path))
    assert process.stdout is not None
    try:
        lines = _read_until_ready(process)
        dahua_url = next(line.split()[-1] for line in lines if line.startswith("line1_dahua"))
        auth = httpx.DigestAuth("admin", "dh-pass")
        assert httpx.get(dahua_url, auth=auth).text == "Error\r\n"

        path.write_text(SIM_TOML.replace("dahua_error_body = true", "html_200 = true"))
        assert process.stdout.readline().strip() == "faults line1_hik: none"
        assert "html_200=True" in process.stdout.readline()
        answer = httpx.get(dahua_url, auth=auth)
        assert answer.headers["content-type"].startswith("text/html")

        path.write_text(SIM_TOML.replace("[camera.faults]", "[camera.faults\n"))
        assert process.stdout.readline().startswith("faults not changed:")
        assert httpx.get(dahua_url, auth=auth).headers["content-type"].startswith("text/html")

        path.write_text(SIM_TOML.partition("[camera.faults]")[0])  # no faults at all
        process.stdout.readline()  # line1_hik
        assert process.stdout.readline().strip() == "faults line1_dahua: none"
        answer = httpx.get(dahua_url, auth=auth)
        assert answer.headers["content-type"] == "image/jpeg"
        process.terminate()
        assert process.wait(timeout=10) == 0
    finally:
        _close(process)


def test_cli_reports_a_bad_file_and_exits_2(tmp_path: Path):
    path = tmp_path / "sim.toml"
    path.write_text('[[camera]]\nname = "a"\n')
    result = subprocess.run(
        [sys.executable, "-m", "capture", "simulate", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "name and vendor are required" in result.stdout


def test_started_in_the_background_of_a_script_it_still_stops_on_sigint():
    # A background job of a non-interactive shell starts with SIGINT ignored.
    # `trap "" INT` is what such a shell does before it starts the job; exec keeps it.
    process = subprocess.Popen(
        ["sh", "-c", 'trap "" INT; exec "$0" -m capture simulate --vendor edimax', sys.executable],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        _read_until_ready(process)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert process.stdout is not None and process.stdout.read() == "simulator stopped\n"
    finally:
        _close(process)
