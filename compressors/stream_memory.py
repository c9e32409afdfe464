"""A training-free streaming memory with a fixed token budget.

Memory consolidation of MovieChat (Song et al. 2024, "MovieChat: From Dense Token to Sparse Memory for Long
Video Understanding", CVPR): tokens arrive chunk by chunk; whenever the memory holds more than its budget, the
most similar pair of ADJACENT tokens (cosine similarity of their current features) is merged into one
size-weighted token, again and again until the budget is met. Only neighbours in the token sequence merge, so
each memory token summarises one contiguous stretch of the video, and the size-weighted mean of everything seen
is preserved. The memory never holds more than ``budget`` tokens plus one chunk, however long the video.

>>> import torch
>>> feats = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.0, 1.0]])
>>> adjacent_merge_groups(feats, torch.ones(5), 2).tolist()
[0, 0, 1, 1, 1]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mmlong.compressors.base import CompressContext, StreamingCompressor
from mmlong.types import VisualTokens

DEFAULT_BUDGET = 256


def adjacent_merge_groups(features: torch.Tensor, sizes: torch.Tensor, keep: int) -> torch.Tensor:
    """Greedily merge the most similar adjacent pair until ``keep`` tokens remain.

    features ``[N, D]``, sizes ``[N]`` (weights of the running means). Returns int64 ``[N]``: the id
    (0..keep-1, non-decreasing) of the contiguous run each token ends up in.
    """
    n = int(features.shape[0])
    keep = max(1, int(keep))
    if n <= keep:
        return torch.arange(n)
    weight = sizes.detach().to(torch.float64).numpy().copy()
    sums = features.detach().to(torch.float64).numpy() * weight[:, None]
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    unit = sums / np.maximum(norms, 1e-12)  # direction of each run's mean (the weight does not change it)
    nxt = np.arange(1, n + 1)  # n = no successor
    prv = np.arange(-1, n - 1)
    alive = np.ones(n, dtype=bool)
    sim = np.full(n, -np.inf)
    sim[:-1] = (unit[:-1] * unit[1:]).sum(-1)
    for _ in range(n - keep):
        i = int(np.argmax(sim))
        j = int(nxt[i])
        sums[i] += sums[j]
        weight[i] += weight[j]
        unit[i] = sums[i] / max(float(np.linalg.norm(sums[i])), 1e-12)
        alive[j] = False
        sim[j] = -np.inf
        k = int(nxt[j])
        nxt[i] = k
        if k < n:
            prv[k] = i
            sim[i] = float(unit[i] @ unit[k])
        else:
            sim[i] = -np.inf
        p = int(prv[i])
        if p >= 0:
            sim[p] = float(unit[p] @ unit[i])
    alive = torch.from_numpy(alive)
    return torch.cumsum(alive.long(), 0) - 1


def consolidate(tokens: VisualTokens, budget: int) -> VisualTokens:
    """``tokens`` merged (adjacent pairs only, size-weighted) down to at most ``budget`` tokens."""
    if tokens.num_tokens <= budget:
        return tokens
    return tokens.merge(adjacent_merge_groups(tokens.features, tokens.sizes, budget))


def streamed_groups(features: torch.Tensor, sizes: torch.Tensor, frame_ids: torch.Tensor, budget: int) -> torch.Tensor:
    """Run ids ``[N]`` the memory ends with when tokens (sorted by ``frame_ids``) arrive one frame at a time.

    features ``[N, D]``, sizes ``[N]``, frame_ids ``[N]`` non-decreasing. Equivalent to ``update`` per frame,
    but keeps the bookkeeping on tensors so the caller merges the original tokens once.
    """
    n = int(features.shape[0])
    bounds = torch.nonzero(torch.diff(frame_ids, prepend=frame_ids[:1] - 1)).flatten().tolist() + [n]
    run_of = torch.zeros(n, dtype=torch.long)  # memory slot of each token seen so far
    mem_sum = features.new_zeros((0, features.shape[1]), dtype=torch.float64)
    mem_weight = torch.zeros(0, dtype=torch.float64)
    for start, stop in zip(bounds[:-1], bounds[1:]):
        w = sizes[start:stop].to(torch.float64)
        sums = torch.cat([mem_sum, features[start:stop].to(torch.float64) * w.unsqueeze(1)])
        weight = torch.cat([mem_weight, w])
        run_of[start:stop] = torch.arange(mem_weight.shape[0], weight.shape[0])
        groups = adjacent_merge_groups(sums / weight.clamp_min(1e-12).unsqueeze(1), weight, budget)
        g = int(groups.max()) + 1
        mem_sum = torch.zeros(g, sums.shape[1], dtype=torch.float64).index_add_(0, groups, sums)
        mem_weight = torch.zeros(g, dtype=torch.float64).index_add_(0, groups, weight)
        run_of[:stop] = groups[run_of[:stop]]
    return run_of


class StreamMemory(StreamingCompressor):
    """``stream-memory:BUDGET``: a fixed-size memory fed chunk by chunk (``reset`` / ``update`` / ``read``).

    The budget is the option, else ``ctx.budget``, else 256 tokens. Called on whole tokens (inside a plain
    chain) it feeds them one frame at a time, as a stream would.
    """

    name = "stream-memory"

    @dataclass
    class Config:
        budget: int | None = None

        def __post_init__(self) -> None:
            if self.budget is not None and self.budget < 1:
                raise ValueError(f"stream-memory budget must be at least 1 token, got {self.budget}")

    def __init__(self, config: "StreamMemory.Config | None" = None) -> None:
        super().__init__(config)
        self._memory: VisualTokens | None = None
        self._seen = 0

    def budget(self, ctx: CompressContext | None) -> int:
        if self.config.budget is not None:
            return int(self.config.budget)
        if ctx is not None and ctx.budget is not None:
            return int(ctx.budget)
        return DEFAULT_BUDGET

    def reset(self) -> None:
        self._memory = None
        self._seen = 0

    def update(self, chunk: VisualTokens, ctx: CompressContext | None = None) -> None:
        """Add ``chunk`` (tokens of the next frames) and consolidate back to the budget."""
        if chunk.num_tokens == 0:
            return
        self._seen += chunk.num_tokens
        joined = chunk if self._memory is None else VisualTokens.concat([self._memory, chunk])
        self._memory = consolidate(joined, self.budget(ctx))

    @property
    def num_tokens(self) -> int:
        """Tokens held now (at most the budget between updates)."""
        return 0 if self._memory is None else self._memory.num_tokens

    def read(self) -> VisualTokens:
        if self._memory is None:
            raise ValueError("stream-memory: read() before any update(); feed it tokens first")
        return self._memory.replace(meta={**self._memory.meta, "tokens_seen": self._seen})

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        self.reset()
        order = torch.argsort(tokens.frame_ids, stable=True)
        if bool((order != torch.arange(tokens.num_tokens)).any()):
            tokens = tokens.select(order)
        groups = streamed_groups(tokens.features, tokens.sizes, tokens.frame_ids, self.budget(ctx))
        self._memory = tokens.merge(groups)
        self._seen = tokens.num_tokens
        return self.read()
