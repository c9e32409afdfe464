"""VidCom2: frame-uniqueness budget allocation, then the most distinctive tokens of each frame.

Liu, Wang, Ma & Zhang 2025, "Video Compression Commander: Plug-and-Play Inference Acceleration for Video Large
Language Models" (EMNLP 2025, arXiv:2505.14454); official code xuyang-liu16/VidCom2
(``token_compressor/vidcom2/vidcom2.py``: ``select_low_var_channels``, ``compute_gaussian_scores``,
``compute_scales``, ``select_outlier_indices``; the first release's ``llava/model/vidcom2.py`` scored with plain
cosine similarities, ``negtive_video_mean``, and was replaced by this Gaussian-kernel form). On the tokens
``[N, D]`` of ``F`` frames:

1. keep the ``D // 2`` channels of lowest variance over all tokens, and L2-normalise the tokens on them;
2. score every token against the video centre ``c_v`` (mean over all tokens) and its frame's centre ``c_f`` with a
   multi-scale Gaussian kernel ``k(x, c) = sum_a exp(-|x - c|^2 / (2 a))``, ``a in {1/8, 1/4, 1/2, 1, 2}``;
3. frame uniqueness ``u_f = -mean_t k(x_t, c_v)``; per-frame retention
   ``s_f = min(1, base * (1 + p_f - mean(p)))`` with ``p = softmax((u - max u) / 0.01)``, so frames unlike the
   rest of the video get more tokens; frame f keeps ``max(1, round(s_f * n_f))`` tokens;
4. inside each frame keep the tokens with the lowest ``k(x, c_v) + k(x, c_f)`` (the least typical), in order.

``vidcom2[:RATIO]`` sets ``base`` (without a ratio: ``--budget / N``; default 0.25, the paper's). The kept total
is ``base * N`` up to rounding and clipping (reported as ``kept``). Frames may have different token counts here
(the official code assumes equal ones; with equal counts both agree).

>>> import torch
>>> scales = frame_scales(torch.tensor([-3.0, -3.5, -2.0]), 0.25)
>>> [round(float(s), 4) for s in scales]
[0.1667, 0.1667, 0.4167]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mmlong.compressors.base import CompressContext, Compressor, report
from mmlong.compressors.retention import check_ratio, retained_ratio
from mmlong.types import VisualTokens

DEFAULT_RATIO = 0.25
ALPHAS = tuple(2.0 ** k for k in range(-3, 2))
TEMPERATURE = 0.01


def low_variance_channels(features: torch.Tensor) -> torch.Tensor:
    """``[N, D]`` -> ``[N, D // 2]``: the channels of lowest (biased) variance over all tokens."""
    variance = features.var(dim=0, unbiased=False)
    return features[:, torch.topk(variance, k=features.shape[1] // 2, largest=False).indices]


def gaussian_similarity(x: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """Multi-scale Gaussian kernel ``[N]`` between rows of ``x [N, C]`` and ``centre`` (``[C]`` or ``[N, C]``)."""
    dist_sq = ((x - centre) ** 2).sum(dim=-1)
    return sum(torch.exp(-dist_sq / (2.0 * a)) for a in ALPHAS)


def frame_scales(uniqueness: torch.Tensor, base: float) -> torch.Tensor:
    """Per-frame retention ratios ``[F]`` from frame uniqueness ``[F]`` (a softmax at temperature 0.01)."""
    probs = torch.softmax((uniqueness - uniqueness.max()) / TEMPERATURE, dim=0)
    return torch.clamp(base * (1.0 + probs - probs.mean()), max=1.0)


def vidcom2_keep(features: torch.Tensor, rank: torch.Tensor, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Kept token indices (sorted, int64) and per-frame retention ratios ``[F]``.

    features ``[N, D]``; rank int64 ``[N]``: the frame (0..F-1) of each token.
    """
    frames = int(rank.max()) + 1
    unit = F.normalize(low_variance_channels(features.float()), dim=-1)
    counts = torch.bincount(rank, minlength=frames)
    frame_centre = torch.zeros(frames, unit.shape[1]).index_add_(0, rank, unit) / counts.unsqueeze(1)
    video_score = gaussian_similarity(unit, unit.mean(dim=0))
    frame_score = gaussian_similarity(unit, frame_centre[rank])
    uniqueness = -(torch.zeros(frames).index_add_(0, rank, video_score) / counts)
    scales = frame_scales(uniqueness, base)
    keep = torch.clamp(torch.round(scales * counts), min=1).long()
    token_score = video_score + frame_score
    chosen = []
    for f in range(frames):
        members = torch.nonzero(rank == f).flatten()
        low = torch.topk(token_score[members], k=int(keep[f]), largest=False).indices
        chosen.append(members[low])
    return torch.sort(torch.cat(chosen)).values, scales


class VidCom2(Compressor):
    """``vidcom2[:RATIO]``: distinctive frames get more tokens; each frame keeps its least typical tokens."""

    name = "vidcom2"

    @dataclass
    class Config:
        ratio: float | None = None

        def __post_init__(self) -> None:
            check_ratio(self.ratio, "vidcom2")

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        if tokens.num_tokens == 0:
            return tokens
        base = retained_ratio(tokens.num_tokens, self.config.ratio, ctx.budget, DEFAULT_RATIO)
        _, rank = torch.unique(tokens.frame_ids, return_inverse=True)
        kept, scales = vidcom2_keep(tokens.features, rank, base)
        extra = {"frame_ratios": [round(float(s), 4) for s in scales], "kept": int(kept.shape[0])}
        return report(tokens.select(kept), extra)
