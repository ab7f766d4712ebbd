"""Non-maximum suppression: one box per object, from the many overlapping ones an SSD proposes.

numpy only, so any model's raw outputs can go through it: SSD-style models
(COCO-SSD among them) leave this step out of the graph, and TF.js did it in
JavaScript. Greedy per class, by score, as TensorFlow's own
`non_max_suppression` does: boxes of different classes never suppress each
other (a person on a forklift is two objects).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.intp]


def iou(box: FloatArray, others: FloatArray) -> FloatArray:
    """Intersection over union of one `[x1, y1, x2, y2]` box with each row of `others`."""
    left = np.maximum(box[0], others[:, 0])
    top = np.maximum(box[1], others[:, 1])
    right = np.minimum(box[2], others[:, 2])
    bottom = np.minimum(box[3], others[:, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0).astype(np.float32)


def suppress(
    boxes: FloatArray,
    scores: FloatArray,
    classes: IntArray,
    iou_threshold: float,
    limit: int,
) -> IntArray:
    """Indices of the boxes kept, best score first, at most `limit` of them.

    A box is dropped when a better-scoring box of the same class overlaps it
    by more than `iou_threshold` (intersection over union).
    """
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    suppressed = np.zeros(len(scores), dtype=bool)
    for position, index in enumerate(order):
        if suppressed[index]:
            continue
        kept.append(int(index))
        if len(kept) >= limit:
            break
        rest = order[position + 1 :]
        rest = rest[~suppressed[rest] & (classes[rest] == classes[index])]
        if len(rest):
            suppressed[rest[iou(boxes[index], boxes[rest]) > iou_threshold]] = True
    return np.array(kept, dtype=np.intp)
