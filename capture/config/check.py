"""Cross-reference checks: what the schema alone cannot see.

A rule naming a camera that does not exist, a condition using a value its
trigger never carries, a pin wired to two triggers, a CA file that is not
there: each becomes a `Problem` with the line of the offending key, all
reported at once.
"""

from __future__ import annotations

import importlib.util
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from capture.cameras.paths import check_template
from capture.condition import ConditionError, parse_condition
from capture.config.locate import Where
from capture.config.pins import bcm_number
from capture.config.problems import Problem, Severity, Skipped, did_you_mean, format_path
from capture.config.schema import (
    LINE_PREFIX,
    DetectionTrigger,
    GenericCamera,
    GpioTrigger,
    HttpTrigger,
    MjpegCamera,
    MqttTrigger,
    OnvifCamera,
    OpcuaTrigger,
    RuleConfig,
    RuleFile,
    SerialTrigger,
)
from capture.template import BUILTIN_FIELDS, TemplateError, parse_template
from capture.triggers.base import missing_library


def cross_check(rules: RuleFile, where: Where, skipped: Skipped | None = None) -> list[Problem]:
    """Every cross-reference problem of the validated part of a rule file, in file order.

    `skipped` names what failed validation and is missing from `rules`, so
    that nothing is reported as a consequence of its absence.
    """
    checker = _Checker(rules, where, skipped or Skipped())
    problems = [
        *checker.rule_names(),
        *checker.rule_references(),
        *checker.templates(),
        *checker.camera_paths(),
        *checker.camera_libraries(),
        *checker.ca_files(),
        *checker.shared_hardware(),
        *checker.services_needed(),
        *checker.unused_triggers(),
        *checker.frames_before_the_trigger(),
        *checker.trigger_libraries(),
        *checker.opcua_files(),
        *checker.detection(),
    ]
    return sorted(problems, key=lambda problem: (problem.line or 0, problem.path))


class _Checker:
    def __init__(self, rules: RuleFile, where: Where, skipped: Skipped) -> None:
        self.rules = rules
        self.where = where
        self.skipped = skipped
        positions = skipped.rule_positions(len(rules.rules))
        #: (position in the file, rule) of every validated rule.
        self.indexed = list(zip(positions, rules.rules, strict=True))
        self._rule_names = {position: rule.name for position, rule in self.indexed}

    def problem(
        self, path: tuple[str | int, ...], message: str, severity: Severity = "error"
    ) -> Problem:
        display = format_path(path)
        if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
            name = self._rule_names[path[1]]
            display = display.replace(f"rules[{path[1]}]", f"rules[{path[1]}] ({name})", 1)
        return self.where.problem(path, message, display=display, severity=severity)

    def rule_names(self) -> Iterator[Problem]:
        seen: dict[str, int] = {}
        for index, rule in self.indexed:
            if rule.name in seen:
                yield self.problem(
                    ("rules", index, "name"),
                    f"duplicate rule name {rule.name!r} (also rules[{seen[rule.name]}])",
                )
            seen.setdefault(rule.name, index)

    def rule_references(self) -> Iterator[Problem]:
        for index, rule in self.indexed:
            path = ("rules", index)
            yield from self._when(rule, path)
            yield from self._cameras(rule, path)
            values = self._values_of(rule)
            if values is None:
                continue
            yield from self._condition(rule, path, values)
            yield from self._filename(rule, path, values)
            key = rule.cooldown_key
            if key and key != "trigger" and key in BUILTIN_FIELDS:
                yield self.problem(
                    (*path, "cooldown_key"),
                    f"{key!r} is known only per picture, and a cooldown is decided per event, "
                    "before any camera is asked: key it on a value the trigger sends "
                    "(e.g. station) or on trigger",
                )
            elif key and key not in values | {"trigger"}:
                yield self.problem((*path, "cooldown_key"), self._unknown_value(key, values))

    def _when(self, rule: RuleConfig, path: tuple[str | int, ...]) -> Iterator[Problem]:
        for position, trigger in enumerate(rule.when):
            if trigger not in self.rules.triggers and not self.skipped.trigger_left_out(trigger):
                yield self.problem(
                    (*path, "when", position),
                    f"unknown trigger {trigger!r}{did_you_mean(trigger, self.rules.triggers)}",
                )

    def _cameras(self, rule: RuleConfig, path: tuple[str | int, ...]) -> Iterator[Problem]:
        lines = {self.rules.camera_line(name) for name in self.rules.cameras}
        for position, entry in enumerate(rule.cameras):
            if entry.startswith(LINE_PREFIX):
                line = entry.removeprefix(LINE_PREFIX).strip()
                if line not in lines and not self.skipped.lines_unknown:
                    yield self.problem(
                        (*path, "cameras", position),
                        f"no camera belongs to line {line!r}{did_you_mean(line, lines)}",
                    )
            elif entry not in self.rules.cameras and not self.skipped.camera_left_out(entry):
                yield self.problem(
                    (*path, "cameras", position),
                    f"unknown camera {entry!r}{did_you_mean(entry, self.rules.cameras)}",
                )

    def _values_of(self, rule: RuleConfig) -> frozenset[str] | None:
        """Values any of the rule's triggers carries; None if a trigger is unknown."""
        names: set[str] = set()
        for trigger in rule.when:
            config = self.rules.triggers.get(trigger)
            if config is None:
                return None
            names |= config.value_names()
        return frozenset(names)

    def _unknown_value(
        self, name: str, values: frozenset[str], whose: str = "this rule's triggers carry"
    ) -> str:
        known = sorted(values)
        hint = did_you_mean(name, [*known, *BUILTIN_FIELDS])
        listing = ", ".join(known) if known else "none"
        return (
            f"unknown value {name!r}{hint}; {whose}: {listing} "
            "(declare payload fields with `fields = [...]` on the trigger)"
        )

    def _condition(
        self, rule: RuleConfig, path: tuple[str | int, ...], values: frozenset[str]
    ) -> Iterator[Problem]:
        if rule.condition is None:
            return
        try:
            condition = parse_condition(rule.condition)
        except ConditionError as exc:
            yield self.problem((*path, "condition"), f"invalid condition: {exc}")
            return
        for name in sorted(condition.names - values):
            yield self.problem((*path, "condition"), self._unknown_value(name, values))

    def _filename(
        self, rule: RuleConfig, path: tuple[str | int, ...], values: frozenset[str]
    ) -> Iterator[Problem]:
        if rule.filename is None:
            return  # the default template is checked for every rule using it, at its own line
        try:
            template = parse_template(rule.filename)
        except TemplateError:
            return  # reported once, by `templates`
        for name in sorted(template.value_fields - values):
            yield self.problem(
                (*path, "filename"), f"filename template: {self._unknown_value(name, values)}"
            )

    def templates(self) -> Iterator[Problem]:
        """Syntax of every filename template; the fields of [storage].filename."""
        for index, rule in self.indexed:
            if rule.filename is not None:
                try:
                    parse_template(rule.filename)
                except TemplateError as exc:
                    yield self.problem(
                        ("rules", index, "filename"), f"invalid filename template: {exc}"
                    )
        yield from self._default_template()

    def _default_template(self) -> Iterator[Problem]:
        """[storage].filename serves every rule without a filename of its own.

        Built-in fields always work; a trigger's value only when every rule
        using the default carries it, and none can when no rule uses it.
        """
        path = ("storage", "filename")
        try:
            template = parse_template(self.rules.storage.filename)
        except TemplateError as exc:
            yield self.problem(path, f"invalid filename template: {exc}")
            return
        if not template.value_fields:
            return
        users = [(index, rule) for index, rule in self.indexed if rule.filename is None]
        if not users:
            if self.skipped.rules_incomplete:
                return  # a rule left out may be the one using it
            for name in sorted(template.value_fields):
                yield self.problem(
                    path,
                    f"filename template: unknown value {name!r}{did_you_mean(name, BUILTIN_FIELDS)}; "
                    "no rule uses this default template, so only built-in fields are known: "
                    f"{', '.join(BUILTIN_FIELDS)}",
                )
            return
        for index, rule in users:
            values = self._values_of(rule)
            if values is None:
                continue  # its unknown trigger is reported at the rule
            for name in sorted(template.value_fields - values):
                whose = f"rules[{index}] ({rule.name}) has no filename of its own and its triggers carry"
                yield self.problem(
                    path, f"filename template: {self._unknown_value(name, values, whose)}"
                )

    def camera_paths(self) -> Iterator[Problem]:
        """The path templates the generic and mjpeg drivers fill in for each request."""
        for name, camera in self.rules.cameras.items():
            if isinstance(camera, GenericCamera | MjpegCamera):
                try:
                    check_template(name, camera.path)
                except ValueError as exc:
                    # Not the path itself: someone may have put a password in its query.
                    message = str(exc).removeprefix(f"camera {name}: ")
                    message = message.replace(f"path {camera.path!r}: ", "not a path template: ")
                    yield self.problem(("cameras", name, "path"), message)

    def camera_libraries(self) -> Iterator[Problem]:
        """ONVIF cameras need the optional onvif extra (deploy/install.sh installs it); [upload] minio."""
        if self.rules.upload.enabled and importlib.util.find_spec("minio") is None:
            yield self.problem(
                ("upload", "enabled"),
                "[upload] needs the minio library, not installed here: pip install "
                "'event-capture[upload]' (on a Pi: deploy/install.sh --extras upload)",
            )
        if importlib.util.find_spec("onvif") is not None:
            return
        for name, camera in self.rules.cameras.items():
            if isinstance(camera, OnvifCamera):
                yield self.problem(
                    ("cameras", name, "vendor"),
                    "vendor = 'onvif' needs the onvif-zeep-async library, not installed here: "
                    "pip install 'event-capture[onvif]' (deploy/install.sh installs it)",
                )

    def ca_files(self) -> Iterator[Problem]:
        """CA files are loaded when a client is built: a missing one would stop the service."""
        files: list[tuple[tuple[str, ...], Path]] = [
            (("cameras", name, "ca_file"), camera.ca_file)
            for name, camera in self.rules.cameras.items()
            if camera.ca_file is not None and camera.verify
        ]
        mqtt = self.rules.mqtt
        if mqtt.enabled and mqtt.tls and mqtt.ca_file is not None:
            files.append((("mqtt", "ca_file"), mqtt.ca_file))
        upload = self.rules.upload
        if upload.enabled and upload.verify and upload.ca_file is not None:
            files.append((("upload", "ca_file"), upload.ca_file))
        for path, ca_file in files:
            reason = ca_file_problem(ca_file)
            if reason:
                yield self.problem(path, reason)

    def shared_hardware(self) -> Iterator[Problem]:
        pins: dict[int, list[str]] = defaultdict(list)
        ports: dict[str, list[str]] = defaultdict(list)
        for name, trigger in self.rules.triggers.items():
            if isinstance(trigger, GpioTrigger):
                try:
                    pins[bcm_number(trigger.pin)].append(name)
                except ValueError as exc:
                    yield self.problem(("triggers", name, "pin"), str(exc))
            elif isinstance(trigger, SerialTrigger):
                ports[trigger.port].append(name)
        for pin, users in pins.items():
            for other in users[1:]:
                yield self.problem(
                    ("triggers", other, "pin"),
                    f"GPIO{pin} is already used by trigger {users[0]!r}; one input, one trigger",
                )
        for port, users in ports.items():
            for other in users[1:]:
                yield self.problem(
                    ("triggers", other, "port"),
                    f"serial port {port!r} is already used by trigger {users[0]!r}",
                )

    def services_needed(self) -> Iterator[Problem]:
        if self.rules.homeassistant.enabled and not self.rules.mqtt.enabled:
            yield self.problem(
                ("homeassistant", "enabled"),
                "Home Assistant discovery goes over the broker: it needs [mqtt] enabled = true",
            )
        for name, trigger in self.rules.triggers.items():
            if isinstance(trigger, MqttTrigger) and not self.rules.mqtt.enabled:
                yield self.problem(
                    ("triggers", name, "type"), "mqtt trigger needs [mqtt] enabled = true"
                )
            if isinstance(trigger, HttpTrigger) and not self.rules.web.enabled:
                yield self.problem(
                    ("triggers", name, "type"), "http trigger needs [web] enabled = true"
                )
            elif (
                isinstance(trigger, HttpTrigger)
                and not self.rules.web.token_given
                and self._fires_an_enabled_rule(name)
            ):
                yield self.problem(
                    ("triggers", name, "type"),
                    "every POST needs the [web] token and none is configured: this trigger "
                    "cannot fire until [web] token_env or token_file is set",
                    severity="warning",
                )

    def _fires_an_enabled_rule(self, trigger: str) -> bool:
        """Whether an enabled rule uses the trigger: a warning about firing it is for live rules only.

        The example's MES trigger serves a rule switched off until the
        integration goes live; it warns once that rule is enabled.
        """
        if self.skipped.rules_incomplete:
            return False  # as for unused triggers: said once the rules validate, if still true
        return any(rule.enabled and trigger in rule.when for rule in self.rules.rules)

    def frames_before_the_trigger(self) -> Iterator[Problem]:
        """A frame before the trigger needs a buffer reaching back that far, or it is taken late."""
        for index, rule in self.indexed:
            earliest = min(rule.frames_ms or [0])
            if earliest >= 0:
                continue
            for camera in self.rules.rule_cameras(rule):
                live = self.rules.cameras[camera].live
                if live is None:
                    yield self.problem(
                        ("rules", index, "frames_ms"),
                        f"camera {camera!r} takes snapshots: a frame at {earliest} ms is taken "
                        f"when the rule fires, after the trigger (add [cameras.{camera}.live] "
                        "to have it from before)",
                        severity="warning",
                    )
                elif -earliest / 1000 > live.buffer_s:
                    yield self.problem(
                        ("rules", index, "frames_ms"),
                        f"{earliest} ms reaches back further than camera {camera!r} buffers "
                        f"(live.buffer_s = {live.buffer_s:g}); raise buffer_s or the offset",
                    )

    def unused_triggers(self) -> Iterator[Problem]:
        if self.skipped.rules_incomplete:
            return  # a rule left out may be the one using it
        used = {trigger for rule in self.rules.rules for trigger in rule.when}
        for name in self.rules.triggers:
            if name not in used:
                yield self.problem(
                    ("triggers", name), "no rule uses this trigger", severity="warning"
                )

    def trigger_libraries(self) -> Iterator[Problem]:
        # A warning, not an error: the service runs the other triggers without it.
        for name, trigger in self.rules.triggers.items():
            missing = missing_library(trigger.type)
            if missing:
                yield self.problem(("triggers", name, "type"), missing, severity="warning")

    def opcua_files(self) -> Iterator[Problem]:
        # Warnings: a key under /run/credentials exists only while the service runs.
        for name, trigger in self.rules.triggers.items():
            if not isinstance(trigger, OpcuaTrigger):
                continue
            for key in ("certificate_file", "private_key_file", "server_certificate_file"):
                path = getattr(trigger, key)
                if path is not None and not Path(path).is_file():
                    yield self.problem(
                        ("triggers", name, key),
                        f"no file {str(path)!r} here; the trigger cannot start without it",
                        severity="warning",
                    )

    def detection(self) -> Iterator[Problem]:
        """`detect` options need [detection]'s model; their classes must be the model's."""
        config = self.rules.detection
        users: list[tuple[tuple[str | int, ...], list[str]]] = [
            (("rules", index, "detect"), rule.detect.classes)
            for index, rule in self.indexed
            if rule.detect is not None
        ]
        users += [
            (("cameras", name, "detect"), camera.detect.classes)
            for name, camera in self.rules.cameras.items()
            if camera.detect is not None
        ]
        rule_names = {rule.name for _, rule in self.indexed}
        for name, trigger in self.rules.triggers.items():
            if not isinstance(trigger, DetectionTrigger):
                continue
            if config.model is None:
                yield self.problem(
                    ("triggers", name, "type"),
                    "detection trigger needs [detection] model and labels",
                )
            for index, rule in enumerate(trigger.rules):
                if rule not in rule_names and not self.skipped.rules_incomplete:
                    yield self.problem(
                        ("triggers", name, "rules", index),
                        f"unknown rule {rule!r}{did_you_mean(rule, sorted(rule_names))}",
                    )
        if config.model is None or config.labels is None:
            for path, _ in users:
                yield self.problem(path, "detect needs [detection] model and labels")
            return
        if not config.model.is_file():
            yield self.problem(
                ("detection", "model"),
                f"no model file {str(config.model)!r}: `capture models install coco-ssd` "
                "or copy one in (docs/detection.md)",
            )
        try:
            known = {line.strip() for line in config.labels.read_text("utf-8").splitlines()}
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            yield self.problem(("detection", "labels"), f"cannot read the label file: {reason}")
            return
        for path, classes in users:
            for name in classes:
                if name not in known:
                    hint = did_you_mean(name, sorted(label for label in known if label))
                    yield self.problem(
                        (*path, "classes"), f"class {name!r} is not in the label file{hint}"
                    )


def ca_file_problem(path: Path) -> str | None:
    """Why a CA file cannot verify TLS peers (missing, unreadable, no PEM certificate), or None."""
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        return f"cannot read CA file {str(path)!r}: {exc.strerror or exc}"
    import ssl  # noqa: PLC0415 - only files that configure a CA file pay for it

    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return f"CA file {str(path)!r} holds no usable PEM certificate ({reason})"
    return None
