"""Encoded frames cached by frame index: whatever frames a question picks, those any earlier question about the
same video already encoded are read back instead of decoded and encoded again.

Each frame's tokens are one :class:`~mmlong.cache.FeatureCache` entry under a key of (video content, decode
options, encoder + weights, frame index), stored with frame id and t position 0; :func:`join_frames` lines them
up in the order asked. A query-aware sampler (``coverage``) picks different frames for different questions,
so a cache keyed by the whole pick would miss on every new question; keyed by frame, it misses only on the
frames this question adds.

>>> import torch
>>> from mmlong.types import VisualTokens
>>> tokens = VisualTokens.from_grid(torch.arange(12.0).reshape(3, 1, 2, 2), torch.tensor([0.0, 1.0, 2.0]))
>>> parts = split_frames(tokens)
>>> [p.grid for p in parts], parts[2].frame_ids.tolist(), parts[2].features[:, 0].tolist()
([(1, 1, 2), (1, 1, 2), (1, 1, 2)], [0, 0], [8.0, 10.0])
>>> joined = join_frames([parts[2], parts[0]])
>>> joined.grid, joined.frame_ids.tolist(), joined.positions[:, 0].tolist(), joined.timestamps.tolist()
((2, 1, 2), [0, 0, 1, 1], [0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 0.0, 0.0])
>>> joined.frame_times.tolist()  # one time per frame, as the whole encoding had
[2.0, 0.0]
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from mmlong.types import VisualTokens


def frame_keys(cache: Any, video: str, decode: dict[str, Any], encoder_id: str, indices: Sequence[int]) -> list[str]:
    """One 32-hex-digit feature-cache key per frame index (the video is fingerprinted once)."""
    base = cache.key(video, "frame", decode, encoder_id)
    return [hashlib.sha256(f"{base}|{int(i)}".encode()).hexdigest()[:32] for i in indices]


def shift_frames(tokens: VisualTokens, offset: int) -> VisualTokens:
    """``tokens`` with frame ids and t positions moved by ``offset`` (chunks of one video lined up in time)."""
    if offset == 0:
        return tokens
    positions = tokens.positions.clone()
    positions[:, 0] += offset
    return tokens.replace(frame_ids=tokens.frame_ids + offset, positions=positions)


def split_frames(tokens: VisualTokens) -> list[VisualTokens]:
    """Encoder output of ``T`` frames (frame ids ``0..T-1``) -> ``T`` one-frame tokens, each with frame id and t
    position 0, grid ``(1, H, W)`` and (when the tokens keep them) its own frame time."""
    _, height, width = tokens.grid
    parts = []
    for frame in range(tokens.grid[0]):
        part = tokens.select(tokens.frame_ids == frame)
        own_time = tokens.frame_times[frame:frame + 1].clone() if tokens.frame_times is not None else None
        parts.append(shift_frames(part, -frame).replace(grid=(1, height, width), frame_times=own_time,
                                                        provenance=()))
    return parts


def join_frames(parts: Sequence[VisualTokens]) -> VisualTokens:
    """One-frame tokens -> the tokens of all of them in the order given (frame ids and t positions 0..T-1)."""
    return VisualTokens.concat([shift_frames(part, k) for k, part in enumerate(parts)])


def cached_frames(cache: Any, keys: Sequence[str], indices: np.ndarray,
                  check: Callable[[VisualTokens], None] | None,
                  encode: Callable[[np.ndarray], Iterator[VisualTokens]]) -> tuple[VisualTokens, int]:
    """The tokens of frames ``indices [T]`` (keys from :func:`frame_keys`), in order, and how many came from
    the cache. ``encode(missing)`` yields the encoder's tokens of the ``missing`` frame indices chunk by chunk
    (frame ids counted across chunks, as the pipeline's decode-and-encode loop gives them); each new frame is
    stored. An encoder that merges frames in time gives no per-frame tokens: then nothing is stored and the
    frames are encoded whole. ``check`` validates each entry read (see :meth:`~mmlong.cache.FeatureCache.get`:
    one that fails is deleted and encoded again)."""
    found: dict[int, VisualTokens] = {}
    for index, key in zip(indices.tolist(), keys):
        if index not in found:
            hit = cache.get(key, check)
            if hit is not None and hit.grid[0] == 1:
                found[index] = hit.replace(provenance=())
    hits = len(found)
    missing = np.array(sorted({i for i in indices.tolist() if i not in found}), dtype=np.int64)
    if len(missing):
        chunks = list(encode(missing))
        if sum(chunk.grid[0] for chunk in chunks) != len(missing):
            # the encoder merges frames in time (Qwen2-VL's temporal patches): no frame has tokens of its own,
            # so nothing is stored per frame and the pick is encoded whole, in the order asked
            if not found and np.array_equal(missing, indices):
                return VisualTokens.concat(chunks), 0
            return VisualTokens.concat(list(encode(indices))), 0
        key_of = dict(zip(indices.tolist(), keys))
        done = 0
        for chunk in chunks:
            for part in split_frames(shift_frames(chunk, -int(chunk.frame_ids.min()))):
                index = int(missing[done])
                cache.put(key_of[index], part)
                found[index] = part
                done += 1
    return join_frames([found[i] for i in indices.tolist()]), hits

