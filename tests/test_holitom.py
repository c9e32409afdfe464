"""HoliTom (outer-LLM) against the official code path (cokeshao/HoliTom ``holitom/llava_arch.py``), written here."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mmlong.compressors.base import Chain, CompressContext
from mmlong.compressors.holitom import density_noise, dpc_knn, static_windows
from mmlong.errors import ConfigError
from mmlong.types import VisualTokens
from tests.pairing import assert_paired, group_rows


# ---------------------------------------------------------------------- the official path, batched as it is there
def ref_windows(feature_sim, frames, tau, max_window):
    sim_matrix = torch.ones(frames, frames, feature_sim.shape[1])
    for start in range(frames - 1):
        cum = torch.cumprod((feature_sim[start:] > tau).double(), dim=0)
        sim_matrix[start, start + 1:start + 1 + len(cum)] = cum.float()
    lengths = (torch.arange(frames).unsqueeze(0) - torch.arange(frames).unsqueeze(1)).clamp(min=0)
    count = sim_matrix.sum(dim=-1) * lengths
    dp, prev = torch.zeros(frames), torch.zeros(frames, dtype=torch.long)
    for i in range(frames):
        best, best_j = (dp[i - 1] if i > 0 else 0), i
        for size in range(2, min(i + 1, max_window) + 1):
            j = i - size
            value = (dp[j] if j >= 0 else 0) + count[j + 1, i]
            if value > best:
                best, best_j = value, j + 1
        dp[i], prev[i] = best, best_j
    out, i = [], frames - 1
    while i >= 0:
        out.append((int(prev[i]), i))
        i = int(prev[i]) - 1
    return out[::-1], float(dp[-1])


def ref_dpc(x, cluster_num, k):
    """``cluster_dpc_knn`` on ``x [B, L, C]`` (batched, float32, the 1e-6 noise from the global RNG, as there)."""
    batch_size, seq_len, embed_dim = x.shape
    dist_matrix = torch.cdist(x.float(), x.float()) / (embed_dim ** 0.5)
    dist_nearest, _ = torch.topk(dist_matrix, k, dim=-1, largest=False)
    density = (-(dist_nearest ** 2).mean(dim=-1)).exp()
    density = density + torch.rand(density.shape, dtype=density.dtype) * 1e-6
    mask = (density[:, None, :] > density[:, :, None]).float()
    dist_max = dist_matrix.flatten(1).max(dim=-1).values[:, None, None]
    dist, _ = (dist_matrix * mask + dist_max * (1 - mask)).min(dim=-1)
    _, index_center = (dist * density).topk(cluster_num, dim=-1)
    return torch.sort(index_center, dim=-1)[0], dist_matrix


def ref_cluster_merge(feat, centres, dist, beta):
    """``merge_tokens_by_clustering`` for one batch row: ``[C, D]`` rows and the member indices of each."""
    others = torch.tensor([i for i in range(feat.shape[0]) if i not in set(centres.tolist())], dtype=torch.long)
    assign = torch.argmin(dist[others][:, centres], dim=-1)
    out, members_of = [], []
    for c in range(len(centres)):
        members = feat[others][assign == c]
        out.append(beta * feat[centres[c]] + (1 - beta) * members.mean(0) if len(members) else feat[centres[c]])
        members_of.append([int(centres[c])] + others[assign == c].tolist())
    return (torch.stack(out) if out else feat.new_zeros(0, feat.shape[1])), members_of


def ref_attention_density(feat, attn, r, D, beta, K):
    """``merge_tokens_by_attention_density`` for a window's frames ``feat [W, L, C]``: per frame, rows and the
    member indices (into ``L``) of each row."""
    frames, seq, _ = feat.shape
    dominant = round(math.ceil(seq * r) * (1 - D))
    contextual = math.ceil(seq * r) - dominant
    mask = torch.ones(frames, seq, dtype=torch.bool)
    if dominant > 0:
        mask.scatter_(1, attn.topk(dominant, dim=1).indices, False)
    out = [([feat[f, ~mask[f]]], [[int(i)] for i in (~mask[f]).nonzero().flatten()]) for f in range(frames)]
    if contextual > 0:
        filtered = torch.stack([feat[f, mask[f]] for f in range(frames)])
        centres, dist = ref_dpc(filtered, contextual, min(K, contextual))
        for f in range(frames):
            rows, members_of = ref_cluster_merge(filtered[f], centres[f], dist[f], beta)
            index = mask[f].nonzero().flatten()
            out[f][0].append(rows)
            out[f][1].extend([[int(index[m]) for m in members] for members in members_of])
    return [(torch.cat(rows), members) for rows, members in out]


def official_holitom(x, attn, r, tau=0.8, beta=0.6, D=0.0, K=7, max_window=1024):
    """The official pre-LLM path on ``x [F, n, C]``, ``attn [F, n]``: feature rows, windows and, per row, the
    ``(frame, cell)`` pairs it stands for (dominant: itself; cluster: centre and members; static: its cells in
    every frame of the window)."""
    frames, n, _ = x.shape
    normed = F.normalize(x, p=2, dim=-1)
    sim = F.cosine_similarity(normed[:-1], normed[1:], dim=-1)
    windows, reduced = ref_windows(sim, frames, tau, max_window)
    r = min(r / ((frames * n - reduced) / (frames * n)), 1)
    rows, members = [], []
    for s, e in windows:
        mask = torch.all(sim[s:e] > tau, dim=0) if e > s else torch.zeros(n, dtype=torch.bool)
        dynamic_cells = (~mask).nonzero().flatten()
        if dynamic_cells.numel():  # dynamic first, then static (``holitom``), so the noise comes in this order
            for f, (part, part_members) in enumerate(ref_attention_density(x[s:e + 1, ~mask], attn[s:e + 1, ~mask],
                                                                           r, D, beta, K)):
                rows.append(part)
                members += [[(s + f, int(dynamic_cells[m])) for m in group] for group in part_members]
        if e > s:
            static = x[s:e + 1, mask].mean(dim=0)
            clusters = round(static.shape[0] * r)
            if clusters > 0:
                centres, dist = ref_dpc(static.unsqueeze(0), clusters, min(K, clusters))
                part, part_members = ref_cluster_merge(static, centres[0], dist[0], beta)
                cells = mask.nonzero().flatten()
                rows.append(part)
                members += [[(t, int(cells[m])) for t in range(s, e + 1) for m in group] for group in part_members]
    return torch.cat(rows), windows, members


def video(seed=0, t=8, h=5, w=5, d=6) -> VisualTokens:
    """Frames 0-3 share a static background (cells 0-14) with moving content; frames 4-7 are another scene."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(t, h * w, d, generator=gen)
    x[1:4, :15] = x[0, :15] + 0.02 * torch.randn(3, 15, d, generator=gen)
    x[5:7] = x[4] + 0.02 * torch.randn(2, h * w, d, generator=gen)
    tok = VisualTokens.from_grid(x.view(t, h, w, d), torch.arange(t))
    return tok.replace(attention=torch.rand(tok.num_tokens, generator=gen))


def same_rows(a: torch.Tensor, b: torch.Tensor) -> bool:
    order = lambda m: m[torch.argsort(m[:, 0])]  # noqa: E731 - random rows: the first column is unique
    return a.shape == b.shape and torch.allclose(order(a.double()), order(b.double()), atol=1e-5)


@pytest.mark.parametrize("contextual", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("ratio", [0.5, 0.25, 0.1])
def test_holitom_matches_the_official_path(ratio, contextual):
    for seed in range(2):
        tok = video(seed)
        out = Chain.from_spec(f"holitom:{ratio},contextual={contextual},seed={seed}")(tok)
        x, attn = tok.features.double().view(8, 25, 6), tok.attention.view(8, 25)
        torch.manual_seed(seed)  # the official noise comes from the global generator
        ref, windows, members = official_holitom(x, attn, ratio, D=contextual)
        assert out.provenance[-1].extra["windows"] == [list(w) for w in windows]
        assert same_rows(out.features, ref), (seed, ratio, contextual)
        # pairing: each merged feature sits on the mean position and time of its own members, with their count
        assert_paired(out, group_rows(tok, [[t * 25 + c for t, c in group] for group in members], ref))


@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_dpc_knn_centres_are_the_official_ones_with_the_noise(k):
    """Ties (every density is 1 for k = 1; mutual nearest pairs tie for k = 2) broken by the official noise."""
    for seed in range(50):
        gen = torch.Generator().manual_seed(seed)
        length = int(torch.randint(k + 1, 30, (1,), generator=gen))
        x = torch.randn(length, 8, generator=gen)
        clusters = max(k, int(torch.randint(1, length, (1,), generator=gen)))
        ours, _ = dpc_knn(x, clusters, k, density_noise((1, length), torch.Generator().manual_seed(seed))[0])
        torch.manual_seed(seed)
        official, _ = ref_dpc(x.unsqueeze(0), clusters, k)
        assert ours.tolist() == official[0].tolist(), (k, seed)


def test_densest_pair_gives_one_centre_at_k_2():
    """Without the noise both members of the densest mutual-nearest pair would be centres."""
    x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [5.5, 0.0], [10.0, 0.0], [11.0, 0.0]])
    for seed in (0, 1, 2, 3, 5, 6, 7, 8, 9):  # seed 4: both noisy densities round to one float32, as official too
        centres, _ = dpc_knn(x, 2, 2, density_noise((1, 6), torch.Generator().manual_seed(seed))[0])
        assert len(set(centres.tolist()) & {0, 1}) == 1, seed
    assert dpc_knn(x, 2, 2)[0].tolist() == [0, 1]  # the tie without noise


def test_segmentation_finds_the_static_scenes():
    tok = video(0)
    x = F.normalize(tok.features.view(8, 25, 6), dim=-1)
    sim = (x[:-1] * x[1:]).sum(-1)
    windows, saved = static_windows(sim, 0.8, 1024)
    assert windows == [(0, 3), (4, 6), (7, 7)]
    assert saved == 15 * 3 + 25 * 2  # 15 static cells over 3 later frames, a whole frame twice
    assert static_windows(sim, 0.8, 2)[0] != windows  # windows of at most two frames


def test_dpc_knn_centres_are_dense_and_separated():
    blobs = torch.cat([torch.randn(6, 2) * 0.05 + c for c in (0.0, 5.0, -5.0)])
    centres, slot = dpc_knn(blobs, 3, 3)
    assert sorted(int(c) // 6 for c in centres) == [0, 1, 2]  # one centre per blob
    assert slot.tolist() == [slot[0]] * 6 + [slot[6]] * 6 + [slot[12]] * 6


def test_holitom_budget_and_requirements():
    tok = video(1)
    out = Chain.from_spec("holitom")(tok, CompressContext(budget=40))
    assert abs(out.num_tokens - 40) <= 8  # the official rounding (ceil per frame) keeps it near, not exactly at
    with pytest.raises(ConfigError, match="attention"):
        Chain.from_spec("holitom:0.25")(tok.replace(attention=None))
    assert Chain.from_spec("holitom:0.25,contextual=1")(tok.replace(attention=None)).num_tokens > 0
    with pytest.raises(ConfigError, match="whole frames"):
        Chain.from_spec("random:0.5,holitom:0.25")(tok)
