"""HoliTom (outer-LLM part): global redundancy-aware temporal segmentation, then spatio-temporal merging.

Shao, Tao, Qin, You, Sui & Wang 2025, "HoliTom: Holistic Token Merging for Fast Video Large Language Models"
(NeurIPS 2025, arXiv:2505.21334); official code cokeshao/HoliTom (``holitom/llava_arch.py``). On ``F`` whole
frames of ``n`` tokens (``x [F, n, D]``, attention ``a [F, n]``):

1. **segmentation**: ``sim[t, j] = cos(x[t, j], x[t+1, j])``. A window ``[s, e]`` saves
   ``(e - s) * #{j : sim[t, j] > tau for all s <= t < e}`` tokens (tokens static over the whole window); dynamic
   programming splits the video into windows (at most ``max_window`` frames) saving the most in total;
2. the retention ratio is raised to ``min(1, r / (1 - saved / (F n)))`` for what is left;
3. **temporal merging**: in each window the static tokens (all ``sim > tau`` inside it) become their mean over
   the window's frames; they are then clustered by DPC-KNN into ``round(r' * #static)`` tokens;
4. **spatial merging** of each frame's dynamic tokens (``L`` of them): the ``round(ceil(L r') (1 - contextual))``
   most attended are kept, the other ``ceil(L r') - d`` are DPC-KNN cluster centres of the rest;
5. DPC-KNN (``k = min(K, clusters)``): distances ``|x_i - x_j| / sqrt(D)``, density ``exp(-mean of the k nearest
   squared distances)``, centres = top ``density * distance to the nearest denser token``; every other token
   joins its nearest centre, and a cluster becomes ``beta * centre + (1 - beta) * mean(other members)``.

``holitom[:RATIO][,tau=0.8,beta=0.6,contextual=0,k=7,max_window=1024,seed=0]``; without a ratio ``--budget / N``
(default 0.1, the official default). ``contextual=0`` (the official default ``D=0``) keeps dominant tokens only
and needs the encoder's attention (``hf-vision`` with ``attention_layer=-2``, or llava-onevision's tower with
``attention=true``); ``contextual=1`` needs none.

Density ties: the official ``cluster_dpc_knn`` adds ``torch.rand(...) * 1e-6`` to the densities so that no two
are equal (with ``k = 1`` every density is exactly 1, with ``k = 2`` the two tokens of each mutual-nearest pair tie;
without the noise both members of the densest pair would become centres). Here the same noise comes from a
``torch.Generator`` seeded with ``seed`` at every call, drawn in the official order and shapes (per window: one
``[frames, tokens]`` draw for the frames' contextual clustering, then one ``[1, tokens]`` draw for the static
tokens), so the centres are those the official code picks when its noise comes from the CPU generator right after
``torch.manual_seed(seed)``, and a call is reproducible.

Deviations: only the outer-LLM part (the paper's "HoliTom (w/o M)"; the inner-LLM merging is not done);
merged tokens carry their members' mean time and position (a static token sits mid-window) and come in the
order of their earliest member.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mmlong.compressors.base import CompressContext, Compressor, report
from mmlong.compressors.retention import (
    check_ratio,
    frame_table,
    merge_with_features,
    require_attention,
    retained_ratio,
)
from mmlong.types import VisualTokens

DEFAULT_RATIO = 0.1


def static_windows(sim: torch.Tensor, tau: float, max_window: int) -> tuple[list[tuple[int, int]], float]:
    """Split ``F = sim.shape[0] + 1`` frames into windows ``[(start, end), ...]`` (inclusive) that save the most
    static tokens; ``sim [F-1, n]`` adjacent-frame similarities. Returns the windows and the tokens saved."""
    frames = sim.shape[0] + 1
    saved = torch.zeros(frames, frames)
    for s in range(frames - 1):
        static = torch.ones(sim.shape[1], dtype=torch.bool)
        for e in range(s + 1, frames):
            static &= sim[e - 1] > tau
            saved[s, e] = float(static.sum()) * (e - s)
    best = [0.0] * frames
    start = [0] * frames
    for i in range(frames):
        value, begin = (best[i - 1] if i > 0 else 0.0), i
        for size in range(2, min(i + 1, max_window) + 1):
            j = i - size
            candidate = (best[j] if j >= 0 else 0.0) + float(saved[j + 1, i])
            if candidate > value:
                value, begin = candidate, j + 1
        best[i], start[i] = value, begin
    windows, i = [], frames - 1
    while i >= 0:
        windows.append((start[i], i))
        i = start[i] - 1
    return windows[::-1], best[-1]


def dpc_knn(x: torch.Tensor, clusters: int, k: int,
            noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """DPC-KNN on ``x [L, D]``: sorted centre indices ``[clusters]`` and each token's centre slot ``[L]``.

    In float32 as the official ``cluster_dpc_knn``; ``noise [L]`` (the official ``torch.rand(...) * 1e-6``) is
    added to the densities before they are compared, so that no two tokens share one.
    """
    dist = torch.cdist(x.float(), x.float()) / math.sqrt(x.shape[1])
    nearest = torch.topk(dist, k, dim=-1, largest=False).values
    density = torch.exp(-(nearest ** 2).mean(dim=-1))
    if noise is not None:
        density = density + noise
    denser = density.unsqueeze(0) > density.unsqueeze(1)  # [i, j]: j is denser than i
    parent = torch.where(denser, dist, dist.max()).min(dim=-1).values
    centres = torch.sort(torch.topk(parent * density, clusters).indices).values
    slot = dist[:, centres].argmin(dim=-1)
    slot[centres] = torch.arange(clusters)
    return centres, slot


def density_noise(shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor | None:
    """The official tie-breaking noise, uniform in ``[0, 1e-6)``, float32 ``shape`` (None without a generator)."""
    if generator is None:
        return None
    return torch.rand(shape, generator=generator, dtype=torch.float32) * 1e-6


def cluster_features(x: torch.Tensor, centres: torch.Tensor, slot: torch.Tensor, beta: float) -> torch.Tensor:
    """``[C, D]``: ``beta * centre + (1 - beta) * mean(other members)``, or the centre alone when it has none."""
    is_centre = torch.zeros(x.shape[0], dtype=torch.bool)
    is_centre[centres] = True
    others = ~is_centre
    count = torch.bincount(slot[others], minlength=centres.shape[0]).unsqueeze(1)
    summed = torch.zeros(centres.shape[0], x.shape[1], dtype=x.dtype).index_add_(0, slot[others], x[others])
    mixed = beta * x[centres] + (1.0 - beta) * summed / count.clamp(min=1)
    return torch.where(count > 0, mixed, x[centres])


def holitom_groups(x: torch.Tensor, attention: torch.Tensor | None, ratio: float, tau: float, beta: float,
                   contextual: float, k: int, max_window: int,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """HoliTom on whole frames ``x [F, n, D]`` (attention ``[F, n]``, or None when ``contextual == 1``).

    ``generator`` draws the DPC-KNN density noise in the official order: per window, one ``[frames, tokens]``
    draw for its frames' contextual clustering, then one ``[1, tokens]`` draw for its static tokens.
    Returns ``groups [F, n]`` (output token of each input token, ``-1``: dropped), ``features [G, D]`` and a
    summary (windows, tokens saved, adjusted ratio).
    """
    frames, n, _ = x.shape
    unit = torch.nn.functional.normalize(x.float(), dim=-1)
    sim = (unit[:-1] * unit[1:]).sum(dim=-1)  # [F-1, n]
    windows, saved = static_windows(sim, tau, max_window)
    total = frames * n
    ratio = min(ratio / ((total - saved) / total), 1.0) if saved < total else 1.0
    groups = torch.full((frames, n), -1, dtype=torch.long)
    feats: list[torch.Tensor] = []
    count = 0
    for s, e in windows:
        if e > s:
            static = (sim[s:e] > tau).all(dim=0)
        else:
            static = torch.zeros(n, dtype=torch.bool)
        cols_static = torch.nonzero(static).flatten()
        take = round(cols_static.shape[0] * ratio)
        cols = torch.nonzero(~static).flatten()
        size = cols.shape[0]
        keep = math.ceil(size * ratio)
        dominant = round(keep * (1.0 - contextual))
        dynamic_noise = density_noise((e + 1 - s, size - dominant), generator) if keep - dominant > 0 else None
        static_noise = density_noise((1, cols_static.shape[0]), generator) if take > 0 else None
        if take > 0:
            mean = x[s:e + 1, cols_static].mean(dim=0)
            centres, slot = dpc_knn(mean, take, min(k, take), None if static_noise is None else static_noise[0])
            groups[s:e + 1, cols_static] = count + slot
            feats.append(cluster_features(mean, centres, slot, beta))
            count += take
        for t in range(s, e + 1):
            if dominant > 0:
                top = torch.sort(torch.topk(attention[t, cols].float(), dominant).indices).values
                groups[t, cols[top]] = count + torch.arange(dominant)
                feats.append(x[t, cols[top]])
                count += dominant
            if keep - dominant > 0:
                rest = cols[groups[t, cols] < 0]
                noise = None if dynamic_noise is None else dynamic_noise[t - s]
                centres, slot = dpc_knn(x[t, rest], keep - dominant, min(k, keep - dominant), noise)
                groups[t, rest] = count + slot
                feats.append(cluster_features(x[t, rest], centres, slot, beta))
                count += keep - dominant
    features = torch.cat(feats) if feats else x.new_zeros(0, x.shape[-1])
    return groups, features, {"windows": [list(w) for w in windows], "saved": int(saved), "ratio": round(ratio, 4)}


class HoliTom(Compressor):
    """``holitom[:RATIO][,tau=0.8,beta=0.6,contextual=0,k=7,max_window=1024,seed=0]``: segment, merge static, merge
    spatial."""

    name = "holitom"

    @dataclass
    class Config:
        ratio: float | None = None
        tau: float = 0.8
        beta: float = 0.6
        contextual: float = 0.0
        k: int = 7
        max_window: int = 1024
        seed: int = 0

        def __post_init__(self) -> None:
            check_ratio(self.ratio, "holitom")
            if not 0.0 <= self.contextual <= 1.0 or not 0.0 <= self.beta <= 1.0:
                raise ValueError("holitom contextual and beta must be in [0, 1]")
            if self.k < 1 or self.max_window < 1:
                raise ValueError("holitom k and max_window must be at least 1")

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        if tokens.num_tokens == 0:
            return tokens
        cfg = self.config
        table = frame_table(tokens, self.name)  # [F, n]
        attention = None
        if cfg.contextual < 1.0:
            attention = require_attention(tokens, ctx.encoder, self.name)[table]
        ratio = retained_ratio(tokens.num_tokens, cfg.ratio, ctx.budget, DEFAULT_RATIO)
        generator = torch.Generator().manual_seed(cfg.seed)
        groups, features, summary = holitom_groups(tokens.features[table], attention, ratio, cfg.tau, cfg.beta,
                                                   cfg.contextual, cfg.k, cfg.max_window, generator)
        flat = torch.full((tokens.num_tokens,), -1, dtype=torch.long)
        flat[table.reshape(-1)] = groups.reshape(-1)
        kept = flat >= 0
        out = merge_with_features(tokens.select(kept), flat[kept], features)
        return report(out, {**summary, "kept": out.num_tokens})
