"""deploy/event-capture.service: systemd accepts it as written, and it keeps its hardening."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import needs_tool

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "event-capture.service"
INSTALLED_CAPTURE = "/opt/event-capture/venv/bin/capture"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")

# Skipped by hand without it; under ./dev test (CI) a missing systemd-analyze fails these.
needs_systemd_analyze = needs_tool(SYSTEMD_ANALYZE, "systemd-analyze (Debian package systemd)")


def unit_copy(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart pointing at this checkout's `capture` (verify checks it exists)."""
    capture = Path(sys.executable).with_name("capture")
    assert capture.exists(), f"{capture} missing: install the package (./dev test does)"
    copy = tmp_path / "event-capture.service"
    copy.write_text((text or UNIT.read_text()).replace(INSTALLED_CAPTURE, str(capture)))
    return copy


def analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, *args],
        capture_output=True, text=True, timeout=60, check=False, cwd=cwd,
    )  # fmt: skip


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_unit_without_a_single_warning(tmp_path: Path) -> None:
    copy = unit_copy(tmp_path)
    result = analyze("verify", copy.name, cwd=tmp_path)
    # verify exits 0 on an unknown option or value and only prints it: both must be empty.
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


@needs_systemd_analyze
def test_verify_as_run_here_catches_a_typo_in_the_unit(tmp_path: Path) -> None:
    copy = unit_copy(
        tmp_path, UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystem=strikt")
    )
    result = analyze("verify", copy.name, cwd=tmp_path)
    assert "protect system value" in result.stderr


@needs_systemd_analyze
def test_unit_exposure_stays_low(tmp_path: Path) -> None:
    copy = unit_copy(tmp_path)
    # The threshold is in tenths: 20 fails the run above an exposure of 2.0 ("OK" ends at 4.9).
    result = analyze("security", "--offline=yes", "--threshold=20", copy.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Overall exposure level for event-capture.service" in result.stdout


def settings(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_unit_runs_the_checked_rule_file_as_a_notify_service_with_a_watchdog() -> None:
    unit = settings(UNIT.read_text())
    assert unit["Type"] == ["notify"]
    assert unit["ExecStartPre"] == [f"{INSTALLED_CAPTURE} check -c /etc/event-capture/rules.toml"]
    assert unit["ExecStart"] == [f"{INSTALLED_CAPTURE} run -c /etc/event-capture/rules.toml"]
    assert unit["WatchdogSec"] and int(unit["WatchdogSec"][0]) >= 10
    assert unit["User"] == ["event-capture"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["EnvironmentFile"] == ["-/etc/event-capture/secrets.env"]


def test_unit_writes_only_to_its_state_and_runtime_directories_and_reaches_gpio() -> None:
    unit = settings(UNIT.read_text())
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["StateDirectory"] == ["event-capture"]
    assert unit["ReadWritePaths"] == ["/var/lib/event-capture"]
    # lgpio needs a writable current directory for its FIFOs.
    assert unit["WorkingDirectory"] == ["/run/event-capture"]
    assert unit["RuntimeDirectory"] == ["event-capture"]
    assert unit["CapabilityBoundingSet"] == [""]
    assert unit["PrivateDevices"] == ["no"] and unit["DevicePolicy"] == ["closed"]
    assert "char-gpiochip rw" in unit["DeviceAllow"]
    assert "char-ttyUSB rw" in unit["DeviceAllow"]
