"""Random token pruning: a baseline, the one published comparisons found hard to beat (not itself a method).

Wen et al. 2025, "Token Pruning in Multimodal Large Language Models: Are We Solving the Right Problem?"
(arXiv:2502.11501) report that keeping a uniformly random subset of the visual tokens matches or beats many
attention-based pruning methods at the same budget. ``random[:RATIO][,seed=S]`` keeps ``RATIO`` of the tokens
(or, without a ratio, ``--budget`` tokens; default ratio 0.25), a uniform random subset drawn from a seeded
generator so a run is reproducible, in their original order.

>>> import torch
>>> from mmlong.types import VisualTokens
>>> tok = VisualTokens.from_grid(torch.arange(8.0).reshape(1, 2, 4, 1), torch.zeros(1))
>>> RandomPrune(RandomPrune.Config(0.5, seed=0))(tok).num_tokens
4
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmlong.compressors.base import CompressContext, Compressor, report
from mmlong.compressors.retention import check_ratio, retained_count
from mmlong.types import VisualTokens

DEFAULT_RATIO = 0.25


def random_keep(total: int, keep: int, seed: int) -> torch.Tensor:
    """Sorted int64 ``[keep]``: a uniform random ``keep``-subset of ``range(total)`` (``torch.randperm`` of a
    generator seeded with ``seed``)."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.sort(torch.randperm(total, generator=generator)[:keep]).values


class RandomPrune(Compressor):
    """``random[:RATIO][,seed=0]``: keep a seeded uniform random subset of the tokens."""

    name = "random"

    @dataclass
    class Config:
        ratio: float | None = None
        seed: int = 0

        def __post_init__(self) -> None:
            check_ratio(self.ratio, "random")

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        if tokens.num_tokens == 0:
            return tokens
        keep = retained_count(tokens.num_tokens, self.config.ratio, ctx.budget, DEFAULT_RATIO)
        return report(tokens.select(random_keep(tokens.num_tokens, keep, self.config.seed)), {"kept": keep})
