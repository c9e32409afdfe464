"""PruneVid (pre-LLM part): temporal segments by frame clustering, static/dynamic split, DPC-KNN spatial merging.

Huang, Zhou & Han 2024, "PruneVid: Visual Token Pruning for Efficient Video Large Language Models" (ACL 2025
Findings, arXiv:2412.16117); official code Visual-AI/PruneVid (``models/pllava/modeling_pllava.py``:
``merge_frames_dynamic``, ``cluster_dpc_knn``, ``refine_clusters``). On ``F`` whole frames of ``n`` tokens
(``x [F, n, D]``):

1. **segments**: the frames' mean features ``[F, D]`` are clustered by DPC-KNN into ``int(F * segment_ratio)``
   clusters (``k = 7``); each cluster keeps its longest run(s) of consecutive frames; a cluster whose runs all
   last one frame, and every shorter run, is relabelled by the neighbouring run (left or right) that is longer
   (ties: left). The runs of equal labels are the segments.
2. **static / dynamic**: in a segment of ``W`` frames, token place ``l`` is static when the mean pairwise cosine
   similarity of its ``W`` features (``(sum_{w,t} cos - W) / (W (W - 1))``) exceeds ``tau``; a one-frame segment
   has no static tokens. Static tokens become their mean over the segment's frames.
3. **spatial merging**: the segment's static tokens, and each frame's dynamic tokens, are clustered by DPC-KNN
   into ``int(m * cluster_ratio)`` clusters (``k = 7``) when there are more than ``min_tokens`` (14) of them;
   a cluster becomes the plain mean of its members (DPC-KNN: distances ``|x_i - x_j| / sqrt(D)``, density
   ``exp(-mean of the k nearest squared distances)``, centres = top ``density * distance to the nearest denser
   token``, every token joins its nearest centre; :func:`mmlong.compressors.holitom.dpc_knn`).

Official settings (``scripts/eval.sh``): ``tau = 0.8``, ``temporal_segment_ratio = 0.25``, ``cluster_ratio =
0.5``. ``prunevid[:RATIO][,tau=0.8,cluster_ratio=0.5,segment_ratio=0.25,k=7,min_tokens=14]``: with a retention
``RATIO`` (or, without one, the chain's ``--budget``) the cluster ratio is set to the largest value whose output
fits that many tokens (segments and static tokens do not depend on it); without either, ``cluster_ratio``.

The paper's second, in-LLM stage (question-guided selection at LLM layer 10 with keep ratio ``alpha = 0.4``)
is :mod:`mmlong.compressors.prunevid_llm` (``--compress prunevid,prunevid-llm``); for it each output token's
selection set (its segment's static tokens, or its frame's dynamic tokens) is recorded as
``tokens.meta[SELECTION_KEY]``.

Deviations: the official ``cluster_dpc_knn`` adds uniform noise below 1e-6 to the densities; none is added here
(PruneVid clusters with ``k = 7`` neighbours, or all points when fewer, where densities of distinct features do not
tie; exactly equal densities would all count as densest; :mod:`mmlong.compressors.holitom`, whose clusterings can
use ``k = 1`` or ``2`` where densities tie, reproduces the noise); a cluster count that rounds to 0 is raised to 1
(the official ``topk`` fails there) and ``k`` is capped at the points clustered; merged tokens carry their members'
mean time and position (a static token sits mid-segment) and come in the order of their earliest member, where the
official code puts each segment's static tokens before its frames' dynamic ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mmlong.compressors.base import CompressContext, Compressor, report
from mmlong.compressors.holitom import dpc_knn
from mmlong.compressors.retention import check_ratio, frame_table, merge_with_features, retained_count
from mmlong.types import VisualTokens

#: ``tokens.meta`` key of the selection set of each output token (a list of ``N`` ints, JSON-safe for the token
#: cache; read by ``prunevid-llm``).
SELECTION_KEY = "prunevid_selection"


def refine_labels(labels: list[int]) -> list[int]:
    """Per-frame cluster labels with each cluster kept on its longest run(s) only (``refine_clusters``).

    >>> refine_labels([0, 0, 1, 0, 0, 2, 2, 2, 1])
    [0, 0, 0, 0, 0, 2, 2, 2, 2]
    """
    n = len(labels)
    runs: dict[int, list[tuple[int, int]]] = {}
    start = 0
    for i in range(1, n + 1):
        if i == n or labels[i] != labels[start]:
            runs.setdefault(labels[start], []).append((start, i - 1))
            start = i
    out = list(labels)
    for segments in runs.values():
        longest = max(e - s + 1 for s, e in segments)
        for s, e in segments:
            if longest == 1 or e - s + 1 < longest:
                out[s:e + 1] = [-1] * (e - s + 1)
    i = 0
    while i < n:
        if out[i] != -1:
            i += 1
            continue
        s = i
        while i < n and out[i] == -1:
            i += 1
        e = i - 1
        left = right = None
        left_len = right_len = 0
        if s > 0:
            left, j = out[s - 1], s - 1
            while j >= 0 and out[j] == left:
                j -= 1
            left_len = s - 1 - j
        if e < n - 1:
            right, j = out[e + 1], e + 1
            while j < n and out[j] == right:
                j += 1
            right_len = j - e - 1
        if left_len > right_len:
            label = left
        elif right_len > left_len:
            label = right
        else:
            label = left if left is not None else right
        out[s:e + 1] = [0 if label is None else label] * (e - s + 1)
    return out


def temporal_segments(frame_features: torch.Tensor, segment_ratio: float, k: int) -> list[int]:
    """Segment lengths (summing to ``F``) from the frames' mean features ``[F, D]``: DPC-KNN, then refined runs."""
    frames = frame_features.shape[0]
    clusters = max(1, min(frames, int(frames * segment_ratio)))
    _, slot = dpc_knn(frame_features, clusters, min(k, frames))
    labels = refine_labels(slot.tolist())
    lengths, start = [], 0
    for i in range(1, frames + 1):
        if i == frames or labels[i] != labels[start]:
            lengths.append(i - start)
            start = i
    return lengths


def static_mask(x: torch.Tensor, tau: float) -> torch.Tensor:
    """bool ``[n]``: token places whose mean pairwise cosine similarity over a segment ``x [W, n, D]`` is > tau."""
    frames = x.shape[0]
    if frames < 2:
        return torch.zeros(x.shape[1], dtype=torch.bool)
    unit = F.normalize(x.double(), dim=-1)
    total = (unit.sum(dim=0) ** 2).sum(dim=-1)  # sum over all (w, t) pairs of cos, self pairs included
    return (total - frames) / (frames * (frames - 1)) > tau


def merged_count(m: int, cluster_ratio: float, min_tokens: int) -> int:
    """Tokens left of ``m`` after spatial merging: ``int(m * cluster_ratio)`` (at least 1) above ``min_tokens``.

    >>> merged_count(49, 0.5, 14), merged_count(14, 0.5, 14), merged_count(20, 0.01, 14), merged_count(0, 0.5, 14)
    (24, 14, 1, 0)
    """
    return max(1, int(m * cluster_ratio)) if m > min_tokens else m


def fitted_cluster_ratio(layout: list[tuple[int, int]], n: int, target: int, min_tokens: int) -> float:
    """The largest cluster ratio in (0, 1] whose output fits ``target`` tokens (the smallest one if none does).

    layout: ``(frames W, static tokens S)`` per segment; the output is ``sum(c(S) + W c(n - S))``.
    """
    def count(ratio: float) -> int:
        return sum(merged_count(s, ratio, min_tokens) + w * merged_count(n - s, ratio, min_tokens)
                   for w, s in layout)

    lo, hi = 1e-9, 1.0
    if count(hi) <= target:
        return hi
    for _ in range(60):  # count() is non-decreasing in the ratio
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if count(mid) <= target else (lo, mid)
    return lo


def _cluster(x: torch.Tensor, ratio: float, k: int, min_tokens: int) -> torch.Tensor:
    """Cluster slot of each row of ``x [m, D]`` (``arange(m)`` when ``m <= min_tokens``)."""
    m = x.shape[0]
    if m <= min_tokens:
        return torch.arange(m)
    clusters = merged_count(m, ratio, min_tokens)
    return dpc_knn(x, clusters, min(k, m))[1]


def prunevid_groups(x: torch.Tensor, tau: float, cluster_ratio: float | None, segment_ratio: float, k: int,
                    min_tokens: int, target: int | None = None) -> tuple[torch.Tensor, dict]:
    """PruneVid's merging on whole frames ``x [F, n, D]``: the output group ``[F, n]`` of every input token
    (ids ``0..G-1``) and a summary (segment lengths, static tokens per segment, the cluster ratio used, and
    ``selection``: for each group, the id of its selection set -- a segment's static tokens, or one frame's
    dynamic tokens -- within which the in-LLM stage, :mod:`mmlong.compressors.prunevid_llm`, ranks)."""
    frames, n, _ = x.shape
    lengths = temporal_segments(x.mean(dim=1), segment_ratio, k)
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    statics = [static_mask(x[s:s + w], tau) for s, w in zip(starts, lengths)]
    if target is not None:
        layout = [(w, int(m.sum())) for w, m in zip(lengths, statics)]
        cluster_ratio = fitted_cluster_ratio(layout, n, target, min_tokens)
    groups = torch.empty(frames, n, dtype=torch.long)
    count, selection, sets = 0, [], 0
    for s, w, static in zip(starts, lengths, statics):
        cols = static.nonzero().flatten()
        if cols.shape[0]:
            slot = _cluster(x[s:s + w, cols].mean(dim=0), cluster_ratio, k, min_tokens)
            groups[s:s + w, cols] = count + slot
            count += int(slot.max()) + 1
            selection.extend([sets] * (int(slot.max()) + 1))
            sets += 1
        cols = (~static).nonzero().flatten()
        for t in range(s, s + w):
            if cols.shape[0]:
                slot = _cluster(x[t, cols], cluster_ratio, k, min_tokens)
                groups[t, cols] = count + slot
                count += int(slot.max()) + 1
                selection.extend([sets] * (int(slot.max()) + 1))
                sets += 1
    summary = {"segments": lengths, "static": [int(m.sum()) for m in statics],
               "cluster_ratio": float(cluster_ratio), "selection": selection}
    return groups, summary


class PruneVid(Compressor):
    """``prunevid[:RATIO][,tau=0.8,cluster_ratio=0.5,segment_ratio=0.25,k=7,min_tokens=14]``: segment the video,
    merge static tokens over time, merge tokens in space."""

    name = "prunevid"

    @dataclass
    class Config:
        ratio: float | None = None
        tau: float = 0.8
        cluster_ratio: float = 0.5
        segment_ratio: float = 0.25
        k: int = 7
        min_tokens: int = 14

        def __post_init__(self) -> None:
            check_ratio(self.ratio, "prunevid")
            if not 0.0 < self.cluster_ratio <= 1.0 or not 0.0 < self.segment_ratio <= 1.0:
                raise ValueError("prunevid cluster_ratio and segment_ratio must be in (0, 1]")
            if self.k < 1 or self.min_tokens < 0:
                raise ValueError("prunevid k must be at least 1 and min_tokens at least 0")

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        if tokens.num_tokens == 0:
            return tokens
        cfg = self.config
        table = frame_table(tokens, self.name)  # [F, n]
        target = None
        if cfg.ratio is not None or ctx.budget is not None:
            target = retained_count(tokens.num_tokens, cfg.ratio, ctx.budget, cfg.cluster_ratio)
        x = tokens.features[table].double()
        groups, summary = prunevid_groups(x, cfg.tau, cfg.cluster_ratio, cfg.segment_ratio, cfg.k,
                                          cfg.min_tokens, target)
        flat = torch.empty(tokens.num_tokens, dtype=torch.long)
        flat[table.reshape(-1)] = groups.reshape(-1)
        size = int(flat.max()) + 1
        counts = torch.bincount(flat, minlength=size).unsqueeze(1).double()
        sums = torch.zeros(size, x.shape[-1], dtype=torch.float64).index_add_(0, flat, tokens.features.double())
        out = merge_with_features(tokens, flat, sums / counts)  # the plain mean of each cluster's members
        first = torch.full((size,), tokens.num_tokens, dtype=torch.long).scatter_reduce(
            0, flat, torch.arange(tokens.num_tokens), "amin")
        selection = torch.tensor(summary.pop("selection"), dtype=torch.long)[torch.argsort(first)].tolist()
        out = out.replace(meta={**out.meta, SELECTION_KEY: selection})  # output order, as merge_with_features
        return report(out, {**summary, "kept": out.num_tokens})
