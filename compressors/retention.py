"""Helpers shared by the budget-matched compressors (``visionzip``, ``divprune``, ``vidcom2``, ``holitom``,
``random``, ``downsample``): how many tokens to keep, whole-frame token tables, and merges whose features follow
a method's own formula.

Every one of these compressors takes ``ratio`` (the fraction of tokens kept, first positional option:
``divprune:0.25``); without it the chain's token budget (``--budget N``) decides; without either, the method's
published default ratio.

>>> retained_count(576, 0.25, None, 0.1), retained_count(576, None, 100, 0.1), retained_count(576, None, None, 0.1)
(144, 100, 58)
"""

from __future__ import annotations

import torch

from mmlong.errors import ConfigError
from mmlong.types import VisualTokens


def check_ratio(value: float | None, name: str) -> None:
    """A retention ratio must be in (0, 1] (or None: use the budget)."""
    if value is not None and not (isinstance(value, (int, float)) and 0.0 < float(value) <= 1.0):
        raise ValueError(f"{name} ratio is the fraction of tokens kept, in (0, 1]; got {value!r}")


def retained_count(total: int, ratio: float | None, budget: int | None, default: float) -> int:
    """Tokens to keep out of ``total``: ``round(ratio * total)`` when a ratio is given, else the budget, else
    ``round(default * total)``; never more than ``total``, at least 1 when there are tokens."""
    if total <= 0:
        return 0
    if ratio is not None:
        keep = round(float(ratio) * total)
    elif budget is not None:
        keep = int(budget)
    else:
        keep = round(default * total)
    return max(1, min(total, keep))


def retained_ratio(total: int, ratio: float | None, budget: int | None, default: float) -> float:
    """The retention ratio itself (``ratio``, else ``budget / total``, else ``default``), clipped to (0, 1]."""
    if ratio is not None:
        return float(ratio)
    if budget is not None and total > 0:
        return max(1.0 / total, min(1.0, int(budget) / total))
    return default


def frame_table(tokens: VisualTokens, name: str) -> torch.Tensor:
    """Token indices as a ``[F, n]`` table: row f holds frame f's tokens ordered by grid cell (row-major).

    Needs whole frames: every frame present has the same set of integer grid cells (as the encoder made them).
    """
    ids, rank = torch.unique(tokens.frame_ids, return_inverse=True)
    _, h, w = tokens.grid
    pos = tokens.positions
    cell = pos[:, 1].round().long() * w + pos[:, 2].round().long()
    order = torch.argsort(rank * (h * w + 1) + cell, stable=True)
    counts = torch.bincount(rank, minlength=ids.shape[0])
    if not bool((counts == counts[0]).all()):
        raise ConfigError(f"{name} needs whole frames with equal token counts; put it before pruning or merging "
                          f"compressors in the chain")
    table = order.view(ids.shape[0], int(counts[0]))
    cells = cell[table]
    if not bool((cells == cells[:1]).all()):
        raise ConfigError(f"{name} needs every frame on the same grid cells; put it first in the chain")
    return table


def merge_with_features(tokens: VisualTokens, groups: torch.Tensor, features: torch.Tensor) -> VisualTokens:
    """Merge tokens by ``groups`` (int64 ``[N]``, ids ``0..G-1``) but give group g the feature ``features[g]``
    (``[G, D]``, a method's own formula) instead of the size-weighted mean; times, positions and sizes merge as
    usual."""
    n, g = tokens.num_tokens, features.shape[0]
    first = torch.full((g,), n, dtype=torch.long).scatter_reduce(0, groups, torch.arange(n), "amin")
    merged = tokens.merge(groups)
    return merged.replace(features=features[torch.argsort(first)].to(tokens.features.dtype))


def require_attention(tokens: VisualTokens, ctx_encoder: object, name: str) -> torch.Tensor:
    """``tokens.attention`` or a one-line error naming the encoder and what to use instead."""
    if tokens.attention is not None:
        return tokens.attention
    encoder = tokens.meta.get("encoder") or getattr(ctx_encoder, "name", None) or "this encoder"
    raise ConfigError(
        f"{name} needs the vision encoder's attention, and encoder {encoder!r} recorded none; use the hf-vision "
        f"encoder (CLIP/SigLIP) with encoder_options {{attention_layer: -2}}, or llava-onevision's own tower "
        f"with model_options {{attention: true}}"
    )
