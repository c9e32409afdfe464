"""DivPrune: keep the most diverse subset of the visual tokens (a Max-Min diversity problem).

Alvar, Singh, Akbari & Zhang 2025, "DivPrune: Diversity-based Visual Token Pruning for Large Multimodal Models"
(CVPR 2025, arXiv:2503.02175); official code vbdi/divprune (``LLaVA/llava/model/llava_arch.py``, ``DivPrune``).
With the cosine distance ``d(i, j) = 1 - cos(x_i, x_j)``, tokens are picked greedily: first the token whose
nearest other token is farthest (the second-smallest entry of its distance column, its own distance being the
smallest), then, each step, the token whose minimum distance to the tokens picked so far is largest. ``round(ratio
* N)`` tokens are kept, in their original order.

``divprune[:RATIO][,per_frame=false]``: without a ratio the chain's ``--budget`` decides (default ratio 0.098, the
paper's). As in the official code, one selection runs over all the visual tokens of the input (the whole video);
``per_frame=true`` is a cheaper variant that runs it inside each frame with the same ratio.

Deviation: the official code builds the full ``N x N`` distance matrix; here the nearest-neighbour distances are
computed block by block and the minimum distance to the picked set is updated one picked token at a time, which
gives the same picks with ``O(N)`` memory per step (an hour of video has tens of thousands of tokens).

>>> import torch
>>> feats = torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [-1.0, 0.0]])
>>> max_min_diverse(feats, 2).tolist()
[3, 0]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mmlong.compressors.base import CompressContext, Compressor, report
from mmlong.compressors.retention import check_ratio, retained_count
from mmlong.types import VisualTokens

DEFAULT_RATIO = 0.098
BLOCK = 4096


def nearest_other_distance(unit: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """``[N]``: for unit rows ``unit [N, D]``, the second-smallest cosine distance in each token's column of the
    distance matrix (its nearest other token; 0 when it has a duplicate)."""
    n = unit.shape[0]
    if n < 2:
        return torch.zeros(n, dtype=unit.dtype)
    out = torch.empty(n, dtype=unit.dtype)
    for start in range(0, n, block):
        dist = 1.0 - unit @ unit[start:start + block].T  # [N, b]: columns start..start+b
        out[start:start + block] = torch.topk(dist, 2, dim=0, largest=False).values[1]
    return out


def max_min_diverse(features: torch.Tensor, keep: int) -> torch.Tensor:
    """DivPrune's greedy Max-Min selection on ``features [N, D]``; returns the picked indices int64 ``[keep]``
    in the order they were picked."""
    unit = F.normalize(features.float() if features.dtype in (torch.float16, torch.bfloat16) else features, dim=-1)
    n = unit.shape[0]
    keep = max(0, min(int(keep), n))
    picked = torch.empty(keep, dtype=torch.long)
    if keep == 0:
        return picked
    scores = nearest_other_distance(unit)
    for i in range(keep):
        best = int(torch.argmax(scores))
        picked[i] = best
        dist = 1.0 - unit @ unit[best]
        scores = dist if i == 0 else torch.minimum(scores, dist)
    return picked


class DivPrune(Compressor):
    """``divprune[:RATIO][,per_frame=false]``: keep the Max-Min most diverse tokens."""

    name = "divprune"

    @dataclass
    class Config:
        ratio: float | None = None
        per_frame: bool = False

        def __post_init__(self) -> None:
            check_ratio(self.ratio, "divprune")

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        if tokens.num_tokens == 0:
            return tokens
        keep = retained_count(tokens.num_tokens, self.config.ratio, ctx.budget, DEFAULT_RATIO)
        if not self.config.per_frame:
            chosen = max_min_diverse(tokens.features, keep)
        else:
            share = keep / tokens.num_tokens
            parts = []
            for fid in torch.unique(tokens.frame_ids):
                members = torch.nonzero(tokens.frame_ids == fid).flatten()
                parts.append(members[max_min_diverse(tokens.features[members], max(1, round(share * len(members))))])
            chosen = torch.cat(parts)
        return report(tokens.select(torch.sort(chosen).values), {"kept": int(chosen.shape[0])})
