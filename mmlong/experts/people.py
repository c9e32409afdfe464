"""People expert: how many people each moment shows, as timestamped lines (OpenCV's Haar cascades, CPU).

Viola and Jones, "Rapid Object Detection using a Boosted Cascade of Simple Features" (CVPR 2001), with the
extended Haar features of Lienhart and Maydt (ICIP 2002): the frontal-face and full-body cascades trained by
OpenCV's authors ship inside the ``opencv-python`` 4.x wheels (``cv2/data/haarcascade_*.xml``; the 5.x wheels
no longer carry them), so the expert needs no download. Frames are scanned at ``fps`` (the shared ``fps``
sampler, at most ``max_frames``), in grey, histogram-equalised, at most ``max_side`` pixels long; per frame

    people = faces + bodies that hold no face        (a face inside a body box is the same person)

and consecutive scanned frames with the same count (above 0) make one line, ``"2 people (2 faces, 0 bodies)"``
from the first to the last frame that showed it, source ``people``. A cascade finds upright, unoccluded,
roughly frontal faces at least ``min_face`` pixels tall; profiles, backs of heads, tiny or blurred people are
missed, and textured footage gives occasional false faces (a count held for a single scanned frame is
dropped: ``min_frames``).

Cost: the face cascade dominates; on 480x270 frames of real footage it took 133 ms CPU a frame (bodies added
13 ms), so about 260 CPU s per hour of video at the default 0.5 fps (the whole default pipeline needs ~45 CPU s
an hour), 100 s at ``max_side=320``. It is therefore not among the default experts: ask for it
(``--experts ocr,asr,people``) when a question counts people.

>>> people_count([(10, 10, 20, 20)], [(0, 0, 50, 100), (60, 0, 30, 80)])
2
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np

from mmlong.experts.base import Expert, ExpertOutput, TimedText

CASCADES = {"face": "haarcascade_frontalface_default.xml", "body": "haarcascade_fullbody.xml"}


def cascade_path(name: str) -> str:
    """Path of one of OpenCV's bundled cascade files; a clear error when the installed wheel has none (5.x)."""
    from pathlib import Path

    import cv2

    from mmlong.errors import ConfigError

    folder = Path(getattr(getattr(cv2, "data", None), "haarcascades", "") or "")
    path = folder / name
    if not path.is_file():
        raise ConfigError(f"OpenCV {cv2.__version__} carries no Haar cascade {name} (the 5.x wheels dropped "
                          "them); pip install 'opencv-python>=4.5,<5'", str(folder))
    return str(path)


def _inside(inner: Sequence[int], outer: Sequence[int]) -> bool:
    x, y, w, h = inner
    ox, oy, ow, oh = outer
    cx, cy = x + w / 2, y + h / 2
    return ox <= cx <= ox + ow and oy <= cy <= oy + oh


def people_count(faces: Sequence[Sequence[int]], bodies: Sequence[Sequence[int]]) -> int:
    """Faces plus the bodies (``x, y, w, h`` boxes) whose box holds the centre of no face."""
    return len(faces) + sum(not any(_inside(face, body) for face in faces) for body in bodies)


def describe(count: int, faces: int, bodies: int) -> str:
    """``"1 person (1 face, 0 bodies)"``."""
    who = "1 person" if count == 1 else f"{count} people"
    return f"{who} ({faces} face{'s' if faces != 1 else ''}, {bodies} bod{'y' if bodies == 1 else 'ies'})"


class PeopleExpert(Expert):
    """Haar-cascade face and body counts as ``people`` lines. Registered as ``"people"``."""

    name: ClassVar[str] = "people"
    source: ClassVar[str] = "people"

    @dataclass
    class Config:
        """fps, max_frames: scan rate and cap; max_side: longest side a frame is scanned at; scale_factor,
        min_neighbors: the cascades' search step and votes (OpenCV's meaning; 8 rather than OpenCV's 3-5, which
        found a second, false face on a compressed portrait); min_face: least face height in
        pixels (bodies: twice that); bodies: also run the full-body cascade; min_frames: least scanned frames a
        count must hold to make a line."""

        fps: float = 0.5
        max_frames: int = 7200
        max_side: int = 480
        scale_factor: float = 1.1
        min_neighbors: int = 8
        min_face: int = 20
        bodies: bool = True
        min_frames: int = 2

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._cascades: dict[str, Any] = {}

    def weights_id(self) -> str:
        import cv2

        return f"opencv-{cv2.__version__}"

    def load(self) -> "PeopleExpert":
        import cv2

        kinds = ("face", "body") if self.config.bodies else ("face",)
        for kind in kinds:
            if kind not in self._cascades:
                self._cascades[kind] = cv2.CascadeClassifier(cascade_path(CASCADES[kind]))
        return self

    def detect(self, frame: np.ndarray) -> tuple[list[tuple[int, int, int, int]], list[tuple[int, int, int, int]]]:
        """``(faces, bodies)`` boxes ``(x, y, w, h)`` in an RGB uint8 ``[H, W, 3]`` frame."""
        import cv2

        self.load()
        cfg = self.config
        grey = cv2.equalizeHist(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY))
        found = {}
        for kind, cascade in self._cascades.items():
            size = cfg.min_face * (2 if kind == "body" else 1)
            boxes = cascade.detectMultiScale(grey, scaleFactor=cfg.scale_factor, minNeighbors=cfg.min_neighbors,
                                             minSize=(size, size))
            found[kind] = [tuple(int(v) for v in box) for box in np.asarray(boxes).reshape(-1, 4)]
        return found.get("face", []), found.get("body", [])

    def run(self, video: str) -> ExpertOutput:
        from mmlong.media.video import open_video
        from mmlong.sampling.basic import SampleContext, build_sampler

        cfg = self.config
        cpu = time.process_time()
        self.load()
        runs: list[list[Any]] = []  # [count, start, end, frames, faces, bodies]
        frames_seen = 0
        with open_video(video, max_side=cfg.max_side) as source:
            sampler = build_sampler(f"fps:{cfg.fps:g},max_frames={int(cfg.max_frames)}")
            indices = sampler.sample(source.meta, SampleContext(source=source)).indices
            for frames in source.stream(indices, chunk_size=32):
                for frame, stamp in zip(frames.data.numpy(), frames.timestamps.tolist()):
                    frames_seen += 1
                    faces, bodies = self.detect(frame)
                    count = people_count(faces, bodies)
                    if runs and runs[-1][0] == count and runs[-1][3] > 0:
                        run = runs[-1]
                        run[2], run[3] = stamp, run[3] + 1
                        run[4], run[5] = max(run[4], len(faces)), max(run[5], len(bodies))
                    else:
                        runs.append([count, stamp, stamp, 1, len(faces), len(bodies)])
            duration = float(source.meta.duration)
        lines = tuple(TimedText(start, end, "people", describe(count, faces, bodies))
                      for count, start, end, n, faces, bodies in runs if count > 0 and n >= cfg.min_frames)
        stats = {"frames": frames_seen, "lines": len(lines), "video_s": round(duration, 3),
                 "cpu_s": round(time.process_time() - cpu, 3)}
        return ExpertOutput(lines, stats)
