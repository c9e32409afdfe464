"""Token merging within frames (ToMe) and across adjacent frames.

Bolya et al. 2023, "Token Merging: Your ViT But Faster" (ICLR). Bipartite soft matching: split the tokens
alternately into sets A and B, let each A token find its most similar B token (cosine similarity; features
stand in for the attention keys, which a video encoder's output does not carry), and merge the ``r`` A tokens
with the most similar matches into them. Merging is a size-weighted average, so the size-weighted mean of all
tokens never changes however often it is applied.

``tome:RATIO`` removes ``RATIO`` of each frame's tokens (several matching rounds when more than half must go);
``tmerge:THRESHOLD`` merges a token into its best match in the previous frame when their cosine similarity
exceeds the threshold (near-duplicate frames collapse), or, with ``ratio=R``, the ``R`` fraction of all tokens
with the most similar matches.

>>> import torch
>>> feats = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
>>> bipartite_soft_matching(feats, 1).tolist()   # token 0 (set A) joins its duplicate 1 (set B)
[1, 1, 2, 3]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mmlong.compressors.base import CompressContext
from mmlong.compressors.reporting import ReportingCompressor, report
from mmlong.errors import ConfigError
from mmlong.types import VisualTokens


# ---------------------------------------------------------------------- pure functions
def bipartite_soft_matching(features: torch.Tensor, r: int) -> torch.Tensor:
    """One round of ToMe matching on ``features [N, D]``; returns int64 ``[N]``: the token each one merges into
    (itself when it stays). Set A = even positions, B = odd positions; at most ``min(r, |A|)`` A tokens move.
    """
    n = features.shape[0]
    groups = torch.arange(n)
    a_idx, b_idx = groups[0::2], groups[1::2]
    r = min(int(r), a_idx.shape[0])
    if r <= 0 or b_idx.shape[0] == 0:
        return groups
    metric = F.normalize(features.float(), dim=-1)
    scores = metric[a_idx] @ metric[b_idx].T  # [Na, Nb]
    best, best_b = scores.max(dim=-1)
    src = torch.argsort(best, descending=True, stable=True)[:r]
    groups[a_idx[src]] = b_idx[best_b[src]]
    return groups


def merge_to_count(features: torch.Tensor, sizes: torch.Tensor, keep: int) -> torch.Tensor:
    """Repeated bipartite matching until ``keep`` tokens remain.

    features ``[N, D]``, sizes ``[N]``; returns int64 ``[N]``: for each token, the index of the token that
    represents its group. Later rounds match the size-weighted means of the groups formed so far.
    """
    n = features.shape[0]
    keep = max(1, min(int(keep), n))
    owner = torch.arange(n)  # representative (original index) of each original token
    reps = torch.arange(n)  # original index of each current token
    feats, weight = features.double(), sizes.double()
    while reps.shape[0] > keep:
        target = bipartite_soft_matching(feats, reps.shape[0] - keep)
        if bool((target == torch.arange(reps.shape[0])).all()):
            break
        uniq, inverse = torch.unique(target, return_inverse=True)
        sums = torch.zeros(uniq.shape[0], feats.shape[1], dtype=torch.float64).index_add_(
            0, inverse, feats * weight.unsqueeze(1))
        weight = torch.zeros(uniq.shape[0], dtype=torch.float64).index_add_(0, inverse, weight)
        feats = sums / weight.clamp_min(1e-12).unsqueeze(1)
        new_reps = reps[uniq]
        lookup = torch.full((n,), -1, dtype=torch.long)
        lookup[reps] = new_reps[inverse]  # old representative -> new representative
        owner = lookup[owner]
        reps = new_reps
    return owner


def temporal_merge_groups(
    features: torch.Tensor,
    frame_ids: torch.Tensor,
    threshold: float | None = 0.9,
    ratio: float | None = None,
) -> torch.Tensor:
    """Merge tokens into their best match in the previous frame still present.

    features ``[N, D]``, frame_ids ``[N]``. Each token's edge is its most similar token (cosine) in the
    previous frame; edges above ``threshold`` are taken, or, when ``ratio`` is given, the ``ratio * N`` most
    similar edges. Chains follow through frames (a token merged into one that merged earlier joins its group).
    Returns int64 ``[N]``: the original index of each token's group representative.
    """
    n = features.shape[0]
    ids, rank = torch.unique(frame_ids, return_inverse=True)
    metric = F.normalize(features.float(), dim=-1)
    members = [torch.nonzero(rank == k).flatten() for k in range(ids.shape[0])]
    cur_list, prev_list, sim_list = [], [], []
    for k in range(1, len(members)):
        cur, prev = members[k], members[k - 1]
        best, arg = (metric[cur] @ metric[prev].T).max(dim=-1)
        cur_list.append(cur)
        prev_list.append(prev[arg])
        sim_list.append(best)
    parent = torch.arange(n)
    if cur_list:
        cur, prev, sim = torch.cat(cur_list), torch.cat(prev_list), torch.cat(sim_list)
        if ratio is not None:
            take = torch.argsort(sim, descending=True, stable=True)[: int(round(ratio * n))]
        else:
            take = torch.nonzero(sim > threshold).flatten()
        parent[cur[take]] = prev[take]
    root = parent.clone()
    for idx in members[1:]:  # parents live in earlier frames, already resolved
        root[idx] = root[parent[idx]]
    return root


# ---------------------------------------------------------------------- compressors
class ToMe(ReportingCompressor):
    """``tome:RATIO``: remove ``RATIO`` of every frame's tokens by bipartite soft matching.

    ``tome:auto`` derives the ratio from ``ctx.budget`` (each frame keeps its share of the budget).
    """

    name = "tome"

    @dataclass
    class Config:
        ratio: float | str = 0.5

        def __post_init__(self) -> None:
            if self.ratio != "auto" and not (isinstance(self.ratio, (int, float)) and 0.0 <= self.ratio < 1.0):
                raise ValueError(f"tome ratio must be in [0, 1) or 'auto', got {self.ratio!r}")

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        if tokens.num_tokens == 0:
            return tokens
        ids, rank = torch.unique(tokens.frame_ids, return_inverse=True)
        counts = torch.bincount(rank, minlength=ids.shape[0])
        if self.config.ratio == "auto":
            if ctx.budget is None:
                raise ConfigError("tome:auto needs a token budget; pass --budget N or give a ratio (tome:0.5)")
            keep = torch.clamp(torch.floor(counts * (ctx.budget / tokens.num_tokens)), min=1).long()
        else:
            keep = torch.clamp(torch.round(counts * (1.0 - float(self.config.ratio))), min=1).long()
        groups = torch.arange(tokens.num_tokens)
        for k in range(ids.shape[0]):
            idx = torch.nonzero(rank == k).flatten()
            if int(keep[k]) < idx.shape[0]:
                local = merge_to_count(tokens.features[idx], tokens.sizes[idx], int(keep[k]))
                groups[idx] = idx[local]
        return report(tokens.merge(groups), {"kept_per_frame": [int(v) for v in keep]})


class TemporalMerge(ReportingCompressor):
    """``tmerge:THRESHOLD`` (cosine, default 0.9) or ``tmerge:ratio=R``: merge near-duplicate tokens of
    adjacent frames into the earlier frame's token."""

    name = "tmerge"

    @dataclass
    class Config:
        threshold: float = 0.9
        ratio: float | None = None

        def __post_init__(self) -> None:
            if not -1.0 <= self.threshold <= 1.0:
                raise ValueError(f"tmerge threshold is a cosine similarity in [-1, 1], got {self.threshold}")
            if self.ratio is not None and not 0.0 <= self.ratio < 1.0:
                raise ValueError(f"tmerge ratio must be in [0, 1), got {self.ratio}")

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        if tokens.num_tokens == 0:
            return tokens
        groups = temporal_merge_groups(tokens.features, tokens.frame_ids, self.config.threshold, self.config.ratio)
        merged = int((groups != torch.arange(tokens.num_tokens)).sum())
        return report(tokens.merge(groups), {"merged": merged})
