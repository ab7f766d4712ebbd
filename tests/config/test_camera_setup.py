"""A camera that cannot be built is a message naming it, not a traceback.

`capture check` catches what it can (path templates, CA files, hosts), but a
CA file can vanish between the check and the start, and a rule file can be
given to the service without the loader; these tests build such files with
the schema alone (`RuleFile.model_validate`), so the drivers' own errors
reach the commands and the service.
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import pytest

from capture.config.loader import LoadedRules
from capture.config.schema import RuleFile
from capture.events import Event
from capture.service import Service
from tests.conftest import wait_for


def unchecked_rules(tmp_path: Path) -> RuleFile:
    """Two cameras, one whose driver refuses its path template, one whose CA file is gone."""
    text = f"""
[storage]
root = "{tmp_path / "data"}"

[mqtt]
enabled = false

[web]
enabled = false

[cameras.good]
vendor = "edimax"
host = "127.0.0.1"
port = 9

[cameras.bad_path]
vendor = "generic"
host = "127.0.0.1"
path = "/snap.cgi?ch={{chanel}}"

[cameras.gone_ca]
vendor = "dahua"
host = "127.0.0.1"
scheme = "https"
ca_file = "{tmp_path / "removed-since-the-check.pem"}"
"""
    return RuleFile.model_validate(tomllib.loads(text))


def test_the_service_starts_without_a_camera_it_cannot_set_up_and_says_which(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rules = unchecked_rules(tmp_path)
    service = Service(None, loaded=LoadedRules(rules, "rules.toml"), environ={})
    with caplog.at_level(logging.ERROR, logger="capture.service"):
        service.start()
    try:
        assert set(service.cameras) == {"good"}
        messages = [record.getMessage() for record in caplog.records]
        assert any(
            m.startswith("camera bad_path: cannot be set up (ValueError: ") for m in messages
        )
        assert any(
            m.startswith("camera gone_ca: cannot be set up (FileNotFoundError: ") for m in messages
        )
    finally:
        service.stop()


def test_a_reload_leaves_out_a_camera_it_cannot_set_up_and_retires_its_old_driver(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rules = unchecked_rules(tmp_path)
    working = rules.model_copy(
        update={"cameras": {"good": rules.cameras["good"], "other": rules.cameras["good"]}}
    )
    service = Service(None, loaded=LoadedRules(working, "rules.toml"), environ={})
    service.start()
    try:
        old_other = service.cameras["other"]
        broken = working.model_copy(
            update={"cameras": {"good": rules.cameras["good"], "other": rules.cameras["bad_path"]}}
        )
        with caplog.at_level(logging.ERROR, logger="capture.service"):
            service._apply(broken)
        assert set(service.cameras) == {"good"}
        assert service.engine.snap_camera("other", Event.now("manual", {})) is False
        assert any("camera other: cannot be set up" in r.getMessage() for r in caplog.records)
        wait_for(lambda: old_other.http.client.is_closed)  # type: ignore[attr-defined]
    finally:
        service.stop()
