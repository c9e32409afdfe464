"""Plain spatial downsampling of every frame's token grid to a token budget: the other hard-to-beat baseline
(not a published method).

Wen et al. 2025, "Token Pruning in Multimodal Large Language Models: Are We Solving the Right Problem?"
(arXiv:2502.11501) find that simply pooling the visual token grid rivals elaborate pruning at equal token counts;
LLaVA-OneVision (Li et al. 2024, arXiv:2408.03326) shrinks video frames' grids by bilinear interpolation.

``downsample[:RATIO][,mode=bilinear|area]`` resizes each frame's ``h x w`` grid to the largest ``h' x w'`` (aspect
kept) with ``T * h' * w'`` at most ``RATIO`` of the tokens (without a ratio: ``--budget``; default 0.25), by
``torch.nn.functional.interpolate`` (``bilinear``, no anti-aliasing, as LLaVA-OneVision; or ``area``, exact
averaging over fractional cells). Unlike ``pool:S`` (integer factors only: 50 % of a 24 x 24 grid is out of its
reach, it jumps from 100 % to 25 %), any ratio is met, so methods compare at matched budgets. A frame that is
no longer a whole grid (after pruning) is averaged cell by cell instead.

>>> import torch
>>> from mmlong.types import VisualTokens
>>> tok = VisualTokens.from_grid(torch.arange(16.0).reshape(1, 4, 4, 1), torch.zeros(1))
>>> out = Downsample(Downsample.Config(0.25))(tok)
>>> out.grid, out.features.flatten().tolist()
((1, 2, 2), [2.5, 4.5, 10.5, 12.5])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mmlong.compressors.base import CompressContext, Compressor, report
from mmlong.compressors.retention import check_ratio, retained_count
from mmlong.types import VisualTokens

DEFAULT_RATIO = 0.25
MODES = ("bilinear", "area")


def target_grid(h: int, w: int, per_frame: int) -> tuple[int, int]:
    """The ``(h', w')`` with the most cells ``h' * w' <= per_frame`` (``h' <= h``, ``w' <= w``) whose aspect stays
    within 1.5x of ``h:w`` (the closest aspect on ties; any aspect when none is that close)."""
    per_frame = max(1, min(per_frame, h * w))
    best: tuple[int, float, int, int] | None = None
    loose: tuple[int, float, int, int] | None = None
    for rows in range(1, h + 1):
        cols = min(w, per_frame // rows)
        if cols < 1:
            break
        skew = abs(math.log((rows / cols) / (h / w)))
        key = (rows * cols, -skew, rows, cols)
        loose = key if loose is None or key > loose else loose
        if skew <= math.log(1.5) + 1e-9 and (best is None or key > best):
            best = key
    chosen = best or loose
    return chosen[2], chosen[3]


def resize_grids(grids: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """``[F, h, w, D]`` -> ``[F, h', w', D]`` by ``F.interpolate`` (bilinear without anti-aliasing, or area)."""
    x = grids.permute(0, 3, 1, 2).float()
    if mode == "bilinear":
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    else:
        x = F.interpolate(x, size=size, mode="area")
    return x.permute(0, 2, 3, 1).to(grids.dtype)


def downsample(tokens: VisualTokens, size: tuple[int, int], mode: str = "bilinear") -> VisualTokens:
    """Every frame's grid resized to ``size``; tokens ``[N, D]`` -> ``[F * h' * w', D]`` on the grid ``(T, h', w')``.

    Each output cell merges the input tokens whose cells map into it (``floor(i * h' / h)``), so times, sizes
    and frame ids follow; a whole frame's features are the interpolated grid, other frames keep the cell mean.
    """
    t, h, w = tokens.grid
    rows, cols = size
    pos = tokens.positions
    r = torch.clamp(torch.floor(pos[:, 1].double() * rows / h), 0, rows - 1).long()
    c = torch.clamp(torch.floor(pos[:, 2].double() * cols / w), 0, cols - 1).long()
    ids, rank = torch.unique(tokens.frame_ids, return_inverse=True)
    merged = tokens.merge((rank * rows + r) * cols + c)
    # the merge keeps each cell's earliest token's order; recover (frame, row, col) of every output token
    m_rank = torch.searchsorted(ids, merged.frame_ids)
    m_pos = merged.positions
    m_r = torch.clamp(torch.floor(m_pos[:, 1].double() * rows / h), 0, rows - 1).long()
    m_c = torch.clamp(torch.floor(m_pos[:, 2].double() * cols / w), 0, cols - 1).long()
    cell = pos[:, 1].round().long() * w + pos[:, 2].round().long()
    integral = (pos[:, 1:] == pos[:, 1:].round()).all(dim=1) & (cell >= 0) & (cell < h * w)
    counts = torch.bincount(rank[integral] * (h * w) + cell[integral], minlength=ids.shape[0] * h * w)
    whole = (counts.view(-1, h * w) == 1).all(dim=1)  # frames whose grid is complete, one token per cell
    features = merged.features.clone()
    if bool(whole.any()):
        dense = torch.zeros(ids.shape[0], h * w, tokens.dim, dtype=tokens.features.dtype)
        keep = integral & whole[rank]
        dense[rank[keep], cell[keep]] = tokens.features[keep]
        resized = resize_grids(dense.view(-1, h, w, tokens.dim)[whole], size, mode)
        slot = torch.cumsum(whole.long(), 0) - 1
        take = whole[m_rank]
        features[take] = resized[slot[m_rank[take]], m_r[take], m_c[take]]
    positions = torch.stack([m_pos[:, 0], m_r.float(), m_c.float()], dim=1)
    return merged.replace(features=features, positions=positions, grid=(t, rows, cols))


class Downsample(Compressor):
    """``downsample[:RATIO][,mode=bilinear|area]``: resize every frame's token grid to meet the budget."""

    name = "downsample"

    @dataclass
    class Config:
        ratio: float | None = None
        mode: str = "bilinear"

        def __post_init__(self) -> None:
            check_ratio(self.ratio, "downsample")
            if self.mode not in MODES:
                raise ValueError(f"downsample mode must be one of {', '.join(MODES)}, got {self.mode!r}")

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        if tokens.num_tokens == 0:
            return tokens
        frames = int(torch.unique(tokens.frame_ids).shape[0])
        keep = retained_count(tokens.num_tokens, self.config.ratio, ctx.budget, DEFAULT_RATIO)
        _, h, w = tokens.grid
        size = target_grid(h, w, keep // frames)
        out = downsample(tokens, size, self.config.mode)
        return report(out, {"grid": [size[0], size[1]], "kept": out.num_tokens})
