"""The ONNX detector: a user's exported model (COCO-SSD or their own) run by onnxruntime on the CPU.

What a model must look like (docs/detection.md#your-own-model): one image
input, NHWC or NCHW with 3 colour channels (uint8 gets pixels 0-255, a float
input 0-1), and two outputs, SSD-style and before non-maximum suppression:
boxes `[1, N, 4]` (a size-1 axis may sit before the 4, as in COCO-SSD's
`[1, N, 1, 4]`), corners as fractions of the picture, and scores
`[1, N, C]`, one probability per box and label-file line. Which output is
which is read from their shapes, so no output names need configuring.

onnxruntime is the library here, not our code: it is the runtime with
aarch64 wheels for the Pi's Python and no training framework behind it
(~40 MB against TensorFlow's ~600 MB). Its errors are translated into
DetectError in this module only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime

from capture.detect import Box, DetectError, Detection
from capture.detect.nms import FloatArray, suppress

if TYPE_CHECKING:
    from PIL import Image

    from capture.config.schema import DetectionConfig

#: Boxes considered per picture before suppression: plenty for a line camera's scene,
#: and it bounds the suppression's cost when a low min_score lets many through.
MAX_CANDIDATES = 1000


def read_labels(path: Path) -> tuple[str, ...]:
    """The label file's classes, one per line in score-column order; blank lines stay blank."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DetectError(
            f"label file {path}: cannot read it ({exc.strerror or exc}); "
            "`capture models install coco-ssd` writes one (docs/detection.md)"
        ) from exc
    labels = tuple(line.strip() for line in text.splitlines())
    if not any(labels):
        raise DetectError(f"label file {path}: no class names in it, one per line")
    return labels


class OnnxDetector:
    """A detector running one ONNX model through an onnxruntime session."""

    def __init__(
        self,
        model: Path,
        labels: tuple[str, ...],
        *,
        input_size: tuple[int, int] | None = None,
        box_order: str = "yxyx",
        iou_threshold: float = 0.5,
        threads: int = 1,
    ) -> None:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # its warnings about unused initializers are noise here
        try:
            self._session = onnxruntime.InferenceSession(
                str(model), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail, InvalidGraph, NoSuchFile...
            raise DetectError(
                f"model {model}: onnxruntime cannot load it ({type(exc).__name__}: "
                f"{str(exc).strip()[:300]}); check the path, or export the model again"
            ) from exc
        self._labels = labels
        self._model = model
        self._box_order = box_order
        self._iou = iou_threshold
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise DetectError(f"model {model}: needs one image input [1, H, W, 3] or [1, 3, H, W]")
        self._input = inputs[0].name
        shape = inputs[0].shape
        self._channels_first = shape[1] == 3 and shape[3] != 3
        height, width = (shape[2], shape[3]) if self._channels_first else (shape[1], shape[2])
        fixed = (width, height) if isinstance(width, int) and isinstance(height, int) else None
        self._size = fixed or input_size
        self._float = inputs[0].type != "tensor(uint8)"

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def input_size(self) -> tuple[int, int] | None:
        return self._size

    def detect(self, picture: Image.Image, min_score: float) -> list[Detection]:
        width, height = picture.size
        boxes, scores = self._run(picture)
        usable = np.array([bool(label) for label in self._labels[: scores.shape[1]]])
        scores = np.where(usable, scores, 0)
        classes = scores.argmax(axis=1)
        best = scores[np.arange(len(scores)), classes]
        # A NaN corner (a broken export) has no place in the picture: left out, not rounded.
        candidates = np.flatnonzero((best >= min_score) & np.isfinite(boxes).all(axis=1))
        candidates = candidates[np.argsort(-best[candidates], kind="stable")][:MAX_CANDIDATES]
        corners = boxes[candidates]
        if self._box_order == "yxyx":
            corners = corners[:, [1, 0, 3, 2]]
        kept = suppress(
            corners, best[candidates], classes[candidates], self._iou, limit=MAX_CANDIDATES
        )
        return [
            Detection(
                label=self._labels[int(classes[candidates[index]])],
                score=float(best[candidates[index]]),
                box=_pixels(corners[index], width, height),
            )
            for index in kept
        ]

    def _run(self, picture: Image.Image) -> tuple[FloatArray, FloatArray]:
        tensor = self._tensor(picture)
        try:
            outputs = self._session.run(None, {self._input: tensor})
        except Exception as exc:
            raise DetectError(
                f"model {self._model}: onnxruntime failed on a {picture.size[0]}x"
                f"{picture.size[1]} picture ({type(exc).__name__}: {str(exc).strip()[:300]})"
            ) from exc
        return self._boxes_and_scores(outputs)

    def _tensor(self, picture: Image.Image) -> Any:
        from PIL import Image  # noqa: PLC0415 - Pillow's resampling names, needed here only

        rgb = picture.convert("RGB")
        if self._size is not None and rgb.size != self._size:
            rgb = rgb.resize(self._size, Image.Resampling.BILINEAR)
        array = np.asarray(rgb)
        if self._float:
            array = array.astype(np.float32) / 255.0
        if self._channels_first:
            array = array.transpose(2, 0, 1)
        return np.ascontiguousarray(array[np.newaxis])

    def _boxes_and_scores(self, outputs: list[Any]) -> tuple[FloatArray, FloatArray]:
        """Which output holds the boxes and which the scores, told apart by their shapes."""
        arrays = [np.asarray(output, dtype=np.float32) for output in outputs]
        flat = [array.reshape(-1, array.shape[-1]) for array in arrays if array.ndim >= 2]
        classes = len(self._labels)
        box_outputs = [array for array in flat if array.shape[1] == 4]
        score_outputs = [array for array in flat if array.shape[1] == classes]
        if classes == 4 and len(flat) == 2:  # four classes: shapes cannot tell; SSD order
            score_outputs, box_outputs = [flat[0]], [flat[1]]
        if len(box_outputs) != 1 or len(score_outputs) != 1:
            shapes = ", ".join(str(list(array.shape)) for array in arrays)
            raise DetectError(
                f"model {self._model}: expected boxes [1, N, 4] and scores [1, N, {classes}] "
                f"({classes} lines in the label file), got outputs {shapes}"
            )
        boxes, scores = box_outputs[0], score_outputs[0]
        if len(boxes) != len(scores):
            raise DetectError(
                f"model {self._model}: {len(boxes)} boxes but {len(scores)} rows of scores"
            )
        return boxes, scores


def _pixels(corners: FloatArray, width: int, height: int) -> Box:
    """Fractions of the picture as whole pixels inside it."""
    left, top, right, bottom = (float(value) for value in np.clip(corners, 0.0, 1.0))
    return Box(
        left=round(min(left, right) * width),
        top=round(min(top, bottom) * height),
        right=round(max(left, right) * width),
        bottom=round(max(top, bottom) * height),
    )


def load(config: DetectionConfig) -> OnnxDetector:
    """The detector `[detection]` describes (the registry's entry for `runtime = "onnx"`)."""
    assert config.model is not None and config.labels is not None  # checked by load_detector
    size = (config.input_size[0], config.input_size[1]) if config.input_size else None
    return OnnxDetector(
        config.model,
        read_labels(config.labels),
        input_size=size,
        box_order=config.box_order,
        iou_threshold=config.iou_threshold,
        threads=config.threads,
    )
