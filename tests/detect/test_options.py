"""The rule file's detection options: `[detection]` and `detect = {...}`, checked with their lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from capture.config.loader import parse_rules
from capture.config.problems import ConfigError
from tests.config.conftest import line_of
from tests.config.test_loader import MINIMAL
from tests.detect.models import detection_section


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_rules(text, "rules.toml", {})
    return [str(problem) for problem in caught.value.problems]


def _with_detection(tmp_path: Path, rule_detect: str, camera_detect: str = "") -> str:
    text = MINIMAL.replace('cameras = ["cam1"]', f'cameras = ["cam1"]\ndetect = {rule_detect}')
    if camera_detect:
        text = text.replace('host = "10.0.0.1"', f'host = "10.0.0.1"\ndetect = {camera_detect}')
    return text + detection_section(tmp_path)


def test_rule_detect_wins_over_the_camera_and_the_camera_serves_other_rules(tmp_path: Path) -> None:
    text = _with_detection(
        tmp_path, '{ classes = ["person"], min_score = 0.7 }', "{ crops = true }"
    )
    rules = parse_rules(text, "rules.toml", {}).rules
    options = rules.detect_options(rules.rules[0], "cam1")
    assert options is not None and options.classes == ["person"] and options.min_score == 0.7
    bare = rules.rules[0].model_copy(update={"detect": None})
    camera = rules.detect_options(bare, "cam1")
    assert camera is not None and camera.crops and camera.classes == []


def test_a_score_out_of_range_names_its_line_and_key(tmp_path: Path) -> None:
    text = _with_detection(tmp_path, "{ min_score = 2 }")
    [message] = problems_of(text)
    assert message.startswith(f"rules.toml:{line_of(text, 'min_score')}: rules[0]")
    assert "detect.min_score" in message and "1" in message


def test_a_class_the_label_file_lacks_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    text = _with_detection(tmp_path, '{ classes = ["persn"] }')
    [message] = problems_of(text)
    assert message == (
        f"rules.toml:{line_of(text, 'persn')}: rules[0] (r1).detect.classes: "
        "class 'persn' is not in the label file (did you mean 'person'?)"
    )


def test_detect_without_a_model_is_an_error_and_model_needs_labels() -> None:
    text = MINIMAL.replace('cameras = ["cam1"]', 'cameras = ["cam1"]\ndetect = {}')
    [message] = problems_of(text)
    assert message == (
        f"rules.toml:{line_of(text, 'detect')}: rules[0] (r1).detect: "
        "detect needs [detection] model and labels"
    )
    [message] = problems_of(MINIMAL + '\n[detection]\nmodel = "/m.onnx"\n')
    assert "give both model and labels, or neither" in message


def test_a_detection_trigger_needs_a_model_and_names_existing_rules(tmp_path: Path) -> None:
    trigger = '\n[triggers.seen]\ntype = "detection"\nrules = ["r11"]\n'
    follow = '\n[[rules]]\nname = "f"\nwhen = "seen"\ncameras = ["cam1"]\n'
    text = MINIMAL + trigger + follow
    messages = problems_of(text)
    kind_line = line_of(text, "detection")
    assert messages == [
        f"rules.toml:{kind_line}: triggers.seen.type: "
        "detection trigger needs [detection] model and labels",
        f"rules.toml:{line_of(text, 'rules = [')}: triggers.seen.rules[0]: "
        "unknown rule 'r11' (did you mean 'r1'?)",
    ]
    fixed = text.replace('rules = ["r11"]', 'rules = ["r1"]') + detection_section(tmp_path)
    assert parse_rules(fixed, "rules.toml", {}).rules.triggers["seen"].type == "detection"
