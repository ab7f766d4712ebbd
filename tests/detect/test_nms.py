"""Non-maximum suppression: one box per object, per class, best score first."""

from __future__ import annotations

import numpy as np

from capture.detect.nms import iou, suppress


def _boxes(*rows: tuple[float, float, float, float]) -> np.ndarray:
    return np.array(rows, dtype=np.float32)


def test_overlapping_box_of_the_same_class_is_dropped_and_the_best_kept_first() -> None:
    boxes = _boxes((0, 0, 10, 10), (1, 1, 10, 10), (20, 20, 30, 30))
    scores = np.array([0.6, 0.9, 0.7], dtype=np.float32)
    kept = suppress(boxes, scores, np.array([0, 0, 0]), iou_threshold=0.5, limit=10)
    assert kept.tolist() == [1, 2]


def test_overlapping_boxes_of_different_classes_are_both_kept() -> None:
    boxes = _boxes((0, 0, 10, 10), (0, 0, 10, 10))
    scores = np.array([0.8, 0.7], dtype=np.float32)
    kept = suppress(boxes, scores, np.array([0, 3]), iou_threshold=0.5, limit=10)
    assert kept.tolist() == [0, 1]


def test_limit_caps_the_boxes_kept() -> None:
    boxes = _boxes(*[(i * 20, 0, i * 20 + 10, 10) for i in range(5)])
    scores = np.array([0.1, 0.5, 0.3, 0.9, 0.2], dtype=np.float32)
    kept = suppress(boxes, scores, np.zeros(5, dtype=np.intp), iou_threshold=0.5, limit=2)
    assert kept.tolist() == [3, 1]


def test_iou_of_half_overlapping_squares_is_one_third_and_of_empty_boxes_zero() -> None:
    assert iou(_boxes((0, 0, 2, 2))[0], _boxes((1, 0, 3, 2)))[0] == np.float32(1 / 3)
    assert iou(_boxes((0, 0, 0, 0))[0], _boxes((0, 0, 0, 0)))[0] == 0
