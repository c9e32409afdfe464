"""What every decoder shares: the container facts, the decoder interface, output sizes and orientation.

A decoder plug-in (``DECODERS`` in :mod:`mmlong.registry`) reads frames at given indices of one stream and
never chooses them. Frame ``i`` is the ``i``-th frame in presentation order (sorted pts), the same numbering in
every decoder.

>>> output_size(7680, 4320, rotation=0, max_side=448)
(448, 252)
>>> output_size(1280, 720, rotation=90, short_side=224)   # stored 1280x720, shown upright as 720x1280
(224, 398)
>>> is_variable_rate(np.array([0.0, 0.04, 0.08, 0.12]))
False
>>> is_variable_rate(np.array([0.0, 0.1, 0.15, 0.5]))
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class ContainerInfo:
    """What the container says about its first video stream, read once with PyAV before any decoder opens.

    width/height: stored (coded) size; rotation: degrees counter-clockwise to turn a stored frame upright
    (0, 90, 180, 270); declared_frames: the frame count in the header (0 when unknown); duration: seconds
    (0.0 when unknown); damage: why the file is only partly readable (None when whole); readable_frames: how
    many frames the index says are in the file when damaged; indexed_constant_rate: the container's index (mp4/mov)
    lists every frame at evenly spaced times, so a decoder can number frames without reading every packet.
    """

    path: str
    codec: str
    width: int
    height: int
    fps: float
    declared_frames: int
    duration: float
    rotation: int
    has_audio: bool
    stream_index: int
    container_format: str
    damage: str | None = None
    readable_frames: int | None = None
    indexed_constant_rate: bool = False

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) as shown, after rotation."""
        return (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)


class DecoderFailure(Exception):
    """A decoder could not open or read this file; :mod:`mmlong.media.video.source` turns it into a VideoError or a
    fallback.

    ``unsupported``: the file is fine but this decoder cannot handle it (another decoder can).
    ``stale_index``: the frame numbering taken from the container's index disagrees with the stream's own
    timestamps; reopening with a full demux (PyAV ``frame_index="demux"``) reads the file correctly.
    """

    def __init__(self, reason: str, unsupported: bool = False, stale_index: bool = False) -> None:
        super().__init__(reason)
        self.unsupported = unsupported
        self.stale_index = stale_index


class Decoder:
    """Base class of decoder plug-ins. One instance reads one file: ``open``, then ``read`` any number of times.

    Subclasses set ``name`` and a ``Config`` dataclass and implement the four methods below.
    """

    name: ClassVar[str] = "decoder"

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()  # type: ignore[attr-defined]

    def open(self, info: ContainerInfo, size: tuple[int, int] | None) -> None:
        """Open ``info.path``; frames will come out stored-orientation ``size`` (width, height), or full size."""
        raise NotImplementedError

    def frame_times(self) -> np.ndarray:
        """float64 ``[N]`` presentation time of every frame in seconds, sorted, as the stream says."""
        raise NotImplementedError

    def read(self, indices: np.ndarray, deadline: float) -> np.ndarray:
        """uint8 ``[T, H, W, 3]`` RGB frames (stored orientation) at sorted unique ``indices`` (int64 ``[T]``).

        ``deadline`` is a ``time.monotonic()`` value after which a decoder that can stop should raise
        :class:`DecoderFailure`.
        """
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def output_size(
    width: int,
    height: int,
    rotation: int = 0,
    max_side: int | None = None,
    short_side: int | None = None,
) -> tuple[int, int]:
    """Upright (width, height) of decoded frames for a stored ``width x height`` video, aspect kept.

    short_side: scale so the shorter side equals it (up or down). max_side: then cap the longer side (never
    upscales). Both None: the upright full size.
    """
    w, h = (height, width) if rotation in (90, 270) else (width, height)
    scale = 1.0
    if short_side:
        scale = short_side / min(w, h)
    if max_side and max(w, h) * scale > max_side:
        scale = max_side / max(w, h)
    if scale == 1.0:
        return w, h
    return max(1, int(round(w * scale))), max(1, int(round(h * scale)))


def stored_size(upright: tuple[int, int], rotation: int) -> tuple[int, int]:
    """The stored-orientation (width, height) that becomes ``upright`` after rotation."""
    return (upright[1], upright[0]) if rotation in (90, 270) else upright


def to_upright(frames: np.ndarray, rotation: int) -> np.ndarray:
    """Turn stored-orientation frames ``[T, H, W, 3]`` upright (``rotation`` degrees counter-clockwise)."""
    turns = (rotation // 90) % 4
    if turns == 0:
        return frames
    return np.ascontiguousarray(np.rot90(frames, k=turns, axes=(1, 2)))


def is_variable_rate(times: np.ndarray) -> bool:
    """True when frame intervals differ from their median by more than 10% (plus 1 ms of pts rounding)."""
    if len(times) < 3:
        return False
    gaps = np.diff(times)
    median = float(np.median(gaps))
    return bool(np.max(np.abs(gaps - median)) > 0.1 * median + 1e-3)
