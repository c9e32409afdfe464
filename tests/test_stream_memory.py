"""The streaming memory stays within its budget, keeps the weighted mean and merges only neighbours."""

from __future__ import annotations

import pytest
import torch

from mmlong.compressors.base import Chain, CompressContext
from mmlong.compressors.stream_memory import StreamMemory, adjacent_merge_groups, consolidate
from mmlong.types import VisualTokens


def chunk(k: int, frames: int = 2, hw: int = 3, dim: int = 16) -> VisualTokens:
    """Chunk ``k`` of a stream: ``frames`` frames of ``hw x hw`` tokens, frame ids and times video-wide."""
    scene = torch.randn(dim, generator=torch.Generator().manual_seed(k // 10))  # a new scene every 10 chunks
    grid = scene + 0.3 * torch.randn(frames, hw, hw, dim, generator=torch.Generator().manual_seed(1000 + k))
    times = torch.arange(k * frames, (k + 1) * frames, dtype=torch.float64)
    return VisualTokens.from_grid(grid, times, first_frame=k * frames)


def weighted_mean(features: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    w = sizes.double().unsqueeze(1)
    return (features.double() * w).sum(0) / w.sum()


def test_memory_stays_within_budget_over_100_chunks_and_keeps_the_mean():
    memory = StreamMemory(StreamMemory.Config(budget=40))
    memory.reset()
    total = torch.zeros(16, dtype=torch.float64)
    count = 0
    for k in range(100):
        c = chunk(k)
        total += c.features.double().sum(0)
        count += c.num_tokens
        memory.update(c)
        assert memory.num_tokens <= 40
    out = memory.read()
    assert out.num_tokens == 40 and float(out.sizes.sum()) == count == 1800
    torch.testing.assert_close(weighted_mean(out.features, out.sizes), total / count)
    assert out.grid[0] == 200 and out.meta["tokens_seen"] == 1800
    assert out.frame_ids.min() == 0 and out.timestamps.max() < 200


def test_memory_merges_adjacent_tokens_only():
    memory = StreamMemory(StreamMemory.Config(budget=25))
    memory.reset()
    for k in range(30):
        memory.update(chunk(k))
    out = memory.read()
    # tokens arrived with times 0,0,..(9 per frame); every memory token must be one contiguous stretch, so
    # its first-token position and size tile the sequence and its time is that stretch's mean time
    sizes = out.sizes.long()
    ends = torch.cumsum(sizes, 0)
    starts = ends - sizes
    token_times = torch.arange(60, dtype=torch.float64).repeat_interleave(9)
    expected = torch.stack([token_times[s:e].mean() for s, e in zip(starts.tolist(), ends.tolist())])
    torch.testing.assert_close(out.timestamps, expected)
    assert torch.all(torch.diff(out.timestamps) >= 0)


def test_adjacent_merge_groups_are_contiguous_runs_of_the_most_similar_neighbours():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.05], [1.0, 0.0], [0.0, 1.0]])
    groups = adjacent_merge_groups(feats, torch.ones(5), 4)
    assert groups.tolist() == [0, 1, 2, 2, 3]  # 2~3 are the closest neighbours; 0~2 are alike but not adjacent
    groups = adjacent_merge_groups(torch.randn(50, 4), torch.ones(50), 7)
    assert groups.tolist() == sorted(groups.tolist()) and torch.unique(groups).numel() == 7
    assert torch.all(torch.diff(groups) <= 1)


def test_whole_tokens_in_a_chain_equal_feeding_frame_by_frame():
    tokens = VisualTokens.concat([chunk(k) for k in range(10)])
    out = Chain.from_spec("stream-memory:30")(tokens, CompressContext())
    memory = StreamMemory(StreamMemory.Config(budget=30))
    memory.reset()
    for f in range(20):
        memory.update(tokens.select(torch.nonzero(tokens.frame_ids == f).flatten()).replace(
            grid=(1, 3, 3), frame_times=tokens.frame_times[f:f + 1]))
    streamed = memory.read()
    torch.testing.assert_close(out.features, streamed.features)
    torch.testing.assert_close(out.sizes, streamed.sizes)
    assert out.grid == tokens.grid and out.provenance[-1].name == "stream-memory"
    assert out.provenance[-1].tokens_in == 180 and out.provenance[-1].tokens_out == 30


def test_budget_comes_from_option_then_context_then_default():
    assert StreamMemory().budget(None) == 256
    assert StreamMemory().budget(CompressContext(budget=12)) == 12
    assert StreamMemory(StreamMemory.Config(budget=5)).budget(CompressContext(budget=12)) == 5
    with pytest.raises(ValueError, match="read"):
        StreamMemory().read()
    assert consolidate(chunk(0), 100).num_tokens == 18  # under budget: untouched
