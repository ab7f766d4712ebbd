"""The service imports only what its rule file needs: idle memory on a Pi is the budget."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.broker import Broker

#: Libraries (and our modules wrapping them) a rule file may not need, each worth memory.
OPTIONAL_MODULES = ("gpiozero", "watchdog", "serial", "capture.web", "PIL")

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


def test_a_service_without_web_gpio_file_or_serial_triggers_does_not_import_their_libraries(
    tmp_path: Path, broker: Broker
) -> None:
    rules = _rule_file(tmp_path, broker, web=WEB_OFF, trigger=MQTT_TRIGGER)
    assert _loaded_optional_modules(rules) == []


@pytest.mark.parametrize(
    ("web", "trigger", "expected"),
    [
        ("port = 0", MQTT_TRIGGER, ["PIL", "capture.web"]),
        (WEB_OFF, 'type = "file"\npath = "{tmp}/thermo.log"', ["watchdog"]),
    ],
    ids=["dashboard", "file-trigger"],
)
def test_a_configured_dashboard_or_trigger_kind_imports_its_library(
    tmp_path: Path, broker: Broker, web: str, trigger: str, expected: list[str]
) -> None:
    rules = _rule_file(tmp_path, broker, web=web, trigger=trigger.replace("{tmp}", str(tmp_path)))
    assert _loaded_optional_modules(rules) == expected
