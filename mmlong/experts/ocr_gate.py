"""Where text is likely: the PP-OCR detector's own probability map at low resolution, as a gate before detection.

The DB text detector (Liao et al., 2020, "Real-time Scene Text Detection with Differentiable Binarization",
arXiv:1911.08947) outputs a per-pixel text probability map; PP-OCR (Du et al., 2020, arXiv:2009.09941)
binarises it at 0.3 and keeps the connected regions as text boxes. The gate runs the same network on the frame
scaled down to ``side`` px (its longer side, rounded to a multiple of 32: ~1/6 of the pixels of a 320 px
detection) and calls a frame text-like when the binarised map holds a text-shaped connected component: at least
``min_pixels`` pixels, at least as wide as it is tall (words and lines of text are; the map's false alarms on
footage are small round blobs). Frames the gate passes go to the full-size detector; the others cost one small
forward pass. Frames of a chunk run as one batch.

>>> import numpy as np
>>> prob = np.zeros((2, 32, 64), np.float32)
>>> prob[0, 10:14, 5:30] = 0.9                              # a line of text: 4 x 25 px
>>> prob[1, 10:13, 5:8] = 0.9                               # a speck: 3 x 3 px
>>> text_like_components(prob, threshold=0.3, min_pixels=12).tolist()
[True, False]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

#: the DB post-processing threshold PP-OCR binarises the probability map at
DB_THRESHOLD = 0.3
#: PP-OCR's detector input normalisation (RGB or BGR alike: mean and std are the same on every channel)
_MEAN, _STD = 0.5, 0.5


def gate_input(frames: Sequence[np.ndarray], side: int) -> np.ndarray:
    """RGB uint8 frames ``[H, W, 3]`` (one size) -> the detector's input ``[T, 3, h, w]`` float32 in BGR at ``side``
    px on the longer side, both sides rounded to a multiple of 32 (at least 32), normalised as PP-OCR does."""
    import cv2

    height, width = frames[0].shape[:2]
    ratio = side / max(height, width)
    w = max(32, int(round(width * ratio / 32)) * 32)
    h = max(32, int(round(height * ratio / 32)) * 32)
    batch = np.empty((len(frames), 3, h, w), dtype=np.float32)
    for k, frame in enumerate(frames):
        small = cv2.resize(np.ascontiguousarray(frame[..., ::-1]), (w, h), interpolation=cv2.INTER_AREA)
        batch[k] = ((small.astype(np.float32) / 255.0 - _MEAN) / _STD).transpose(2, 0, 1)
    return batch


def text_like_components(prob: np.ndarray, threshold: float = DB_THRESHOLD, min_pixels: int = 12) -> np.ndarray:
    """bool ``[T]``: which probability maps ``[T, h, w]`` hold a connected region above ``threshold`` of at least
    ``min_pixels`` pixels whose bounding box is at least as wide as tall."""
    import cv2

    out = np.zeros(len(prob), dtype=bool)
    for k, plane in enumerate(prob):
        mask = (plane > threshold).astype(np.uint8)
        if int(mask.sum()) < min_pixels:
            continue
        _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        width, height, area = stats[1:, 2], stats[1:, 3], stats[1:, 4]
        out[k] = bool(((area >= min_pixels) & (width >= height)).any())
    return out


def probability_maps(session: Any, frames: Sequence[np.ndarray], side: int) -> np.ndarray:
    """The detector's text probability maps ``[T, h, w]`` of RGB uint8 frames at ``side`` px, one batch.

    session: RapidOCR's detector session (``RapidOCR().text_det.infer``, called with ``[T, 3, h, w]``)."""
    if len(frames) == 0:
        return np.zeros((0, 32, 32), dtype=np.float32)
    return np.asarray(session(gate_input(frames, side))[0])[:, 0]
