"""deploy/install.sh run for real into a throwaway root, with the system's commands recorded.

The venv, the pip install of this checkout, the files and their modes and
`capture check` are real; systemctl, apt-get, useradd, usermod, getent and
chown are scripts that record their arguments (and keep a tiny user database),
so the tests see what the installer would do to the machine, in order.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALLER = REPO / "deploy" / "install.sh"
RECORD = '#!/bin/sh\necho "$(basename "$0") $*" >> "$STUB_LOG"\n'
STUBS = {
    "systemctl": RECORD,
    "apt-get": RECORD,
    "chown": RECORD,
    "usermod": RECORD,
    # useradd adds the user (its last argument) to the fake passwd database.
    "useradd": RECORD + 'for last; do :; done\necho "$last" >> "$STUB_DB/passwd"\n',
    "getent": '#!/bin/sh\ngrep -qx "$2" "$STUB_DB/$1" 2>/dev/null\n',
}
BASE_PYTHON = Path(sys.base_prefix) / "bin" / "python3"


@dataclass
class Target:
    """A throwaway root, the recording stubs, and what the installer printed."""

    root: Path
    stubs: Path
    db: Path
    first_output: str = ""
    first_calls: list[str] = field(default_factory=list)

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def run(self, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
        """Run the installer; return its result and the system commands it called."""
        log = self.stubs / "calls.log"
        log.unlink(missing_ok=True)
        environ = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DESTDIR", "SUDO_USER", "VIRTUAL_ENV")
        }
        environ.update(
            PATH=f"{self.stubs}:{environ['PATH']}",
            STUB_LOG=str(log),
            STUB_DB=str(self.db),
            PYTHON=str(BASE_PYTHON),
            PI_MODEL_FILE=str(self.root / "no-such-model"),
        )
        environ.update(env)
        result = subprocess.run(
            ["bash", str(INSTALLER), "--root", str(self.root), *args],
            capture_output=True, text=True, timeout=600, check=False, env=environ,
        )  # fmt: skip
        calls = log.read_text().splitlines() if log.exists() else []
        return result, calls


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Target:
    """A root the installer has run in once: the state the tests below start from."""
    if not BASE_PYTHON.exists():
        pytest.skip(f"no base interpreter at {BASE_PYTHON} to create the service's venv")
    base = tmp_path_factory.mktemp("install")
    stubs, db = base / "stubs", base / "db"
    stubs.mkdir()
    db.mkdir()
    (db / "passwd").write_text("root\n")
    (db / "group").write_text("root\ngpio\ndialout\n")
    for name, text in STUBS.items():
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    made = Target(base / "root", stubs, db)
    made.root.mkdir()
    result, calls = made.run()
    assert result.returncode == 0, result.stdout + result.stderr
    made.first_output, made.first_calls = result.stdout, calls
    return made


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_install_lays_out_program_config_and_unit_and_enables_without_starting_the_example(
    target: Target,
) -> None:
    calls = target.first_calls
    apt = [call for call in calls if call.startswith("apt-get install")]
    assert apt and "python3-venv" in apt[0] and "python3-lgpio" not in apt[0]
    assert any(call.startswith("useradd --system --user-group") for call in calls)
    assert "usermod --append --groups gpio event-capture" in calls
    assert "usermod --append --groups dialout event-capture" in calls
    assert [c for c in calls if c.startswith("systemctl")] == [
        "systemctl daemon-reload",
        "systemctl enable event-capture",
    ]
    # The example is a fictional factory: enabled, but the technician starts it after editing.
    assert "not started" in target.first_output

    capture = target.path("/opt/event-capture/bin/capture")  # the wrapper technicians type
    version = subprocess.run([capture, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("capture ")
    assert os.readlink(target.path("/usr/local/bin/capture")) == "/opt/event-capture/bin/capture"
    assert target.path("/opt/event-capture/docs/install.md").exists()

    rules = target.path("/etc/event-capture/rules.toml")
    assert rules.read_bytes() == (REPO / "rules.example.toml").read_bytes()
    assert mode(rules) == 0o640
    assert "chown root:event-capture " + str(rules) in calls
    secrets = target.path("/etc/event-capture/secrets.env")
    assert mode(secrets) == 0o600
    assert "chown root:root " + str(secrets) in calls
    unit = target.path("/etc/systemd/system/event-capture.service")
    assert unit.read_bytes() == (REPO / "deploy" / "event-capture.service").read_bytes()
    state = target.path("/var/lib/event-capture")
    assert state.is_dir() and mode(state) == 0o750


def test_second_install_keeps_the_edited_config_and_secrets_and_restarts_the_service(
    target: Target,
) -> None:
    rules = target.path("/etc/event-capture/rules.toml")
    secrets = target.path("/etc/event-capture/secrets.env")
    # The technician moved a password into secrets.env, quoted, with a '#' in it.
    edited = rules.read_text().replace(
        'password = "Nvr-Line3-2026"      # in clear',
        'password_env = "LINE3_NVR_PASSWORD"  # moved',
        1,
    )
    assert edited != rules.read_text()
    rules.write_text(edited)
    secrets.write_text('# edited\nLINE3_NVR_PASSWORD="Nvr #3 2026"\n')
    other = target.root.parent / "other.toml"
    other.write_text("[service]\n")
    model = target.root.parent / "model"
    model.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\0")

    result, calls = target.run("--config", str(other), PI_MODEL_FILE=str(model))

    assert result.returncode == 0, result.stdout + result.stderr
    assert rules.read_text() == edited
    assert secrets.read_text() == '# edited\nLINE3_NVR_PASSWORD="Nvr #3 2026"\n'
    assert mode(secrets) == 0o600
    assert "not installing" in result.stdout
    assert not any(call.startswith("useradd") for call in calls)
    assert any(call.startswith("apt-get install") and "python3-lgpio" in call for call in calls)
    assert [c for c in calls if c.startswith("systemctl")] == [
        "systemctl daemon-reload",
        "systemctl enable event-capture",
        "systemctl restart event-capture",
    ]
    assert "Nvr #3 2026" not in result.stdout + result.stderr


def test_a_referenced_secret_missing_from_secrets_env_stops_the_install(target: Target) -> None:
    secrets = target.path("/etc/event-capture/secrets.env")
    kept = secrets.read_text()
    rules = target.path("/etc/event-capture/rules.toml")
    if "LINE3_NVR_PASSWORD" not in rules.read_text():
        pytest.skip("needs the edited rule file of the test before")
    secrets.write_text("# emptied\n")
    try:
        result, calls = target.run()
    finally:
        secrets.write_text(kept)
    assert result.returncode == 1
    assert "LINE3_NVR_PASSWORD" in result.stderr
    assert not [c for c in calls if c.startswith("systemctl")]


def test_a_broken_rule_file_stops_the_install_before_systemctl_with_its_errors(
    target: Target,
) -> None:
    rules = target.path("/etc/event-capture/rules.toml")
    kept = rules.read_text()
    rules.write_text(kept.replace('when = "ir_gate"', 'when = "ir_gaet"'))
    try:
        result, calls = target.run()
    finally:
        rules.write_text(kept)
    assert result.returncode == 1
    assert f"{rules}:" in result.stderr and "ir_gaet" in result.stderr
    assert "The service was not (re)started" in result.stderr
    assert not [c for c in calls if c.startswith("systemctl")]


def test_uninstall_removes_program_and_unit_and_keeps_snapshots_config_and_user(
    target: Target,
) -> None:
    snapshot = target.path("/var/lib/event-capture/Line 3/2026-11-25/ng_S2_line3_press_1.jpg")
    snapshot.parent.mkdir(parents=True)
    snapshot.write_bytes(b"\xff\xd8 a picture \xff\xd9")
    rules_before = target.path("/etc/event-capture/rules.toml").read_bytes()

    result, calls = target.run("--uninstall")

    assert result.returncode == 0, result.stderr
    assert calls == ["systemctl disable --now event-capture", "systemctl daemon-reload"]
    assert not target.path("/opt/event-capture").exists()
    assert not target.path("/etc/systemd/system/event-capture.service").exists()
    assert not target.path("/usr/local/bin/capture").is_symlink()
    assert snapshot.read_bytes() == b"\xff\xd8 a picture \xff\xd9"
    assert target.path("/etc/event-capture/rules.toml").read_bytes() == rules_before
    assert target.path("/etc/event-capture/secrets.env").exists()

    again, calls = target.run("--uninstall")
    assert again.returncode == 0 and calls == []


def test_unknown_argument_is_refused_with_the_usage(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(INSTALLER), "--root", str(tmp_path), "--frobnicate"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "unknown argument: --frobnicate" in result.stderr and "usage:" in result.stderr
    assert list(tmp_path.iterdir()) == []


SCRIPTS = [INSTALLER, REPO / "deploy" / "capture"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_scripts_are_valid_bash(script: Path) -> None:
    result = subprocess.run(
        ["bash", "-n", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_scripts_pass_shellcheck(script: Path) -> None:
    result = subprocess.run(
        ["shellcheck", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout
