"""On-screen text expert: what is written in a video, as timestamped lines (RapidOCR, PP-OCRv4 ONNX on CPU).

PP-OCR (Du et al., 2020, "PP-OCR: A Practical Ultra Lightweight OCR System", arXiv:2009.09941; the v4 models
ship inside the ``rapidocr-onnxruntime`` wheel) is a DB text detector (Liao et al., 2020, arXiv:1911.08947)
followed by a CTC text recogniser on each detected box. Recognition costs the most, so it runs only where it
can matter. Frames are scanned at ``fps`` (the shared ``fps`` sampler) and, per scanned frame:

1. **unchanged?** A 32 x 32 grey thumbnail is compared with the last frame the detector saw; when no cell
   differs by ``change_threshold`` or more the frame shows what that one showed (the largest cell difference,
   not the mean: new words on the same card change only a few cells), so the open line (if
   any) is extended to it and nothing runs.
2. **text?** Letters make many sharp left-right changes of brightness along a row: when no three adjacent
   rows of the frame (at most 160 px wide) have at least ``min_edge_density`` of their pixels at such an edge
   (:func:`edge_density`), it holds no text and the detector is not run. Most footage passes this; the
   detector's own probability map at ``gate_side`` px (:mod:`~mmlong.experts.ocr_gate`, one batch per chunk of
   frames) then decides: no text-shaped region in it, no text. Otherwise the detector runs on the
   frame scaled down to ``det_side`` (its longer side). No box: no text, the open line ends.
3. **new text?** When the boxes sit where the open line's boxes were (each matched at IoU >= ``box_iou``) and
   no thumbnail cell inside them changed by ``change_threshold``, the text is the same and the line is extended.
   Otherwise the boxes are cropped from the frame (upscaled, bicubic, until the median box is
   ``rec_text_height`` pixels tall: on smaller letters the recogniser drops the spaces between words),
   recognised, and the words read in reading order (top to bottom, left to right) make the line. Boxes read
   with a score under ``text_score`` are dropped. The PP-OCR recogniser (trained mostly on Chinese) sometimes
   runs English words together; a space is put back where the crop's ink has a gap as wide as a space between
   two recognised characters (:func:`respace`, from the recogniser's CTC column of each character).

A line's confidence is the mean recognition score of its words' boxes; its span runs from the first to the
last scanned frame that showed it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable

import numpy as np

from mmlong.experts.base import Expert, ExpertOutput, TimedText

THUMB = 32


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """float32 ``[32, 32]`` grey thumbnail in ``[0, 1]`` of an RGB uint8 ``[H, W, 3]`` frame (area average)."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def edge_density(frame: np.ndarray, contrast: float = 0.12, width: int = 160) -> float:
    """The largest share, over bands of three adjacent rows, of pixels whose right neighbour differs in grey
    level by more than ``contrast`` (0-1), on the RGB uint8 frame scaled to at most ``width`` pixels wide.

    A cheap stand-in for "could this frame hold text": a text line scores 0.1-0.5, flat graphics under 0.02,
    textured footage 0.05-0.15 (so footage still goes to the detector).
    """
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    if grey.shape[1] > width:
        grey = cv2.resize(grey, (width, max(3, round(grey.shape[0] * width / grey.shape[1]))),
                          interpolation=cv2.INTER_AREA)
    rows = (np.abs(np.diff(grey.astype(np.float32) / 255.0, axis=1)) > contrast).mean(axis=1)
    if len(rows) < 3:
        return float(rows.max()) if len(rows) else 0.0
    return float(np.convolve(rows, np.ones(3) / 3.0, mode="valid").max())


def box_rects(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Axis-aligned ``[B, 4]`` (x0, y0, x1, y1) of quadrilaterals ``[B, 4, 2]``, as fractions of the frame."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4, 2)
    scale = np.array([width, height, width, height], dtype=np.float32)
    return np.concatenate([boxes.min(axis=1), boxes.max(axis=1)], axis=1) / scale


def same_layout(a: np.ndarray, b: np.ndarray, min_iou: float) -> bool:
    """True when rectangles ``a [B, 4]`` and ``b [B', 4]`` pair up one to one, each pair at IoU >= ``min_iou``."""
    if len(a) != len(b) or len(a) == 0:
        return False
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    iou = inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
    return bool((iou.max(axis=1) >= min_iou).all() and (iou.max(axis=0) >= min_iou).all())


def region_difference(a: np.ndarray, b: np.ndarray, rects: np.ndarray) -> float:
    """Largest absolute difference of thumbnails ``a`` and ``b`` inside the union of ``rects`` (fractions)."""
    mask = np.zeros(a.shape, dtype=bool)
    for x0, y0, x1, y1 in rects:
        r0, c0 = int(np.floor(y0 * THUMB)), int(np.floor(x0 * THUMB))
        r1, c1 = max(r0 + 1, int(np.ceil(y1 * THUMB))), max(c0 + 1, int(np.ceil(x1 * THUMB)))
        mask[r0:r1, c0:c1] = True
    return float(np.abs(a - b)[mask].max()) if mask.any() else 0.0


def ink_gaps(crop: np.ndarray) -> list[tuple[int, int]]:
    """``(x0, x1)`` column runs without ink inside the text of a BGR/RGB uint8 crop ``[h, w, 3]`` (Otsu: ink is
    the minority side), leading and trailing margins left out."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_BGR2GRAY)
    _, binary = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    dark = binary == 0
    ink = dark if dark.mean() < 0.5 else ~dark
    h = ink.shape[0]
    columns = ink[int(h * 0.1): max(int(h * 0.9), int(h * 0.1) + 1)].any(axis=0)
    inked = np.flatnonzero(columns)
    if len(inked) < 2:
        return []
    gaps, start = [], None
    for x in range(int(inked[0]), int(inked[-1]) + 1):
        if not columns[x] and start is None:
            start = x
        elif columns[x] and start is not None:
            gaps.append((start, x))
            start = None
    return gaps


def respace(text: str, columns: list[int], steps: float, crop: np.ndarray) -> str:
    """``text`` with spaces put back where the crop's ink has a space-wide gap between two characters.

    columns: the CTC time step of each character of ``text`` (spaces included); steps: CTC steps over the crop's
    width. A gap is space-wide when it is at least ``max(0.15 * h, 2 * median gap + 1)`` pixels (h: crop height).
    """
    if len(columns) != len(text) or len(text) < 2 or steps <= 0:
        return text
    gaps = ink_gaps(crop)
    if not gaps:
        return text
    widths = np.array([b - a for a, b in gaps], dtype=np.float32)
    wide = max(0.15 * crop.shape[0], 2.0 * float(np.median(widths)) + 1.0)
    centres = [0.5 * (a + b) for (a, b), w in zip(gaps, widths) if w >= wide]
    cell = crop.shape[1] / steps
    xs = [(c + 0.5) * cell for c in columns]
    out = [text[0]]
    for i in range(1, len(text)):
        if text[i] != " " and text[i - 1] != " " and any(xs[i - 1] < c < xs[i] for c in centres):
            out.append(" ")
        out.append(text[i])
    return "".join(out)


@dataclass
class _OpenLine:
    """The line being read: its text, span, scores, and the boxes and thumbnail it was read from."""

    text: str
    start: float
    end: float
    score: float
    rects: np.ndarray = field(repr=False)
    thumb: np.ndarray = field(repr=False)

    def done(self) -> TimedText:
        return TimedText(self.start, self.end, "text", self.text, self.score)


@dataclass
class _ScanState:
    """What the scan carries from frame to frame: the open line, the lines so far, the last changed thumbnail."""

    current: _OpenLine | None = None
    lines: list[TimedText] = field(default_factory=list)
    last_thumb: np.ndarray | None = None
    fine: bool = False  # a short scan: no gates, detection at the decoded size
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("frames", "no_edges", "no_text_map", "detected", "recognised"), 0))


class _FirstAtOrAfter:
    """Takes, from frame indices arriving in increasing order, the first one at or after each target index
    (sorted ``[N]``): the frames of another stage's scan that stand for this expert's own frames."""

    def __init__(self, targets: np.ndarray) -> None:
        self.targets, self.next = targets, 0

    def take(self, index: int) -> bool:
        if self.next >= len(self.targets) or index < self.targets[self.next]:
            return False
        while self.next < len(self.targets) and self.targets[self.next] <= index:
            self.next += 1
        return True


class TextExpert(Expert):
    """``ocr``: RapidOCR (PP-OCRv4 detector + recogniser) on frames scanned at ``fps``, recognising only new text."""

    name: ClassVar[str] = "ocr"
    source: ClassVar[str] = "text"
    #: :meth:`run` can read frames another stage decoded (:func:`~mmlong.experts.runner.run_experts`)
    reads_frames: ClassVar[bool] = True

    @dataclass
    class Config:
        """fps / max_frames: the scan (the ``fps`` sampler: one frame a second, spread thinner past half an
        hour; a frame every 2 s still lands on every 2 s caption); max_side: decode size (longer side, px);
        det_side: detector input (longer side, px); rec_text_height: frames are upscaled (up to 4x) for
        recognition until the median text box is this tall (px); change_threshold: grey difference (0-1) of a
        thumbnail cell from which a frame or a text region counts as changed; min_edge_density: frames under
        this :func:`edge_density` skip the detector (0 runs it on every changed frame); gate_side: the
        detector's probability map is first computed at this size (longer side, px) and only frames whose map
        holds a text-shaped region of ``gate_pixels`` pixels go on to detection at det_side
        (:mod:`~mmlong.experts.ocr_gate`; 0: no gate); box_iou: IoU at which
        boxes count as the same place; box_threshold: detector box score; text_score: least recognition score of
        a kept box; min_chars: shortest kept line; threads: onnxruntime threads (1: the detector's small inputs
        gain nothing from more, while idle threads spin; 0: onnxruntime's default); fine_frames: a scan of at most
        this many frames (a short clip) skips both gates and detects at the decoded size, so small scene text (a
        taxi's roof sign, gone at 320 px) is read where reading every frame costs a few seconds at most."""

        fps: float = 1.0
        max_frames: int = 1800
        max_side: int = 640
        det_side: int = 320
        rec_text_height: int = 30
        change_threshold: float = 0.06
        min_edge_density: float = 0.12
        gate_side: int = 160
        gate_pixels: int = 12
        box_iou: float = 0.6
        box_threshold: float = 0.5
        text_score: float = 0.5
        min_chars: int = 2
        threads: int = 1
        fine_frames: int = 30

        def __post_init__(self) -> None:
            if self.fps <= 0 or self.max_frames < 1 or self.det_side < 32 or self.max_side < 32:
                raise ValueError("fps must be positive, max_frames >= 1, det_side and max_side >= 32")
            if self.gate_side and self.gate_side < 32 or self.gate_pixels < 1:
                raise ValueError("gate_side must be 0 (no gate) or >= 32, gate_pixels >= 1")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._ocr: Any = None

    def weights_id(self) -> str:
        from importlib.metadata import version

        return f"rapidocr-onnxruntime=={version('rapidocr-onnxruntime')}"

    def output_config(self) -> dict[str, Any]:
        config = super().output_config()
        config.pop("threads", None)
        return config

    def load(self) -> "TextExpert":
        if self._ocr is None:
            from rapidocr_onnxruntime import RapidOCR

            threads = int(self.config.threads) or -1
            self._ocr = RapidOCR(det_limit_side_len=self.config.det_side, det_limit_type="max",
                                 det_box_thresh=self.config.box_threshold, text_score=self.config.text_score,
                                 use_cls=False, intra_op_num_threads=threads, inter_op_num_threads=threads)
        return self

    # ------------------------------------------------------------------ the two models
    def detect(self, frame: np.ndarray, side: int | None = None) -> np.ndarray:
        """Text boxes ``[B, 4, 2]`` (x, y in frame pixels, reading order) of an RGB uint8 frame, detected at
        ``side`` px on the longer side (default ``det_side``; never above the frame's own size)."""
        import cv2

        ocr = self.load()._ocr
        scale = min(1.0, (side or self.config.det_side) / max(frame.shape[:2]))
        image = np.ascontiguousarray(frame[..., ::-1])
        if scale < 1.0:  # RapidOCR's own limit only applies above 960 px; the detector runs at det_side here
            size = (max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        boxes, _ = ocr.text_det(image)
        if boxes is None or len(boxes) == 0:
            return np.zeros((0, 4, 2), dtype=np.float32)
        boxes = np.asarray(ocr.sorted_boxes(boxes), dtype=np.float32)
        return boxes * np.array([frame.shape[1] / image.shape[1], frame.shape[0] / image.shape[0]], np.float32)

    def recognise(self, frame: np.ndarray, boxes: np.ndarray) -> tuple[str, float]:
        """The words in ``boxes`` of an RGB frame, joined in reading order, and their mean score ("" if none)."""
        import cv2

        ocr = self.load()._ocr
        heights = np.linalg.norm(boxes[:, 0] - boxes[:, 3], axis=1)
        scale = float(np.clip(self.config.rec_text_height / max(1.0, float(np.median(heights))), 1.0, 4.0))
        image = np.ascontiguousarray(frame[..., ::-1])
        if scale > 1.0:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        crops = ocr.get_crop_img_list(image, [np.asarray(b * scale, dtype=np.float32) for b in boxes])
        results, _ = ocr.text_rec(crops, True)
        kept = []
        for crop, (text, score, info) in zip(crops, results):
            if float(score) < self.config.text_score or not text.strip():
                continue
            columns = [c for word in info[2] for c in word]  # one CTC step per character, spaces included
            kept.append((respace(text, columns, float(info[0]), crop).strip(), float(score)))
        if not kept:
            return "", 0.0
        return " ".join(t for t, _ in kept), float(np.mean([s for _, s in kept]))

    # ------------------------------------------------------------------ the scan
    def run(self, video: str, frames: Iterable[Any] | None = None) -> ExpertOutput:
        """The lines of ``video``. ``frames``: chunks of :class:`~mmlong.types.Frames` of ``video`` already decoded
        elsewhere, in time order (a sampler's scan); the first of them at or after each frame of this expert's own
        ``fps`` grid is read instead of decoding the video again. Without them the video is decoded at ``max_side``."""
        from mmlong.media.video import open_video, probe
        from mmlong.sampling.basic import SampleContext, build_sampler

        cfg = self.config
        cpu = time.thread_time()  # this thread's CPU: the scan that feeds it decodes on another
        state = _ScanState()
        sampler = build_sampler(f"fps:{cfg.fps:g},max_frames={int(cfg.max_frames)}")
        if frames is None:
            with open_video(video, max_side=cfg.max_side) as source:
                indices = sampler.sample(source.meta, SampleContext(source=source)).indices
                state.fine = len(indices) <= cfg.fine_frames
                for chunk in source.stream(indices, chunk_size=32):
                    self._read_chunk(list(zip(chunk.data.numpy(), chunk.timestamps.tolist())), state)
                duration = float(source.meta.duration)
        else:
            meta = probe(video)
            picker = _FirstAtOrAfter(sampler.sample(meta).indices.numpy())
            state.fine = len(picker.targets) <= cfg.fine_frames
            for chunk in frames:
                kept = [(f, t) for f, t, i in zip(chunk.data.numpy(), chunk.timestamps.tolist(), chunk.indices.tolist())
                        if picker.take(i)]
                if kept:
                    self._read_chunk(kept, state)
            duration = float(meta.duration)
            state.counts["shared_decode"] = 1
        self._close(state.current, state.lines)
        stats = {**state.counts, "video_s": round(duration, 3), "cpu_s": round(time.thread_time() - cpu, 3)}
        return ExpertOutput(tuple(state.lines), stats)

    def _read_chunk(self, chunk: list[tuple[np.ndarray, float]], state: "_ScanState") -> None:
        """Read one chunk of (RGB frame, time) in order: unchanged and edgeless frames first (per frame), the
        detector's low-resolution map on the rest as one batch (:mod:`~mmlong.experts.ocr_gate`), then
        detection and recognition of new text on the frames the gate passes."""
        from mmlong.experts.ocr_gate import probability_maps, text_like_components

        cfg = self.config
        kinds, thumbs = [], []
        for frame, _ in chunk:
            state.counts["frames"] += 1
            thumb = thumbnail(frame)
            thumbs.append(thumb)
            if state.last_thumb is not None and float(np.abs(thumb - state.last_thumb).max()) < cfg.change_threshold:
                kinds.append("same")
                continue
            state.last_thumb = thumb
            kinds.append("candidate" if state.fine or edge_density(frame) >= cfg.min_edge_density else "no_edges")
        candidates = [k for k, kind in enumerate(kinds) if kind == "candidate"]
        if cfg.gate_side and candidates and not state.fine:
            maps = probability_maps(self.load()._ocr.text_det.infer, [chunk[k][0] for k in candidates], cfg.gate_side)
            for k, likely in zip(candidates, text_like_components(maps, min_pixels=cfg.gate_pixels)):
                kinds[k] = "candidate" if likely else "no_text_map"
        for (frame, stamp), thumb, kind in zip(chunk, thumbs, kinds):
            self._read_frame(frame, stamp, thumb, kind, state)

    def _read_frame(self, frame: np.ndarray, stamp: float, thumb: np.ndarray, kind: str, state: "_ScanState") -> None:
        cfg = self.config
        current = state.current
        if kind == "same":
            if current is not None:
                current.end = stamp
            return
        if kind != "candidate":  # no edges, or no text in the detector's low-resolution map
            state.counts[kind] += 1
            state.current = self._close(current, state.lines)
            return
        state.counts["detected"] += 1
        boxes = self.detect(frame, max(frame.shape[:2]) if state.fine else None)
        if len(boxes) == 0:
            state.current = self._close(current, state.lines)
            return
        rects = box_rects(boxes, frame.shape[1], frame.shape[0])
        if (current is not None and same_layout(rects, current.rects, cfg.box_iou)
                and region_difference(thumb, current.thumb, rects) < cfg.change_threshold):
            current.end = stamp
            return
        state.counts["recognised"] += 1
        text, score = self.recognise(frame, boxes)
        if len(text) < cfg.min_chars:
            state.current = self._close(current, state.lines)
            return
        if current is not None and text == current.text:
            current.end, current.rects, current.thumb = stamp, rects, thumb
            return
        self._close(current, state.lines)
        state.current = _OpenLine(text, stamp, stamp, score, rects, thumb)

    @staticmethod
    def _close(current: _OpenLine | None, lines: list[TimedText]) -> None:
        """End the open line (if any) into ``lines``; returns None, the caller's new (no) open line."""
        if current is not None:
            lines.append(current.done())
        return None  # noqa: RET501 - the callers write ``current = self._close(current, lines)``
