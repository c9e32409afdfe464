"""The decord decoder: the fast default for the common codecs (H.264, HEVC, MPEG-4, VP9).

decord resizes inside its FFmpeg filter graph, so frames come out at the output size. It cannot decode AV1
and mishandles display rotation (wrong shapes or sideways frames), so it refuses those files up front;
``decoder="auto"`` sends them to PyAV instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmlong.media.video.base import ContainerInfo, Decoder, DecoderFailure

#: Codecs (FFmpeg names) decord's bundled FFmpeg cannot decode.
DECORD_UNSUPPORTED_CODECS = frozenset({"av1"})


def decord_refuses(info: ContainerInfo) -> str | None:
    """Why decord cannot read this file correctly, or None."""
    if info.codec in DECORD_UNSUPPORTED_CODECS:
        return f"decord cannot decode {info.codec} video"
    if info.rotation:
        return f"decord does not apply display rotation ({info.rotation} degrees)"
    if info.damage:
        return f"decord cannot read damaged files ({info.damage})"
    return None


class DecordDecoder(Decoder):
    """Decode with decord's ``VideoReader`` (batched ``get_batch``)."""

    name = "decord"

    @dataclass
    class Config:
        """threads: decoder threads (0 = decord picks)."""

        threads: int = 0

    def open(self, info: ContainerInfo, size: tuple[int, int] | None) -> None:
        reason = decord_refuses(info)
        if reason:
            raise DecoderFailure(reason, unsupported=not info.damage)
        try:
            import decord
        except ImportError as err:
            raise DecoderFailure("decord is not installed (pip install decord)", unsupported=True) from err
        width, height = size or (-1, -1)
        try:
            self._reader: Any = decord.VideoReader(info.path, ctx=decord.cpu(0), width=width, height=height,
                                                   num_threads=int(self.config.threads))
        except Exception as err:  # decord raises RuntimeError or its own DECORDError
            raise DecoderFailure(f"decord cannot open the file ({_last_line(err)})") from err
        if size is not None:
            self._check_resize(size)

    def _check_resize(self, size: tuple[int, int]) -> None:
        """decord's resize fails its own frame-copy check for some output widths; find out on frame 0."""
        try:
            shape = tuple(self._reader.get_batch([0]).shape)
        except Exception as err:
            shape = (_last_line(err),)
        if shape != (1, size[1], size[0], 3):
            raise DecoderFailure(f"decord cannot resize this video to {size[0]}x{size[1]} (got {shape[1:] or shape}); "
                                 "pick another size", unsupported=True)

    def frame_times(self) -> np.ndarray:
        count = len(self._reader)
        if count == 0:
            return np.zeros(0, dtype=np.float64)
        starts = np.asarray(self._reader.get_frame_timestamp(np.arange(count)), dtype=np.float64)[:, 0]
        return starts - starts[0]

    def read(self, indices: np.ndarray, deadline: float) -> np.ndarray:
        try:
            return self._reader.get_batch(indices.tolist()).asnumpy()
        except Exception as err:
            raise DecoderFailure(f"decord failed to decode frames ({_last_line(err)})") from err

    def close(self) -> None:
        self._reader = None


def _last_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__
