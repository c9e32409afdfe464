"""A training-free streaming memory with a fixed token budget: MovieChat's memory consolidation.

Reference: Song et al. 2024, "MovieChat: From Dense Token to Sparse Memory for Long Video Understanding" (CVPR
2024, arXiv:2307.16449); official code rese1f/MovieChat (short-term buffer consolidation in
``MovieChat/models/moviechat.py``). Frames
arrive one after another into a short-term buffer of ``short`` frames (paper: 18); when it is full it is
consolidated to ``merge`` frames (paper: 2) that join the long-term memory. Consolidation repeatedly takes the
ADJACENT pair of frames with the highest similarity, the mean of all token-pair dot products
``mean(F_i @ F_{i+1}^T)``, and replaces it by the plain average ``(F_i + F_{i+1}) / 2``. A frame is all of its
tokens, so the same patch of consecutive frames is merged with itself; every memory frame stands for one
contiguous stretch of the video. ``read`` returns the long-term memory followed by the short-term buffer.

Deviations: mmlong bounds the memory by a token budget, so the long-term memory is consolidated by the same rule
whenever it holds more than ``budget // tokens_per_frame`` frames (MovieChat lets it grow to a frame count), and
``read`` consolidates long + short to the budget too. Merged tokens keep mmlong's bookkeeping: sizes add up,
times and positions are averaged with the same weights as the features. Frames must have equal token counts.

>>> import torch
>>> frames = torch.tensor([[[1.0, 0.0]], [[0.8, 0.2]], [[0.0, 1.0]], [[0.1, 0.9]]])  # 4 frames of 1 token
>>> consolidation_weights(frames, 3).tolist()      # frames 2 and 3 are the most similar pair (0.9)
[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmlong.compressors.base import CompressContext, StreamingCompressor
from mmlong.errors import ConfigError
from mmlong.types import VisualTokens

DEFAULT_BUDGET = 256


def frame_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """MovieChat's similarity of two frames ``[n, D]``: the mean of all token-pair dot products."""
    return float((a @ b.T).mean())


def consolidation_weights(frames: torch.Tensor, keep: int) -> torch.Tensor:
    """Merge the most similar adjacent frames into their average until ``keep`` remain.

    frames ``[F, n, D]``. Returns float64 ``[F', F]`` (``F' = min(F, keep)``): row ``k`` holds the weight of each
    input frame in memory frame ``k`` (rows sum to 1; each row is one contiguous run of frames).
    """
    count = int(frames.shape[0])
    current = [f.double() for f in frames]
    weights = [torch.eye(count, dtype=torch.float64)[i] for i in range(count)]
    similar = [frame_similarity(current[i], current[i + 1]) for i in range(count - 1)]
    while len(current) > max(1, int(keep)):
        i = similar.index(max(similar))  # first of the most similar pair
        current[i] = (current[i] + current[i + 1]) / 2
        weights[i] = (weights[i] + weights[i + 1]) / 2
        del current[i + 1], weights[i + 1], similar[i]
        if i > 0:
            similar[i - 1] = frame_similarity(current[i - 1], current[i])
        if i < len(similar):
            similar[i] = frame_similarity(current[i], current[i + 1])
    return torch.stack(weights)


def _frames_of(tokens: VisualTokens) -> tuple[torch.Tensor, int]:
    """(frame rank per token ``[N]``, tokens per frame); frames must have equal token counts."""
    _, rank = torch.unique(tokens.frame_ids, return_inverse=True)
    counts = torch.bincount(rank)
    if bool((counts != counts[0]).any()):
        raise ConfigError("stream-memory merges whole frames token by token, so every frame needs the same token "
                          f"count (got {sorted(set(counts.tolist()))}); put it before steps that thin frames "
                          "unevenly (tome:auto, select)")
    return rank, int(counts[0])


def consolidate(tokens: VisualTokens, keep_frames: int) -> VisualTokens:
    """``tokens`` (frames in time order) consolidated to at most ``keep_frames`` frames, MovieChat's rule."""
    rank, per_frame = _frames_of(tokens)
    frames = int(rank.max()) + 1 if tokens.num_tokens else 0
    if frames <= keep_frames:
        return tokens
    order = torch.argsort(rank * per_frame + torch.arange(tokens.num_tokens), stable=True)
    tokens, rank = tokens.select(order), rank[order]
    slot = torch.arange(tokens.num_tokens) - rank * per_frame  # token index within its frame
    weights = consolidation_weights(tokens.features.reshape(frames, per_frame, -1), keep_frames)  # [F', F]
    memory_frame = weights.gt(0).to(torch.long).argmax(dim=0)  # [F]: the memory frame each frame joined
    token_weight = weights[memory_frame, torch.arange(frames)][rank]
    merged = tokens.merge(memory_frame[rank] * per_frame + slot, weights=token_weight)
    return merged


class StreamMemory(StreamingCompressor):
    """``stream-memory[:BUDGET][,short=18][,merge=2]``: MovieChat's short/long-term memory (``reset`` /
    ``update`` / ``read``) holding at most BUDGET tokens (the option, else ``ctx.budget``, else 256)."""

    name = "stream-memory"

    @dataclass
    class Config:
        budget: int | None = None
        short: int = 18
        merge: int = 2

        def __post_init__(self) -> None:
            if self.budget is not None and self.budget < 1:
                raise ValueError(f"stream-memory budget must be at least 1 token, got {self.budget}")
            if self.short < 1 or not 1 <= self.merge <= self.short:
                raise ValueError(f"stream-memory needs short >= merge >= 1, got short={self.short}, "
                                 f"merge={self.merge}")

    def __init__(self, config: "StreamMemory.Config | None" = None) -> None:
        super().__init__(config)
        self.reset()

    def budget(self, ctx: CompressContext | None) -> int:
        if self.config.budget is not None:
            return int(self.config.budget)
        if ctx is not None and ctx.budget is not None:
            return int(ctx.budget)
        return DEFAULT_BUDGET

    def reset(self) -> None:
        self._long: VisualTokens | None = None
        self._short: VisualTokens | None = None
        self._seen = 0
        self._budget = DEFAULT_BUDGET

    def _frame_budget(self, per_frame: int) -> int:
        if self._budget < per_frame:
            raise ConfigError(f"stream-memory:{self._budget} holds whole frames but a frame has {per_frame} tokens; "
                              f"give a budget of at least {per_frame} (e.g. stream-memory:{4 * per_frame}) or pool "
                              "first")
        return self._budget // per_frame

    def update(self, chunk: VisualTokens, ctx: CompressContext | None = None) -> None:
        """Add ``chunk`` (tokens of the next frames) frame by frame through the short-term buffer."""
        if chunk.num_tokens == 0:
            return
        self._budget = self.budget(ctx)
        self._seen += chunk.num_tokens
        rank, per_frame = _frames_of(chunk)
        frames = int(rank.max()) + 1
        times = chunk.frame_times if chunk.frame_times is not None and len(chunk.frame_times) == frames else None
        for index in range(frames):
            frame = chunk.select(torch.nonzero(rank == index).flatten()).replace(
                grid=(1, chunk.grid[1], chunk.grid[2]), frame_times=None if times is None else times[index:index + 1])
            self._short = frame if self._short is None else VisualTokens.concat([self._short, frame])
            if self._short.num_tokens >= self.config.short * per_frame:
                merged = consolidate(self._short, self.config.merge)
                self._long = merged if self._long is None else VisualTokens.concat([self._long, merged])
                self._long = consolidate(self._long, self._frame_budget(per_frame))
                self._short = None

    @property
    def num_tokens(self) -> int:
        """Tokens held now (long-term memory plus the short-term buffer)."""
        return sum(t.num_tokens for t in (self._long, self._short) if t is not None)

    def read(self) -> VisualTokens:
        parts = [t for t in (self._long, self._short) if t is not None]
        if not parts:
            raise ValueError("stream-memory: read() before any update(); feed it tokens first")
        memory = VisualTokens.concat(parts) if len(parts) > 1 else parts[0]
        _, per_frame = _frames_of(memory)
        memory = consolidate(memory, self._frame_budget(per_frame))
        return memory.replace(meta={**memory.meta, "tokens_seen": self._seen})

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        self.reset()
        order = torch.argsort(tokens.frame_ids, stable=True)
        if bool((order != torch.arange(tokens.num_tokens)).any()):
            tokens = tokens.select(order)
        self.update(tokens, ctx)
        return self.read()
