"""Home Assistant discovery without a broker: the configs, the event template, the picture pacing."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import pytest

from capture.config.schema import RuleFile
from capture.events import CaptureResult, Event, FiringReport
from capture.homeassistant import (
    EVENT_TEMPLATE,
    EVENT_TYPES,
    HomeAssistant,
    discovery_configs,
    discovery_id,
    image_topic,
    node_id,
)
from tests.conftest import wait_for

HA_ID = re.compile(r"^[A-Za-z0-9_-]+$")
T0 = datetime(2026, 12, 3, 10, 15, tzinfo=UTC)


def rule_file(root: Path, **homeassistant: Any) -> RuleFile:
    return RuleFile.model_validate(
        {
            "service": {"site": "plant7", "line": "Line 3"},
            "storage": {"root": str(root)},
            "mqtt": {"topic_prefix": "factory/l3"},
            "homeassistant": {"enabled": True, **homeassistant},
            "cameras": {
                "cam.1": {"vendor": "generic", "host": "10.0.0.1", "path": "/a.jpg"},
                "cam_1": {"vendor": "generic", "host": "10.0.0.2", "path": "/b.jpg"},
            },
            "triggers": {"tick": {"type": "interval", "every_s": 60}},
            "rules": [
                {"name": "ng_part", "when": "tick", "cameras": ["cam.1"]},
                {"name": "parked", "when": "tick", "cameras": ["cam_1"], "enabled": False},
            ],
        }
    )


def test_ids_are_home_assistant_ids_and_two_names_never_share_one() -> None:
    assert discovery_id("cam_1") == "cam_1"
    assert discovery_id("cam.1") != discovery_id("cam_1")
    assert HA_ID.match(discovery_id("cam.1"))
    assert HA_ID.match(discovery_id("a" * 64 + ".x"))
    rules = rule_file(Path("/data"))
    assert node_id(rules.homeassistant, "event-capture-plant7-pi.local") == discovery_id(
        "event-capture-plant7-pi.local"
    )
    assert node_id(rule_file(Path("/d"), node_id="l3").homeassistant, "whatever") == "l3"


def test_each_camera_is_an_image_entity_and_each_enabled_rule_an_event_entity() -> None:
    configs = discovery_configs(rule_file(Path("/data")), "pi3")
    images = {t: c for t, c in configs.items() if t.startswith("homeassistant/image/pi3/")}
    events = {t: c for t, c in configs.items() if t.startswith("homeassistant/event/pi3/")}
    assert len(configs) == 3 and len(images) == 2 and len(events) == 1
    assert {c["image_topic"] for c in images.values()} == {
        "factory/l3/cameras/cam.1/image",
        "factory/l3/cameras/cam_1/image",
    }
    [event] = events.values()
    assert event["state_topic"] == "factory/l3/events/ng_part"
    assert event["event_types"] == list(EVENT_TYPES)
    unique_ids = [c["unique_id"] for c in configs.values()]
    assert len(set(unique_ids)) == 3
    for topic, config in configs.items():
        assert topic.endswith("/config") and HA_ID.match(topic.split("/")[3])
        assert config["availability_topic"] == "factory/l3/status"
        assert config["device"]["identifiers"] == ["pi3"]
        assert config["device"]["name"] == "event-capture plant7 Line 3"


def test_images_and_events_can_each_be_left_out() -> None:
    assert not discovery_configs(rule_file(Path("/d"), images=False, events=False), "n")


def render_event(message: dict[str, Any]) -> dict[str, Any]:
    """EVENT_TEMPLATE as Home Assistant renders it: Jinja2, `value_json`, a `to_json` filter."""
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined)
    environment.filters["to_json"] = json.dumps
    rendered = environment.from_string(EVENT_TEMPLATE).render(value_json=message)
    result: dict[str, Any] = json.loads(rendered)
    return result


def test_the_event_template_gives_the_event_type_and_what_was_saved() -> None:
    saved = {"camera": "cam", "ok": True, "path": "Line 3/2026-12-03/a.jpg", "error": None}
    failed = {"camera": "cam2", "ok": False, "path": None, "error": {"type": "CameraAuthError"}}
    message = {"event_id": "e1", "trigger": "plc", "ok": True, "captures": [saved]}
    assert render_event(message) == {
        "event_type": "captured",
        "event_id": "e1",
        "trigger": "plc",
        "pictures": ["Line 3/2026-12-03/a.jpg"],
        "errors": [],
    }
    partly = render_event({**message, "ok": False, "captures": [saved, failed]})
    assert partly["event_type"] == "failed" and partly["errors"] == ["CameraAuthError"]
    assert partly["pictures"] == ["Line 3/2026-12-03/a.jpg"]


class Broker:
    """What the publisher hands a companion: a send that records, and can be 'down'."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.up = True
        self.lock = threading.Lock()

    def send(self, topic: str, payload: bytes) -> bool:
        with self.lock:
            if self.up:
                self.sent.append((topic, payload))
            return self.up

    def on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [payload for sent_topic, payload in self.sent if sent_topic == topic]


def report(camera: str, path: str, taken: datetime, ok: bool = True) -> FiringReport:
    result = CaptureResult(
        event_id="e",
        rule="ng_part",
        camera=camera,
        seq=0,
        path=path if ok else None,
        image_time=taken,
        error_type=None if ok else "CameraTimeout",
    )
    event = Event(trigger="tick", values={}, wall_time=taken)
    return FiringReport(event, "ng_part", "plant7", [result])


@pytest.fixture
def pictures(tmp_path: Path) -> Path:
    for name in ("p1", "p2", "p3"):
        (tmp_path / f"{name}.jpg").write_bytes(b"\xff\xd8" + name.encode() + b"\xff\xd9")
    return tmp_path


def test_configs_on_connect_then_the_newest_picture_at_most_once_per_interval(
    pictures: Path,
) -> None:
    ha = HomeAssistant(rule_file(pictures, image_interval_s=2.0), "client")
    broker = Broker()
    ha.start()
    try:
        ha.connected(broker.send)
        assert {topic for topic, _ in broker.sent} == set(discovery_configs(ha_rules(ha), ha.node))
        topic = "factory/l3/cameras/cam.1/image"
        ha.firing(report("cam.1", "p1.jpg", T0))
        wait_for(lambda: broker.on(topic))
        ha.firing(report("cam.1", "p2.jpg", T0 + timedelta(seconds=1)))
        ha.firing(report("cam.1", "p3.jpg", T0 + timedelta(seconds=2)))
        ha.firing(report("cam.1", "p3.jpg", T0, ok=False))  # a failed frame changes nothing
        wait_for(lambda: len(broker.on(topic)) == 2, timeout=10)
        assert broker.on(topic) == [
            (pictures / "p1.jpg").read_bytes(),
            (pictures / "p3.jpg").read_bytes(),
        ]
    finally:
        ha.stop()


def ha_rules(ha: HomeAssistant) -> RuleFile:
    return rule_file(ha._root)


def test_an_older_firing_finishing_late_does_not_replace_the_newest_picture(
    pictures: Path,
) -> None:
    ha = HomeAssistant(rule_file(pictures, image_interval_s=0), "client")
    broker = Broker()
    broker.up = False
    ha.start()
    try:
        ha.firing(report("cam_1", "p2.jpg", T0 + timedelta(seconds=5)))
        ha.firing(report("cam_1", "p1.jpg", T0))
        broker.up = True
        ha.connected(broker.send)
        topic = "factory/l3/cameras/cam_1/image"
        wait_for(lambda: broker.on(topic))
        assert broker.on(topic) == [(pictures / "p2.jpg").read_bytes()]
    finally:
        ha.stop()


def test_stale_configs_of_this_node_are_removed_and_home_assistant_s_birth_republishes(
    pictures: Path,
) -> None:
    ha = HomeAssistant(rule_file(pictures, node_id="pi3"), "client")
    broker = Broker()
    ha.connected(broker.send)
    ours = "homeassistant/event/pi3/ng_part/config"
    stale = "homeassistant/image/pi3/old_camera/config"
    ha.message(ours, b"{}")
    ha.message(stale, b'{"name": "old"}')
    assert broker.on(stale) == [b""]
    assert broker.on(ours) == [broker.on(ours)[0]]  # ours is not removed
    broker.sent.clear()
    ha.message("homeassistant/status", b"offline")
    assert not broker.sent
    ha.message("homeassistant/status", b"online")
    assert {topic for topic, _ in broker.sent} == {
        *discovery_configs(rule_file(pictures, node_id="pi3"), "pi3")
    }


def test_a_reload_removes_the_entities_of_a_dropped_camera_and_rule(pictures: Path) -> None:
    rules = rule_file(pictures, node_id="pi3")
    ha = HomeAssistant(rules, "client")
    broker = Broker()
    ha.connected(broker.send)
    for topic, payload in list(broker.sent):
        ha.message(topic, payload)  # the broker echoes our retained configs
    fewer = rules.model_copy(
        update={"cameras": {"cam.1": rules.cameras["cam.1"]}, "rules": rules.rules[:1]}
    )
    broker.sent.clear()
    ha.reload(fewer)
    removed = {topic for topic, payload in broker.sent if payload == b""}
    # The entity, and its retained picture: no old photo shown if a camera of that name returns.
    dropped = next(name for name in rules.cameras if name != "cam.1")
    assert removed == {
        "homeassistant/image/pi3/cam_1/config",
        image_topic(rules.mqtt.topic_prefix, dropped),
    }
