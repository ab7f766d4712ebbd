"""The technician's, integrator's and fleet guides: their example rule file passes `capture check`, every link leads somewhere."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from capture.events import CaptureResult, Event, FiringReport
from capture.publish import event_message

ROOT = Path(__file__).resolve().parents[2]
GUIDES = [
    "README.md",
    "CONTRIBUTING.md",
    "docs/technician.md",
    "docs/install.md",
    "docs/integration.md",
    "docs/fleet.md",
]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(markdown: Path) -> set[str]:
    """GitHub's anchors for the headings of a markdown file."""
    found = set()
    for line in markdown.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title)
            found.add(title.replace(" ", "-"))
    return found


@pytest.mark.parametrize("guide", GUIDES)
def test_every_relative_link_and_anchor_exists(guide: str) -> None:
    source = ROOT / guide
    if not source.exists():
        pytest.fail(f"{guide} missing")
    broken = []
    for target in LINK.findall(source.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (source.parent / path).resolve() if path else source
        # A link out of the repository (../shared/...) is broken in every clone.
        if (
            not resolved.is_relative_to(ROOT)
            or not resolved.exists()
            or (anchor and resolved.suffix == ".md" and anchor not in anchors(resolved))
        ):
            broken.append(target)
    assert broken == []


def test_the_technicians_example_file_passes_capture_check(tmp_path: Path) -> None:
    text = (ROOT / "docs/technician.md").read_text()
    [example] = re.findall(r"```toml\n(.*?)```", text, re.S)
    rules = tmp_path / "rules.toml"
    rules.write_text(example)
    secrets = {"CAPTURE_MQTT_PASSWORD": "m", "LINE3_NVR_PASSWORD": "n"}
    env = {**os.environ, **secrets}
    checked = subprocess.run(
        [sys.executable, "-m", "capture", "check", "-c", str(rules)],
        capture_output=True, text=True, timeout=60, env=env, check=False, cwd=ROOT,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "2 camera(s), 2 trigger(s), 2 rule(s)" in checked.stdout
    # The secrets.env lines the guide shows are the ones the file needs.
    for name in secrets:
        assert f'{name}="..."' in text


def test_the_integrators_event_example_has_exactly_the_published_fields() -> None:
    text = (ROOT / "docs/integration.md").read_text()
    documented = json.loads(re.findall(r"```json\n(.*?)```", text, re.S)[0])
    event = Event.now("plc", {"id": 8812})
    result = CaptureResult(event_id=event.id, rule="ng_part", camera="c", seq=1, path="x.jpg")
    published = event_message(
        FiringReport(event=event, rule="ng_part", site="plant-a", results=[result]), ZoneInfo("UTC")
    )
    assert documented.keys() == published.keys()
    for capture in documented["captures"]:
        assert capture.keys() == published["captures"][0].keys()
    assert documented["schema"] == published["schema"]


def test_the_integrators_consumer_example_is_valid_python_using_the_documented_topics() -> None:
    text = (ROOT / "docs/integration.md").read_text()
    [consumer] = re.findall(r"```python\n(.*?)```", text, re.S)
    compile(consumer, "docs/integration.md", "exec")
    assert '"plant-a/line3/capture/events/#", qos=1' in consumer
    assert 'event["event_id"], event["rule"]' in consumer  # the documented dedupe key
