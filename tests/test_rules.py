"""Rule planning without threads or I/O: which rules an event selects, its frames and names, cooldowns."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from capture.config.loader import parse_rules
from capture.events import Event
from capture.rules import Cooldowns, RuleSet
from tests.test_engine import RULES


def ruleset(tmp_path: Path) -> RuleSet:
    return RuleSet(parse_rules(RULES.format(root=tmp_path / "nowhere"), "rules.toml", {}).rules)


def test_plan_shows_file_names_without_touching_anything(tmp_path: Path) -> None:
    plan = ruleset(tmp_path).plan(
        Event.now("plc", {"state": "NG", "station": "S/../../etc", "temp": 99})
    )
    names = {rule.name: [str(path) for _, _, path in frames] for rule, frames in plan}
    assert names["hot"] == ["hot/slow_1.jpg", "hot/slow_2.jpg", "hot/fast_1.jpg", "hot/fast_2.jpg"]
    [ng_path] = names["ng"]
    assert ng_path.startswith("ng/") and ".." not in ng_path.split("/")
    assert not (tmp_path / "nowhere").exists()


def test_only_enabled_rules_whose_condition_holds_are_selected(tmp_path: Path) -> None:
    rules = ruleset(tmp_path)
    hot = Event.now("plc", {"state": "OK", "station": "S1", "temp": 80})
    both = Event.now("plc", {"state": "NG", "station": "S1", "temp": 80})
    other = Event.now("gate", {"state": "NG"})
    assert [rule.name for rule in rules.matching(hot)] == ["hot"]
    assert [rule.name for rule in rules.matching(both)] == ["ng", "hot"]
    assert rules.matching(other) == []
    assert not rules.by_name["off"].config.enabled


def test_values_the_file_name_lacks_are_named(tmp_path: Path) -> None:
    ng = ruleset(tmp_path).by_name["ng"]
    assert ng.missing_values(Event.now("plc", {"state": "NG"})) == ("station",)
    assert ng.missing_values(Event.now("plc", {"state": "NG", "station": "S1"})) == ()


def test_a_cooldown_holds_per_value_of_its_key(tmp_path: Path) -> None:
    ng = ruleset(tmp_path).by_name["ng"].config  # cooldown_s = 60 per station
    cooldowns = Cooldowns()
    s1 = Event.now("plc", {"state": "NG", "station": "S1"})
    assert cooldowns.admit(ng, s1)
    assert not cooldowns.admit(ng, replace(s1, monotonic=s1.monotonic + 59))
    assert cooldowns.admit(ng, Event.now("plc", {"state": "NG", "station": "S2"}))
    assert cooldowns.admit(ng, replace(s1, monotonic=s1.monotonic + 60))


def test_a_cooldown_keyed_on_trigger_holds_per_trigger(tmp_path: Path) -> None:
    """`when = ["gate1", "gate2"]`, `cooldown_key = "trigger"`: a part at each gate."""
    ng = ruleset(tmp_path).by_name["ng"].config.model_copy(update={"cooldown_key": "trigger"})
    cooldowns = Cooldowns()
    gate1 = Event.now("gate1", {"state": "NG"})
    assert cooldowns.admit(ng, gate1)
    assert cooldowns.admit(ng, Event.now("gate2", {"state": "NG"}))
    assert not cooldowns.admit(ng, replace(gate1, monotonic=gate1.monotonic + 1))
