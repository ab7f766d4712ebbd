"""A camera that cannot be built is a message naming it, not a traceback.

`capture check` catches what it can (path templates, CA files, hosts), but a
CA file can vanish between the check and the start, and a rule file can be
given to the service without the loader; these tests build such files with
the schema alone (`RuleFile.model_validate`), so the drivers' own errors
reach the commands and the service.
"""

from __future__ import annotations

import argparse
import logging
import tomllib
from pathlib import Path

import pytest

from capture.cameras import command
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


@pytest.fixture
def unchecked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RuleFile:
    """The commands read these rules as if the rule file had passed the check."""
    rules = unchecked_rules(tmp_path)
    monkeypatch.setattr(command, "load_rule_file", lambda _path: rules)
    return rules


@pytest.mark.parametrize(
    ("camera", "detail"),
    [
        ("bad_path", "path uses {chanel}"),
        ("gone_ca", "removed-since-the-check.pem': No such file or directory"),
    ],
)
def test_snap_names_a_camera_that_cannot_be_set_up(
    unchecked: RuleFile,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    camera: str,
    detail: str,
) -> None:
    output = tmp_path / "snap.jpg"
    args = argparse.Namespace(camera=camera, config=None, output=output)
    assert command.run_snap(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"camera {camera}: cannot be set up: "), err
    assert detail in err and "Traceback" not in err
    assert not output.exists()


def test_cameras_lists_a_camera_that_cannot_be_set_up_and_probes_the_rest(
    unchecked: RuleFile, capsys: pytest.CaptureFixture[str]
) -> None:
    assert command.run_cameras(argparse.Namespace(config=None)) == 1
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(rows) == {"good", "bad_path", "gone_ca"}, out
    assert "cannot be set up: path uses {chanel}" in rows["bad_path"]
    assert "cannot be set up: " in rows["gone_ca"] and "No such file" in rows["gone_ca"]
    assert "cannot be set up" not in rows["good"]  # probed: refused on port 9, a camera error


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
