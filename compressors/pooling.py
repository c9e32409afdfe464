"""Spatial, temporal and progressive pooling of visual tokens: baselines, not one paper's published method.

- ``pool:S`` pools each frame's ``h x w`` grid to ``ceil(h/S) x ceil(w/S)`` cells: a size-weighted average of
  the tokens in each cell (``mode=avg``) or, for frames whose grid is complete, a bilinear resize of the grid
  (``mode=bilinear``; the 2x bilinear pooling of LLaVA-OneVision, Li et al. 2024, "LLaVA-OneVision: Easy
  Visual Task Transfer"). ``pool:auto`` picks the smallest factor that meets the token budget.
- ``tpool:K`` averages the same cell over ``K`` adjacent frames (``tpool:auto`` meets the budget).
- ``progressive`` keeps the most important frames at full resolution and pools the rest harder until the
  budget is met: the progressive pooling idea of Wei & Chen 2024, "Visual Context Window Extension: A New
  Perspective for Long Video Understanding". Importance is query relevance when the question and an encoder
  with a text side are known, otherwise frame novelty.

Cells are found from each token's own position, so pooling works on any encoder grid and on frames that are
already irregular (after selection or merging). Tokens change only through ``merge`` and ``replace``.

References and deviations: ``pool`` is plain S x S average pooling (``avg_pool2d(ceil_mode=True)``; a partial
edge cell averages what it holds) and, with ``mode=bilinear``, LLaVA-OneVision's
``interpolate(size=ceil(h/S), mode="bilinear")``; averages are size-weighted, which equals them for fresh
tokens. ``tpool`` puts a pooled token at its group's first frame in the encoder's t units (so Qwen2-VL M-RoPE
sees whole temporal-patch positions). ``progressive`` follows the paper's idea (full resolution for the
important frames, coarser pooling for the rest) with mmlong's own schedule: importance by query relevance or
novelty and the ladder ``factor, factor**2, ...`` until the budget is met.

>>> import torch
>>> from mmlong.types import VisualTokens
>>> grid = torch.arange(16.0).reshape(1, 4, 4, 1)
>>> out = SpatialPool(SpatialPool.Config(2))(VisualTokens.from_grid(grid, torch.zeros(1)))
>>> out.features.flatten().tolist(), out.sizes.tolist(), out.grid
([2.5, 4.5, 10.5, 12.5], [4.0, 4.0, 4.0, 4.0], (1, 2, 2))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from mmlong.compressors.base import CompressContext, Compressor, report
from mmlong.errors import ConfigError
from mmlong.scoring.frames import frame_scores
from mmlong.types import VisualTokens


# ---------------------------------------------------------------------- pure functions
def cell_groups(frame_key: torch.Tensor, positions: torch.Tensor, factor: torch.Tensor | int) -> torch.Tensor:
    """Group id ``[N]`` of each token's pooling cell.

    frame_key: int64 ``[N]`` (tokens with equal keys pool together); positions: ``[N, 3]`` (t, h, w);
    factor: int or int64 ``[N]`` cell size per token. The cell of a token is ``(key, floor(h/S), floor(w/S))``.
    """
    s = torch.as_tensor(factor, dtype=torch.float64)
    cells = torch.floor(positions[:, 1:].to(torch.float64) / (s.unsqueeze(-1) if s.ndim else s)).long()
    keys = torch.cat([frame_key.long().unsqueeze(1), cells], dim=1)
    return torch.unique(keys, dim=0, return_inverse=True)[1]


def num_cells(tokens: VisualTokens, factor: torch.Tensor | int) -> int:
    """How many tokens :func:`spatial_pool` with ``factor`` would leave."""
    return int(cell_groups(tokens.frame_ids, tokens.positions, factor).max()) + 1 if tokens.num_tokens else 0


def _bilinear_features(tokens: VisualTokens, merged: VisualTokens, factor: int) -> torch.Tensor:
    """Features of ``merged`` with every complete frame's grid bilinearly resized (others stay averaged)."""
    _, h, w = tokens.grid
    oh, ow = math.ceil(h / factor), math.ceil(w / factor)
    pos = tokens.positions
    integral = (pos[:, 1:] == pos[:, 1:].round()).all(dim=1)
    valid = integral & (pos[:, 1] >= 0) & (pos[:, 1] < h) & (pos[:, 2] >= 0) & (pos[:, 2] < w)
    ids, inverse = torch.unique(tokens.frame_ids, return_inverse=True)
    cells = torch.unique(inverse[valid] * (h * w) + pos[valid, 1].long() * w + pos[valid, 2].long())
    distinct = torch.bincount(cells // (h * w), minlength=ids.shape[0])
    count = torch.bincount(inverse, minlength=ids.shape[0])
    complete = (count == h * w) & (distinct == h * w)
    features = merged.features.clone()
    if not bool(complete.any()):
        return features
    full = complete[inverse]
    dense = torch.zeros(ids.shape[0], h * w, tokens.dim, dtype=tokens.features.dtype)
    dense[inverse[full], (pos[full, 1].long() * w + pos[full, 2].long())] = tokens.features[full]
    dense = dense[complete].reshape(-1, h, w, tokens.dim).permute(0, 3, 1, 2)
    resized = F.interpolate(dense.float(), size=(oh, ow), mode="bilinear", align_corners=False)
    resized = resized.permute(0, 2, 3, 1).to(features.dtype)  # [F_complete, oh, ow, D]
    slot = torch.full((ids.shape[0],), -1, dtype=torch.long)
    slot[complete] = torch.arange(int(complete.sum()))
    m_frame = torch.searchsorted(ids, merged.frame_ids)
    m_slot = slot[m_frame]
    take = m_slot >= 0
    mh, mw = merged.positions[take, 1].long(), merged.positions[take, 2].long()
    features[take] = resized[m_slot[take], mh, mw]
    return features


def spatial_pool(tokens: VisualTokens, factor: int, mode: str = "avg") -> VisualTokens:
    """Pool each frame's grid by ``factor``: ``[N, D]`` -> ``[N', D]`` on the ``(T, ceil(h/S), ceil(w/S))`` grid.

    Sizes add up; a pooled token's position is its cell's (t, row, column) in the coarser grid.
    """
    if factor == 1 or tokens.num_tokens == 0:
        return tokens
    merged = tokens.merge(cell_groups(tokens.frame_ids, tokens.positions, factor))
    positions = merged.positions.clone()
    positions[:, 1:] = torch.floor(positions[:, 1:] / factor)
    t, h, w = tokens.grid
    merged = merged.replace(positions=positions, grid=(t, math.ceil(h / factor), math.ceil(w / factor)))
    if mode == "bilinear":
        merged = merged.replace(features=_bilinear_features(tokens, merged, factor))
    return merged


def temporal_pool(tokens: VisualTokens, factor: int) -> VisualTokens:
    """Average the same (row, column) cell over ``factor`` adjacent frames still present.

    ``[N, D]`` -> ``[N', D]``; a pooled token's t position is that of the group's first frame, in the units the
    encoder gave (so a Qwen2-VL token pooled over temporal patches 2 and 3 sits at patch 2, not at group 1);
    the grid's T becomes the number of groups.
    """
    if factor == 1 or tokens.num_tokens == 0:
        return tokens
    _, rank = torch.unique(tokens.frame_ids, return_inverse=True)
    group = rank // factor
    cells = cell_groups(group, tokens.positions, 1)
    merged = tokens.merge(cells)
    positions = merged.positions.clone()
    first_t = torch.full((int(cells.max()) + 1,), float("inf"), dtype=tokens.positions.dtype)
    first_t = first_t.scatter_reduce(0, cells, tokens.positions[:, 0], "amin")
    positions[:, 0] = first_t[cells[torch.tensor(_first_members(cells))]]
    _, h, w = tokens.grid
    return merged.replace(positions=positions, grid=(int(group.max()) + 1, h, w))


def _first_members(groups: torch.Tensor) -> list[int]:
    """Index of the earliest token of each group, in the order :meth:`VisualTokens.merge` outputs groups."""
    n = groups.shape[0]
    first = torch.full((int(groups.max()) + 1,), n, dtype=torch.long).scatter_reduce(
        0, groups, torch.arange(n), "amin")
    return sorted(int(i) for i in first)


def smallest_factor(count_for: Callable[[int], int], limit: int, budget: int) -> tuple[int, bool]:
    """The smallest factor in ``1..limit`` with ``count_for(factor) <= budget``; ``(limit, False)`` if none."""
    for factor in range(1, max(1, limit) + 1):
        if count_for(factor) <= budget:
            return factor, True
    return max(1, limit), False


# ---------------------------------------------------------------------- compressors
def _check_factor(value: int | str, what: str) -> None:
    if value != "auto" and not (isinstance(value, int) and value >= 1):
        raise ValueError(f"{what} must be a positive integer or 'auto', got {value!r}")


def _budget_for_auto(ctx: CompressContext, name: str) -> int:
    if ctx.budget is None:
        raise ConfigError(f"{name}:auto needs a token budget; pass --budget N or give a factor ({name}:2)")
    return int(ctx.budget)


class SpatialPool(Compressor):
    """``pool:S[,mode=avg|bilinear]`` or ``pool:auto`` (smallest S meeting ``ctx.budget``)."""

    name = "pool"

    @dataclass
    class Config:
        factor: int | str = 2
        mode: str = "avg"

        def __post_init__(self) -> None:
            _check_factor(self.factor, "pool factor")
            if self.mode not in ("avg", "bilinear"):
                raise ValueError(f"pool mode must be 'avg' or 'bilinear', got {self.mode!r}")

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        factor, met = self.config.factor, None
        if factor == "auto":
            budget = _budget_for_auto(ctx, self.name)
            limit = max(tokens.grid[1], tokens.grid[2])
            factor, met = smallest_factor(lambda s: num_cells(tokens, s), limit, budget)
        out = spatial_pool(tokens, int(factor), self.config.mode)
        return report(out, {"factor": int(factor), **({} if met is None else {"budget_met": met})})


class TemporalPool(Compressor):
    """``tpool:K`` (K adjacent frames per group) or ``tpool:auto`` (smallest K meeting ``ctx.budget``)."""

    name = "tpool"

    @dataclass
    class Config:
        factor: int | str = 2

        def __post_init__(self) -> None:
            _check_factor(self.factor, "tpool factor")

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        factor, met = self.config.factor, None
        if factor == "auto":
            budget = _budget_for_auto(ctx, self.name)
            limit = int(tokens.frames().shape[0])
            factor, met = smallest_factor(lambda k: temporal_pool(tokens, k).num_tokens, limit, budget)
        out = temporal_pool(tokens, int(factor))
        return report(out, {"factor": int(factor), **({} if met is None else {"budget_met": met})})


def factor_ladder(grid_hw: tuple[int, int], step: int) -> list[int]:
    """Pooling factors ``[1, step, step**2, ...]`` up to the first that leaves one token per frame."""
    ladder = [1]
    while ladder[-1] < max(grid_hw) and step > 1:
        ladder.append(ladder[-1] * step)
    return ladder


def progressive_levels(costs: torch.Tensor, order: torch.Tensor, keep: int, budget: int | None) -> torch.Tensor:
    """Pooling level per frame: ``costs [F, L]`` tokens of each frame at each ladder level, ``order [F]`` frames
    from most to least important. The ``keep`` most important stay at level 0 and the rest take the finest
    level that fits ``budget``; when even the coarsest does not fit, fewer frames stay at full resolution.
    Returns int64 ``[F]``."""
    n, levels = costs.shape
    rank = torch.empty(n, dtype=torch.long)
    rank[order] = torch.arange(n)
    choice = None
    for n_full in range(min(keep, n), -1, -1):
        full = rank < n_full
        for level in range(1, max(levels, 2)):
            lvl = min(level, levels - 1)
            pick = torch.where(full, 0, lvl)
            if budget is None or int(costs[torch.arange(n), pick].sum()) <= budget:
                return pick
            choice = pick
        if budget is None:
            break
    return choice if choice is not None else torch.zeros(n, dtype=torch.long)


class ProgressivePool(Compressor):
    """``progressive[:KEEP][,factor=2]``: the ``KEEP`` fraction of most important frames stays at full resolution,
    the rest is pooled by ``factor``, ``factor**2``, ... until ``ctx.budget`` is met.

    Pooled tokens keep their cell's mean position in the encoder grid (frames of several resolutions share it).
    """

    name = "progressive"

    @dataclass
    class Config:
        keep: float = 0.25
        factor: int = 2

        def __post_init__(self) -> None:
            if not 0.0 <= self.keep <= 1.0:
                raise ValueError(f"progressive keep must be a fraction in [0, 1], got {self.keep}")
            if self.factor < 2:
                raise ValueError(f"progressive factor must be 2 or more, got {self.factor}")

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        if tokens.num_tokens == 0:
            return tokens
        scored = frame_scores(tokens, ctx.query, ctx.encoder)
        ladder = factor_ladder(tokens.grid[1:], self.config.factor)
        _, rank_of_token = torch.unique(tokens.frame_ids, return_inverse=True)
        n_frames = scored.ids.shape[0]
        costs = torch.stack([
            torch.bincount(rank_of_token[_first_members(cell_groups(tokens.frame_ids, tokens.positions, s))],
                           minlength=n_frames)
            for s in ladder
        ], dim=1)
        order = torch.argsort(scored.scores, descending=True, stable=True)
        keep = math.ceil(self.config.keep * n_frames)
        levels = progressive_levels(costs, order, keep, ctx.budget)
        factors = torch.tensor(ladder)[levels]
        out = tokens.merge(cell_groups(tokens.frame_ids, tokens.positions, factors[rank_of_token]))
        extra = {**scored.to_extra(), "factors": [int(f) for f in factors]}
        if ctx.budget is not None:
            extra["budget_met"] = out.num_tokens <= ctx.budget
        return report(out, extra)
