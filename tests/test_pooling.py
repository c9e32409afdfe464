"""Spatial, bilinear, temporal and progressive pooling: values, sizes, positions and budgets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmlong.compressors.base import Chain, CompressContext
from mmlong.compressors.pooling import (
    ProgressivePool,
    SpatialPool,
    TemporalPool,
    progressive_levels,
    spatial_pool,
    temporal_pool,
)
from mmlong.errors import ConfigError
from mmlong.qa import Query
from mmlong.types import VisualTokens
from tests.tiny_text_encoder import TinyTextEncoder, concept_frames


def grid_tokens(t: int, h: int, w: int, d: int = 3, seed: int = 0) -> VisualTokens:
    gen = torch.Generator().manual_seed(seed)
    return VisualTokens.from_grid(torch.randn(t, h, w, d, generator=gen), torch.arange(t, dtype=torch.float64))


def weighted_mean(tokens: VisualTokens) -> torch.Tensor:
    w = tokens.sizes.double().unsqueeze(1)
    return (tokens.features.double() * w).sum(0) / w.sum()


def test_avg_pool_2x2_values_sizes_positions():
    grid = torch.arange(16.0).reshape(1, 4, 4, 1)
    out = spatial_pool(VisualTokens.from_grid(grid, torch.tensor([3.0])), 2)
    assert out.features.flatten().tolist() == [2.5, 4.5, 10.5, 12.5]  # means of the four 2x2 blocks
    assert out.sizes.tolist() == [4.0, 4.0, 4.0, 4.0]
    assert out.positions.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1]]
    assert out.grid == (1, 2, 2) and out.timestamps.tolist() == [3.0] * 4


def test_odd_grid_pools_to_ceil_cells():
    out = spatial_pool(VisualTokens.from_grid(torch.arange(25.0).reshape(1, 5, 5, 1), torch.zeros(1)), 2)
    assert out.grid == (1, 3, 3)
    assert out.sizes.tolist() == [4, 4, 2, 4, 4, 2, 2, 2, 1]
    assert out.features[2].item() == pytest.approx((4 + 9) / 2)  # right column cell: rows 0-1 of column 4
    assert out.features[8].item() == 24.0


def test_pool_keeps_size_weighted_mean_and_sizes_on_repeats():
    tokens = grid_tokens(3, 7, 7)
    once = spatial_pool(tokens, 2)
    twice = spatial_pool(once, 2)
    assert twice.grid == (3, 2, 2) and twice.num_tokens == 12
    assert float(twice.sizes.sum()) == 3 * 49
    torch.testing.assert_close(weighted_mean(twice), weighted_mean(tokens))
    # pooling by 2 twice averages the same cells as pooling by 4 once
    torch.testing.assert_close(twice.features, spatial_pool(tokens, 4).features)


def test_pool_irregular_frame_uses_positions():
    tokens = VisualTokens.from_grid(torch.arange(16.0).reshape(1, 4, 4, 1), torch.zeros(1))
    kept = tokens.select(torch.tensor([1, 4, 5, 15]))  # token 0 of the first cell and most of the rest are gone
    out = spatial_pool(kept, 2)
    assert out.features.flatten().tolist() == [pytest.approx(10 / 3), 15.0]
    assert out.sizes.tolist() == [3.0, 1.0]
    assert out.positions.tolist() == [[0, 0, 0], [0, 1, 1]]


def test_bilinear_matches_interpolate_on_complete_frames():
    tokens = grid_tokens(2, 5, 5, d=4)
    out = SpatialPool(SpatialPool.Config(2, mode="bilinear"))(tokens)
    dense = tokens.features.reshape(2, 5, 5, 4).permute(0, 3, 1, 2)
    ref = F.interpolate(dense, size=(3, 3), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
    torch.testing.assert_close(out.features, ref.reshape(-1, 4))
    assert out.grid == (2, 3, 3) and float(out.sizes.sum()) == 50
    # exact 2x downscale of an even grid: bilinear == 2x2 average
    even = grid_tokens(1, 4, 4)
    torch.testing.assert_close(spatial_pool(even, 2, "bilinear").features, spatial_pool(even, 2).features)


def test_pool_auto_meets_budget_with_smallest_factor():
    tokens = grid_tokens(4, 7, 7)
    out = Chain.from_spec("pool:auto")(tokens, CompressContext(budget=50))
    assert out.num_tokens == 36 and out.provenance[-1].extra == {"factor": 3, "budget_met": True}
    assert spatial_pool(tokens, 2).num_tokens > 50  # factor 2 would not fit
    with pytest.raises(ConfigError, match="--budget"):
        Chain.from_spec("pool:auto")(tokens, CompressContext())


def test_pool_spec_errors():
    with pytest.raises(ConfigError, match="positive integer or 'auto'"):
        Chain.from_spec("pool:0")
    with pytest.raises(ConfigError, match="bilinear"):
        Chain.from_spec("pool:2,mode=nearest")


def test_temporal_pool_values_and_grid():
    grid = torch.arange(5.0).reshape(5, 1, 1, 1).expand(5, 2, 2, 1).contiguous()
    out = temporal_pool(VisualTokens.from_grid(grid, torch.arange(5.0)), 2)
    assert out.grid == (3, 2, 2) and out.num_tokens == 12
    assert out.features[::4].flatten().tolist() == [0.5, 2.5, 4.0]
    assert out.sizes[::4].tolist() == [2.0, 2.0, 1.0]
    assert out.positions[::4, 0].tolist() == [0.0, 2.0, 4.0]  # each group sits at its first frame
    assert out.timestamps[::4].tolist() == [0.5, 2.5, 4.0]
    assert out.frame_ids[::4].tolist() == [0, 2, 4]


def test_tpool_auto_meets_budget():
    out = TemporalPool(TemporalPool.Config("auto"))(grid_tokens(8, 2, 2), CompressContext(budget=9))
    assert out.num_tokens == 8 and out.provenance[-1].extra["factor"] == 4


def test_progressive_keeps_relevant_frames_full_and_meets_budget():
    labels = ["tree"] * 8
    labels[2] = labels[6] = "cat"
    tokens = VisualTokens.from_grid(concept_frames(labels, hw=4), torch.arange(8.0))  # 8 x 16 tokens
    ctx = CompressContext(Query("a cat"), budget=50, encoder=TinyTextEncoder())
    out = ProgressivePool(ProgressivePool.Config(keep=0.25))(tokens, ctx)
    per_frame = torch.bincount(out.frame_ids, minlength=8).tolist()
    assert per_frame[2] == 16 and per_frame[6] == 16  # the cat frames stay at full resolution
    assert sum(per_frame) <= 50
    assert out.provenance[-1].extra["factors"] == [4, 4, 1, 4, 4, 4, 1, 4]
    torch.testing.assert_close(weighted_mean(out), weighted_mean(tokens))
    # a generous budget: the rest is only pooled by 2
    roomy = ProgressivePool()(tokens, CompressContext(Query("a cat"), budget=64, encoder=TinyTextEncoder()))
    assert roomy.provenance[-1].extra["factors"] == [2, 2, 1, 2, 2, 2, 1, 2]


def test_progressive_levels_drops_full_frames_only_when_needed():
    costs = torch.tensor([[16, 4, 1]] * 4)
    order = torch.tensor([3, 1, 0, 2])
    assert progressive_levels(costs, order, keep=2, budget=None).tolist() == [1, 0, 1, 0]
    assert progressive_levels(costs, order, keep=2, budget=34).tolist() == [2, 0, 2, 0]
    assert progressive_levels(costs, order, keep=2, budget=20).tolist() == [2, 2, 2, 0]
