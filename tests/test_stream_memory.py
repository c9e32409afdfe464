"""The streaming memory stays within its budget, merges whole adjacent frames and streams like a whole call."""

from __future__ import annotations

import pytest
import torch

from mmlong.compressors.base import Chain, CompressContext
from mmlong.compressors.stream_memory import StreamMemory, consolidate
from mmlong.errors import ConfigError
from mmlong.types import VisualTokens


def chunk(k: int, frames: int = 2, hw: int = 3, dim: int = 16) -> VisualTokens:
    """Chunk ``k`` of a stream: ``frames`` frames of ``hw x hw`` tokens, frame ids and times video-wide."""
    scene = torch.randn(dim, generator=torch.Generator().manual_seed(k // 10))  # a new scene every 10 chunks
    grid = scene + 0.3 * torch.randn(frames, hw, hw, dim, generator=torch.Generator().manual_seed(1000 + k))
    times = torch.arange(k * frames, (k + 1) * frames, dtype=torch.float64)
    return VisualTokens.from_grid(grid, times, first_frame=k * frames)


def test_memory_stays_within_budget_over_100_chunks_and_counts_every_token():
    memory = StreamMemory(StreamMemory.Config(budget=45))  # 5 frames of 9 tokens
    memory.reset()
    for k in range(100):
        memory.update(chunk(k))
        assert memory.num_tokens <= 45 + 18 * 9  # long-term memory + a short-term buffer
    out = memory.read()
    assert out.num_tokens == 45 and float(out.sizes.sum()) == 1800
    assert out.meta["tokens_seen"] == 1800 and out.grid[0] == 200
    assert torch.all(torch.diff(out.timestamps.view(5, 9)[:, 0]) > 0)  # memory frames stay in time order


def test_each_memory_frame_is_a_contiguous_run_of_whole_frames():
    out = StreamMemory(StreamMemory.Config(budget=36, short=6, merge=2))(VisualTokens.concat(
        [chunk(k) for k in range(12)]))
    assert out.num_tokens == 36
    sizes = out.sizes.view(4, 9)
    assert torch.all(sizes == sizes[:, :1])  # all tokens of a memory frame stand for the same frames
    starts = out.frame_ids.view(4, 9)[:, 0]
    spans = torch.cat([starts, torch.tensor([24])])
    assert torch.equal(torch.diff(spans), sizes[:, 0].long())


def test_whole_tokens_in_a_chain_equal_feeding_frame_by_frame():
    tokens = VisualTokens.concat([chunk(k) for k in range(10)])
    out = Chain.from_spec("stream-memory:27,short=4")(tokens, CompressContext())
    memory = StreamMemory(StreamMemory.Config(budget=27, short=4))
    memory.reset()
    for f in range(20):
        memory.update(tokens.select(torch.nonzero(tokens.frame_ids == f).flatten()).replace(
            grid=(1, 3, 3), frame_times=tokens.frame_times[f:f + 1]))
    streamed = memory.read()
    torch.testing.assert_close(out.features, streamed.features)
    torch.testing.assert_close(out.sizes, streamed.sizes)
    assert out.provenance[-1].name == "stream-memory"
    assert out.provenance[-1].tokens_in == 180 and out.provenance[-1].tokens_out == 27


def test_budget_options_and_errors():
    assert StreamMemory().budget(None) == 256
    assert StreamMemory().budget(CompressContext(budget=12)) == 12
    assert StreamMemory(StreamMemory.Config(budget=5)).budget(CompressContext(budget=12)) == 5
    with pytest.raises(ValueError, match="read"):
        StreamMemory().read()
    with pytest.raises(ValueError, match="short >= merge"):
        StreamMemory.Config(short=2, merge=3)
    assert consolidate(chunk(0), 100).num_tokens == 18  # under budget: untouched
    uneven = chunk(0).select(torch.arange(17))
    with pytest.raises(ConfigError, match="same token count"):
        StreamMemory()(uneven)
    with pytest.raises(ConfigError, match="at least 9"):
        StreamMemory(StreamMemory.Config(budget=5))(chunk(0))
