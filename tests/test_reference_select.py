"""Reference test: query-aware frame selection = greedy maximal marginal relevance (Carbonell & Goldstein 1998)
over frame scores min-max normalised, with the temporal kernel exp(-|t - t_s| / tau), tau = span / (2 k), written
here independently; without a text side the scores are novelty (1 - cosine to the previous frame)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mmlong.compressors.selection import QuerySelect
from mmlong.types import VisualTokens


def mmr_reference(scores: list[float], times: list[float], k: int, diversity: float) -> list[int]:
    lo, hi = min(scores), max(scores)
    s = [(v - lo) / (hi - lo) if hi > lo else 0.0 for v in scores]
    tau = max((max(times) - min(times)) / (2 * k), 1e-6)
    chosen: list[int] = []
    while len(chosen) < k:
        best, best_value = None, -math.inf
        for i in range(len(s)):
            if i in chosen:
                continue
            redundancy = max((math.exp(-abs(times[i] - times[j]) / tau) for j in chosen), default=0.0)
            value = s[i] - diversity * redundancy
            if value > best_value:
                best, best_value = i, value
        chosen.append(best)
    return sorted(chosen)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("k,diversity", [(3, 0.5), (5, 1.0), (4, 0.0), (4, 2.0), (5, 3.0)])
def test_select_equals_greedy_mmr_on_novelty(seed, k, diversity):
    gen = torch.Generator().manual_seed(seed)
    grid = torch.randn(12, 2, 2, 6, generator=gen)
    times = torch.sort(torch.rand(12, generator=gen) * 30).values.double()
    tokens = VisualTokens.from_grid(grid, times)
    out = QuerySelect(QuerySelect.Config(frames=k, diversity=diversity))(tokens)
    means = grid.reshape(12, 4, 6).mean(1)
    novelty = [1.0] + [1 - float(F.cosine_similarity(means[i], means[i - 1], dim=0)) for i in range(1, 12)]
    expected = mmr_reference(novelty, times.tolist(), k, diversity)
    assert torch.unique(out.frame_ids).tolist() == expected
