"""FastVID: dynamic temporal segmentation + density-based spatio-temporal pruning.

Shen, Gong, He, Zhang, Liu, Zhao & Ding 2025, "FastVID: Dynamic Density Pruning for Fast Video Large Language
Models" (NeurIPS 2025, arXiv:2503.11187); official code LunarShen/FastVID (``Qwen2Model.forward`` in
``fastvid_llavaonevision/LLaVA-NeXT/llava/model/language_model/modeling_qwen2.py``).

``fastvid[:RETAIN][,segments=8,tau=0.9,d=0.4,p=4,beta=0.6]`` on ``F`` frames of ``n`` tokens each:

1. **DySeg**: cosine similarity of adjacent frames' global features; the video is cut after the ``segments - 1``
   least similar transitions and after every transition below ``tau``.
2. **STPrune**: each frame keeps ``R = int(n * RETAIN)`` tokens: ``S = R - int(R * d)`` *salient* ones (top
   attention of the frame's pooling probe) and ``C = R - S`` *context* anchors chosen by density peaks (DPC-kNN
   over the other tokens, ``k = 4``, distances ``/ sqrt(D)``; score = distance to a denser token x density). In a
   segment of ``L`` frames the ``C * L`` anchors go to every ``p``-th frame counted from its end
   (``C * L // ceil(L / p)`` each); a one-frame segment keeps its own ``C``.
3. **DTM**: every non-salient token of the frame (one-frame segment) or of the whole segment joins its most
   cosine-similar anchor; an anchor becomes ``w * anchor + (1 - w) * mean(joined)``, ``w = max(beta, 1 / (m + 1))``
   for ``m`` joined tokens. Kept tokens keep their own time and position, in sequence order.

Global features and saliency: the official code runs the SigLIP tower's attention-pooling head on each frame
(``SigLipVisionAbstract``: ``post_layernorm`` then ``head``): its pooled output is the frame's global feature and
its probe's attention (mean over heads) the tokens' saliency. Here the same comes from the ``hf-vision`` encoder's
SigLIP head (:meth:`mmlong.encoders.hf_vision.HFVisionEncoder.attention_pool`; its tokens are already after
``post_layernorm``) when the chain's encoder has one and the tokens are its own width (reported as
``saliency: siglip-head``). Otherwise (other encoders, CLIP, a VLM's post-projector tokens) a proxy stands in: a
frame's global feature is the mean of its tokens and a token's saliency the attention logit of that mean
(``token . mean / sqrt(D)``; ``saliency: mean-proxy``).

Deviations: the official ``1e-6`` random jitter on densities is left out (with ``k = 4`` neighbours densities of
distinct features do not tie; exactly equal ones would all count as densest, where the jitter picks one); anchor
counts are capped at the tokens available (the official ``topk`` fails there); ``RETAIN = auto`` takes the
chain's budget over the token count. Every frame must hold the same number of tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mmlong.compressors.base import CompressContext, Compressor, report
from mmlong.compressors.dycoke import frame_blocks
from mmlong.errors import ConfigError
from mmlong.types import VisualTokens


def dynamic_segments(global_features: torch.Tensor, segments: int, tau: float) -> list[int]:
    """DySeg: segment lengths (summing to ``F``) from per-frame features ``[F, D]``.

    >>> dynamic_segments(torch.tensor([[1.0, 0], [1, 0.1], [0, 1], [0, 1]]), segments=1, tau=0.5)
    [2, 2]
    """
    frames = global_features.shape[0]
    unit = F.normalize(global_features.float(), dim=-1)
    similarity = (unit[:-1] * unit[1:]).sum(-1)  # [F - 1]
    lowest = similarity.topk(min(max(segments - 1, 0), frames - 1), largest=False).indices
    cuts = torch.unique(torch.cat([lowest, (similarity < tau).nonzero().flatten()])).tolist()
    bounds = [-1] + cuts + [frames - 1]
    return [b - a for a, b in zip(bounds[:-1], bounds[1:])]


def anchor_counts(sizes: list[int], per_frame: int, p: int) -> list[int]:
    """Context anchors per frame: a segment's ``per_frame * L`` go to every ``p``-th frame from its end.

    >>> anchor_counts([1, 5], per_frame=2, p=4)
    [2, 5, 0, 0, 0, 5]
    """
    counts: list[int] = []
    for length in sizes:
        each = per_frame * length // math.ceil(length / p)
        counts += [each if (length - 1 - j) % p == 0 else 0 for j in range(length)]
    return counts


def density_peak_scores(x: torch.Tensor, k: int = 4) -> torch.Tensor:
    """DPC-kNN score of each row of ``x [m, D]``: (distance to the nearest denser row) x density; ``[m]``."""
    dist = torch.cdist(x.float(), x.float()) / math.sqrt(x.shape[-1])
    near = dist.topk(min(k, x.shape[0]), dim=-1, largest=False).values
    density = torch.exp(-(near ** 2).mean(-1))
    denser = density.unsqueeze(0) > density.unsqueeze(1)  # [i, j]: row j is denser than row i
    parent = torch.where(denser, dist, dist.max()).min(dim=-1).values
    return parent * density


def merge_into_anchors(anchors: torch.Tensor, members: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DTM: ``anchors [a, D]`` absorb ``members [m, D]`` (each joins its most cosine-similar anchor).

    Returns the new anchor features ``[a, D]`` and the anchor each member joined ``[m]``.
    """
    choice = (F.normalize(members.float(), dim=-1) @ F.normalize(anchors.float(), dim=-1).T).argmax(-1)
    joined = torch.bincount(choice, minlength=anchors.shape[0]).to(torch.float32)
    sums = torch.zeros(anchors.shape, dtype=torch.float32).index_add_(0, choice, members.float())
    mean = sums / joined.clamp_min(1).unsqueeze(1)
    weight = (1.0 / (joined + 1)).clamp_min(beta).unsqueeze(1)
    return (weight * anchors.float() + (1 - weight) * mean).to(anchors.dtype), choice


def frame_saliency(x: torch.Tensor, encoder: object) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Per-frame global features ``[F, D']`` and token saliency ``[F, n]`` for frames ``x [F, n, D]``.

    The encoder's SigLIP attention-pooling head when it has one (``attention_pool``: the pooled output and the
    probe's attention, as the official code) -- ``"siglip-head"``; otherwise the proxy: the frame's mean token and
    each token's attention logit against it (``token . mean / sqrt(D)``) -- ``"mean-proxy"``.
    """
    pool = getattr(encoder, "attention_pool", None)
    pooled = pool(x) if callable(pool) else None
    if pooled is not None:
        return pooled[0], pooled[1], "siglip-head"
    mean = x.float().mean(1)
    return mean, (x.float() @ mean.unsqueeze(-1)).squeeze(-1) / math.sqrt(x.shape[-1]), "mean-proxy"


class FastVID(Compressor):
    """``fastvid[:RETAIN]``: keep ``RETAIN`` (default 0.1, the official setting) of every frame's tokens by
    DySeg + STPrune; ``auto`` meets ``ctx.budget``."""

    name = "fastvid"

    @dataclass
    class Config:
        retain: float | str = 0.1
        segments: int = 8
        tau: float = 0.9
        d: float = 0.4
        p: int = 4
        beta: float = 0.6

        def __post_init__(self) -> None:
            if self.retain != "auto" and not (isinstance(self.retain, (int, float)) and 0.0 < self.retain <= 1.0):
                raise ValueError(f"fastvid retain must be in (0, 1] or 'auto', got {self.retain!r}")
            if not 0.0 <= self.d <= 1.0 or self.p < 1 or self.segments < 1:
                raise ValueError("fastvid: d must be in [0, 1], p and segments at least 1")

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        if tokens.num_tokens == 0:
            return tokens
        cfg = self.config
        retain = cfg.retain
        if retain == "auto":
            if ctx.budget is None:
                raise ConfigError("fastvid:auto needs a token budget; pass --budget N or give a ratio (fastvid:0.25)")
            retain = min(1.0, ctx.budget / tokens.num_tokens)
        blocks, _ = frame_blocks(tokens, self.name)
        frames, n = blocks.shape
        x = tokens.features[blocks]  # [F, n, D]
        global_features, saliency, source = frame_saliency(x, ctx.encoder)
        sizes = dynamic_segments(global_features, cfg.segments, cfg.tau)
        keep_total = int(n * float(retain))
        salient_n = keep_total - int(keep_total * cfg.d)
        context_n = keep_total - salient_n
        counts = anchor_counts(sizes, context_n, cfg.p)
        salient = saliency.topk(salient_n, dim=-1).indices.sort(dim=-1).values  # [F, S]
        rest_mask = torch.ones(frames, n, dtype=torch.bool)
        rest_mask.scatter_(1, salient, False)
        rest = [rest_mask[f].nonzero().flatten() for f in range(frames)]  # non-salient in-frame indices
        scores = [density_peak_scores(x[f, rest[f]]) for f in range(frames)]
        kept = [blocks[f, salient[f]] for f in range(frames)]
        anchor_rows, anchor_features, anchor_sizes = [], [], []
        start = 0
        for length in sizes:
            seg = range(start, start + length)
            for f in seg:
                if counts[f] == 0:
                    continue
                # a one-frame share absorbs its own frame, a segment anchor frame the whole segment
                pool = [f] if counts[f] == context_n else list(seg)
                pick = scores[f].topk(min(counts[f], rest[f].shape[0])).indices
                members = torch.cat([x[g, rest[g]] for g in pool])
                member_sizes = torch.cat([tokens.sizes[blocks[g, rest[g]]] for g in pool])
                new, choice = merge_into_anchors(x[f, rest[f][pick]], members, cfg.beta)
                absorbed = torch.zeros(pick.shape[0]).index_add_(0, choice, member_sizes.float())
                rows = blocks[f, rest[f][pick]]
                anchor_rows.append(rows)
                anchor_features.append(new)
                anchor_sizes.append(torch.maximum(absorbed, tokens.sizes[rows].float()))
            start += length
        salient_rows = torch.cat(kept)
        rows = torch.cat([salient_rows] + anchor_rows)
        features = torch.cat([tokens.features[salient_rows]] + anchor_features)
        new_sizes = torch.cat([tokens.sizes[salient_rows].float()] + anchor_sizes).to(tokens.sizes.dtype)
        order = torch.argsort(rows)
        out = tokens.select(rows[order]).replace(features=features[order], sizes=new_sizes[order])
        extra = {"segments": sizes, "salient_per_frame": salient_n, "anchors_per_frame": counts, "saliency": source}
        if ctx.budget is not None:
            extra["budget_met"] = out.num_tokens <= ctx.budget
        return report(out, extra)
