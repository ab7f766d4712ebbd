"""Wiring: builds every part from a rule file, runs them, reloads and stops them.

The only module that knows all the others. It decides what a failure means
for the whole service: a trigger that cannot start is logged and the rest run;
a rule file that does not validate on reload is logged and the old rules stay.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from capture.cameras import Camera, build_camera
from capture.cameras.logins import shared_logins
from capture.config.loader import LoadedRules, load_rules
from capture.config.problems import ConfigError
from capture.config.schema import CameraConfig, RuleFile
from capture.engine import Engine
from capture.events import Event, FiringReport
from capture.homeassistant import HomeAssistant
from capture.journal import Journal, JournalError
from capture.logs import SCRUBBER
from capture.publish import Publisher
from capture.recovery import finish_interrupted_firings
from capture.rules import RuleDisabled
from capture.sanitize import JOURNAL_NAME
from capture.storage import Storage
from capture.triggers import Trigger, TriggerContext, TriggerError, build_trigger
from capture.triggers.values import PayloadFormatError, flatten

if TYPE_CHECKING:
    from capture.config.schema import DetectOptions
    from capture.detect.journal import PictureAnalysis
    from capture.detect.worker import DetectionWorker
    from capture.upload.worker import Uploader
    from capture.web.server import WebServer

log = logging.getLogger(__name__)

RELOAD_POLL_S = 1.0


@dataclass(frozen=True)
class _FileStamp:
    mtime_ns: int
    size: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> _FileStamp | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        return cls(stat.st_mtime_ns, stat.st_size, stat.st_ino)


#: Camera options only people, the rule engine and detection read: a change to them
#: keeps the camera's connection (and a stream camera's warm stream and buffer).
_NOT_THE_DEVICE = {"description", "line", "detect"}


def _same_device(old: CameraConfig | None, new: CameraConfig) -> bool:
    """Whether a reload can keep the camera built from `old` for `new`."""
    if old is None or type(old) is not type(new):
        return False
    return old.model_dump(exclude=_NOT_THE_DEVICE) == new.model_dump(exclude=_NOT_THE_DEVICE)


class Service:
    """One running event-capture: triggers, engine, cameras, storage, journal, MQTT."""

    def __init__(
        self,
        config_path: Path | None,
        *,
        loaded: LoadedRules | None = None,
        pin_factory: Any = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config_path = config_path
        self._environ = environ
        self._loaded = loaded or load_rules(config_path, environ)
        self.rules: RuleFile = self._loaded.rules
        self._pin_factory = pin_factory
        self._stop = threading.Event()
        # The file watcher and an explicit reload (tests, a future SIGHUP) must not interleave.
        self._reload_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.triggers: dict[str, Trigger] = {}
        self.trigger_failures: dict[str, str] = {}
        self.cameras: dict[str, Camera] = {}
        self.reloads = 0
        self.reload_errors: list[str] = []
        self._stamp = _FileStamp.of(config_path) if config_path else None
        self._stopped: bool | None = None
        self.web: WebServer | None = None
        self.publisher: Publisher | None = None
        self.detection: DetectionWorker | None = None
        self.uploader: Uploader | None = None
        self.homeassistant: HomeAssistant | None = None

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        """Start every part; returns once triggers are listening."""
        rules = self.rules
        SCRUBBER.update(rules.secret_values())
        for warning in self._loaded.warnings:
            log.warning("%s", warning)
        self.storage = Storage(rules.storage)
        self.journal = Journal(
            Path(rules.storage.root) / JOURNAL_NAME, sync_firings=rules.storage.fsync
        )
        self.cameras = {
            name: camera
            for name, config in rules.cameras.items()
            if (camera := self._build_camera(name, config)) is not None
        }
        if rules.mqtt.enabled:
            if rules.homeassistant.enabled:
                self.homeassistant = HomeAssistant(
                    rules, rules.mqtt.client_id_for(rules.service.site)
                )
            self.publisher = Publisher(
                rules.mqtt,
                rules.service.site,
                rules.service.timezone,
                self.journal,
                self.handle_command,
                companion=self.homeassistant,
            )
        if rules.upload.enabled:
            self.uploader = self._make_uploader(rules)
        self.engine = Engine(rules, self.cameras, self.storage, self.journal, self.publisher)
        if rules.detection.model is not None:
            self._start_detection()
        # Before the publisher starts and any trigger listens: the interrupted firings'
        # messages queue behind the outbox's older ones and ahead of every new event.
        # The engine announces them: the publisher's message and the report listeners
        # (detection), so an adopted picture is analysed like any other.
        finish_interrupted_firings(
            self.journal,
            Path(rules.storage.root),
            rules.service.site,
            self.engine.announce_recovered,
        )
        # After it (it returns with its rows committed): the files it adopted are their
        # cameras' pictures for retention too.
        recovered = self.storage.recover(self.journal.snapshot_owners())
        log.info("storage root=%s %s", rules.storage.root, recovered)
        if self.homeassistant is not None:
            self.homeassistant.start()
        if self.publisher is not None:
            self.publisher.start()
        if self.uploader is not None:
            self.uploader.start()
        self._trigger_context = self._make_trigger_context(rules)
        self._start_triggers(rules, set(rules.triggers))
        if rules.web.enabled:
            self._start_web()
        self._spawn("retention", self._retention_loop)
        if self.config_path is not None:
            self._spawn("reload", self._reload_loop)
        log.info(
            "started site=%s cameras=%d triggers=%d/%d rules=%d",
            rules.service.site, len(self.cameras), len(self.triggers), len(rules.triggers), len(rules.rules),
        )  # fmt: skip

    def _make_uploader(self, rules: RuleFile) -> Uploader:
        """The upload worker, attached to the journal before recovery records anything.

        Imported here: minio (the optional extra `upload`) is loaded only when used.
        """
        from capture.upload.queue import key_namer  # noqa: PLC0415
        from capture.upload.worker import Uploader  # noqa: PLC0415

        uploader = Uploader(
            rules.upload,
            self.journal,
            Path(rules.storage.root),
            site=rules.service.site,
            key_of=key_namer(rules, lambda: self.rules),
            holder=self.storage,
            announcer=self.publisher,
            timezone=rules.service.timezone,
        )
        uploader.attach()
        return uploader

    def _build_camera(self, name: str, config: CameraConfig) -> Camera | None:
        """The camera's driver, or None when it cannot be set up: logged, and the others run."""
        try:
            # The login back-off is shared with `capture snap`/`cameras` through the storage root.
            return build_camera(name, config, logins=shared_logins(self.rules.storage.root))
        except Exception as exc:
            # build_camera does not translate its failures (a driver's ValueError, a CA
            # file's OSError, httpx's InvalidURL); any of them is this camera's setup error.
            log.error(
                "camera %s: cannot be set up (%s: %s); its rules skip it until the rule file is fixed",
                name, type(exc).__name__, exc,
            )  # fmt: skip
            return None

    def _make_trigger_context(self, rules: RuleFile) -> TriggerContext:
        return TriggerContext(
            mqtt=rules.mqtt,
            timezone=ZoneInfo(rules.service.timezone),
            site=rules.service.site,
            pin_factory=self._pin_factory,
        )

    def _start_triggers(self, rules: RuleFile, names: set[str]) -> None:
        # mqtt triggers first, one right after another: they share one broker
        # connection, and the broker sends the session's queued messages as soon
        # as it is up, so all of them should be listening by then, not only
        # those started before a slower gpio or file trigger.
        for name in sorted(names, key=lambda name: (rules.triggers[name].type != "mqtt", name)):
            config = rules.triggers[name]
            try:
                trigger = build_trigger(name, config, self._trigger_context)
                trigger.start(self.engine.submit)
            except TriggerError as exc:
                self.trigger_failures[name] = str(exc)
                log.error("%s; the other triggers keep running", exc)
                continue
            self.trigger_failures.pop(name, None)
            self.triggers[name] = trigger

    def _start_web(self) -> None:
        # Imported here: FastAPI, uvicorn and Pillow cost memory a service without a
        # dashboard never needs (README, Performance). The web sees this service only
        # through capture.web.view.ServiceView, and never imports it.
        from capture.web.server import WebError, WebServer  # noqa: PLC0415

        web = WebServer(self)
        try:
            web.start()
        except WebError as exc:
            log.error("%s; capturing continues without the dashboard and http triggers", exc)
            return
        self.web = web

    def _start_detection(self) -> None:
        # Imported here: onnxruntime and numpy (the detect extra) cost memory and start-up
        # time a service without [detection] never pays (README, Performance).
        from capture.detect import DetectError, load_detector  # noqa: PLC0415
        from capture.detect.worker import DetectionWorker  # noqa: PLC0415

        config = self.rules.detection
        try:
            detector = load_detector(config)
        except DetectError as exc:
            log.error("%s; capturing continues without object detection", exc)
            return
        publisher = self.publisher
        worker = DetectionWorker(
            detector,
            root=Path(self.rules.storage.root),
            store=self.storage,
            journal=self.journal,
            options_for=self._detect_options,
            queue_size=config.queue,
            publish=publisher.publish if publisher is not None else None,
            topic_prefix=self.rules.mqtt.topic_prefix,
            zone=ZoneInfo(self.rules.service.timezone),
            on_done=self._detections_done,
        )
        worker.start()
        self.engine.add_report_listener(worker.offer)
        self.detection = worker
        log.info("object detection on model=%s queue=%d", config.model, config.queue)

    def _detections_done(self, report: FiringReport, analyses: list[PictureAnalysis]) -> None:
        """Hand a finished analysis to the `detection` triggers (on the detection thread)."""
        from capture.detect.journal import trigger_values  # noqa: PLC0415 - loaded with detection
        from capture.triggers.detection import DetectionTrigger  # noqa: PLC0415

        if report.interrupted:
            # Adopted at start-up after a kill: a follow-up would photograph now, not
            # the moment of the picture (and whether the triggers had started yet
            # would decide it).
            return
        # A copy: a reload replaces triggers on its own thread meanwhile.
        triggers = [t for t in list(self.triggers.values()) if isinstance(t, DetectionTrigger)]
        if not triggers or report.event.trigger in {t.name for t in triggers}:
            return  # a follow-up's own pictures never fire a follow-up: no chains, no loops
        values = trigger_values(report.event.id, report.rule, analyses)
        for trigger in triggers:
            trigger.fire(report.rule, values)

    def _detect_options(self, rule: str, camera: str) -> DetectOptions | None:
        """What the rules in force ask to detect on a picture of `rule` by `camera` (reloads apply)."""
        rules = self.rules
        config = next((candidate for candidate in rules.rules if candidate.name == rule), None)
        if config is None:  # a camera snap command: the camera's own options
            camera_config = rules.cameras.get(camera)
            if rules.detection.model is None or camera_config is None:
                return None
            return camera_config.detect
        return rules.detect_options(config, camera)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=f"service-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    # ------------------------------------------------------------------ commands

    def handle_command(self, command: Mapping[str, Any]) -> bool:
        """A snap request from MQTT or the dashboard: `{"camera": ...}` or `{"rule": ..., "values": {...}}`."""
        values: dict[str, Any] = {}
        if "values" in command:
            if not isinstance(command["values"], dict):
                log.warning("command ignored: values must be a JSON object")
                return False
            try:
                values = flatten(command["values"])
            except PayloadFormatError as exc:
                log.warning("command ignored: %s", exc)
                return False
        camera, rule = command.get("camera"), command.get("rule")
        if isinstance(camera, str):
            event = Event.now("command", values)
            if self.engine.snap_camera(camera, event):
                return True
            log.warning("command ignored: unknown camera %r", camera[:64])
        elif isinstance(rule, str):
            event = Event.now("command", values)
            try:
                if self.engine.fire_rule(rule, event):
                    return True
            except RuleDisabled as exc:
                log.warning("command ignored: %s", exc)
                return False
            log.warning("command ignored: unknown rule %r", rule[:64])
        else:
            log.warning('command ignored: give {"camera": NAME} or {"rule": NAME, "values": {...}}')
        return False

    # ------------------------------------------------------------------ reload

    def _reload_loop(self) -> None:
        assert self.config_path is not None
        while not self._stop.wait(RELOAD_POLL_S):
            stamp = _FileStamp.of(self.config_path)
            if stamp is None or stamp == self._stamp:
                continue
            self._stamp = stamp
            try:
                self.reload()
            except Exception:
                # A bug in applying one file must not end hot reload for good.
                log.exception("applying the rule file failed; the next save is tried again")

    def reload(self) -> bool:
        """Re-read the rule file and apply it; keep the running rules if it is invalid."""
        with self._reload_lock:
            return self._reload()

    def _reload(self) -> bool:
        try:
            loaded = load_rules(self.config_path, self._environ)
        except ConfigError as exc:
            self.reload_errors = [str(problem) for problem in exc.problems]
            for problem in exc.problems:
                log.error("rule file not applied: %s", problem)
            log.error("rule file has %d error(s); the previous rules keep running", len(exc.errors))
            return False
        self.reload_errors = []
        SCRUBBER.update((*self.rules.secret_values(), *loaded.rules.secret_values()))
        self._apply(loaded.rules)
        self.reloads += 1
        return True

    def _apply(self, new: RuleFile) -> None:
        old = self.rules
        for section in (
            "service",
            "storage",
            "mqtt",
            "web",
            "upload",
            "homeassistant",
            "detection",
        ):
            if getattr(old, section) != getattr(new, section):
                log.warning(
                    "[%s] changed: it applies after a restart (systemctl restart event-capture)",
                    section,
                )
        # [service] stays as started, whole: the MQTT publisher, the upload and
        # detection workers and the triggers took its site and time zone at
        # start, so file names and the dashboard taking a new one alone would
        # disagree with the messages about the same pictures.
        new = new.model_copy(update={"service": old.service})
        cameras: dict[str, Camera] = {}
        retired: list[Camera] = []
        for name, config in new.cameras.items():
            current = self.cameras.get(name)
            if current is not None and _same_device(old.cameras.get(name), config):
                cameras[name] = current
            else:
                camera = self._build_camera(name, config)
                if camera is not None:
                    cameras[name] = camera
                if current is not None:
                    retired.append(current)
        retired += [camera for name, camera in self.cameras.items() if name not in new.cameras]
        changed_triggers = {
            name
            for name in set(old.triggers) | set(new.triggers)
            if old.triggers.get(name) != new.triggers.get(name)
        }
        for name in changed_triggers:
            trigger = self.triggers.pop(name, None)
            if trigger is not None:
                trigger.stop()
            self.trigger_failures.pop(name, None)
        self.engine.reload(new, cameras)
        self.cameras = cameras
        self.rules = new
        self._start_triggers(new, {name for name in changed_triggers if name in new.triggers})
        if self.homeassistant is not None:
            self.homeassistant.reload(new)
        # Retired cameras finish their queued frames, then the engine closes them.
        log.info(
            "rule file applied: cameras=%d triggers=%d rules=%d (changed triggers: %s)",
            len(cameras), len(self.triggers), len(new.rules), ", ".join(sorted(changed_triggers)) or "none",
        )  # fmt: skip

    # ------------------------------------------------------------------ retention

    def _retention_loop(self) -> None:
        interval = self.rules.storage.retention_interval_s
        while not self._stop.wait(interval):
            try:
                self.enforce_retention()
            except Exception:
                # A bug must not end retention for good: the disk would fill, unseen.
                log.exception("retention pass failed; the next one runs in %.0f s", interval)

    def enforce_retention(self, now: datetime | None = None) -> None:
        """Delete old snapshots, and journal rows older than keep_days; never raises.

        `now` (default: the clock) is the moment ages are measured from.
        """
        now = now or datetime.now(UTC)
        try:
            report = self.storage.enforce_retention(now)
            if report.deleted_files:
                log.info("retention %s", report)
        except OSError as exc:
            log.error("retention failed: %s", exc)
        keep_days = self.rules.storage.keep_days
        if keep_days is not None:
            try:
                self.journal.prune(now - timedelta(days=keep_days))
                if self.uploader is not None:
                    self.uploader.queue.prune(now - timedelta(days=keep_days))
            except JournalError as exc:
                log.error("journal pruning failed: %s", exc)

    # ------------------------------------------------------------------ run and stop

    def stop(self) -> bool:
        """Stop triggers, finish in-flight captures within the grace period, say offline.

        Idempotent: returns whether in-flight captures finished within the grace period.
        """
        if self._stopped is not None:
            return self._stopped
        self._stop.set()
        if self.web is not None:
            self.web.stop()
        for trigger in self.triggers.values():
            try:
                trigger.stop()
            except Exception:
                log.exception("stopping trigger %s failed", trigger.name)
        grace = self.rules.service.shutdown_grace_s
        finished = self.engine.stop(grace)
        if not finished:
            log.warning("captures still running after %.0f s grace; stopping anyway", grace)
        if self.detection is not None:
            # After the engine (its last firings are offered) and before the publisher
            # (whose outbox takes the follow-up messages): what still waits is not_analysed.
            self.detection.stop()
        if self.homeassistant is not None:
            self.homeassistant.stop()
        if self.uploader is not None:  # before the publisher: its last follow-ups go out too
            self.uploader.stop(timeout=5.0)
        if self.publisher is not None:
            self.publisher.stop()
        for camera in self.cameras.values():
            camera.close()
        for thread in self._threads:
            thread.join(timeout=5)
        self.journal.close()
        self.storage.close()
        log.info("stopped")
        self._stopped = finished
        return finished

    def healthy(self) -> bool:
        """Whether the service's own background threads still run (the systemd watchdog asks)."""
        threads_alive = all(thread.is_alive() for thread in self._threads)
        # A publisher whose thread died no longer keeps the outbox: nothing would
        # survive a restart. A full disk keeps it alive (its rows wait in memory),
        # so a watchdog restart then would lose them: `alive`, not `outbox_error`.
        return (
            threads_alive
            and (self.publisher is None or self.publisher.alive)
            and (self.uploader is None or self.uploader.alive)
            and (self.detection is None or self.detection.alive)
            and (self.homeassistant is None or self.homeassistant.alive)
        )
