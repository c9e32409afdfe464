"""PruneVid (pre-LLM) against the official code path (Visual-AI/PruneVid ``models/pllava/modeling_pllava.py``:
``merge_frames_dynamic``, ``cluster_dpc_knn``, ``refine_clusters``, ``segment_lengths``), written here batched as
it is there."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmlong.compressors.base import Chain, CompressContext
from mmlong.compressors.prunevid import refine_labels, temporal_segments
from mmlong.errors import ConfigError
from mmlong.types import VisualTokens
from tests.pairing import assert_paired, group_rows


# ---------------------------------------------------------------------- the official path
def ref_cluster_dpc_knn(x, cluster_num, k):
    """``cluster_dpc_knn`` on ``x [B, N, C]`` without the 1e-6 density noise: cluster index ``[B, N]``."""
    b, n, c = x.shape
    dist = torch.cdist(x, x) / (c ** 0.5)
    near, _ = torch.topk(dist, k=k, dim=-1, largest=False)
    density = (-(near ** 2).mean(dim=-1)).exp()
    mask = (density[:, None, :] > density[:, :, None]).to(x.dtype)
    dist_max = dist.flatten(1).max(dim=-1)[0][:, None, None]
    parent, _ = (dist * mask + dist_max * (1 - mask)).min(dim=-1)
    _, index_down = torch.topk(parent * density, k=cluster_num, dim=-1)
    centre_dist = torch.stack([dist[i, index_down[i]] for i in range(b)])  # index_points: [B, cluster_num, N]
    idx_cluster = centre_dist.argmin(dim=1)
    for i in range(b):
        idx_cluster[i, index_down[i]] = torch.arange(cluster_num)
    return idx_cluster


def ref_refine_clusters(cluster_idx):
    """``refine_clusters`` for one batch row ``[N]``: keep each cluster's longest runs, give the rest to the
    neighbour run that is longer."""
    labels = cluster_idx.clone()
    n = labels.shape[0]
    for label in torch.unique(cluster_idx):
        where = (cluster_idx == label).nonzero().flatten().tolist()
        runs, begin = [], where[0]
        for a, b in zip(where, where[1:] + [None]):
            if b != a + 1:
                runs.append((begin, a))
                begin = b
        longest = max(e - s + 1 for s, e in runs)
        for s, e in runs:
            if longest == 1 or e - s + 1 != longest:
                labels[s:e + 1] = -1
    idx = 0
    while idx < n:
        if labels[idx] != -1:
            idx += 1
            continue
        start = idx
        while idx < n and labels[idx] == -1:
            idx += 1
        end = idx - 1
        left_label, left_len, right_label, right_len = None, 0, None, 0
        if start > 0:
            left_label = labels[start - 1].item()
            j = start - 1
            while j >= 0 and labels[j] == left_label:
                j -= 1
            left_len = start - j - 1
        if end < n - 1:
            right_label = labels[end + 1].item()
            j = end + 1
            while j < n and labels[j] == right_label:
                j += 1
            right_len = j - end - 1
        if left_len > right_len:
            new = left_label
        elif right_len > left_len:
            new = right_label
        else:
            new = left_label if left_label is not None else right_label
        labels[start:end + 1] = 0 if new is None else new
    return labels


def ref_segment_lengths(labels):
    change = torch.where(labels[1:] != labels[:-1])[0] + 1
    bounds = torch.cat([torch.tensor([0]), change, torch.tensor([labels.shape[0]])])
    return (bounds[1:] - bounds[:-1]).tolist()


def ref_spatial_merge(feature, num_cluster, k):
    """``spatial_merge_tokens``: DPC-KNN, then ``compute_cluster_vectors`` (one-hot bmm mean)."""
    idx = ref_cluster_dpc_knn(feature, num_cluster, k)
    onehot = F.one_hot(idx, num_classes=num_cluster).to(feature.dtype)  # [B, L, K]
    sums = torch.bmm(onehot.permute(0, 2, 1), feature)
    counts = onehot.sum(dim=1).clamp(min=1)
    return sums / counts.unsqueeze(-1), idx


def merge_or_keep(part, cluster_ratio):
    """``part [1, L, C]`` merged when it has more than 14 tokens: rows and, per row, its members (into ``L``)."""
    if part.shape[1] <= 14:
        return part[0], [[i] for i in range(part.shape[1])]
    num_cluster = int(part.shape[1] * cluster_ratio)
    rows, idx = ref_spatial_merge(part, num_cluster, 7)
    return rows[0], [(idx[0] == j).nonzero().flatten().tolist() for j in range(num_cluster)]


def official_prunevid(frames, tau=0.8, cluster_ratio=0.5, temporal_segment_ratio=0.25, k=7):
    """Feature rows ``merge_frames_dynamic`` produces for ``frames [T, L, C]`` (batch of one), the windows, and
    per row the input tokens ``frame * L + cell`` it stands for."""
    frames = frames.unsqueeze(0)
    b, t, n, c = frames.shape
    idx_clusters = ref_cluster_dpc_knn(frames.mean(dim=2), int(t * temporal_segment_ratio), k)
    windows = ref_segment_lengths(ref_refine_clusters(idx_clusters[0]))
    rows, members, start = [], [], 0
    for w in windows:
        current = frames[:, start:start + w]
        normed = F.normalize(current, p=2, dim=-1)
        sim = torch.einsum("bwlc,btlc->bwtl", normed, normed)
        sim = (sim.sum(dim=-2) - 1).sum(dim=-2) / (w * (w - 1))  # NaN for a one-frame window: nothing static
        mask = (sim > tau).view(b, 1, n, 1).expand(-1, w, -1, c)
        cells = (sim[0] > tau).nonzero().flatten()
        static = torch.masked_select(current, mask).view(b, w, -1, c).mean(dim=1)
        part, groups = merge_or_keep(static, cluster_ratio)
        rows.append(part)
        members += [[f * n + int(cells[m]) for f in range(start, start + w) for m in g] for g in groups]
        cells = (~(sim[0] > tau)).nonzero().flatten()
        dynamic = torch.masked_select(current, ~mask).view(b, w, -1, c)
        for i in range(w):
            part, groups = merge_or_keep(dynamic[:, i], cluster_ratio)
            rows.append(part)
            members += [[(start + i) * n + int(cells[m]) for m in g] for g in groups]
        start += w
    return torch.cat(rows), windows, members


# ---------------------------------------------------------------------- data
def video(seed=0, t=16, h=5, w=6, d=6) -> VisualTokens:
    """Two scenes (frames 0-7, 8-15) whose first 18 cells stay still while the rest move."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(t, h * w, d, generator=gen, dtype=torch.float64)
    for s, e in ((0, 8), (8, 16)):
        base = torch.randn(h * w, d, generator=gen, dtype=torch.float64) + 3.0 * torch.randn(d, generator=gen)
        x[s:e, :18] = base[:18] + 0.05 * torch.randn(e - s, 18, d, generator=gen, dtype=torch.float64)
        x[s:e, 18:] = torch.randn(e - s, h * w - 18, d, generator=gen, dtype=torch.float64)
    return VisualTokens.from_grid(x.view(t, h, w, d).float(), torch.arange(float(t)))


def same_rows(a: torch.Tensor, b: torch.Tensor) -> bool:
    order = lambda m: m[torch.argsort(m[:, 0])]  # noqa: E731 - random rows: the first column is unique
    return a.shape == b.shape and torch.allclose(order(a.double()), order(b.double()), atol=1e-5)


# ---------------------------------------------------------------------- tests
@pytest.mark.parametrize("cluster_ratio", [0.5, 0.3])
@pytest.mark.parametrize("tau", [0.8, 0.95])
def test_prunevid_matches_the_official_path(tau, cluster_ratio):
    for seed in range(3):
        tok = video(seed)
        out = Chain.from_spec(f"prunevid:tau={tau},cluster_ratio={cluster_ratio}")(tok)
        ref, windows, members = official_prunevid(tok.features.double().view(16, 30, 6), tau, cluster_ratio)
        extra = out.provenance[-1].extra
        assert extra["segments"] == windows, seed
        assert same_rows(out.features, ref), (seed, tau, cluster_ratio)
        assert out.sizes.sum() == tok.num_tokens  # every token is in exactly one output token
        assert_paired(out, group_rows(tok, members, ref))  # each feature on its own members' place, time, count


def test_the_scenes_become_segments_with_static_tokens():
    tok = video(0)
    extra = Chain.from_spec("prunevid:segment_ratio=0.125")(tok).provenance[-1].extra  # two frame clusters
    assert extra["segments"] == [8, 8]
    assert extra["static"] == [18, 18]  # the still cells, not the moving ones
    assert temporal_segments(tok.features.view(16, 30, 6).mean(1), 0.125, 7) == [8, 8]


def test_refinement_gives_short_runs_to_the_longer_neighbour():
    # cluster 1 and 2 appear once each, cluster 0's second run is shorter: frames 5-8 go to the longer run on
    # their right, even across what was cluster 2's frame (the official rule, not a scene detector)
    assert refine_labels([0, 0, 0, 0, 0, 1, 0, 0, 2, 3, 3, 3, 3, 3, 3, 3]) == [0] * 5 + [3] * 11
    assert refine_labels([4, 4, 1, 4, 4]) == [4] * 5  # a tie goes left (both are 4 here)
    assert refine_labels([1, 2, 3]) == [0, 0, 0]  # nothing long enough anywhere: cluster 0


def test_refine_labels_matches_the_official_refinement():
    gen = torch.Generator().manual_seed(3)
    for _ in range(200):
        labels = torch.randint(0, 4, (int(torch.randint(1, 14, (1,), generator=gen)),), generator=gen)
        assert refine_labels(labels.tolist()) == ref_refine_clusters(labels).tolist(), labels.tolist()


@pytest.mark.parametrize("ratio", [0.5, 0.25, 0.1])
def test_a_retention_ratio_sets_the_cluster_ratio_to_fit(ratio):
    tok = video(1)
    out = Chain.from_spec(f"prunevid:{ratio}")(tok)
    target = round(ratio * tok.num_tokens)
    assert out.num_tokens <= target
    fitted = out.provenance[-1].extra["cluster_ratio"]
    ref, _, members = official_prunevid(tok.features.double().view(16, 30, 6), cluster_ratio=fitted)
    assert same_rows(out.features, ref)
    assert_paired(out, group_rows(tok, members, ref))
    if fitted < 1.0:  # the largest ratio that fits: a little more would not
        bigger = Chain.from_spec(f"prunevid:cluster_ratio={min(1.0, fitted + 0.02)}")(tok)
        assert bigger.num_tokens > target
    by_budget = Chain.from_spec("prunevid")(tok, CompressContext(budget=target))
    assert torch.equal(by_budget.features, out.features)


def test_prunevid_needs_whole_frames():
    with pytest.raises(ConfigError, match="whole frames"):
        Chain.from_spec("random:0.5,prunevid")(video(0))
    with pytest.raises(ConfigError, match="cluster_ratio"):
        Chain.from_spec("prunevid:cluster_ratio=0")
