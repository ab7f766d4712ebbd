"""Tiny ONNX detectors the tests build with onnx.helper: no model is ever downloaded.

`colour_detector` reads a picture's mean colour and proposes three fixed
boxes, SSD-style (boxes `[1, 3, 1, 4]` yxyx, scores `[1, 3, 3]`), so a
test picks what it finds by the colour it paints:

- box 0, the left half: scores red as class 0 and green as class 1;
- box 1, most of box 0: scores red at 0.9 of box 0 (non-maximum suppression drops it);
- box 2, the right quarter: scores blue at 0.8 as class 2.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from capture.detect import Detection, Detector

#: The label file written beside the model: class 1 is blank, so never reported.
COLOUR_LABELS = ("person", "", "truck")
#: The boxes, yxyx fractions of the picture, as the model gives them.
BOXES = np.array([[0.0, 0.0, 1.0, 0.5], [0.0, 0.05, 0.95, 0.5], [0.25, 0.75, 0.75, 1.0]])
WEIGHTS = np.array([[1.0, 1.0, 0.0], [0.9, 0.0, 0.0], [0.0, 0.0, 0.8]])


def colour_detector(
    folder: Path, *, size: int | None = 8, opset: int = 13, boxes: np.ndarray | None = None
) -> tuple[Path, Path]:
    """Write the model (fixed `size`x`size` input, or any size when None) and its labels;
    `boxes` (3 rows, yxyx) replaces the usual ones, e.g. with a broken box."""
    table = BOXES if boxes is None else boxes
    side: int | str = size if size is not None else "height"
    width: int | str = size if size is not None else "width"
    image = helper.make_tensor_value_info("image", TensorProto.UINT8, [1, side, width, 3])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3, 3])
    boxes = helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 3, 1, 4])
    constants = [
        numpy_helper.from_array(table.reshape(1, 3, 1, 4).astype(np.float32), "box_table"),
        numpy_helper.from_array(WEIGHTS.reshape(1, 3, 3).astype(np.float32), "weights"),
        numpy_helper.from_array(np.array([1 / 255], dtype=np.float32), "scale"),
        numpy_helper.from_array(np.array([1, 1, 3], dtype=np.int64), "mean_shape"),
    ]
    nodes = [
        helper.make_node("Cast", ["image"], ["pixels"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["pixels"], ["mean"], axes=[1, 2], keepdims=0),
        helper.make_node("Mul", ["mean", "scale"], ["colour"]),
        helper.make_node("Reshape", ["colour", "mean_shape"], ["colour3"]),
        helper.make_node("Mul", ["colour3", "weights"], ["scores"]),
        helper.make_node("Identity", ["box_table"], ["boxes"]),
    ]
    graph = helper.make_graph(nodes, "colour_detector", [image], [scores, boxes], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    model_path, labels_path = folder / "colour.onnx", folder / "colour.txt"
    onnx.save(model, model_path)
    labels_path.write_text("\n".join(COLOUR_LABELS) + "\n", encoding="utf-8")
    return model_path, labels_path


def detection_section(folder: Path) -> str:
    """`[detection]` naming the colour detector, written into `folder`: for rule files."""
    model, labels = colour_detector(folder)
    return f"\n[detection]\nmodel = {json.dumps(str(model))}\nlabels = {json.dumps(str(labels))}\n"


class GatedDetector:
    """A detector held at a gate until the test opens it: one slower than the captures."""

    def __init__(self, inner: Detector, timeout_s: float = 10) -> None:
        self.inner = inner
        self.timeout_s = timeout_s
        self.gate = threading.Event()
        self.entered = threading.Event()

    @property
    def labels(self) -> tuple[str, ...]:
        return self.inner.labels

    @property
    def input_size(self) -> tuple[int, int] | None:
        return self.inner.input_size

    def detect(self, picture: Image.Image, min_score: float) -> list[Detection]:
        self.entered.set()
        self.gate.wait(self.timeout_s)
        return self.inner.detect(picture, min_score)
