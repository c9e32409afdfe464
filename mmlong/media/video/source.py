"""Open videos and read frames at chosen indices: :func:`probe`, :func:`open_video` and :class:`VideoSource`.

Frames come back uint8 ``[T, H, W, 3]`` RGB, turned upright by the stream's display rotation and resized on
decode (``max_side`` caps the longer side, ``short_side`` sets the shorter one, aspect kept), so an 8K video
never materialises 8K frames. Timestamps come from the stream's presentation times when the frame rate varies.

Decoders are plug-ins (``DECODERS``): ``decord`` (fast, the default) and ``pyav`` (every codec FFmpeg has).
``decoder="auto"`` uses decord and falls back to PyAV when decord is missing, cannot handle the file (AV1,
rotation metadata) or fails on it. For long videos whose container indexes every frame at a constant rate
(mp4/mov, at least ``PYAV_MIN_FRAMES`` frames) ``auto`` prefers PyAV: it opens from that index in the same
time whatever the length, while decord reads every packet at open, so sparse sampling of an hour costs about
what it costs on minutes. Bad input raises a :class:`~mmlong.errors.VideoError` subclass whose text is
one line naming the file, the reason and the fix.

>>> from mmlong.assets.samples import sample_video
>>> with open_video(sample_video("bigbuckbunny"), max_side=160) as video:      # doctest: +SKIP
...     frames = video.read([0, 25, 50])
>>> tuple(frames.data.shape), frames.timestamps.tolist()                       # doctest: +SKIP
((3, 90, 160, 3), [0.0, 1.0, 2.0])
"""

from __future__ import annotations

import os
import time
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from mmlong.errors import ConfigError, CorruptVideoError, EmptyVideoError, UnsupportedCodecError, VideoTooLargeError
from mmlong.media.video.base import (
    ContainerInfo,
    Decoder,
    DecoderFailure,
    is_variable_rate,
    output_size,
    stored_size,
    to_upright,
)
from mmlong.media.video.decord_decoder import DecordDecoder, decord_refuses
from mmlong.media.video.pyav_decoder import PyAVDecoder
from mmlong.types import Frames, VideoMeta

__all__ = ["probe", "open_video", "VideoSource", "DecordDecoder", "PyAVDecoder", "DEFAULT_MAX_PIXELS"]

#: Decoded frames larger than this (4K UHD) are refused unless resized with ``max_side`` / ``short_side``.
DEFAULT_MAX_PIXELS = 3840 * 2160
DECODER_CHOICES = ("auto", "decord", "pyav")
#: ``auto`` prefers PyAV for constant-rate indexed videos with at least this many frames (2 min at 25 fps):
#: below it decord's open-time indexing costs a few milliseconds and decord stays the default.
PYAV_MIN_FRAMES = 3000


def probe(path: str | os.PathLike, decoder: str = "auto", allow_damaged: bool = False) -> VideoMeta:
    """What ``path`` holds (duration, fps, frames, upright size, codec, rotation, VFR, audio, decoder used).

    Cheap: opens the decoder (which numbers the frames, from the container index when it can) but decodes no
    frame beyond the first.
    """
    with open_video(path, decoder=decoder, max_pixels=None, allow_damaged=allow_damaged) as video:
        return video.meta


def open_video(
    path: str | os.PathLike,
    decoder: str = "auto",
    max_side: int | None = None,
    short_side: int | None = None,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    read_timeout_s: float = 120.0,
    allow_damaged: bool = False,
) -> "VideoSource":
    """Open ``path`` for reading frames; use as a context manager.

    max_side / short_side: output size (see :func:`mmlong.media.video.base.output_size`); None keeps full size.
    max_pixels: refuse (``VideoTooLargeError``) frames that would decode larger than this; None for no limit.
    read_timeout_s: a read that takes longer is stopped with ``CorruptVideoError`` (PyAV decoder).
    allow_damaged: read the intact part of a truncated file instead of raising ``CorruptVideoError``.
    """
    from mmlong.media.video.container import inspect_container

    info = inspect_container(os.fspath(path))
    if info.damage and not allow_damaged:
        raise CorruptVideoError(f"{info.damage}; re-download or re-encode it, or pass allow_damaged=True "
                                "(--allow-damaged) to read the intact part", info.path)
    size = output_size(info.width, info.height, info.rotation, max_side, short_side)
    if max_pixels is not None and size[0] * size[1] > max_pixels:
        raise VideoTooLargeError(
            f"frames would decode at {size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.1f} MP, over the "
            f"{max_pixels / 1e6:.1f} MP limit); pass max_side (e.g. --max-side 1024) to decode them resized",
            info.path)
    return VideoSource(info, decoder, size, read_timeout_s)


def _decoder_order(info: ContainerInfo, decoder: str) -> list[str]:
    if decoder == "auto":
        if decord_refuses(info):
            return ["pyav"]
        if info.indexed_constant_rate and info.declared_frames >= PYAV_MIN_FRAMES:
            return ["pyav", "decord"]
        return ["decord", "pyav"]
    from mmlong.registry import DECODERS, RegistryError

    try:
        DECODERS.resolve(decoder)
    except RegistryError as err:
        raise ConfigError(f"decoder: {err} (or auto)", info.path) from err
    return [decoder]


class VideoSource:
    """An open video: ``meta``, ``read(indices)``, ``stream(indices, chunk_size)``, ``close()``.

    ``frame_size`` is the upright (width, height) frames come out at; ``notes`` records decoder fallbacks.
    Not thread-safe: open one per worker.
    """

    def __init__(self, info: ContainerInfo, decoder: str, size: tuple[int, int], read_timeout_s: float) -> None:
        self.info = info
        self.frame_size = size
        self.notes: list[str] = []
        self._auto = decoder == "auto"
        self._read_timeout_s = float(read_timeout_s)
        full = info.upright_size
        self._decode_size = None if size == full else stored_size(size, info.rotation)
        self._decoder, name = self._open_first(_decoder_order(info, decoder))
        try:
            self.meta = self._build_meta(name)
        except Exception:
            self.close()
            raise

    # ------------------------------------------------------------------ opening
    def _open_first(self, names: Sequence[str], **options: Any) -> tuple[Decoder, str]:
        from mmlong.registry import DECODERS

        failure: DecoderFailure | None = None
        for name in names:
            candidate = DECODERS.create(name, **options)
            try:
                candidate.open(self.info, self._decode_size)
                if name != names[0]:
                    self.notes.append(f"{names[0]} could not open the file ({failure}); using {name}")
                return candidate, name
            except DecoderFailure as err:
                failure = err
                candidate.close()
        raise self._as_video_error(failure, names[-1])

    def _as_video_error(self, failure: DecoderFailure | None, name: str) -> Exception:
        if failure is not None and failure.unsupported:
            return UnsupportedCodecError(f"{failure}; use decoder 'pyav' or 'auto' (--decoder pyav)", self.info.path)
        hint = "; try --decoder pyav" if name == "decord" else "; the file is damaged, re-encode it"
        return CorruptVideoError(f"{name}: {failure}{hint}", self.info.path)

    def _build_meta(self, decoder_name: str) -> VideoMeta:
        times = self._decoder.frame_times()
        count = len(times)
        if count == 0:
            raise EmptyVideoError("the video stream has no frames", self.info.path)
        variable = is_variable_rate(times)
        if variable:
            duration = float(times[-1] + np.median(np.diff(times)))
            fps = count / duration
        else:
            fps = self.info.fps if self.info.fps > 0 else (count - 1) / max(float(times[-1]), 1e-9)
            duration = count / fps if fps > 0 else float(times[-1])
        width, height = self.info.upright_size
        return VideoMeta(
            path=self.info.path,
            duration=duration,
            fps=fps,
            num_frames=count,
            width=width,
            height=height,
            codec=self.info.codec,
            decoder=decoder_name,
            rotation=self.info.rotation,
            variable_frame_rate=variable,
            has_audio=self.info.has_audio,
            frame_times=tuple(times.tolist()) if variable else None,
        )

    # ------------------------------------------------------------------ reading
    def read(self, indices: Any) -> Frames:
        """Frames at ``indices`` (any order, repeats allowed), upright, at ``frame_size``."""
        from mmlong.types import timestamps_of

        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        count = self.meta.num_frames
        if len(idx) and (idx.min() < 0 or idx.max() >= count):
            bad = int(idx.min()) if idx.min() < 0 else int(idx.max())
            raise IndexError(f"{self.info.path}: frame index {bad} is out of range 0..{count - 1}")
        width, height = self.frame_size
        if len(idx) == 0:
            data = np.zeros((0, height, width, 3), dtype=np.uint8)
        else:
            unique, inverse = np.unique(idx, return_inverse=True)
            data = to_upright(self._decode(unique), self.info.rotation)
            if len(unique) != len(idx) or not np.array_equal(unique, idx):
                data = data[inverse.reshape(-1)]
        return Frames(
            data=torch.from_numpy(np.ascontiguousarray(data)),
            indices=torch.from_numpy(idx.copy()),
            timestamps=torch.from_numpy(timestamps_of(self.meta, idx)),
            meta=self.meta,
        )

    def stream(self, indices: Any, chunk_size: int = 32) -> Iterator[Frames]:
        """``read`` in chunks of at most ``chunk_size`` frames, in the order given (memory: one chunk)."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        for start in range(0, len(idx), chunk_size):
            yield self.read(idx[start:start + chunk_size])

    def _decode(self, unique: np.ndarray) -> np.ndarray:
        expected = tuple(reversed(self._decode_size or (self.info.width, self.info.height)))
        try:
            data = self._decoder.read(unique, time.monotonic() + self._read_timeout_s)
            if data.shape[1:3] != expected:
                raise DecoderFailure(f"frames came out {data.shape[2]}x{data.shape[1]}, expected "
                                     f"{expected[1]}x{expected[0]}")
            return data
        except DecoderFailure as err:
            options: dict[str, Any] = {}
            if err.stale_index:
                self.notes.append(f"{err}; re-indexed by demuxing every packet")
                options = {"frame_index": "demux"}
            elif self._auto and self.meta.decoder == "decord":
                self.notes.append(f"decord failed ({err}); switched to pyav")
            else:
                raise CorruptVideoError(f"{self.meta.decoder}: {err}", self.info.path) from err
        self._decoder.close()
        self._decoder, _ = self._open_first(["pyav"], **options)
        previous = self.meta
        self.meta = self._build_meta("pyav")
        if self.meta.num_frames < previous.num_frames and unique.max() >= self.meta.num_frames:
            raise CorruptVideoError(f"only {self.meta.num_frames} of {previous.num_frames} frames can be read",
                                    self.info.path)
        return self._decode(unique)

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        decoder = getattr(self, "_decoder", None)
        if decoder is not None:
            decoder.close()
            self._decoder = None

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        m = self.meta
        return (f"VideoSource({m.path!r}, {m.num_frames} frames, {m.duration:.1f} s, {m.decoder}, "
                f"out {self.frame_size[0]}x{self.frame_size[1]})")

