"""ToMe bipartite soft matching and temporal merging on hand-built features."""

from __future__ import annotations

import pytest
import torch

from mmlong.compressors.base import Chain, CompressContext
from mmlong.compressors.tome import (
    TemporalMerge,
    ToMe,
    bipartite_soft_matching,
    merge_to_count,
    temporal_merge_groups,
)
from mmlong.errors import ConfigError
from mmlong.types import VisualTokens

E = torch.eye(6)


def weighted_mean(tokens: VisualTokens) -> torch.Tensor:
    w = tokens.sizes.double().unsqueeze(1)
    return (tokens.features.double() * w).sum(0) / w.sum()


def frame(rows: list[torch.Tensor]) -> torch.Tensor:
    """A 1 x 2 x (len/2) grid from a list of feature rows."""
    return torch.stack(rows).reshape(1, 2, len(rows) // 2, -1)


def test_bipartite_matching_merges_the_known_duplicates():
    # A = even positions, B = odd. Duplicates: 0~3 (e0), 2~1 (e1); 4 (e2) and 5 (e3) are unlike anything.
    feats = torch.stack([E[0], E[1] * 2, E[1], E[0] + 0.05 * E[4], E[2], E[3]])
    assert bipartite_soft_matching(feats, 2).tolist() == [3, 1, 1, 3, 4, 5]
    # r is capped by the size of set A
    assert bipartite_soft_matching(feats, 10).shape == (6,)


def test_tome_merges_duplicate_pairs_and_keeps_weighted_mean():
    # row 2 repeats row 1 in another order, so every duplicate pair spans sets A (even) and B (odd)
    rows = [E[0], E[1], E[2], E[3], E[1], E[0] * 2, E[3] + 0.01, E[2]]
    tokens = VisualTokens.from_grid(frame(rows), torch.zeros(1))
    out = ToMe(ToMe.Config(0.5))(tokens)
    assert out.num_tokens == 4 and out.sizes.tolist() == [2.0, 2.0, 2.0, 2.0]
    # every output token is one of the four concepts: duplicates merged, nothing unlike merged
    directions = torch.nn.functional.normalize(out.features, dim=-1)
    assert torch.allclose(directions.abs().max(dim=-1).values, torch.ones(4), atol=1e-3)
    torch.testing.assert_close(weighted_mean(out), weighted_mean(tokens))


def test_weighted_mean_is_invariant_under_repeated_and_deep_merging():
    gen = torch.Generator().manual_seed(1)
    tokens = VisualTokens.from_grid(torch.randn(3, 6, 6, 8, generator=gen), torch.arange(3.0))
    tokens = tokens.replace(sizes=torch.rand(tokens.num_tokens, generator=gen) * 3 + 0.5)
    out = tokens
    for ratio in (0.3, 0.75, 0.5):
        out = ToMe(ToMe.Config(ratio))(out)
        torch.testing.assert_close(weighted_mean(out), weighted_mean(tokens))
        torch.testing.assert_close(out.sizes.sum(), tokens.sizes.sum())
    assert out.num_tokens == 3 * 3  # 36 -> 25 -> 6 -> 3 per frame
    assert out.frame_ids.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # merging stays within frames


def test_merge_to_count_reaches_target_in_several_rounds():
    gen = torch.Generator().manual_seed(2)
    groups = merge_to_count(torch.randn(20, 4, generator=gen), torch.ones(20), 3)
    assert torch.unique(groups).numel() == 3
    assert all(groups[g] == g for g in torch.unique(groups))  # representatives represent themselves


def test_tome_auto_uses_budget():
    tokens = VisualTokens.from_grid(torch.randn(4, 4, 4, 5), torch.arange(4.0))
    out = Chain.from_spec("tome:auto")(tokens, CompressContext(budget=20))
    assert out.num_tokens == 20
    with pytest.raises(ConfigError, match="budget"):
        Chain.from_spec("tome:auto")(tokens, CompressContext())
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        Chain.from_spec("tome:1.5")


def test_temporal_merge_collapses_near_duplicate_frames():
    gen = torch.Generator().manual_seed(3)
    base = torch.randn(2, 2, 16, generator=gen)
    other = torch.randn(2, 2, 16, generator=gen)
    grid = torch.stack([base, base + 0.01 * torch.randn(2, 2, 16, generator=gen), other])  # frame 1 ~ frame 0
    tokens = VisualTokens.from_grid(grid, torch.arange(3.0))
    out = TemporalMerge(TemporalMerge.Config(0.9))(tokens)
    assert out.num_tokens == 8  # frame 1's four tokens joined frame 0's
    assert out.frame_ids.tolist() == [0, 0, 0, 0, 2, 2, 2, 2]
    assert out.sizes.tolist() == [2.0] * 4 + [1.0] * 4
    assert out.timestamps[:4].tolist() == [0.5] * 4
    assert out.provenance[-1].extra == {"merged": 4}
    torch.testing.assert_close(weighted_mean(out), weighted_mean(tokens))


def test_temporal_merge_chains_through_frames_and_ratio_mode():
    grid = torch.randn(1, 2, 2, 8).expand(4, 2, 2, 8).contiguous()  # a still shot
    tokens = VisualTokens.from_grid(grid, torch.arange(4.0))
    groups = temporal_merge_groups(tokens.features, tokens.frame_ids, threshold=0.99)
    assert groups.tolist() == [0, 1, 2, 3] * 4  # everything joins frame 0's tokens
    assert TemporalMerge()(tokens).sizes.tolist() == [4.0] * 4
    out = Chain.from_spec("tmerge:ratio=0.25")(tokens)
    assert out.num_tokens == 16 - 4
