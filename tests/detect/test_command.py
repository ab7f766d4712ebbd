"""`capture detect IMAGE`: what a technician reads, from the rule file's model or --model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from capture.cli import main
from tests.config.test_loader import MINIMAL
from tests.detect.models import colour_detector, detection_section


def _picture(tmp_path: Path) -> Path:
    path = tmp_path / "part.jpg"
    Image.new("RGB", (640, 480), (0, 0, 255)).save(path)
    return path


def test_prints_each_object_with_class_score_and_box(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, labels = colour_detector(tmp_path)
    picture = _picture(tmp_path)
    assert main(["detect", str(picture), "--model", str(model), "--labels", str(labels)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(
        rf"{re.escape(str(picture))}: 640x480, 1 object\(s\) scoring >= 0\.5 "
        r"\(model colour\.onnx loaded in \d+ ms, ran in \d+ ms\)",
        out[0],
    )
    assert out[1:] == ["  truck            0.80  box 480,120 - 640,360"]


def test_takes_the_model_from_the_rule_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(MINIMAL + detection_section(tmp_path), encoding="utf-8")
    assert main(["detect", str(_picture(tmp_path)), "-c", str(rules), "--min-score", "0.9"]) == 0
    assert "0 object(s) scoring >= 0.9" in capsys.readouterr().out


def test_a_rule_file_without_a_model_and_an_unreadable_picture_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(MINIMAL, encoding="utf-8")
    assert main(["detect", str(_picture(tmp_path)), "-c", str(rules)]) == 1
    assert capsys.readouterr().err == (
        "the rule file has no [detection] model: set it, or give --model and --labels\n"
    )
    model, labels = colour_detector(tmp_path)
    missing = tmp_path / "none.jpg"
    assert main(["detect", str(missing), "--model", str(model), "--labels", str(labels)]) == 1
    assert capsys.readouterr().err.startswith(f"{missing}: cannot read the picture")
