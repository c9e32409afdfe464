"""Reference test: MovieChat's memory consolidation (rese1f/MovieChat), written here independently: frames enter a
short-term buffer; a full buffer is merged to ``merge`` frames by repeatedly averaging the adjacent pair with the
largest mean token-pair dot product; the long-term memory is merged the same way when over budget."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmlong.compressors.stream_memory import StreamMemory
from mmlong.types import VisualTokens
from tests.pairing import assert_paired, group_rows


def merge_frames(buffer: list[tuple[torch.Tensor, torch.Tensor]], keep: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """MovieChat's consolidation of ``(frame [n, D], weights [F])`` pairs; the weights (one-hot per input frame)
    ride along so a test can tell which frames, in what shares, each memory frame stands for."""
    buffer = [(b.clone(), w.clone()) for b, w in buffer]
    while len(buffer) > keep:
        similar = [torch.mean(buffer[i][0] @ buffer[i + 1][0].transpose(-1, -2)) for i in range(len(buffer) - 1)]
        best = similar.index(max(similar))
        buffer[best] = ((buffer[best][0] + buffer[best + 1][0]) / 2, (buffer[best][1] + buffer[best + 1][1]) / 2)
        del buffer[best + 1]
    return buffer


def moviechat_reference(frames: list[torch.Tensor], short: int, merge: int, budget_frames: int):
    long, buffer = [], []
    for index, frame in enumerate(frames):
        buffer.append((frame, torch.eye(len(frames), dtype=torch.float64)[index]))
        if len(buffer) == short:
            long = merge_frames(long + merge_frames(buffer, merge), budget_frames)
            buffer = []
    return merge_frames(long + buffer, budget_frames)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("short,merge,budget_frames", [(18, 2, 4), (5, 2, 3), (4, 1, 6)])
def test_memory_equals_the_moviechat_reference(seed, short, merge, budget_frames):
    gen = torch.Generator().manual_seed(seed)
    scenes = torch.randn(4, 1, 1, 8, generator=gen)
    grid = scenes.repeat_interleave(10, 0) + 0.5 * torch.randn(40, 2, 2, 8, generator=gen)
    tokens = VisualTokens.from_grid(grid, torch.arange(40.0))
    out = StreamMemory(StreamMemory.Config(budget=4 * budget_frames, short=short, merge=merge))(tokens)
    frames = [grid[f].reshape(4, 8).double() for f in range(40)]
    memory = moviechat_reference(frames, short, merge, budget_frames)
    expected = torch.stack([m for m, _ in memory])
    assert out.num_tokens == expected.shape[0] * 4
    torch.testing.assert_close(out.features.reshape(-1, 4, 8).double(), expected, atol=1e-5, rtol=1e-5)
    # pairing: memory token (k, p) is patch p of the frames memory frame k merged, at their weighted time/place
    rows = []
    for features, weights in memory:
        for patch in range(4):
            members = [f * 4 + patch for f in weights.nonzero().flatten().tolist()]
            rows.append(group_rows(tokens, [members], features[patch:patch + 1], weights.repeat_interleave(4))[0])
    assert_paired(out, torch.stack(rows))


def test_two_static_shots_keep_both_shots_intact():
    """The same patch of consecutive frames merges with itself: each memory frame is one shot's frame."""
    gen = torch.Generator().manual_seed(0)
    shot_a, shot_b = torch.randn(16, 64, generator=gen), torch.randn(16, 64, generator=gen)
    frames = torch.stack([shot_a] * 8 + [shot_b] * 8).reshape(16, 4, 4, 64)
    tokens = VisualTokens.from_grid(frames, torch.arange(16.0))
    out = StreamMemory(StreamMemory.Config(budget=32, short=16, merge=2))(tokens)  # 256 -> 32 tokens
    originals = F.normalize(tokens.features, dim=-1)
    memory = F.normalize(out.features, dim=-1)
    distance = 1 - (originals @ memory.T).max(dim=1).values  # each original token to its nearest memory token
    assert float(distance.max()) < 1e-3
