"""Home Assistant MQTT discovery: every camera's latest picture and every rule's firings.

Integration engineers who run Home Assistant would otherwise write an
`mqtt:` YAML block per camera and per rule, and edit it whenever a
technician renames a camera. With `[homeassistant] enabled = true` the
service publishes, retained, on the broker of `[mqtt]`:

- `{discovery}/image/{node}/{camera}/config`: an `image` entity whose
  picture is the JPEG the service publishes, retained, on
  `{prefix}/cameras/{camera}/image` after each saved picture (at most one per
  camera per `image_interval_s`; the newest always follows). The bytes
  travel over the broker, not a URL of the dashboard: Home Assistant would
  need the dashboard's token in that URL, and a token in a URL ends up in
  proxies' and Home Assistant's own logs.
- `{discovery}/event/{node}/{rule}/config`: an `event` entity on the rule's
  event topic, with `captured` or `failed` as its event type.

Every entity belongs to one device (this Pi) and is available while the
service's retained status says `online`. Entities of cameras and rules that
no longer exist are removed (an empty retained config, as Home Assistant
asks): the service subscribes to its own node's configs, so it also clears
what an earlier run with another rule file left. When Home Assistant
restarts (its birth message `online` on `{discovery}/status`), the configs
and pictures are published again.

docs/integration.md shows what Home Assistant makes of it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from capture import __version__
from capture.config.schema import HomeAssistantConfig, RuleFile
from capture.events import CaptureResult, FiringReport

log = logging.getLogger(__name__)

#: Publishes one retained message (QoS 1); False when the broker connection is down.
Send = Callable[[str, bytes], bool]

#: What Home Assistant's event entity reads from our event message: `captured` when
#: every frame was saved, else `failed`; the rest become the entity's attributes.
EVENT_TEMPLATE = (
    "{{ {'event_type': ('captured' if value_json.ok else 'failed'), "
    "'event_id': value_json.event_id, 'trigger': value_json.trigger, "
    "'pictures': (value_json.captures | selectattr('ok') | map(attribute='path') | list), "
    "'errors': (value_json.captures | rejectattr('ok') | map(attribute='error.type') | list)"
    "} | to_json }}"
)
EVENT_TYPES = ("captured", "failed")
_NOT_ID = re.compile(r"[^A-Za-z0-9_-]")


def discovery_id(name: str) -> str:
    """`name` as a discovery object/node id ([A-Za-z0-9_-]), still unique per name.

    Our names may hold dots, which Home Assistant refuses; a name that had to
    change gets a short digest of itself, so `cam.1` and `cam_1` stay two entities.
    """
    cleaned = _NOT_ID.sub("_", name)[:56]
    if cleaned == name:
        return name
    return f"{cleaned}_{hashlib.sha256(name.encode()).hexdigest()[:6]}"


def node_id(config: HomeAssistantConfig, client_id: str) -> str:
    """This Pi's id in discovery topics: the configured one, or the MQTT client id's."""
    return config.node_id or discovery_id(client_id)


def image_topic(prefix: str, camera: str) -> str:
    """Where a camera's latest picture is published, retained."""
    return f"{prefix}/cameras/{camera}/image"


def discovery_configs(rules: RuleFile, node: str) -> dict[str, dict[str, Any]]:
    """Every discovery config the rule file asks for, by its topic."""
    ha = rules.homeassistant
    prefix = rules.mqtt.topic_prefix
    common: dict[str, Any] = {
        "availability_topic": f"{prefix}/status",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {
            "identifiers": [node],
            "name": ha.device_name or f"event-capture {rules.service.site} {rules.service.line}",
            "manufacturer": "event-capture",
            "model": "Event-triggered camera snapshots",
            "sw_version": __version__,
        },
        "origin": {"name": "event-capture", "sw_version": __version__},
    }
    configs: dict[str, dict[str, Any]] = {}
    if ha.images:
        for camera in rules.cameras:
            object_id = discovery_id(camera)
            configs[f"{ha.discovery_prefix}/image/{node}/{object_id}/config"] = {
                "name": camera,
                "unique_id": f"{node}_camera_{object_id}",
                "image_topic": image_topic(prefix, camera),
                "content_type": "image/jpeg",
                **common,
            }
    if ha.events:
        for rule in rules.rules:
            if not rule.enabled:
                continue
            object_id = discovery_id(rule.name)
            configs[f"{ha.discovery_prefix}/event/{node}/{object_id}/config"] = {
                "name": rule.name,
                "unique_id": f"{node}_rule_{object_id}",
                "state_topic": f"{prefix}/events/{rule.name}",
                "event_types": list(EVENT_TYPES),
                "value_template": EVENT_TEMPLATE,
                **common,
            }
    return configs


@dataclass(frozen=True, slots=True)
class _Picture:
    """A camera's newest saved picture: its path under the storage root and when it was taken."""

    path: str
    taken: datetime | None


class HomeAssistant:
    """Keeps Home Assistant's view of this Pi on the broker; a companion of the Publisher.

    The publisher calls `subscriptions`, `connected` and `message` from paho's
    thread and `firing` from whoever finished a firing; one thread of its own
    publishes pictures, so reading a JPEG never holds up paho or a capture.
    """

    def __init__(self, rules: RuleFile, client_id: str) -> None:
        self.config = rules.homeassistant
        self.node = node_id(self.config, client_id)
        self._root = Path(rules.storage.root)
        self._mqtt = rules.mqtt
        self._prefix = rules.mqtt.topic_prefix
        self._lock = threading.Lock()
        self._configs = self._encoded(rules)
        # Config topics with a retained config on the broker -> the picture topic it names
        # (an image entity's, under our own prefix; None for others): what removing it clears.
        self._seen: dict[str, str | None] = {}
        self._latest: dict[str, _Picture] = {}
        self._unsent: set[str] = set()  # cameras whose latest picture the broker does not have
        self._sent_at: dict[str, float] = {}  # camera -> monotonic time of its last picture sent
        self._send: Send | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="homeassistant", daemon=True)
        self.pictures_sent = 0

    def _encoded(self, rules: RuleFile) -> dict[str, bytes]:
        return {
            topic: json.dumps(config, separators=(",", ":")).encode()
            for topic, config in discovery_configs(rules, self.node).items()
        }

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the thread that publishes pictures."""
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the picture thread runs (the service's health: Home Assistant's images would freeze)."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop publishing pictures; the retained configs stay for Home Assistant."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def reload(self, rules: RuleFile) -> None:
        """Publish the configs of a new rule file and remove those of cameras and rules it dropped.

        [homeassistant] and [mqtt] themselves apply after a restart, like [mqtt] everywhere.
        """
        rules = rules.model_copy(update={"homeassistant": self.config, "mqtt": self._mqtt})
        with self._lock:
            self._configs = self._encoded(rules)
            for camera in set(self._latest) - set(rules.cameras):
                del self._latest[camera]
                self._unsent.discard(camera)
                self._sent_at.pop(camera, None)
            send = self._send
        if send is not None:
            self._publish_configs(send)

    # ------------------------------------------------------------------ publisher's side

    def subscriptions(self) -> list[str]:
        """Home Assistant's birth message, and this node's configs (to clear stale ones)."""
        prefix = self.config.discovery_prefix
        return [f"{prefix}/status", f"{prefix}/+/{self.node}/+/config"]

    def connected(self, send: Send) -> None:
        """The broker connection is (again) up: publish every config and every latest picture."""
        with self._lock:
            self._send = send
            self._unsent = set(self._latest)
        self._publish_configs(send)
        self._wake.set()

    def disconnected(self) -> None:
        """Pictures wait (the newest per camera) until the next connect."""
        with self._lock:
            self._send = None

    def message(self, topic: str, payload: bytes) -> None:
        """A retained config of this node, or Home Assistant announcing itself."""
        if topic == f"{self.config.discovery_prefix}/status":
            if payload == b"online":
                log.info("homeassistant: Home Assistant (re)started, publishing discovery again")
                with self._lock:
                    send = self._send
                if send is not None:
                    self.connected(send)
            return
        with self._lock:
            if not payload:
                self._seen.pop(topic, None)
                return
            self._seen[topic] = self._our_picture_topic(payload)
            stale = topic not in self._configs
            send = self._send
        if stale and send is not None:
            self._remove(send, topic)

    def _our_picture_topic(self, config: bytes) -> str | None:
        """The retained picture an image entity's config names, if it is one of ours."""
        try:
            topic = json.loads(config).get("image_topic")
        except (ValueError, AttributeError):
            return None
        ours = f"{self._prefix}/cameras/"
        return topic if isinstance(topic, str) and topic.startswith(ours) else None

    def firing(self, report: FiringReport) -> None:
        """Remember each camera's newest saved picture of a finished firing; never blocks."""
        if not self.config.images:
            return
        changed = False
        with self._lock:
            for result in report.results:
                if result.ok and result.path and self._newer(result):
                    self._latest[result.camera] = _Picture(
                        result.path, result.image_time or result.event_time
                    )
                    self._unsent.add(result.camera)
                    changed = True
        if changed:
            self._wake.set()

    def _newer(self, result: CaptureResult) -> bool:
        current = self._latest.get(result.camera)
        taken = result.image_time or result.event_time
        return current is None or current.taken is None or taken is None or taken >= current.taken

    # ------------------------------------------------------------------ publishing

    def _publish_configs(self, send: Send) -> None:
        with self._lock:
            configs = dict(self._configs)
            stale = set(self._seen) - set(configs)
        for topic, payload in configs.items():
            send(topic, payload)
        for topic in sorted(stale):
            self._remove(send, topic)

    def _remove(self, send: Send, topic: str) -> None:
        """An empty retained config: Home Assistant deletes the entity, the broker the message;
        and the same for the entity's retained picture (hundreds of KB, and shown as current
        if a camera of that name came back)."""
        log.info("homeassistant: removing the entity of %s (no such camera or rule)", topic)
        with self._lock:
            picture = self._seen.get(topic)
        if send(topic, b""):
            if picture is not None:
                send(picture, b"")
            with self._lock:
                self._seen.pop(topic, None)

    def _run(self) -> None:
        """Publish each camera's newest picture once, at most one per camera per interval."""
        interval = self.config.image_interval_s
        while not self._stop.is_set():
            self._wake.clear()
            now = time.monotonic()
            with self._lock:
                send = self._send
                unsent = {camera: self._latest[camera] for camera in self._unsent}
            next_due = float("inf")
            for camera, picture in unsent.items():
                due = self._sent_at.get(camera, float("-inf")) + interval
                if due > now:
                    next_due = min(next_due, due)
                elif send is not None:
                    self._send_picture(send, camera, picture, now)
            self._wake.wait(None if next_due == float("inf") else max(0.01, next_due - now))

    def _send_picture(self, send: Send, camera: str, picture: _Picture, now: float) -> None:
        try:
            jpeg = (self._root / picture.path).read_bytes()
        except OSError as exc:  # retention took it meanwhile: the next picture follows
            log.warning("homeassistant: cannot read %s's picture %s: %s", camera, picture.path, exc)
            jpeg = None
        if jpeg is not None and not send(image_topic(self._prefix, camera), jpeg):
            return  # the connection went down: sent again after the next connect
        with self._lock:
            self._sent_at[camera] = now
            if self._latest.get(camera) is picture:
                self._unsent.discard(camera)
        if jpeg is not None:
            self.pictures_sent += 1
