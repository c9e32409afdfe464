"""Token merging within frames (ToMe) and across adjacent frames.

Bolya et al. 2023, "Token Merging: Your ViT But Faster" (ICLR 2023, arXiv:2210.09461); official code
facebookresearch/ToMe (``tome/merge.py``: ``bipartite_soft_matching`` + ``merge_wavg``). Bipartite soft matching:
split the tokens alternately into sets A and B, let each A token find its most similar B token (cosine similarity;
features stand in for the attention keys, which a video encoder's output does not carry), and merge the ``r`` A
tokens with the most similar matches into them. Merging is a size-weighted average, so the size-weighted mean of all
tokens never changes however often it is applied.

Deviations from official ToMe: the similarity metric is the tokens' own (size-weighted mean) features, not attention
keys, since the compressor runs after the encoder; ``tome:RATIO`` removes a fraction of each frame in repeated
rounds of at most ``N // 2`` merges (official ToMe merges ``r`` per transformer layer); ties in similarity are
broken by token order (stable sort). ``tmerge`` is mmlong's own cross-frame variant (a baseline, not a published
method).

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

from mmlong.compressors.base import CompressContext, Compressor, report
from mmlong.errors import ConfigError
from mmlong.types import VisualTokens


# ---------------------------------------------------------------------- pure functions
def _matching_round(x: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One ToMe round on ``x [B, N, D]``: (target ``[B, N]`` each token's destination, itself when it stays;
    order ``[B, N - r']`` the survivors in ToMe's output order: unmerged A tokens by decreasing similarity, then
    every B token)."""
    rows, n, _ = x.shape
    target = torch.arange(n).repeat(rows, 1)
    a_idx, b_idx = torch.arange(0, n, 2), torch.arange(1, n, 2)
    r = min(int(r), n // 2)
    if r <= 0 or b_idx.shape[0] == 0:
        return target, target.clone()
    metric = F.normalize(x.float(), dim=-1)
    scores = metric[:, a_idx] @ metric[:, b_idx].transpose(1, 2)  # [B, Na, Nb]
    best, best_b = scores.max(dim=-1)  # [B, Na]
    edges = torch.argsort(best, dim=-1, descending=True, stable=True)
    src, unmerged = edges[:, :r], edges[:, r:]
    target.scatter_(1, a_idx[src], b_idx[best_b.gather(1, src)])
    order = torch.cat([a_idx[unmerged], b_idx.expand(rows, -1)], dim=1)
    return target, order


def bipartite_soft_matching(features: torch.Tensor, r: int) -> torch.Tensor:
    """One round of ToMe matching on ``features [..., N, D]`` (one optional batch dim); returns int64 ``[..., N]``:
    the index (within its row) of the token each one merges into, itself when it stays. Set A = even positions,
    B = odd positions; ``min(r, N // 2)`` A tokens of every row move into their best B match (official ToMe caps
    ``r`` at half the tokens, rounded down).
    """
    single = features.ndim == 2
    target, _ = _matching_round(features.unsqueeze(0) if single else features, r)
    return target[0] if single else target


def merge_to_count(features: torch.Tensor, sizes: torch.Tensor, keep: int) -> torch.Tensor:
    """Repeated bipartite matching until ``keep`` tokens remain in every row.

    features ``[..., N, D]``, sizes ``[..., N]`` (one optional batch dim); returns int64 ``[..., N]``: for each
    token, the index of the original token that represents its group. Each round merges
    ``min(left - keep, left // 2)`` tokens; later rounds match the size-weighted means (``merge_wavg``) of the
    groups formed so far, in ToMe's output order (unmerged A tokens, then B).
    """
    single = features.ndim == 2
    feats = (features.unsqueeze(0) if single else features).double()
    weight = (sizes.unsqueeze(0) if single else sizes).double()
    rows, n, dim = feats.shape
    keep = max(1, min(int(keep), n))
    reps = torch.arange(n).repeat(rows, 1)  # original index of each current token
    owner = torch.arange(n).repeat(rows, 1)  # current position of each original token's group
    while reps.shape[1] > keep:
        c = reps.shape[1]
        target, order = _matching_round(feats, c - keep)  # [B, c], [B, left]
        left = order.shape[1]
        sums = torch.zeros_like(feats).scatter_add_(1, target.unsqueeze(-1).expand(-1, -1, dim),
                                                   feats * weight.unsqueeze(-1))
        weight = torch.zeros_like(weight).scatter_add_(1, target, weight).gather(1, order)
        feats = sums.gather(1, order.unsqueeze(-1).expand(-1, -1, dim)) / weight.clamp_min(1e-12).unsqueeze(-1)
        slot = torch.zeros(rows, c, dtype=torch.long).scatter_(1, order, torch.arange(left).repeat(rows, 1))
        owner = slot.gather(1, target).gather(1, owner)
        reps = reps.gather(1, order)
    groups = reps.gather(1, owner)
    return groups[0] if single else groups


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
class ToMe(Compressor):
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
        order = torch.argsort(rank, stable=True)  # token indices frame by frame
        starts = torch.cumsum(counts, 0) - counts
        # frames with the same token count and target are matched together as one batch, as in ToMe
        buckets = torch.unique(torch.stack([counts, keep], dim=1), dim=0)
        for count, target in buckets.tolist():
            if target >= count:
                continue
            frames = torch.nonzero((counts == count) & (keep == target)).flatten()
            idx = order[starts[frames].unsqueeze(1) + torch.arange(count)]  # [B, count]
            local = merge_to_count(tokens.features[idx], tokens.sizes[idx], target)
            groups[idx] = idx.gather(1, local)
        return report(tokens.merge(groups), {"kept_per_frame": [int(v) for v in keep]})


class TemporalMerge(Compressor):
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
