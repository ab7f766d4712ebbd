"""The service as a whole: what it imports (idle memory on a Pi is the budget), and how it
reports on and survives its own parts failing."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from capture.service import Service
from tests.broker import Broker
from tests.conftest import wait_for
from tests.detect.models import detection_section

#: Libraries (and our modules wrapping them) a rule file may not need, each worth memory.
OPTIONAL_MODULES = (
    "gpiozero", "watchdog", "serial", "capture.web", "PIL", "fastapi", "starlette", "uvicorn",
    "pymodbus", "asyncua", "capture.detect", "numpy", "onnxruntime",
)  # fmt: skip

# Run in a fresh interpreter: other tests have long since imported everything.
_LOADED_MODULES = """
import json, sys
from pathlib import Path
from capture.service import Service

service = Service(Path(sys.argv[1]), environ={})
service.start()
try:
    loaded = sorted(name for name in sys.argv[2:] if name in sys.modules)
finally:
    service.stop()
print(json.dumps(loaded))
"""


def _rule_file(tmp_path: Path, broker: Broker, *, web: str, trigger: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(
        f"""
[storage]
root = {json.dumps(str(tmp_path / "data"))}

[mqtt]
host = "{broker.host}"
port = {broker.port}
topic_prefix = "imports"
client_id = "imports-{tmp_path.name}"

[web]
{web}

[cameras.cam1]
vendor = "hikvision"
host = "127.0.0.1"
port = 9

[triggers.plc]
{trigger}

[[rules]]
name = "part_done"
when = "plc"
cameras = ["cam1"]
""",
        encoding="utf-8",
    )
    return path


def _loaded_optional_modules(rules: Path) -> list[str]:
    process = subprocess.run(
        [sys.executable, "-c", _LOADED_MODULES, str(rules), *OPTIONAL_MODULES],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
        check=False,
    )
    assert process.returncode == 0, process.stderr
    loaded: list[str] = json.loads(process.stdout)
    return loaded


MQTT_TRIGGER = 'type = "mqtt"\ntopic = "line3/plc"'
WEB_OFF = "enabled = false"


def test_a_service_without_web_gpio_file_serial_or_factory_triggers_does_not_import_their_libraries(
    tmp_path: Path, broker: Broker
) -> None:
    rules = _rule_file(tmp_path, broker, web=WEB_OFF, trigger=MQTT_TRIGGER)
    assert _loaded_optional_modules(rules) == []


@pytest.mark.parametrize(
    ("web", "trigger", "expected"),
    [
        ("port = 0", MQTT_TRIGGER, ["PIL", "capture.web", "fastapi", "starlette", "uvicorn"]),
        (WEB_OFF, 'type = "file"\npath = "{tmp}/thermo.log"', ["watchdog"]),
        # pymodbus imports pyserial for its RTU client, whether used or not.
        (WEB_OFF, 'type = "modbus"\nhost = "127.0.0.1"\nport = 9', ["pymodbus", "serial"]),
        (
            WEB_OFF,
            'type = "opcua"\nendpoint = "opc.tcp://127.0.0.1:9"\nnodes = ["ns=2;i=1"]',
            ["asyncua"],
        ),
    ],
    ids=["dashboard", "file-trigger", "modbus-trigger", "opcua-trigger"],
)
def test_a_configured_dashboard_or_trigger_kind_imports_its_library(
    tmp_path: Path, broker: Broker, web: str, trigger: str, expected: list[str]
) -> None:
    rules = _rule_file(tmp_path, broker, web=web, trigger=trigger.replace("{tmp}", str(tmp_path)))
    assert _loaded_optional_modules(rules) == expected


def test_a_configured_detector_imports_onnxruntime_numpy_and_pillow(
    tmp_path: Path, broker: Broker
) -> None:
    rules = _rule_file(tmp_path, broker, web=WEB_OFF, trigger=MQTT_TRIGGER)
    rules.write_text(rules.read_text(encoding="utf-8") + detection_section(tmp_path))
    assert _loaded_optional_modules(rules) == ["PIL", "capture.detect", "numpy", "onnxruntime"]


# --------------------------------------------------------------------------- health and survival


def _running_service(tmp_path: Path, broker: Broker, *, extra: str = "") -> Service:
    rules = _rule_file(tmp_path, broker, web=WEB_OFF, trigger=MQTT_TRIGGER)
    rules.write_text(rules.read_text(encoding="utf-8") + extra, encoding="utf-8")
    service = Service(rules, environ={})
    service.start()
    return service


def test_the_service_is_unhealthy_once_its_publisher_no_longer_keeps_the_outbox(
    tmp_path: Path, broker: Broker
) -> None:
    service = _running_service(tmp_path, broker)
    try:
        assert service.publisher is not None
        wait_for(lambda: service.publisher is not None and service.publisher.alive)
        assert service.healthy()
        # End the publisher's thread the way its own stop does, behind the service's back.
        service.publisher._outgoing.put(None)
        wait_for(lambda: not service.healthy())
    finally:
        service.stop()


def test_the_service_is_unhealthy_once_its_detection_worker_ends(
    tmp_path: Path, broker: Broker
) -> None:
    """Pictures would silently go unanalysed: the systemd watchdog restarts the service instead."""
    service = _running_service(tmp_path, broker, extra=detection_section(tmp_path))
    try:
        detection = service.detection
        assert detection is not None and detection.alive
        assert service.healthy()
        detection.stop()
        assert not service.healthy()
    finally:
        service.stop()


def test_a_snap_command_for_a_disabled_rule_is_refused_and_says_why(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    disabled = '\n[[rules]]\nname = "paused"\nwhen = "plc"\ncameras = ["cam1"]\nenabled = false\n'
    service = _running_service(tmp_path, broker, extra=disabled)
    try:
        assert service.handle_command({"rule": "paused"}) is False
        assert "rule 'paused' is disabled" in caplog.text
        service.journal.flush()
        assert service.journal.query() == []  # nothing recorded, nothing taken
    finally:
        service.stop()


def test_a_reload_keeps_a_camera_whose_line_or_description_changed_and_rebuilds_a_moved_one(
    tmp_path: Path, broker: Broker
) -> None:
    """A stream camera's warm stream and buffer survive a technician renaming its line."""
    service = _running_service(tmp_path, broker)
    try:
        assert service.config_path is not None
        before = service.cameras["cam1"]
        text = service.config_path.read_text(encoding="utf-8")
        people = 'port = 9\nline = "Line 7"\ndescription = "over the press"\n'
        service.config_path.write_text(text.replace("port = 9\n", people), encoding="utf-8")
        assert service.reload()
        assert service.rules.camera_line("cam1") == "Line 7"
        assert service.cameras["cam1"] is before
        service.config_path.write_text(text.replace("port = 9\n", "port = 10\n"), encoding="utf-8")
        assert service.reload()
        assert service.cameras["cam1"] is not before
    finally:
        service.stop()


def test_a_reload_keeps_service_as_started_and_says_a_restart_applies_it(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """File names, dashboard and MQTT messages keep one site and clock until the restart."""
    started = '\n[service]\nsite = "plant-a"\ntimezone = "Europe/Berlin"\n'
    service = _running_service(tmp_path, broker, extra=started)
    try:
        assert service.config_path is not None
        text = service.config_path.read_text(encoding="utf-8")
        edited = text.replace('"plant-a"', '"plant-b"').replace("Europe/Berlin", "America/Chicago")
        edited = edited.replace("port = 9\n", 'port = 9\ndescription = "over the press"\n')
        service.config_path.write_text(edited, encoding="utf-8")
        with caplog.at_level(logging.WARNING, logger="capture.service"):
            assert service.reload()
        assert "[service] changed: it applies after a restart" in caplog.text
        assert service.rules.cameras["cam1"].description == "over the press"  # the rest applied
        assert service.rules.service.site == "plant-a"
        assert service.engine.ruleset.zone == ZoneInfo("Europe/Berlin")  # file names' clock
    finally:
        service.stop()


def test_hot_reload_keeps_watching_after_applying_a_file_failed(
    tmp_path: Path, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = _running_service(tmp_path, broker)
    try:
        applied = service._apply
        calls: list[int] = []

        def fail_once(new: object) -> None:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("a bug while applying")
            applied(new)  # type: ignore[arg-type]

        monkeypatch.setattr(service, "_apply", fail_once)
        assert service.config_path is not None
        text = service.config_path.read_text(encoding="utf-8")
        service.config_path.write_text(text + "# first save\n", encoding="utf-8")
        wait_for(lambda: len(calls) == 1)
        service.config_path.write_text(text + "# second save, a different size\n", encoding="utf-8")
        wait_for(lambda: service.reloads == 1, timeout=15)
    finally:
        service.stop()
