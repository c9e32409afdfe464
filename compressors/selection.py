"""Query-aware frame selection: keep the frames that matter for the question, spread over the video.

Each frame (its size-weighted mean feature) is scored against the question and options with the encoder's
text-image relevance (``encoder.relevance``), as in query-guided frame selection for long-video QA (e.g.
Yu et al. 2023, "Self-Chained Image-Language Model for Video Localization and Question Answering"; Wang et al.
2024, "VideoAgent"). Frames are then picked greedily by maximal marginal relevance with a temporal kernel
(:func:`~mmlong.compressors.frame_scoring.diverse_top`), so one event's neighbouring frames cannot crowd out
the others, and kept in time order. Without a question or a text side, frames are scored by novelty.

``select:N`` keeps N frames; plain ``select`` keeps as many as fit ``ctx.budget``. The sampler form
``query:N[,scan_fps=1]`` scans the video cheaply, finds the moments that match the question and returns dense
frame indices around them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mmlong.compressors.frame_scoring import diverse_top, frame_scores, require_scan_context, scan_video, score_frames
from mmlong.compressors.base import CompressContext, Compressor, report
from mmlong.errors import ConfigError
from mmlong.sampling import SampleContext, Sampled, Sampler, frames_at, uniform_indices
from mmlong.types import VideoMeta, VisualTokens


class QuerySelect(Compressor):
    """``select[:N][,diversity=0.5]``: keep the N most relevant, temporally diverse frames; without N, as many
    as fit ``ctx.budget``.

    The Step's ``extra`` carries ``frame_times``, ``scores``, ``selected`` (one entry per frame present) and
    ``scored_by`` (``query`` or ``novelty``).
    """

    name = "select"

    @dataclass
    class Config:
        frames: int | None = None
        diversity: float = 0.5

        def __post_init__(self) -> None:
            if self.frames is not None and self.frames < 1:
                raise ValueError(f"select needs at least 1 frame, got {self.frames}")
            if self.diversity < 0:
                raise ValueError(f"select diversity must be 0 or more, got {self.diversity}")

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        if self.config.frames is None and ctx.budget is None:
            raise ConfigError("select needs a frame count (select:8) or a token budget (--budget N)")
        if tokens.num_tokens == 0:
            return tokens
        scored = frame_scores(tokens, ctx.query, ctx.encoder)
        rank = torch.searchsorted(scored.ids, tokens.frame_ids)
        costs = torch.bincount(rank, minlength=scored.ids.shape[0])
        budget = ctx.budget if self.config.frames is None else None  # an explicit count wins, as in pool:S
        chosen = diverse_top(scored.scores, scored.times, self.config.frames, self.config.diversity,
                             costs.tolist(), budget)
        selected = torch.zeros(scored.ids.shape[0], dtype=torch.bool)
        selected[chosen] = True
        out = tokens.select(selected[rank])
        return report(out, scored.to_extra(selected))


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
        scan, features = scan_video(ctx.source, ctx.encoder, cfg.scan_fps, cfg.max_scan, cfg.batch_size)
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
