"""deploy/install.sh run for real into a throwaway root, with the system's commands recorded.

The venv, the pip install of this checkout, the files and their modes and
`capture check` are real; systemctl, apt-get, useradd, usermod, getent and
chown are scripts that record their arguments (and keep a tiny user database),
so the tests see what the installer would do to the machine, in order.

The first install runs once for the module; each test then starts from the root
as that install left it (its configuration restored, a reinstall after the
uninstall test), so no test depends on which ran before it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import needs_tool
from tests.deploy.locks import RUNTIME_LOCK, extra_lock, pins

REPO = Path(__file__).resolve().parents[2]
INSTALLER = REPO / "deploy" / "install.sh"
RECORD = '#!/bin/sh\necho "$(basename "$0") $*" >> "$STUB_LOG"\n'
STUBS = {
    "systemctl": RECORD,
    # With NO_LGPIO set, an archive without python3-lgpio (plain Debian on a Pi).
    "apt-get": RECORD + 'case "$*" in *python3-lgpio*) [ -z "$NO_LGPIO" ] || exit 100;; esac\n',
    "chown": RECORD,
    "usermod": RECORD,
    # useradd adds the user (its last argument) to the fake passwd database.
    "useradd": RECORD + 'for last; do :; done\necho "$last" >> "$STUB_DB/passwd"\n',
    "getent": '#!/bin/sh\ngrep -qx "$2" "$STUB_DB/$1" 2>/dev/null\n',
}
BASE_PYTHON = Path(sys.base_prefix) / "bin" / "python3"


INSTALL_S = 600
"""One run of the installer: the first one creates the venv and pip may download every dependency."""


def installs(test: Callable[..., None]) -> Callable[..., None]:
    """Marks a test running the installer: slow, with time for pip to download on a clean machine.

    The first test to run also waits for the first install (the module's fixture),
    and one after the uninstall test for a reinstall: room for those and its own run.
    """
    return pytest.mark.slow(pytest.mark.timeout(3 * INSTALL_S + 60)(test))


RULES = "/etc/event-capture/rules.toml"
SECRETS_ENV = "/etc/event-capture/secrets.env"
EXAMPLE_SUM = "/etc/event-capture/rules.example.sha256"
UNIT = "/etc/systemd/system/event-capture.service"
STATE = "/var/lib/event-capture"
PROGRAM = "/opt/event-capture"

TECHNICIAN_PASSWORD = "Nvr #3 2026"
"""The password a technician moves into secrets.env, quoted and with a '#' in it."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Target:
    """A throwaway root, the recording stubs, and what the first install did."""

    root: Path
    stubs: Path
    db: Path
    first_output: str = ""
    first_calls: list[str] = field(default_factory=list)
    first_files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    """Content and mode of each configuration file right after the first install."""

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
            SYSTEMD_RUNTIME_DIR=str(self.stubs),  # as if systemd ran (the stubs folder exists)
        )
        environ.update(env)
        result = subprocess.run(
            ["bash", str(INSTALLER), "--root", str(self.root), *args],
            capture_output=True, text=True, timeout=INSTALL_S, check=False, env=environ,
        )  # fmt: skip
        calls = log.read_text().splitlines() if log.exists() else []
        return result, calls

    def systemctl(self, calls: list[str]) -> list[str]:
        return [call for call in calls if call.startswith("systemctl")]


@pytest.fixture(scope="module")
def installed_once(tmp_path_factory: pytest.TempPathFactory) -> Target:
    """A root the installer has run in once, and a record of what that first run did."""
    assert BASE_PYTHON.exists(), f"no base interpreter at {BASE_PYTHON} for the service's venv"
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
    for name in (RULES, SECRETS_ENV, EXAMPLE_SUM, UNIT, STATE):
        path = made.path(name)
        made.first_files[name] = (path.read_bytes() if path.is_file() else b"", mode(path))
    return made


@pytest.fixture
def target(installed_once: Target) -> Target:
    """The installed root as the first install left it, whatever the tests before did to it."""
    made = installed_once
    if not (made.path(f"{PROGRAM}/bin/capture").exists() and made.path(UNIT).exists()):
        result, _ = made.run()  # the uninstall test ran before this one
        assert result.returncode == 0, result.stdout + result.stderr
    for name in (RULES, SECRETS_ENV, EXAMPLE_SUM):
        content, file_mode = made.first_files[name]
        made.path(name).write_bytes(content)
        made.path(name).chmod(file_mode)
    state = made.path(STATE)
    shutil.rmtree(state)
    state.mkdir()
    state.chmod(made.first_files[STATE][1])
    return made


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def edit_rules_to_use_secrets_env(target: Target) -> str:
    """What a technician does first: the NVR's password moves from the rule file to secrets.env."""
    rules = target.path(RULES)
    edited = rules.read_text().replace(
        'password = "Nvr-Line3-2026"      # in clear',
        'password_env = "LINE3_NVR_PASSWORD"  # moved',
        1,
    )
    assert edited != rules.read_text()
    rules.write_text(edited)
    return edited


#: Prints {name: installed version} for the distribution names given as arguments.
INSTALLED_VERSIONS = (
    "import json, sys; from importlib.metadata import version; "
    "print(json.dumps({name: version(name) for name in sys.argv[1:]}))"
)


@installs
def test_first_install_lays_out_program_config_and_unit_and_enables_without_starting_the_example(
    target: Target,
) -> None:
    calls = target.first_calls
    apt = [call for call in calls if call.startswith("apt-get install")]
    assert apt and "python3-venv" in apt[0] and "python3-lgpio" not in apt[0]
    assert any(call.startswith("useradd --system --user-group") for call in calls)
    assert "usermod --append --groups gpio event-capture" in calls
    assert "usermod --append --groups dialout event-capture" in calls
    # The example is a fictional factory: not enabled, not started, until it is edited.
    assert target.systemctl(calls) == ["systemctl daemon-reload"]
    assert "not enabled or started" in target.first_output
    assert f"edit {RULES}" in target.first_output

    capture = target.path(f"{PROGRAM}/bin/capture")  # the wrapper technicians type
    version = subprocess.run([capture, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("capture ")
    assert os.readlink(target.path("/usr/local/bin/capture")) == f"{PROGRAM}/bin/capture"
    assert target.path(f"{PROGRAM}/docs/install.md").exists()
    # Exactly the locked releases, whatever the system's own Python has (the venv sees it).
    venv_python = target.path(f"{PROGRAM}/venv/bin/python")
    locked = {name: pin.version for name, pin in pins(RUNTIME_LOCK).items() if pin.applies()}
    report = subprocess.run(
        [venv_python, "-c", INSTALLED_VERSIONS, *locked], capture_output=True, text=True, check=True
    )
    assert json.loads(report.stdout) == locked

    files = target.first_files
    example = (REPO / "rules.example.toml").read_bytes()
    assert files[RULES] == (example, 0o640)
    assert "chown root:event-capture " + str(target.path(RULES)) in calls
    assert files[EXAMPLE_SUM][0].decode().strip() == sha256(example)
    assert files[SECRETS_ENV] == ((REPO / "deploy" / "secrets.env.example").read_bytes(), 0o600)
    assert "chown root:root " + str(target.path(SECRETS_ENV)) in calls
    assert files[UNIT][0] == (REPO / "deploy" / "event-capture.service").read_bytes()
    assert target.path(STATE).is_dir() and files[STATE][1] == 0o750


@installs
def test_detect_adds_the_detection_runtime_from_its_lock(target: Target) -> None:
    """docs/detection.md's setup on a Pi: the detect extra's releases, checked by hash."""
    result, _ = target.run("--extras", "detect", "--no-start")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "installing the locked dependencies (deploy/requirements.lock, extras: detect)" in (
        result.stdout
    )
    venv_python = target.path(f"{PROGRAM}/venv/bin/python")
    locked = {
        name: pin.version for name, pin in pins(extra_lock("detect")).items() if pin.applies()
    }
    report = subprocess.run(
        [venv_python, "-c", INSTALLED_VERSIONS, *locked], capture_output=True, text=True, check=True
    )
    assert json.loads(report.stdout) == locked
    assert {"onnxruntime", "numpy"} <= set(locked)


@installs
def test_a_second_run_over_the_untouched_example_starts_nothing_and_says_what_to_edit(
    target: Target,
) -> None:
    result, calls = target.run()

    assert result.returncode == 0, result.stdout + result.stderr
    assert target.systemctl(calls) == ["systemctl daemon-reload"]
    assert "still the untouched example" in result.stdout
    assert f"edit {RULES}" in result.stdout and "sudo capture check" in result.stdout
    assert "systemctl enable --now event-capture" in result.stdout


@installs
def test_the_example_a_first_install_recorded_stays_untouched_after_an_upgrade_changes_it(
    target: Target,
) -> None:
    rules, recorded = target.path(RULES), target.path(EXAMPLE_SUM)
    # The example an earlier version installed: it differs from this checkout's example.
    older = rules.read_bytes() + b"\n# a line this version's example no longer has\n"
    rules.write_bytes(older)

    # Not the example that was installed: a technician's edit, so the service is restarted.
    result, calls = target.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "systemctl restart event-capture" in target.systemctl(calls)

    # The example that was installed (its checksum recorded then): left alone.
    recorded.write_text(sha256(older) + "\n")
    result, calls = target.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert target.systemctl(calls) == ["systemctl daemon-reload"]
    assert "still the untouched example" in result.stdout


@installs
def test_second_install_keeps_the_edited_config_and_secrets_and_restarts_the_service(
    target: Target,
) -> None:
    edited = edit_rules_to_use_secrets_env(target)
    rules, secrets = target.path(RULES), target.path(SECRETS_ENV)
    secrets.write_text(f'# edited\nLINE3_NVR_PASSWORD="{TECHNICIAN_PASSWORD}"\n')
    other = target.root.parent / "other.toml"
    other.write_text("[service]\n")
    model = target.root.parent / "model"
    model.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\0")

    result, calls = target.run("--config", str(other), PI_MODEL_FILE=str(model))

    assert result.returncode == 0, result.stdout + result.stderr
    assert rules.read_text() == edited
    assert secrets.read_text() == f'# edited\nLINE3_NVR_PASSWORD="{TECHNICIAN_PASSWORD}"\n'
    assert mode(secrets) == 0o600
    assert "not installing" in result.stdout
    assert not any(call.startswith("useradd") for call in calls)
    assert any(call.startswith("apt-get install") and "python3-lgpio" in call for call in calls)
    assert target.systemctl(calls) == [
        "systemctl daemon-reload",
        "systemctl enable event-capture",
        "systemctl restart event-capture",
    ]
    assert TECHNICIAN_PASSWORD not in result.stdout + result.stderr


@installs
def test_an_upgrade_cut_off_half_way_puts_the_previous_version_back(target: Target) -> None:
    """The network drops while pip builds the new version: the old one must still start."""
    shipped = target.path(f"{PROGRAM}/rules.example.toml")
    shipped.write_text("# the example of the version installed before\n")
    try:
        result, calls = target.run(
            PIP_CONFIG_FILE=os.devnull,  # no local wheel folders or mirrors either
            PIP_FIND_LINKS="",
            PIP_EXTRA_INDEX_URL="",
            PIP_INDEX_URL="http://127.0.0.1:9/simple",  # nothing listens: every download fails
            PIP_NO_CACHE_DIR="1",
            PIP_RETRIES="0",
            PIP_TIMEOUT="2",
        )

        assert result.returncode != 0
        assert "the version installed before is put back" in result.stderr
        assert shipped.read_text() == "# the example of the version installed before\n"
        assert not target.path(f"{PROGRAM}.previous").exists()
        assert not target.systemctl(calls)
        version = [target.path(f"{PROGRAM}/bin/capture"), "--version"]
        assert subprocess.run(version, capture_output=True, check=False).returncode == 0
    finally:
        shutil.copy(REPO / "rules.example.toml", shipped)


@installs
def test_an_upgrade_cut_off_by_a_power_cut_starts_again_from_the_version_before_it(
    target: Target,
) -> None:
    """The copy an interrupted run made is what ran before; the program may be half-installed."""
    program, previous = target.path(PROGRAM), target.path(f"{PROGRAM}.previous")
    shutil.copytree(program, previous, symlinks=True)
    (previous / "rules.example.toml").write_text("# the example of the version before\n")
    (program / "rules.example.toml").write_text("# half-installed\n")
    rules = target.path(RULES)
    rules.write_text(rules.read_text().replace('when = "ir_gate"', 'when = "ir_gaet"'))
    try:
        result, _ = target.run()

        assert result.returncode == 1  # refused: what is put back is the version before
        assert "an earlier upgrade did not finish" in result.stdout
        shipped = program / "rules.example.toml"
        assert shipped.read_text() == "# the example of the version before\n"
        assert not previous.exists() and not target.path(f"{PROGRAM}.copying").exists()
    finally:
        shutil.copy(REPO / "rules.example.toml", program / "rules.example.toml")


@installs
def test_on_plain_debian_a_pi_without_python3_lgpio_installs_all_but_gpio(target: Target) -> None:
    edit_rules_to_use_secrets_env(target)
    target.path(SECRETS_ENV).write_text(f'LINE3_NVR_PASSWORD="{TECHNICIAN_PASSWORD}"\n')
    model = target.root.parent / "model"
    model.write_bytes(b"Raspberry Pi 4 Model B Rev 1.5\0")

    result, calls = target.run(PI_MODEL_FILE=str(model), NO_LGPIO="1")

    assert result.returncode == 0, result.stdout + result.stderr
    assert any("python3-lgpio" in call for call in calls)
    assert "python3-lgpio is not in this system's package archives" in result.stdout
    assert "systemctl restart event-capture" in target.systemctl(calls)
    assert not target.path(f"{PROGRAM}.previous").exists()


@installs
def test_a_referenced_secret_missing_from_secrets_env_stops_the_install(target: Target) -> None:
    edit_rules_to_use_secrets_env(target)  # secrets.env is still the empty example

    result, calls = target.run()

    assert result.returncode == 1
    assert "LINE3_NVR_PASSWORD" in result.stderr
    assert "The service was not (re)started" in result.stderr
    assert not target.systemctl(calls)


@installs
def test_a_broken_rule_file_stops_the_install_before_systemctl_with_its_errors(
    target: Target,
) -> None:
    rules = target.path(RULES)
    rules.write_text(rules.read_text().replace('when = "ir_gate"', 'when = "ir_gaet"'))
    # A file this upgrade replaces, as the version installed before had it.
    shipped = target.path(f"{PROGRAM}/rules.example.toml")
    shipped.write_text("# the example of the version installed before\n")

    try:
        result, calls = target.run()

        assert result.returncode == 1
        assert f"{rules}:" in result.stderr and "ir_gaet" in result.stderr
        assert "The service was not (re)started" in result.stderr
        assert not target.systemctl(calls)
        # A restart (a reboot, a crash) must run what ran before, not code that refuses the file.
        assert "the version installed before is put back" in result.stderr
        assert shipped.read_text() == "# the example of the version installed before\n"
        assert not target.path(f"{PROGRAM}.previous").exists()
        version = [target.path(f"{PROGRAM}/bin/capture"), "--version"]
        assert subprocess.run(version, capture_output=True, check=False).returncode == 0
    finally:
        shutil.copy(REPO / "rules.example.toml", shipped)


@installs
def test_uninstall_removes_program_and_unit_and_keeps_snapshots_config_and_user(
    target: Target,
) -> None:
    snapshot = target.path(f"{STATE}/Line 3/2026-11-25/ng_S2_line3_press_1.jpg")
    snapshot.parent.mkdir(parents=True)
    snapshot.write_bytes(b"\xff\xd8 a picture \xff\xd9")
    rules_before = target.path(RULES).read_bytes()

    result, calls = target.run("--uninstall")

    assert result.returncode == 0, result.stderr
    assert calls == ["systemctl disable --now event-capture", "systemctl daemon-reload"]
    assert not target.path(PROGRAM).exists()
    assert not target.path(UNIT).exists()
    assert not target.path("/usr/local/bin/capture").is_symlink()
    assert snapshot.read_bytes() == b"\xff\xd8 a picture \xff\xd9"
    assert target.path(RULES).read_bytes() == rules_before
    assert target.path(SECRETS_ENV).exists()

    again, calls = target.run("--uninstall")
    assert again.returncode == 0 and calls == []


@installs
def test_extras_install_each_extra_s_libraries_from_its_lock(
    target: Target,
) -> None:
    result, _ = target.run("--extras", "modbus,opcua", "--no-start")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "extras: modbus,opcua" in result.stdout
    venv_python = target.path(f"{PROGRAM}/venv/bin/python")
    locked = {
        name: pin.version
        for extra in ("modbus", "opcua")
        for name, pin in pins(extra_lock(extra)).items()
        if pin.applies()
    }
    report = subprocess.run(
        [venv_python, "-c", INSTALLED_VERSIONS, "pymodbus", "asyncua"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(report.stdout) == {
        "pymodbus": locked["pymodbus"],
        "asyncua": locked["asyncua"],
    }


def test_an_unknown_extra_is_refused_before_anything_changes(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(INSTALLER), "--root", str(tmp_path), "--extras", "modbus,profinet"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "unknown extra: profinet (known: " in result.stderr
    assert "modbus, opcua" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_unknown_argument_is_refused_with_the_usage(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(INSTALLER), "--root", str(tmp_path), "--frobnicate"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "unknown argument: --frobnicate" in result.stderr and "usage:" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_without_systemd_nothing_changes_and_it_says_what_works_instead(tmp_path: Path) -> None:
    made = Target(tmp_path / "root", tmp_path / "stubs", tmp_path / "db")
    for folder in (made.root, made.stubs, made.db):
        folder.mkdir()
    for name, text in STUBS.items():
        (made.stubs / name).write_text(text)
        (made.stubs / name).chmod(0o755)
    missing = tmp_path / "run" / "systemd" / "system"
    result, calls = made.run(SYSTEMD_RUNTIME_DIR=str(missing))
    assert (result.returncode, result.stdout, calls) == (1, "", [])
    assert list(made.root.iterdir()) == []
    assert result.stderr.splitlines() == [
        f"[install] error: systemd is not running here (no {missing}: a container, or WSL?),",
        "[install] error: and the installer sets event-capture up as a systemd service. "
        "Nothing was changed.",
        "[install] Without systemd, run it by hand from this checkout:",
        "[install]   ./dev demo                        # creates .venv; simulated cameras, "
        "no hardware",
        "[install]   cp rules.example.toml rules.toml  # then edit it for this line",
        "[install]   .venv/bin/capture check && .venv/bin/capture run",
        "[install] Every command works without systemd; only the start at boot, the restart "
        "after a",
        '[install] crash and the watchdog need it. Guide: docs/install.md, "Without systemd".',
    ]


SCRIPTS = [INSTALLER, REPO / "deploy" / "capture", REPO / "deploy" / "test-arm64.sh"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_scripts_are_valid_bash(script: Path) -> None:
    result = subprocess.run(
        ["bash", "-n", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@needs_tool(shutil.which("shellcheck"), "shellcheck (Debian package shellcheck)")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_scripts_pass_shellcheck(script: Path) -> None:
    result = subprocess.run(
        ["shellcheck", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout
