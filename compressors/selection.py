"""Query-aware frame selection: keep the frames that matter for the question, spread over the video.

Each frame (its size-weighted mean feature) is scored against the question and options with the encoder's
text-image relevance (``encoder.relevance``), as in query-guided frame selection for long-video QA (e.g.
Yu et al. 2023, "Self-Chained Image-Language Model for Video Localization and Question Answering"; Wang et al.
2024, "VideoAgent"). Frames are then picked greedily by maximal marginal relevance with a temporal kernel
(:func:`~mmlong.scoring.frames.diverse_top`), so one event's neighbouring frames cannot crowd out
the others, and kept in time order. Without a question or a text side, frames are scored by novelty.

Reference: greedy maximal marginal relevance (Carbonell & Goldstein 1998) over min-max normalised frame
scores with a temporal kernel as the redundancy term; the combination is mmlong's own (a baseline), not one
paper's method.

``select:N`` keeps N frames; plain ``select`` keeps as many as fit ``ctx.budget``. The sampler form
``query:N[,scan_fps=1]`` scans the video cheaply, finds the moments that match the question and returns dense
frame indices around them (:class:`mmlong.sampling.scan.QuerySampler`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmlong.compressors.base import CompressContext, Compressor, report
from mmlong.errors import ConfigError
from mmlong.scoring.frames import diverse_top, frame_scores
from mmlong.types import VisualTokens


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
