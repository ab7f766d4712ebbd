"""`capture snap` and `capture cameras` against the simulator, as a technician runs them."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from capture.cameras.errors import AuthFailed
from capture.cameras.jpeg import validate_jpeg
from capture.cameras.logins import STATE_NAME
from capture.cli import main
from capture.simulator import SimulatedCamera, Simulator

PASSWORD = "cli#secret"
DEVICES = [
    SimulatedCamera("hik", "hikvision", password=PASSWORD),
    SimulatedCamera("dahua", "dahua", password=PASSWORD),
    SimulatedCamera("edimax", "edimax", password=PASSWORD),
    SimulatedCamera("xrc", "xrc", password=PASSWORD),
    SimulatedCamera("mjpeg", "mjpeg", password=PASSWORD, fps=20),
    SimulatedCamera("generic", "generic", password=PASSWORD, auth="query"),
]
EXTRA = {
    "mjpeg": 'path = "/mjpg/video.mjpg"\n',
    "generic": 'path = "/snap.jpg"\nauth = "query"\n',
}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(DEVICES) as simulator:
        yield simulator


@pytest.fixture
def rules(sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("CAM_PASSWORD", PASSWORD)
    monkeypatch.chdir(tmp_path)
    sections = [
        f'[cameras.{d.name}]\nvendor = "{d.vendor}"\nhost = "127.0.0.1"\n'
        f'port = {sim.port_of(d.name)}\nuser = "admin"\npassword_env = "CAM_PASSWORD"\n'
        f'line = "Line 3"\n{EXTRA.get(d.name, "")}'
        for d in DEVICES
    ]
    path = tmp_path / "rules.toml"
    path.write_text("\n".join(sections), encoding="utf-8")
    yield path
    for device in DEVICES:
        sim.reset_faults(device.name)


@pytest.mark.parametrize("name", [device.name for device in DEVICES])
def test_snap_writes_a_valid_jpeg_and_reports_it(
    rules: Path, tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out" / f"{name}.jpg"
    target.parent.mkdir()
    assert main(["snap", name, "-c", str(rules), "-o", str(target)]) == 0
    info = validate_jpeg(target.read_bytes())
    assert (info.width, info.height) == (640, 480)
    out = capsys.readouterr().out
    assert out.startswith(f"{target}: {len(info.data)} bytes, 640x480, ")
    assert out.rstrip().endswith(" ms")
    assert [p.name for p in target.parent.iterdir()] == [f"{name}.jpg"]  # no temp file left


def test_snap_default_name_is_camera_and_time_in_the_current_folder(
    rules: Path, tmp_path: Path
) -> None:
    assert main(["snap", "edimax", "-c", str(rules)]) == 0
    (written,) = tmp_path.glob("edimax_*.jpg")
    assert len(written.stem) == len("edimax_YYYYmmdd_HHMMSS")


def test_snap_names_its_file_in_the_sites_time_zone_not_the_machines(
    rules: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "UTC")
    # Kiritimati is UTC+14: its date and hour differ from the machine's (UTC) all day.
    rules.write_text('[service]\ntimezone = "Pacific/Kiritimati"\n' + rules.read_text())
    before = datetime.now(ZoneInfo("Pacific/Kiritimati")).replace(microsecond=0)
    assert main(["snap", "edimax", "-c", str(rules)]) == 0
    after = datetime.now(ZoneInfo("Pacific/Kiritimati"))
    (written,) = tmp_path.glob("edimax_*.jpg")
    named = datetime.strptime(written.stem, "edimax_%Y%m%d_%H%M%S")
    assert before.replace(tzinfo=None) <= named <= after.replace(tzinfo=None)


def test_snap_against_html_200_exits_1_and_writes_nothing(
    rules: Path, sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.faults("hik").html_200 = True
    target = tmp_path / "never.jpg"
    assert main(["snap", "hik", "-c", str(rules), "-o", str(target)]) == 1
    assert not target.exists()
    assert list(tmp_path.glob("*.jpg")) == []
    assert list(tmp_path.glob(".*.tmp")) == []
    err = capsys.readouterr().err
    assert err.startswith("InvalidImage: camera hik: answered HTTP 200 with an HTML page")


def test_snap_with_wrong_password_exits_1_without_the_password(
    rules: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CAM_PASSWORD", "not-it")
    assert main(["snap", "generic", "-c", str(rules)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("AuthFailed: camera generic: authentication failed")
    assert "not-it" not in err and PASSWORD not in err


def test_a_failed_login_points_at_the_password_key_the_section_uses(
    rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules.write_text(
        rules.read_text().replace('password_env = "CAM_PASSWORD"', 'password = "not-it"')
    )
    assert main(["snap", "dahua", "-c", str(rules)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("AuthFailed: camera dahua: authentication failed (HTTP 401, ")
    assert err.endswith("; check user and password (in the rule file)\n")
    assert main(["cameras", "-c", str(rules)]) == 1
    out = capsys.readouterr().out
    assert "check user and password (in the rule file)" in out and "password_env" not in out


def test_snap_unknown_camera_suggests_a_name(
    rules: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["snap", "edimx", "-c", str(rules)]) == 1
    assert "unknown camera 'edimx' (did you mean 'edimax'?)" in capsys.readouterr().err


def test_snap_with_a_broken_rule_file_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text('[cameras.x]\nvendor = "nikon"\nhost = "h"\n', encoding="utf-8")
    assert main(["snap", "x", "-c", str(bad)]) == 1
    assert "rules.toml" in capsys.readouterr().err


def test_cameras_probes_all_and_prints_a_table(
    rules: Path, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cameras", "-c", str(rules)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "VENDOR", "LINE", "LATENCY", "IMAGE", "RESULT"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {device.name for device in DEVICES}
    for device in DEVICES:
        row = rows[device.name]
        assert device.vendor in row and "Line 3" in row and "640x480" in row
        assert row.rstrip().endswith("OK")


def test_cameras_reports_each_failure_and_exits_1(
    rules: Path, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.faults("dahua").dahua_error_body = True
    sim.faults("edimax").drop_connection = True
    assert main(["cameras", "-c", str(rules)]) == 1
    captured = capsys.readouterr()
    rows = {line.split()[0]: line for line in captured.out.splitlines()[1:]}
    assert "DeviceError: device answered HTTP 200 'Error'" in rows["dahua"]
    assert "Unreachable: " in rows["edimax"]
    assert rows["hik"].rstrip().endswith("OK")
    assert "2 of 6 camera(s) failed" in captured.err


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    """The command as a technician runs it: its own process, logging as the CLI leaves it."""
    return subprocess.run(
        [sys.executable, "-m", "capture", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=dict(os.environ),
    )


def test_snap_failure_is_reported_once(rules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_PASSWORD", "not-it")  # rejected: a failure and a back-off
    result = run_cli("snap", "hik", "-c", str(rules))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("AuthFailed: camera hik: authentication failed")


def test_cameras_failure_is_reported_once_in_the_table(rules: Path, sim: Simulator) -> None:
    sim.faults("hik").html_200 = True
    result = run_cli("cameras", "-c", str(rules))
    assert result.returncode == 1
    assert result.stdout.count("answered HTTP 200 with an HTML page") == 1
    assert result.stderr.splitlines() == ["1 of 6 camera(s) failed"]


def test_cameras_probing_nvr_channels_with_a_wrong_password_costs_one_bad_login(
    rules: Path, sim: Simulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CAM_PASSWORD", "not-it")
    port = sim.port_of("hik")
    rules.write_text(
        "\n".join(
            f'[cameras.press_{n}]\nvendor = "hikvision"\nhost = "127.0.0.1"\nport = {port}\n'
            f'channel = 1\nuser = "admin"\npassword_env = "CAM_PASSWORD"\n'
            for n in range(1, 5)
        ),
        encoding="utf-8",
    )
    before = sim.bad_login_count("hik")
    assert main(["cameras", "-c", str(rules)]) == 1
    assert sim.bad_login_count("hik") - before == 1
    out = capsys.readouterr().out
    assert out.count("AuthFailed: authentication failed") == 1
    assert out.count("LockedOut: not contacted") == 3


# ------------------------------------------------------------------ the shared login back-off


def shared_rules(tmp_path: Path, sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two sections of one device and user: `good` with the right password, `wrong` without."""
    monkeypatch.setenv("WRONG_PASSWORD", "not-it")
    root = tmp_path / "storage"
    root.mkdir()
    port = sim.port_of("hik")
    path = tmp_path / "shared.toml"
    path.write_text(
        f'[storage]\nroot = "{root}"\n\n[mqtt]\nenabled = false\n\n[web]\nenabled = false\n\n'
        + "\n".join(
            f'[cameras.{name}]\nvendor = "hikvision"\nhost = "127.0.0.1"\nport = {port}\n'
            f'channel = 1\nuser = "admin"\npassword_env = "{env}"\n'
            for name, env in (("good", "CAM_PASSWORD"), ("wrong", "WRONG_PASSWORD"))
        )
        # The service needs a rule; this one never fires, the test takes the pictures.
        + '\n[triggers.tick]\ntype = "interval"\nevery_s = 3600\n\n'
        + '[[rules]]\nname = "hourly"\nwhen = "tick"\ncameras = ["good"]\nenabled = false\n',
        encoding="utf-8",
    )
    return path


def test_three_cameras_runs_with_a_wrong_password_cost_one_bad_login_and_say_why(
    rules: Path,
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shared = shared_rules(tmp_path, sim, monkeypatch)
    monkeypatch.setenv("CAM_PASSWORD", "not-it")  # both sections wrong, as a mistyped secret
    device = f"http://admin@127.0.0.1:{sim.port_of('hik')}"
    sim.faults("hik").lockout_after = 2  # a strict Hikvision: the second failed login locks
    before = sim.bad_login_count("hik")

    assert main(["cameras", "-c", str(shared)]) == 1
    first = capsys.readouterr()
    assert "AuthFailed: authentication failed" in first.out
    assert "skipped" not in first.err

    assert main(["cameras", "-c", str(shared)]) == 1  # a new run: nothing in memory is left
    second = capsys.readouterr()
    third = run_cli("cameras", "-c", str(shared))  # and a process of its own
    assert third.returncode == 1
    for out, err in ((second.out, second.err), (third.stdout, third.stderr)):
        assert f"skipped {device} (good, wrong): no login tried" in err
        assert "s left of its login back-off" in err
        rows = [line for line in out.splitlines() if line.startswith(("good", "wrong"))]
        assert len(rows) == 2
        for row in rows:
            assert f"LockedOut: skipped, no login tried: {device} is in its login back-off" in row
            assert "after: authentication failed (HTTP 401" in row  # why
    assert sim.bad_login_count("hik") - before == 1

    # The technician fixes the secret: tried at once, the account was never locked.
    monkeypatch.setenv("CAM_PASSWORD", PASSWORD)
    fixed = run_cli("snap", "good", "-c", str(shared), "-o", str(tmp_path / "good.jpg"))
    assert fixed.returncode == 0, fixed.stderr
    assert validate_jpeg((tmp_path / "good.jpg").read_bytes()).width == 640


def test_the_service_and_a_command_share_the_back_off_and_good_sections_keep_working(
    rules: Path, sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from capture.service import Service  # noqa: PLC0415 - only this test runs the service

    shared = shared_rules(tmp_path, sim, monkeypatch)
    before = sim.bad_login_count("hik")
    service = Service(shared, environ=dict(os.environ))
    service.start()
    try:
        good, wrong = service.cameras["good"], service.cameras["wrong"]
        assert good.snapshot().width == 640
        with pytest.raises(AuthFailed):
            wrong.snapshot()
        assert sim.bad_login_count("hik") - before == 1
        snap = run_cli("snap", "wrong", "-c", str(shared), "-o", str(tmp_path / "w.jpg"))
        cameras = run_cli("cameras", "-c", str(shared))
        assert good.snapshot().width == 640  # proven in the service: the hold is not for it
    finally:
        service.stop()
    assert snap.returncode == 1
    assert "LockedOut: camera wrong: skipped, no login tried" in snap.stderr
    assert "skipped http://admin@127.0.0.1" in cameras.stderr
    assert not (tmp_path / "w.jpg").exists()
    assert sim.bad_login_count("hik") - before == 1

    state = tmp_path / "storage" / STATE_NAME
    text = state.read_text(encoding="utf-8")
    assert "authentication failed" in text
    assert "not-it" not in text and PASSWORD not in text
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
