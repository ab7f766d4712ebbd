"""The suite's secret sweep (tests/conftest.py) sees what it promises to see, and fails on it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from capture.logs import SecretScrubber
from tests.conftest import SIM_PASSWORD, SWEEP, configured_secrets, look_at_output
from tests.faults.conftest import WEB_TOKEN

REPO = Path(__file__).resolve().parents[2]


def test_a_secret_in_a_debug_record_of_any_logger_or_in_its_exception_is_seen() -> None:
    logger = logging.getLogger("some.library.deep.inside")
    logger.debug("connecting with %s", SIM_PASSWORD)
    try:
        raise ValueError(f"device said {WEB_TOKEN}")
    except ValueError:
        logger.debug("request failed", exc_info=True)

    assert SWEEP.take() == [
        f"{SIM_PASSWORD!r} in log record some.library.deep.inside DEBUG",
        f"{WEB_TOKEN!r} in log record some.library.deep.inside DEBUG",
    ]


def test_the_sweep_sees_a_record_before_the_service_s_scrubber_rewrites_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.handler.addFilter(SecretScrubber([SIM_PASSWORD]))
    logging.getLogger("capture.cameras.http").warning("sent %s", SIM_PASSWORD)

    assert SIM_PASSWORD not in caplog.text  # the scrubber did its job on its handler
    assert SWEEP.take() == [f"{SIM_PASSWORD!r} in log record capture.cameras.http WARNING"]


def test_what_a_test_printed_is_searched_but_not_its_captured_log() -> None:
    reports = [
        SimpleNamespace(sections=[("Captured stdout call", f"token {WEB_TOKEN}\n")]),
        SimpleNamespace(sections=[("Captured stderr teardown", "nothing\n")]),
        SimpleNamespace(sections=[("Captured log call", f"INFO x {SIM_PASSWORD}")]),
    ]
    look_at_output(SWEEP, reports)  # type: ignore[arg-type]

    assert SWEEP.take() == [f"{WEB_TOKEN!r} in the test's captured stdout call"]


def test_secrets_are_collected_from_every_way_a_test_module_configures_them() -> None:
    module = SimpleNamespace(
        PASSWORD="Module-Pass-1",
        WEB_TOKEN="Module-Token-2",
        SECRETS=("Module-Secret-3", ["Module-Secret-4"]),
        ENVIRON={"CAM_PASSWORD": "Env-Pass-5", "CAM_HOST": "10.0.0.1-not-a-secret"},
        RULES='[mqtt]\npassword = "Toml-Pass-6"\n[web]\ntoken = "Toml-Token-7"\nhost = "h.example"\n',
        LOOPBACK_WITH_TOKEN='bind = "127.0.0.1"\ntoken_env = "WEB_TOKEN"',  # a rule file part
        SHORT_PASSWORD="pw",  # a placeholder, in every text
        SECRETS_FILE_PASSWORD="/etc/event-capture/secrets.env",  # where secrets are, not one
        TIMEOUT_S=3,
    )
    assert configured_secrets([module]) == {
        "Module-Pass-1",
        "Module-Token-2",
        "Module-Secret-3",
        "Module-Secret-4",
        "Env-Pass-5",
        "Toml-Pass-6",
        "Toml-Token-7",
    }


def test_the_suite_knows_the_secrets_its_fixtures_configure() -> None:
    known = {text for text, _ in SWEEP.needles}
    assert {SIM_PASSWORD, WEB_TOKEN} <= known


@pytest.mark.secret_logged_on_purpose("proves the exemption: this test's hit must not fail it")
def test_a_test_marked_as_logging_a_secret_on_purpose_is_not_failed_for_it() -> None:
    logging.getLogger("tests.on_purpose").info("the scrubber will see %s", SIM_PASSWORD)
    assert SWEEP.take(), "the record was seen"
    # Seen again and left for the sweep after the test: without the marker this test fails.
    logging.getLogger("tests.on_purpose").info("the scrubber will see %s", SIM_PASSWORD)


PROBE = """
import logging, pytest

PASSWORD = "Probe-Secret-77"


def test_logs_it_at_debug():
    logging.getLogger("probe").debug("password=%s", PASSWORD)


def test_prints_it():
    print("connecting with", PASSWORD)


def test_a_subprocess_prints_it():
    import subprocess, sys
    subprocess.run([sys.executable, "-c", f"print({PASSWORD!r})"], check=True)


@pytest.mark.secret_logged_on_purpose("the probe's exemption")
def test_logs_it_on_purpose():
    logging.getLogger("probe").debug("password=%s", PASSWORD)


def test_clean():
    logging.getLogger("probe").debug("password=***")
"""


def test_a_test_that_logs_or_prints_a_configured_secret_fails_and_only_that_test(
    tmp_path: Path,
) -> None:
    """The sweep's hooks in a pytest run of their own, on a module that configures a secret."""
    (tmp_path / "conftest.py").write_text("from tests.conftest import *  # noqa: F403\n")
    (tmp_path / "test_probe.py").write_text(PROBE)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    summary = {
        line.split(" ", 2)[1].split("::")[-1]: line.split(" ", 1)[0]
        for line in result.stdout.splitlines()
        if line.startswith(("PASSED ", "ERROR ", "FAILED "))
    }
    assert summary == {
        "test_logs_it_at_debug": "ERROR",
        "test_prints_it": "ERROR",
        "test_a_subprocess_prints_it": "ERROR",
        "test_logs_it_on_purpose": "PASSED",
        "test_clean": "PASSED",
    }, result.stdout[-3000:]
    assert "secret seen: 'Probe-Secret-77' in log record probe DEBUG" in result.stdout
    assert "'Probe-Secret-77' in the test's captured stdout call" in result.stdout
