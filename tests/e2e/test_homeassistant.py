"""Home Assistant discovery over a real broker: what Home Assistant would find there, retained."""

from __future__ import annotations

import json
import time
from contextlib import closing
from pathlib import Path

from capture.homeassistant import discovery_id
from capture.simulator import Simulator
from tests.broker import Broker
from tests.conftest import wait_for
from tests.e2e.conftest import ServiceFactory, base_sections, camera_sections, client_id
from tests.mqtt_client import Recorder, publish

RULE = """
[triggers.plc]
type = "mqtt"
topic = "plc/ha"
payload = "json"
fields = ["id"]

[[rules]]
name = "ng_part"
when = "plc"
cameras = ["cam_a"]
filename = "{camera}_{id}.jpg"
"""


def homeassistant_section(prefix: str) -> str:
    return (
        f'\n[homeassistant]\nenabled = true\ndiscovery_prefix = "{prefix}"\nimage_interval_s = 0\n'
    )


def retained(broker: Broker, topic: str) -> bytes | None:
    """What a client subscribing now gets on `topic` (None: nothing retained within a second)."""
    recorder = Recorder(broker, topic)
    deadline = time.monotonic() + 1.0
    while not recorder.payloads() and time.monotonic() < deadline:
        time.sleep(0.01)
    recorder.close()
    payloads = recorder.payloads()
    return payloads[0] if payloads else None


def test_cameras_and_rules_appear_pictures_follow_and_removed_ones_go(
    tmp_path: Path, broker: Broker, simulator: Simulator, start_service: ServiceFactory
) -> None:
    root = tmp_path / "data"
    node = discovery_id(client_id(root))
    discovery = f"ha-{node}"  # the session's broker keeps retained messages between tests
    ghost = f"{discovery}/image/{node}/ghost/config"
    publish(broker, ghost, '{"name": "a camera an earlier rule file had"}', retain=True)
    configs = {
        "cam_a": f"{discovery}/image/{node}/cam_a/config",
        "cam_b": f"{discovery}/image/{node}/cam_b/config",
        "ng_part": f"{discovery}/event/{node}/ng_part/config",
    }
    text = (
        base_sections(root, broker, prefix="ha1")
        + homeassistant_section(discovery)
        + camera_sections(simulator)
        + RULE
    )
    with closing(Recorder(broker, f"{discovery}/#")) as seen:

        def latest(topic: str) -> bytes | None:
            payloads = [payload for t, payload in list(seen.messages) if t == topic]
            return payloads[-1] if payloads else None

        service = start_service(text)
        wait_for(lambda: all(latest(t) for t in configs.values()) and latest(ghost) == b"")
        camera = json.loads(latest(configs["cam_a"]) or b"")
        assert camera["image_topic"] == "ha1/cameras/cam_a/image"
        assert camera["availability_topic"] == "ha1/status"
        rule = json.loads(latest(configs["ng_part"]) or b"")
        assert rule["state_topic"] == "ha1/events/ng_part"
        assert retained(broker, ghost) is None  # gone from the broker too

        assert service.publisher is not None and service.publisher.wait_connected(10)
        publish(broker, "plc/ha", '{"id": 42}')
        picture = root / "cam_a_42.jpg"
        wait_for(picture.exists)
        image = wait_for(lambda: retained(broker, "ha1/cameras/cam_a/image"), timeout=10)
        assert image == picture.read_bytes()
        assert retained(broker, "ha1/status") == b"online"

        (tmp_path / "rules.toml").write_text(text.replace("\n[cameras.cam_b]", "\n[cameras.gone]"))
        wait_for(lambda: service.reloads == 1, timeout=10)
        wait_for(lambda: latest(configs["cam_b"]) == b"")
        assert latest(f"{discovery}/image/{node}/gone/config")
        assert retained(broker, configs["cam_a"]) is not None
