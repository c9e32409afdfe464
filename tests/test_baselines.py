"""Random pruning and plain spatial downsampling: the budget-matched baselines, against references written here."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmlong.compressors.base import Chain, CompressContext
from mmlong.compressors.downsample import target_grid
from mmlong.types import VisualTokens
from tests.pairing import assert_paired


def grid_tokens(t=3, h=6, w=8, d=5, seed=0) -> VisualTokens:
    gen = torch.Generator().manual_seed(seed)
    return VisualTokens.from_grid(torch.randn(t, h, w, d, generator=gen), torch.arange(t, dtype=torch.float64) * 0.5)


# ---------------------------------------------------------------------- random
def test_random_keeps_a_seeded_uniform_subset_in_order():
    tok = grid_tokens()
    out = Chain.from_spec("random:0.25,seed=7")(tok)
    # reference: a uniform random k-subset from torch.randperm with the same seed, in the original order
    ref = torch.sort(torch.randperm(144, generator=torch.Generator().manual_seed(7))[:36]).values
    assert torch.equal(out.features, tok.features[ref])
    assert torch.equal(out.timestamps, tok.timestamps[ref]) and torch.equal(out.positions, tok.positions[ref])
    again = Chain.from_spec("random:0.25,seed=7")(tok)
    other = Chain.from_spec("random:0.25,seed=8")(tok)
    assert torch.equal(again.features, out.features) and not torch.equal(other.features, out.features)


def test_random_keep_set_is_uniform_over_seeds():
    tok = grid_tokens(t=1, h=4, w=5)
    hits = torch.zeros(20)
    for seed in range(400):
        out = Chain.from_spec(f"random:0.25,seed={seed}")(tok)
        cells = (out.positions[:, 1] * 5 + out.positions[:, 2]).long()
        hits[cells] += 1
    # each token is kept with probability 5/20: 100 of 400 expected, binomial sd ~8.7
    assert hits.sum() == 2000 and int(hits.min()) > 65 and int(hits.max()) < 135


def test_random_honours_the_budget_when_no_ratio_is_given():
    tok = grid_tokens()
    assert Chain.from_spec("random")(tok, CompressContext(budget=40)).num_tokens == 40
    assert Chain.from_spec("random:0.5")(tok, CompressContext(budget=40)).num_tokens == 72  # the explicit ratio wins
    assert Chain.from_spec("random")(tok).num_tokens == 36  # default 0.25


# ---------------------------------------------------------------------- downsample
@pytest.mark.parametrize("mode", ["bilinear", "area"])
def test_downsample_is_an_interpolated_grid_at_the_budget(mode):
    tok = grid_tokens(t=3, h=6, w=8)
    out = Chain.from_spec(f"downsample:0.5,mode={mode}")(tok)
    rows, cols = target_grid(6, 8, 24)
    assert (rows, cols) == (4, 6) and out.grid == (3, 4, 6) and out.num_tokens == 72
    # reference: torch's interpolation of each frame's [D, h, w] grid, row-major frame by frame
    dense = tok.features.reshape(3, 6, 8, 5).permute(0, 3, 1, 2)
    if mode == "bilinear":
        ref = F.interpolate(dense, size=(4, 6), mode="bilinear", align_corners=False)
    else:
        ref = F.adaptive_avg_pool2d(dense, (4, 6))
    torch.testing.assert_close(out.features, ref.permute(0, 2, 3, 1).reshape(72, 5))
    assert out.positions[:, 1:].tolist() == [[r, c] for _ in range(3) for r in range(4) for c in range(6)]
    assert out.frame_ids.tolist() == [f for f in range(3) for _ in range(24)]
    assert out.sizes.sum() == 144 and out.timestamps.tolist()[::24] == [0.0, 0.5, 1.0]


def test_downsample_meets_any_budget_where_pool_cannot():
    tok = grid_tokens(t=2, h=24, w=24, d=3)
    for ratio in (0.5, 0.25, 0.1):
        out = Chain.from_spec(f"downsample:{ratio}")(tok)
        assert 0.85 * ratio * tok.num_tokens <= out.num_tokens <= ratio * tok.num_tokens
    assert Chain.from_spec("downsample")(tok, CompressContext(budget=200)).num_tokens <= 200
    assert Chain.from_spec("pool:2")(tok).num_tokens == tok.num_tokens // 4  # pool jumps from 100 % to 25 %


def test_downsample_after_pruning_averages_cells():
    tok = grid_tokens(t=1, h=4, w=4)
    pruned = tok.select(torch.tensor([0, 1, 4, 5, 10]))  # an incomplete frame: cell means, no interpolation
    out = Chain.from_spec("downsample")(pruned, CompressContext(budget=4))
    assert out.grid == (1, 2, 2) and out.num_tokens == 2
    torch.testing.assert_close(out.features[0], tok.features[[0, 1, 4, 5]].mean(0))
    torch.testing.assert_close(out.features[1], tok.features[10])
    # pairing: each cell mean sits on its cell of the 2 x 2 grid, at its frame's time, sized by what it holds
    place = torch.tensor([[0.0, 0.0, 0.0, 0.0, 4.0], [0.0, 1.0, 1.0, 0.0, 1.0]], dtype=torch.float64)
    means = torch.stack([tok.features[[0, 1, 4, 5]].mean(0), tok.features[10]]).double()
    assert_paired(out, torch.cat([means, place], dim=1))


@pytest.mark.parametrize("module", ["retention", "random_prune", "downsample", "divprune", "vidcom2", "visionzip"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"mmlong.compressors.{module}"))
    assert result.attempted > 0 and result.failed == 0
