"""VisionZip: keep each frame's dominant tokens (most attended) and merge the rest into a few contextual tokens.

Yang, Chen, Tian, Wang, Li, Yu & Jia 2025, "VisionZip: Longer is Better but Not Necessary in Vision Language
Models" (CVPR 2025, arXiv:2412.04467); official code dvlab-research/VisionZip (``visionzip/clip_encoder.py``;
the same algorithm for SigLIP in cokeshao/HoliTom ``visionzip/``). Per frame (an image, for the encoder):

1. **dominant**: the ``d`` tokens that receive the most attention at the encoder's layer -2 (CLIP: the class
   token's attention summed over heads; SigLIP, which has no class token: the attention each token receives,
   averaged over heads and queries). These are kept as they are.
2. **contextual**: of the other ``R`` tokens (in order), every ``max(1, R // c)``-th is a target (the first
   ``c``); each remaining token joins the target of highest cosine similarity, and a contextual token is
   ``target + mean(tokens that joined it)`` (the official formula: the target itself is not averaged in).

``visionzip[:RATIO][,contextual=0.15625]``: each frame keeps ``round(RATIO * n)`` tokens (without a ratio: the
``--budget`` share; default 64/576, the paper's 54 dominant + 10 contextual of 576), ``contextual`` of them
contextual (10/64, the official 54+10, 108+20 and 162+30 splits).

Needs the encoder's attention (``VisualTokens.attention``): the ``hf-vision`` encoder records it with
``attention_layer=-2``; other encoders (EfficientNet is a CNN) give a one-line error saying so.

Deviations: our tokens carry no class token, so the class token the official code always keeps is not kept;
the contextual similarity uses the tokens' own features, where the official code uses layer -2's attention keys
(averaged over heads), which the tokens do not carry; kept tokens are the encoder's output tokens (layer -1 here,
layer -2 hidden states in LLaVA); merged tokens come in the order of their earliest member, not dominant-first.

>>> import torch
>>> feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0], [1.0, 0.1], [0.9, 0.0]])
>>> groups, out = visionzip_frame(feats, torch.tensor([0.1, 0.9, 0.0, 0.0, 0.0]), dominant=1, contextual=2)
>>> groups.tolist()   # token 1 dominant; targets 0 and 3 (every 2nd of the other four); 2 joins 3, 4 joins 0
[1, 0, 2, 2, 1]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mmlong.compressors.base import CompressContext, Compressor, report
from mmlong.compressors.retention import check_ratio, merge_with_features, require_attention, retained_count
from mmlong.types import VisualTokens

DEFAULT_RATIO = 64 / 576
DEFAULT_CONTEXTUAL = 10 / 64


def visionzip_frame(
    features: torch.Tensor, attention: torch.Tensor, dominant: int, contextual: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One frame: features ``[n, D]``, attention ``[n]`` -> ``(groups [n], out [G, D])``.

    ``groups[i]`` is the output token (``0..G-1``) token i goes to, ``-1`` when it is dropped (only when
    ``contextual == 0``). Groups ``0..d-1`` are the dominant tokens (in order), then the contextual ones.
    """
    n = features.shape[0]
    dominant = max(0, min(int(dominant), n))
    groups = torch.full((n,), -1, dtype=torch.long)
    top = torch.sort(torch.topk(attention.float(), dominant).indices).values
    groups[top] = torch.arange(dominant)
    out = [features[top]]
    rest = torch.nonzero(groups < 0).flatten()
    c = min(int(contextual), rest.shape[0])
    if c > 0:
        step = max(1, rest.shape[0] // c)
        is_target = torch.zeros(rest.shape[0], dtype=torch.bool)
        target_local = torch.arange(0, rest.shape[0], step)[:c]
        is_target[target_local] = True
        targets, others = rest[target_local], rest[~is_target]
        unit = F.normalize(features.float(), dim=-1)
        choice = (unit[others] @ unit[targets].T).argmax(dim=1) if others.numel() else torch.zeros(0, dtype=torch.long)
        groups[targets] = dominant + torch.arange(c)
        groups[others] = dominant + choice
        counts = torch.bincount(choice, minlength=c).clamp(min=1).unsqueeze(1)
        summed = torch.zeros(c, features.shape[1], dtype=features.dtype).index_add_(0, choice, features[others])
        out.append(features[targets] + summed / counts)
    return groups, torch.cat(out)


class VisionZip(Compressor):
    """``visionzip[:RATIO][,contextual=0.15625]``: dominant (most attended) + contextual (merged) tokens per frame."""

    name = "visionzip"

    @dataclass
    class Config:
        ratio: float | None = None
        contextual: float = DEFAULT_CONTEXTUAL

        def __post_init__(self) -> None:
            check_ratio(self.ratio, "visionzip")
            if not 0.0 <= self.contextual <= 1.0:
                raise ValueError(f"visionzip contextual is a share of the kept tokens in [0, 1], got {self.contextual}")

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        if tokens.num_tokens == 0:
            return tokens
        attention = require_attention(tokens, ctx.encoder, self.name)
        share = retained_count(tokens.num_tokens, self.config.ratio, ctx.budget, DEFAULT_RATIO) / tokens.num_tokens
        groups = torch.full((tokens.num_tokens,), -1, dtype=torch.long)
        outs, offset, dominant_total = [], 0, 0
        for fid in torch.unique(tokens.frame_ids):
            members = torch.nonzero(tokens.frame_ids == fid).flatten()
            keep = max(1, round(share * members.shape[0]))
            contextual = round(keep * self.config.contextual)
            local, out = visionzip_frame(tokens.features[members], attention[members], keep - contextual, contextual)
            groups[members] = torch.where(local >= 0, local + offset, -1)
            outs.append(out)
            offset += out.shape[0]
            dominant_total += keep - contextual
        kept = groups >= 0
        merged = merge_with_features(tokens.select(kept), groups[kept], torch.cat(outs))
        return report(merged, {"dominant": dominant_total, "contextual": offset - dominant_total})
