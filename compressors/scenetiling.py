"""SceneTilling: cut a video into scenes where adjacent frames stop resembling each other.

Wang et al. 2024, "VideoLLaMB: Long-context Video Understanding with Recurrent Memory Bridges" (ICCV 2025,
arXiv:2409.01071); official code bigai-nlco/VideoLLaMB (``segment`` in
``llava/model/multimodal_projector/self_segment.py``). Like TextTiling
for text: the cosine similarity of each pair of adjacent frames, then a depth score per gap,
``lpeak + rpeak - 2 * sim[i]``, where the peaks are found by climbing from the gap towards higher similarity on
each side until it stops rising. Gaps with depth above ``mean + alpha * std`` (or the top ``k``) end a scene, at
most ``max_segments`` scenes, and the last frame always closes the final one. ``std`` is the unbiased one
(``torch.std_mean``), as in the reference; no deviation. The ``scene`` sampler (mmlong's own) runs it on a cheap
scan and takes N frames at the centres of N equal parts of each scene.

>>> import torch
>>> feats = torch.tensor([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 4 + [[1.0, 1.0]] * 4)
>>> segment_boundaries(feats)          # scene ends: frames 3, 7 and the last frame
[3, 7, 11]
>>> segment_ids([3, 7, 11], 12).tolist()
[0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from mmlong.compressors.base import CompressContext, Compressor, report
from mmlong.types import VisualTokens


# ---------------------------------------------------------------------- pure functions
def adjacent_similarity(frame_features: torch.Tensor) -> torch.Tensor:
    """``[T, D]`` -> ``[T-1]``: cosine similarity of frame ``i`` and frame ``i+1``."""
    f = frame_features.float()
    return F.cosine_similarity(f[:-1], f[1:], dim=-1)


def depth_scores(similarity: torch.Tensor) -> torch.Tensor:
    """``[G]`` gap similarities -> ``[G]`` depths ``lpeak + rpeak - 2 * sim[i]``.

    ``lpeak`` climbs left from gap ``i`` while the similarity does not fall, ``rpeak`` likewise to the right.

    >>> [round(d, 3) for d in depth_scores(torch.tensor([0.9, 0.2, 0.8])).tolist()]
    [0.0, 1.3, 0.0]
    """
    sim = [float(v) for v in similarity]
    n = len(sim)
    out = []
    for i in range(n):
        left = sim[i]
        for j in range(i - 1, -1, -1):
            if sim[j] < left:
                break
            left = sim[j]
        right = sim[i]
        for j in range(i + 1, n):
            if sim[j] < right:
                break
            right = sim[j]
        out.append(left + right - 2.0 * sim[i])
    return torch.tensor(out, dtype=similarity.dtype)


def segment_boundaries(
    frame_features: torch.Tensor,
    alpha: float = 0.5,
    k: int | None = None,
    max_segments: int = 16,
) -> list[int]:
    """Index of the last frame of every scene, ascending; the last entry is always ``T-1``.

    frame_features ``[T, D]``. Gap ``i`` (between frames ``i`` and ``i+1``) ends a scene at frame ``i`` when its
    depth score is among the top ``k`` (when given) or above ``mean + alpha * std``; at most
    ``max_segments - 1`` gaps are kept (the deepest).
    """
    t = int(frame_features.shape[0])
    if t <= 1:
        return [max(t - 1, 0)]
    depth = depth_scores(adjacent_similarity(frame_features))
    limit = max(int(max_segments) - 1, 0)
    if k is not None:
        chosen = torch.topk(depth, min(int(k), limit, depth.shape[0])).indices
    else:
        if depth.shape[0] > 1:
            threshold = float(depth.mean() + alpha * depth.std())
        else:
            threshold = float(depth.mean())
        chosen = torch.nonzero(depth > threshold).flatten()
        if chosen.shape[0] > limit:
            chosen = chosen[torch.topk(depth[chosen], limit).indices]
    return sorted(set(int(i) for i in chosen) | {t - 1})


def segment_ids(boundaries: Sequence[int], num_frames: int) -> torch.Tensor:
    """Scene id of each of ``num_frames`` frames (int64 ``[T]``) from the scenes' last-frame indices."""
    ends = torch.tensor(sorted(boundaries), dtype=torch.long)
    return torch.searchsorted(ends, torch.arange(num_frames), right=False).clamp_max(max(len(ends) - 1, 0))


# ---------------------------------------------------------------------- compressor
@dataclass
class SceneConfig:
    """Options shared by the compressor and the sampler."""

    alpha: float = 0.5
    k: int | None = None
    max_segments: int = 16

    def __post_init__(self) -> None:
        if self.max_segments < 1:
            raise ValueError(f"max_segments must be at least 1, got {self.max_segments}")
        if self.k is not None and self.k < 0:
            raise ValueError(f"k (number of cuts) must be 0 or more, got {self.k}")


class SceneTile(Compressor):
    """``scenetile[:ALPHA][,k=K][,max_segments=16]``: tag each token with its scene (``tokens.segments``).

    Tokens are not removed; the Step's ``extra`` lists each scene's last frame (``ends``, frame positions among
    the frames present), the scene start times (``starts``) and the cut times (``boundaries``: the time of the
    first frame after each cut, seconds).
    """

    name = "scenetile"
    Config = SceneConfig

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        if tokens.num_tokens == 0:
            return tokens
        ids, times, means = tokens.frame_means()
        ends = segment_boundaries(means, self.config.alpha, self.config.k, self.config.max_segments)
        per_frame = segment_ids(ends, ids.shape[0])
        rank = torch.searchsorted(ids, tokens.frame_ids)
        starts = [0] + [e + 1 for e in ends[:-1]]
        extra = {
            "frame_times": [round(float(t), 3) for t in times],
            "ends": ends,
            "starts": [round(float(times[s]), 3) for s in starts],
            "boundaries": [round(float(times[e + 1]), 3) for e in ends[:-1]],
        }
        return report(tokens.replace(segments=per_frame[rank]), extra)
