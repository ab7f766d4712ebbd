"""Rule planning: a rule file compiled once into what each event would do, and cooldowns.

Pure decisions with no thread or I/O: which enabled rules an event's trigger
and condition select, which cameras and frame numbers they ask for, and the
file name of each frame. The engine (capture.engine) runs the plan; the dry
run of `capture fire` and the dashboard's rule button ask the same plan, so
what is shown is what would be taken.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import PurePosixPath
from zoneinfo import ZoneInfo

from capture.condition import Condition, parse_condition
from capture.config.schema import RuleConfig, RuleFile
from capture.events import Event
from capture.template import Template, parse_template, template_fields


class RuleDisabled(ValueError):
    """A request named a rule with `enabled = false`: such a rule never fires, not even on request."""

    def __init__(self, rule: str) -> None:
        self.rule = rule
        super().__init__(
            f"rule {rule!r} is disabled (enabled = false in the rule file); enable it to fire it"
        )


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule with its condition and template parsed once, at load."""

    config: RuleConfig
    condition: Condition | None
    template: Template
    cameras: tuple[str, ...]

    @property
    def name(self) -> str:
        """The rule's name."""
        return self.config.name

    def missing_values(self, event: Event) -> tuple[str, ...]:
        """Values the file name uses that `event` lacks: they are written as "unknown".

        Said in the dry run and the journal, so a file named `..._unknown_1.jpg`
        comes with the reason (a PLC message without `id`, a button without values).
        """
        fields = self.template.value_fields
        if not fields:
            return ()
        return tuple(sorted(name for name in fields if event.values.get(name) is None))


class RuleSet:
    """An immutable, compiled view of a rule file; swapped whole on reload."""

    def __init__(self, rules: RuleFile) -> None:
        self.file = rules
        self.zone = ZoneInfo(rules.service.timezone)
        self.by_trigger: dict[str, list[CompiledRule]] = {}
        self.by_name: dict[str, CompiledRule] = {}
        default_template = parse_template(rules.storage.filename)
        self.default_template = default_template
        for rule in rules.rules:
            compiled = CompiledRule(
                config=rule,
                condition=parse_condition(rule.condition) if rule.condition else None,
                template=parse_template(rule.filename) if rule.filename else default_template,
                cameras=tuple(rules.rule_cameras(rule)),
            )
            self.by_name[rule.name] = compiled
            for trigger in rule.when:
                self.by_trigger.setdefault(trigger, []).append(compiled)

    def fields(self, event: Event, rule: CompiledRule, camera: str, seq: int) -> dict[str, object]:
        """Everything a filename template may use for one frame: event values, then built-ins."""
        config = self.file.cameras.get(camera)
        return template_fields(
            rule=rule.name,
            trigger=event.trigger,
            camera=camera,
            line=self.file.camera_line(camera) if config else self.file.service.line,
            site=self.file.service.site,
            vendor=config.vendor if config else "",
            channel=config.channel if config else 0,
            seq=seq,
            burst=rule.config.frame_count,
            offset_ms=rule.config.offset_ms(seq),
            event_id=event.id,
            when=event.wall_time,
            tz=self.zone,
            values=event.values,
        )

    def plan(self, event: Event) -> list[tuple[CompiledRule, list[tuple[str, int, PurePosixPath]]]]:
        """What an event would do, touching nothing: rules, cameras, frame numbers, file names."""
        return [
            (
                rule,
                [
                    (camera, seq, rule.template.render(self.fields(event, rule, camera, seq)))
                    for camera in rule.cameras
                    for seq in range(1, rule.config.frame_count + 1)
                ],
            )
            for rule in self.matching(event)
        ]

    def matching(self, event: Event) -> list[CompiledRule]:
        """Enabled rules of the event's trigger whose condition holds."""
        return [
            rule
            for rule in self.by_trigger.get(event.trigger, ())
            if rule.config.enabled
            and (rule.condition is None or rule.condition.evaluate(event.values))
        ]


class Cooldowns:
    """Suppresses repeats of a rule, per rule or per value of its cooldown_key."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, object], float] = {}
        self._lock = threading.Lock()  # triggers call in from their own threads

    def admit(self, rule: RuleConfig, event: Event) -> bool:
        """True if the rule may fire for this event; records the firing if so."""
        if rule.cooldown_s <= 0:
            return True
        with self._lock:
            return self._admit(rule, event)

    def _admit(self, rule: RuleConfig, event: Event) -> bool:
        key = (rule.name, _cooldown_value(rule.cooldown_key, event))
        last = self._last.get(key)
        if last is not None and event.monotonic - last < rule.cooldown_s:
            return False
        self._last[key] = event.monotonic
        if len(self._last) > 10_000:  # per-value keys come from payloads: bound them
            horizon = event.monotonic - 86_400
            self._last = {k: v for k, v in self._last.items() if v > horizon}
        return True


def _cooldown_value(cooldown_key: str | None, event: Event) -> object:
    """What one cooldown of a rule is kept per: a value of the event, or its trigger (the one
    built-in field an event has before its cameras are photographed; capture check refuses
    the others)."""
    if cooldown_key is None:
        return None
    if cooldown_key == "trigger":
        return event.trigger
    return event.values.get(cooldown_key)
