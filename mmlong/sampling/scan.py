"""Samplers that look at the video before choosing frames: a cheap scan, encoded, then the frames to decode.

- ``scene:N`` (:class:`SceneSampler`): SceneTilling (:mod:`mmlong.compressors.scenetiling`) on the scan cuts
  the video into scenes, then N frames per scene;
- ``query:N`` (:class:`QuerySampler`): the scan is scored against the question
  (:mod:`mmlong.scoring.frames`) and frames are sampled densely around the best moments.

Both need an open video and an encoder (:class:`~mmlong.sampling.basic.SampleContext`); :func:`scan_video` is their
shared scan, stored in the feature cache when the context carries one (the pipeline's), so asking again about
the same video skips the scan's decoding and encoding.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from mmlong.compressors.scenetiling import segment_boundaries
from mmlong.sampling.basic import SampleContext, Sampled, Sampler, frames_at, uniform_indices
from mmlong.scoring.frames import diverse_top, score_frames
from mmlong.types import VideoMeta, VisualTokens


def scan_video(
    source: Any, encoder: Any, scan_fps: float, max_frames: int, batch_size: int = 16, cache: Any = None
) -> tuple[Sampled, torch.Tensor]:
    """Cheap pass over a video for smart samplers: ``scan_fps`` frames a second (at most ``max_frames``,
    spread uniformly beyond that), decoded and encoded ``batch_size`` at a time so memory stays bounded.

    source: an open video (``.meta``, ``.stream(indices, chunk_size)``, ``.frame_size``). Returns
    ``(Sampled, [S, D])``: the scanned frames and their size-weighted mean features. With a
    :class:`~mmlong.cache.FeatureCache` the means are stored under a key of (video content, scanned frames,
    decoded size, encoder + weights), so a second run on the same video decodes and encodes nothing for the scan.
    """
    from mmlong.sampling.basic import FpsSampler

    scan = FpsSampler(FpsSampler.Config(fps=scan_fps, max_frames=max_frames)).sample(source.meta)
    key = scan_cache_key(cache, source, encoder, scan) if cache is not None else None
    hit = cache.get(key, _scan_check(encoder, source, len(scan))) if key is not None else None
    if hit is not None:
        return scan, hit.features
    means = [encoder.encode(frames).frame_means()[2] for frames in source.stream(scan.indices, chunk_size=batch_size)]
    features = torch.cat(means)
    if key is not None:
        grid = features.reshape(len(scan), 1, 1, -1)
        cache.put(key, VisualTokens.from_grid(grid, scan.timestamps, meta={"scan": {"fps": scan_fps}}))
    return scan, features


def _scan_check(encoder: Any, source: Any, count: int) -> Any:
    """What a cached scan must be: one ``width``-d mean per scanned frame, at times inside the video."""
    from mmlong.cache import check_tokens

    width = encoder.feature_dim() if hasattr(encoder, "feature_dim") else None
    duration = float(source.meta.duration or 0) or None

    def check(tokens: Any) -> None:
        check_tokens(tokens, width=width, duration=duration, frames=count)
        if tokens.num_tokens != count:
            raise ValueError(f"{tokens.num_tokens} scanned frames stored; {count} were scanned")

    return check


def scan_cache_key(cache: Any, source: Any, encoder: Any, scan: Sampled, kind: str = "scan") -> str | None:
    """The feature-cache key of a scan, or None when the encoder cannot identify its weights (no ``cache_id``).

    The scanned frame numbers are counted from the file's start (a window view's ``offset`` added), and the
    decoded ``frame_size`` stands for the decode options; ``kind`` tells scans of different features apart
    (e.g. ``"pooled96"``: the coverage sampler's 96 px pooled features).
    """
    cache_id = getattr(encoder, "cache_id", None)
    if not callable(cache_id):
        return None
    absolute = scan.indices.numpy() + int(getattr(source, "offset", 0))
    digest = hashlib.sha256(absolute.tobytes()).hexdigest()[:16]
    size = getattr(source, "frame_size", None)
    return cache.key(source.meta.path, f"{kind}|{digest}", {"frame_size": list(size) if size else None}, cache_id())


def require_scan_context(ctx: Any, sampler: str) -> None:
    """Raise a clear error when a smart sampler runs without an open video or an encoder."""
    from mmlong.errors import ConfigError

    if ctx is None or ctx.source is None or ctx.encoder is None:
        raise ConfigError(f"sampler {sampler!r} scans the video with the encoder: run it through the pipeline "
                          "(mmlong ask --sample ...) or pass SampleContext(source=..., encoder=...)")


def scene_spans(frame_times: Sequence[float], ends: Sequence[int], duration: float) -> list[tuple[float, float]]:
    """Time spans of scenes given the index of each scene's last frame.

    A scene runs from its first frame's time to the next scene's first frame's time; the last one runs to the
    end of the video.

    >>> scene_spans([0.0, 1.0, 2.0, 3.0], [1, 3], duration=4.0)
    [(0.0, 2.0), (2.0, 4.0)]
    """
    times = [float(t) for t in frame_times]
    if not times:
        return []
    starts = [0] + [int(e) + 1 for e in ends if int(e) + 1 < len(times)]
    starts = sorted(set(starts))
    spans = []
    for k, start in enumerate(starts):
        begin = 0.0 if k == 0 else times[start]
        end = times[starts[k + 1]] if k + 1 < len(starts) else max(float(duration), times[-1])
        spans.append((begin, end))
    return spans


class SceneSampler(Sampler):
    """``scene:N[,scan_fps=1]``: cut the video into scenes from a cheap scan, then N frames per scene.

    The scan encodes ``scan_fps`` frames a second (at most ``max_scan``); SceneTilling on their features gives
    the scenes; each scene gets N frames at the centres of N equal parts of its time span.
    """

    name = "scene"
    needs_encoder = True

    @dataclass
    class Config:
        per_scene: int = 4
        scan_fps: float = 1.0
        max_scan: int = 256
        alpha: float = 0.5
        max_segments: int = 16
        batch_size: int = 16

        def __post_init__(self) -> None:
            if self.per_scene < 1 or self.max_scan < 1 or self.max_segments < 1 or self.batch_size < 1:
                raise ValueError("scene sampler: per_scene, max_scan, max_segments and batch_size must be >= 1")
            if self.scan_fps <= 0:
                raise ValueError(f"scene sampler: scan_fps must be positive, got {self.scan_fps}")

    def scenes(self, meta: VideoMeta, ctx: SampleContext | None) -> list[tuple[float, float]]:
        """The scenes' time spans found by the scan."""
        require_scan_context(ctx, self.name)
        cfg = self.config
        scan, features = scan_video(ctx.source, ctx.encoder, cfg.scan_fps, cfg.max_scan, cfg.batch_size, ctx.cache)
        ends = segment_boundaries(features, cfg.alpha, None, cfg.max_segments)
        return scene_spans(scan.timestamps.tolist(), ends, meta.duration)

    def sample(self, meta: VideoMeta, ctx: SampleContext | None = None) -> Sampled:
        n = self.config.per_scene
        times = [begin + (np.arange(n) + 0.5) / n * (end - begin) for begin, end in self.scenes(meta, ctx)]
        return Sampled.from_indices(meta, np.unique(frames_at(meta, np.concatenate(times))))


def frames_around(meta: VideoMeta, moments: list[float], counts: list[int], half_width: float) -> np.ndarray:
    """Frame indices: ``counts[m]`` frames evenly inside ``[moments[m] - half_width, moments[m] + half_width]``
    (clamped to the video), all moments together, sorted and unique."""
    times = []
    for centre, count in zip(moments, counts):
        if count > 0:
            offsets = ((np.arange(count) + 0.5) / count * 2.0 - 1.0) * half_width
            times.append(np.clip(centre + offsets, 0.0, max(meta.duration, 0.0)))
    if not times:
        return np.zeros(0, dtype=np.int64)
    return np.unique(frames_at(meta, np.concatenate(times)))


class QuerySampler(Sampler):
    """``query:N[,scan_fps=1][,moments=M]``: find the moments that match the question, sample densely there.

    Scans ``scan_fps`` frames a second (at most ``max_scan``) with the encoder, scores them against the question
    and options (novelty without a question), picks ``M`` diverse moments (default ``ceil(N / 4)``) and returns N
    frame indices spread over a window of one scan interval around each moment (the best moments get the
    remainder); when windows overlap, uniformly spread frames fill up to N.
    """

    name = "query"
    needs_encoder = True
    needs_query = True

    @dataclass
    class Config:
        frames: int = 32
        scan_fps: float = 1.0
        moments: int | None = None
        max_scan: int = 256
        diversity: float = 0.5
        batch_size: int = 16

        def __post_init__(self) -> None:
            if self.frames < 1 or self.max_scan < 1 or self.batch_size < 1:
                raise ValueError("query sampler: frames, max_scan and batch_size must be at least 1")
            if self.scan_fps <= 0:
                raise ValueError(f"query sampler: scan_fps must be positive, got {self.scan_fps}")
            if self.moments is not None and self.moments < 1:
                raise ValueError(f"query sampler: moments must be at least 1, got {self.moments}")

    def sample(self, meta: VideoMeta, ctx: SampleContext | None = None) -> Sampled:
        require_scan_context(ctx, self.name)
        cfg = self.config
        scan, features = scan_video(ctx.source, ctx.encoder, cfg.scan_fps, cfg.max_scan, cfg.batch_size, ctx.cache)
        scores, _ = score_frames(features, ctx.query, ctx.encoder)
        moments = min(cfg.moments or math.ceil(cfg.frames / 4), len(scan))
        chosen = diverse_top(scores, scan.timestamps, moments, cfg.diversity)
        by_score = chosen[torch.argsort(scores[chosen], descending=True, stable=True)]
        counts = [cfg.frames // len(by_score) + (1 if i < cfg.frames % len(by_score) else 0)
                  for i in range(len(by_score))]
        interval = meta.duration / len(scan) if len(scan) else meta.duration
        picked = frames_around(meta, [float(scan.timestamps[i]) for i in by_score], counts, interval / 2.0)
        if len(picked) < min(cfg.frames, meta.num_frames):
            spare = np.setdiff1d(uniform_indices(meta.num_frames, cfg.frames), picked)
            need = min(cfg.frames - len(picked), len(spare))
            picked = np.union1d(picked, spare[np.linspace(0, len(spare) - 1, need).round().astype(np.int64)])
        return Sampled.from_indices(meta, picked)
