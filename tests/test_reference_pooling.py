"""Reference tests for the pooling family, written here independently:
- ``pool:S`` = per-frame S x S average pooling (``avg_pool2d`` with partial edge cells averaged over what they
  hold); ``mode=bilinear`` = LLaVA-OneVision's ``interpolate(size=ceil(h/S), mode="bilinear")``;
- ``tpool:K`` = the same cell averaged over K adjacent frames, at the group's first frame;
- ``progressive`` (Wei & Chen 2024, progressive pooling): the most novel frames stay at full resolution, the others
  are pooled by the first factor of 2, 4, ... that fits the budget."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mmlong.compressors.base import CompressContext
from mmlong.compressors.pooling import ProgressivePool, SpatialPool, TemporalPool
from mmlong.types import VisualTokens
from tests.pairing import assert_paired


def grid_of(seed, t=3, h=5, w=7, d=4):
    return torch.randn(t, h, w, d, generator=torch.Generator().manual_seed(seed))


def frames_of(out: VisualTokens, frame: int, h: int, w: int) -> torch.Tensor:
    rows = out.frame_ids == frame
    dense = torch.full((h, w, out.dim), float("nan"))
    pos = out.positions[rows]
    dense[pos[:, 1].long(), pos[:, 2].long()] = out.features[rows]
    return dense


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("factor", [2, 3])
def test_pool_avg_equals_avg_pool2d(seed, factor):
    grid = grid_of(seed)
    out = SpatialPool(SpatialPool.Config(factor))(VisualTokens.from_grid(grid, torch.arange(3.0)))
    expected = F.avg_pool2d(grid.permute(0, 3, 1, 2), factor, factor, ceil_mode=True).permute(0, 2, 3, 1)
    oh, ow = math.ceil(5 / factor), math.ceil(7 / factor)
    assert out.grid == (3, oh, ow)
    for f in range(3):
        torch.testing.assert_close(frames_of(out, f, oh, ow), expected[f])
    # pairing: each pooled feature at its cell, at its frame's time, sized by the tokens the cell holds
    rows = []
    for f in range(3):
        for i in range(oh):
            for j in range(ow):
                held = min(factor, 5 - i * factor) * min(factor, 7 - j * factor)
                place = torch.tensor([f, i, j, f, held], dtype=torch.float64)
                rows.append(torch.cat([expected[f, i, j].double(), place]))
    assert_paired(out, torch.stack(rows))


@pytest.mark.parametrize("seed", range(3))
def test_pool_bilinear_equals_llava_onevision_interpolate(seed):
    grid = grid_of(seed, h=6, w=6)
    out = SpatialPool(SpatialPool.Config(2, mode="bilinear"))(VisualTokens.from_grid(grid, torch.arange(3.0)))
    expected = F.interpolate(grid.permute(0, 3, 1, 2), size=(3, 3), mode="bilinear").permute(0, 2, 3, 1)
    for f in range(3):
        torch.testing.assert_close(frames_of(out, f, 3, 3), expected[f])


@pytest.mark.parametrize("k", [2, 3])
def test_tpool_equals_group_means_at_the_first_frame(k):
    grid = grid_of(1, t=7, h=2, w=3)
    frame_ids = torch.arange(7) * 2  # frame units of a temporal patch size 2 (Qwen2-VL)
    tokens = VisualTokens.from_grid(grid, torch.arange(7.0))
    positions = tokens.positions.clone()
    positions[:, 0] *= 2
    tokens = tokens.replace(positions=positions, frame_ids=tokens.frame_ids * 2)
    out = TemporalPool(TemporalPool.Config(k))(tokens)
    groups = [list(range(s, min(s + k, 7))) for s in range(0, 7, k)]
    assert out.grid[0] == len(groups)
    for _g, members in enumerate(groups):
        rows = out.frame_ids == frame_ids[members[0]]
        assert torch.all(out.positions[rows, 0] == 2 * members[0])
        expected = grid[members].mean(0).reshape(-1, grid.shape[-1])
        torch.testing.assert_close(out.features[rows], expected)
    # pairing: each pooled token at its cell and first frame, at its frames' mean time, sized by the frame count
    expected_rows = [torch.cat([grid[members, i, j].mean(0).double(),
                                torch.tensor([2.0 * members[0], i, j, sum(members) / len(members), len(members)],
                                             dtype=torch.float64)])
                     for members in groups for i in range(2) for j in range(3)]
    assert_paired(out, torch.stack(expected_rows))


def novelty_reference(frame_means):
    scores = [1.0]
    for i in range(1, frame_means.shape[0]):
        scores.append(1 - float(F.cosine_similarity(frame_means[i], frame_means[i - 1], dim=0)))
    return torch.tensor(scores)


@pytest.mark.parametrize("seed", range(4))
def test_progressive_keeps_the_most_novel_frames_whole_and_pools_the_rest(seed):
    grid = grid_of(seed, t=8, h=4, w=4)
    tokens = VisualTokens.from_grid(grid, torch.arange(8.0))
    budget = 2 * 16 + 6 * 4  # 2 frames whole, 6 pooled by 2
    out = ProgressivePool(ProgressivePool.Config(keep=0.25))(tokens, CompressContext(budget=budget))
    scores = novelty_reference(grid.reshape(8, 16, -1).mean(1))
    whole = set(torch.argsort(scores, descending=True, stable=True)[:2].tolist())
    for f in range(8):
        rows = out.frame_ids == f
        if f in whole:
            assert int(rows.sum()) == 16
            torch.testing.assert_close(out.features[rows], grid[f].reshape(16, -1))
        else:
            pooled = F.avg_pool2d(grid[f].permute(2, 0, 1), 2).permute(1, 2, 0).reshape(4, -1)
            torch.testing.assert_close(out.features[rows], pooled)
    assert out.num_tokens == budget
