"""Frame samplers: which frames of a video to decode, chosen from its :class:`~mmlong.types.VideoMeta`.

Built-ins: ``uniform:N`` (N frames at the centres of N equal segments, as common VLM evaluations do),
``fps:F[,max_frames=M]`` (F frames a second; more than M falls back to uniform M) and ``window:START-END``
(seconds or [h:]mm:ss, joined to an inner sampler with ``+``: ``window:60-120+uniform:16``). Other names come
from the ``SAMPLERS`` registry (``scene:4``, ``query:32``). All are vectorised over indices, so an hour-long
video costs no more than a short one to sample.

>>> meta = VideoMeta("v.mp4", duration=10.0, fps=10.0, num_frames=100, width=64, height=48)
>>> build_sampler("uniform:4").sample(meta).indices.tolist()
[12, 37, 62, 87]
>>> build_sampler("fps:0.5").sample(meta).timestamps.tolist()
[0.0, 2.0, 4.0, 6.0, 8.0]
>>> build_sampler("window:2-4+uniform:2").sample(meta).indices.tolist()
[25, 35]
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from mmlong.errors import ConfigError
from mmlong.qa import Query
from mmlong.types import Frames, VideoMeta, timestamps_of

_EPS = 1e-9


@dataclass(frozen=True)
class Sampled:
    """Chosen frames: indices int64 ``[T]`` (frame numbers) and their timestamps float64 ``[T]`` (seconds)."""

    indices: torch.Tensor
    timestamps: torch.Tensor

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @staticmethod
    def from_indices(meta: VideoMeta, indices: Any) -> "Sampled":
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return Sampled(torch.from_numpy(idx.copy()), torch.from_numpy(timestamps_of(meta, idx)))


@dataclass
class SampleContext:
    """What a smart sampler may consult: the query, an encoder, the open source (``source.read(indices)``) and the
    feature cache (:class:`~mmlong.cache.FeatureCache`, or None) where a scan of the video is kept; ``feed``: a
    :class:`~mmlong.frame_feed.FrameFeed` a scanning sampler puts the chunks it decodes into (an expert reads
    them instead of decoding the video again), or None."""

    query: Query | None = None
    encoder: Any = None
    source: Any = None
    cache: Any = None
    feed: Any = None


def frames_at(meta: VideoMeta, times: Any) -> np.ndarray:
    """int64 ``[T]``: the frame on screen at each time (the last one starting at or before it), clamped."""
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    if meta.frame_times is not None:
        idx = np.searchsorted(np.asarray(meta.frame_times, dtype=np.float64), t + _EPS, side="right") - 1
    else:
        idx = np.floor(t * meta.fps + _EPS).astype(np.int64)
    return np.clip(idx, 0, max(meta.num_frames - 1, 0)).astype(np.int64)


def first_frame_from(meta: VideoMeta, time: float) -> int:
    """Index of the first frame starting at or after ``time`` (``num_frames`` when none does)."""
    if meta.frame_times is not None:
        return int(np.searchsorted(np.asarray(meta.frame_times, dtype=np.float64), time - _EPS, side="left"))
    return min(int(np.ceil(time * meta.fps - _EPS)), meta.num_frames)


class Sampler:
    """Base class. Subclasses set ``name`` and a ``Config`` dataclass and implement :meth:`sample`.

    ``needs_encoder`` / ``needs_query``: the pipeline passes an encoder / treats the sample as query-specific.
    """

    name: ClassVar[str] = "sampler"
    needs_encoder: ClassVar[bool] = False
    needs_query: ClassVar[bool] = False

    @dataclass
    class Config:
        pass

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()

    def sample(self, meta: VideoMeta, ctx: SampleContext | None = None) -> Sampled:
        raise NotImplementedError(f"{type(self).__name__} must implement sample()")

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config) if dataclasses.is_dataclass(self.config) else {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"


def uniform_indices(num_frames: int, count: int) -> np.ndarray:
    """Centres of ``count`` equal segments of ``num_frames`` frames: ``floor((i + 0.5) * n / count)``."""
    if count >= num_frames:
        return np.arange(num_frames, dtype=np.int64)
    i = np.arange(count, dtype=np.int64)
    return ((2 * i + 1) * num_frames) // (2 * count)


class UniformSampler(Sampler):
    """``uniform:N``: N frames at the centres of N equal segments (all frames when the video has fewer).

    Segments are equal in frame count, or in time when the frame rate varies.
    """

    name = "uniform"

    @dataclass
    class Config:
        num_frames: int = 32

        def __post_init__(self) -> None:
            if self.num_frames < 1:
                raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")

    def sample(self, meta: VideoMeta, ctx: SampleContext | None = None) -> Sampled:
        count = self.config.num_frames
        if meta.frame_times is None or count >= meta.num_frames:
            return Sampled.from_indices(meta, uniform_indices(meta.num_frames, count))
        centres = (np.arange(count) + 0.5) * meta.duration / count
        return Sampled.from_indices(meta, np.unique(frames_at(meta, centres)))


class FpsSampler(Sampler):
    """``fps:F[,max_frames=M]``: the frame on screen at 0, 1/F, 2/F, ... s; more than M falls back to uniform M."""

    name = "fps"

    @dataclass
    class Config:
        fps: float = 1.0
        max_frames: int | None = None

        def __post_init__(self) -> None:
            if not math.isfinite(self.fps) or self.fps <= 0:
                raise ValueError(f"fps must be a positive finite number, got {self.fps}")
            if self.max_frames is not None and self.max_frames < 1:
                raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")

    def sample(self, meta: VideoMeta, ctx: SampleContext | None = None) -> Sampled:
        cfg = self.config
        wanted = meta.duration * cfg.fps  # may overflow to inf for absurd rates: never allocated
        if (meta.fps > 0 and cfg.fps >= meta.fps) or not wanted < meta.num_frames:
            # at or above the video's own rate every frame is on screen at some sample time
            count, every_frame = meta.num_frames, True
        else:
            count, every_frame = max(1, int(np.ceil(wanted - _EPS))), False
        if cfg.max_frames is not None and count > cfg.max_frames:
            return UniformSampler(UniformSampler.Config(cfg.max_frames)).sample(meta, ctx)
        if every_frame:
            return Sampled.from_indices(meta, np.arange(meta.num_frames, dtype=np.int64))
        indices = frames_at(meta, np.arange(count, dtype=np.float64) / cfg.fps)
        return Sampled.from_indices(meta, np.unique(indices))


def parse_time(text: str) -> float:
    """``"90"``, ``"1:30"``, ``"0:01:30.5"`` -> seconds."""
    parts = text.strip().split(":")
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise ValueError(f"bad time {text!r}; use seconds or [h:]mm:ss")
    seconds = 0.0
    for part in parts:
        try:
            seconds = seconds * 60 + float(part)
        except ValueError:
            raise ValueError(f"bad time {text!r}; use seconds or [h:]mm:ss") from None
    if not math.isfinite(seconds):
        raise ValueError(f"bad time {text!r}: not a finite number of seconds")
    if seconds < 0:
        raise ValueError(f"time must not be negative: {text!r}")
    return seconds


def parse_span(text: str) -> tuple[float, float | None]:
    """``"60-120"`` -> ``(60.0, 120.0)``; ``"60-"`` -> ``(60.0, None)`` (to the end); ``"1:00-2:00"``."""
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(f"bad window {text!r}; use START-END in seconds or [h:]mm:ss, e.g. 60-120")
    lo = parse_time(start) if start.strip() else 0.0
    hi = parse_time(end) if end.strip() else None
    if hi is not None and hi <= lo:
        raise ValueError(f"window {text!r} ends before it starts")
    return lo, hi


class _WindowView:
    """A source seen through a window: indices and times relative to the window's first frame."""

    def __init__(self, source: Any, first: int, meta: VideoMeta) -> None:
        self.source, self.first, self.meta = source, first, meta

    @property
    def offset(self) -> int:
        """Frame number, in the whole video, of the window's frame 0."""
        return int(getattr(self.source, "offset", 0)) + self.first

    @property
    def frame_size(self) -> Any:
        return getattr(self.source, "frame_size", None)

    def read(self, indices: Any) -> Frames:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        frames = self.source.read(idx + self.first)
        return Frames(frames.data, torch.from_numpy(idx.copy()), torch.from_numpy(timestamps_of(self.meta, idx)),
                      self.meta)

    def stream(self, indices: Any, chunk_size: int = 32) -> Any:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        for start in range(0, len(idx), chunk_size):
            yield self.read(idx[start:start + chunk_size])


class WindowSampler(Sampler):
    """``window:START-END[+INNER]``: run the inner sampler (default ``uniform:32``) on frames in [START, END) s."""

    name = "window"

    @dataclass
    class Config:
        span: str = "0-"
        inner: str = "uniform:32"

        def __post_init__(self) -> None:
            parse_span(self.span)

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        if self.config.inner.split(":", 1)[0].strip() == "window":
            raise ConfigError("a window's inner sampler cannot be another window")
        self.inner = build_sampler(self.config.inner)

    @property
    def needs_encoder(self) -> bool:  # type: ignore[override]
        return self.inner.needs_encoder

    @property
    def needs_query(self) -> bool:  # type: ignore[override]
        return self.inner.needs_query

    def sample(self, meta: VideoMeta, ctx: SampleContext | None = None) -> Sampled:
        start, end = parse_span(self.config.span)
        end = meta.duration if end is None else min(end, meta.duration)
        first = first_frame_from(meta, start)
        stop = first_frame_from(meta, end)
        if start >= meta.duration or stop <= first:
            raise ConfigError(f"window {self.config.span} s holds no frame of this {meta.duration:.1f} s video",
                              meta.path)
        offset = float(timestamps_of(meta, [first])[0])
        frame_times = None
        if meta.frame_times is not None:
            frame_times = tuple((np.asarray(meta.frame_times[first:stop]) - offset).tolist())
        fps = meta.fps
        window_meta = dataclasses.replace(meta, num_frames=stop - first, frame_times=frame_times,
                                          duration=(stop - first) / fps if frame_times is None else end - offset)
        ctx = ctx or SampleContext()
        source = _WindowView(ctx.source, first, window_meta) if ctx.source is not None else None
        inner = self.inner.sample(window_meta, dataclasses.replace(ctx, source=source))
        return Sampled.from_indices(meta, inner.indices.numpy() + first)


def build_sampler(spec: str) -> Sampler:
    """A sampler from a spec: ``uniform:16``, ``fps:1,max_frames=64``, ``window:60-120+uniform:16``, ``scene:4``."""
    from mmlong.registry import SAMPLERS, RegistryError
    from mmlong.spec import SpecError

    pieces = [p.strip() for p in str(spec).split("+")]
    try:
        if len(pieces) == 1:
            return SAMPLERS.from_spec(pieces[0])
        windows = [p for p in pieces if p.split(":", 1)[0].strip() == "window"]
        if len(pieces) != 2 or len(windows) != 1:
            raise ConfigError(f"sampler {spec!r}: '+' joins one window and one inner sampler, "
                              "e.g. window:60-120+uniform:16")
        inner = pieces[1] if pieces[0] == windows[0] else pieces[0]
        return SAMPLERS.from_spec(windows[0], inner=inner)
    except (RegistryError, SpecError) as err:
        raise ConfigError(f"sampler {spec!r}: {err}") from err
