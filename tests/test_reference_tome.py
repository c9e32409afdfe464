"""Reference tests: ToMe as facebookresearch/ToMe ``tome/merge.py`` runs it (bipartite_soft_matching + merge_wavg,
rounds of ``r = min(r, t // 2)``, outputs ``[unmerged A; B]``), and mmlong's cross-frame ``tmerge`` as documented,
both written here independently."""

from __future__ import annotations

import pytest
import torch

from mmlong.compressors.tome import TemporalMerge, ToMe, merge_to_count
from mmlong.types import VisualTokens
from tests.pairing import assert_paired, mean_rows


def tome_reference(x: torch.Tensor, size: torch.Tensor, keep: int) -> set[frozenset[int]]:
    """Partition of ``range(N)`` official ToMe leaves after merging rounds down to ``keep`` tokens."""
    members = [[i] for i in range(x.shape[0])]
    feats, sizes = x.double().clone(), size.double().clone()
    while len(members) > keep:
        t = len(members)
        r = min(t - keep, t // 2)
        metric = feats / feats.norm(dim=-1, keepdim=True)
        a, b = metric[0::2], metric[1::2]
        node_max, node_idx = (a @ b.T).max(dim=-1)
        edge_idx = torch.argsort(node_max, descending=True, stable=True)
        src, unm = edge_idx[:r], edge_idx[r:]
        # merge_wavg: (x * size) summed into the destination, sizes summed, divided back
        weighted = feats * sizes[:, None]
        b_sum, b_size = weighted[1::2].clone(), sizes[1::2].clone()
        b_members = [list(members[2 * j + 1]) for j in range(b.shape[0])]
        for s in src.tolist():
            d = int(node_idx[s])
            b_sum[d] += weighted[2 * s]
            b_size[d] += sizes[2 * s]
            b_members[d] += members[2 * s]
        unm_rows = [2 * u for u in unm.tolist()]
        feats = torch.cat([feats[unm_rows], b_sum / b_size[:, None]])
        sizes = torch.cat([sizes[unm_rows], b_size])
        members = [members[u] for u in unm_rows] + b_members
    return {frozenset(m) for m in members}


def partition(groups: torch.Tensor) -> set[frozenset[int]]:
    out: dict[int, list[int]] = {}
    for i, g in enumerate(groups.tolist()):
        out.setdefault(g, []).append(i)
    return {frozenset(v) for v in out.values()}


@pytest.mark.parametrize("seed", range(40))
def test_merge_to_count_equals_official_tome_rounds(seed):
    gen = torch.Generator().manual_seed(seed)
    n = int(torch.randint(3, 40, (1,), generator=gen))
    keep = int(torch.randint(1, n, (1,), generator=gen))
    x = torch.randn(n, 6, generator=gen)
    size = torch.randint(1, 4, (n,), generator=gen).float()
    assert partition(merge_to_count(x, size, keep)) == tome_reference(x, size, keep)


def test_tome_compressor_merges_each_frame_like_the_reference():
    gen = torch.Generator().manual_seed(7)
    grid = torch.randn(3, 3, 5, 8, generator=gen)  # 3 frames of 15 tokens
    tokens = VisualTokens.from_grid(grid, torch.arange(3.0))
    out = ToMe(ToMe.Config(ratio=0.8))(tokens)  # round(15 * 0.2) = 3 per frame: several rounds
    assert out.num_tokens == 9
    for frame in range(3):
        rows = torch.nonzero(tokens.frame_ids == frame).flatten()
        expected = tome_reference(tokens.features[rows], tokens.sizes[rows], 3)
        # each output token's features are its group's size-weighted mean
        means = {frozenset(rows[list(g)].tolist()): tokens.features[rows[list(g)]].mean(0) for g in expected}
        got = out.features[out.frame_ids == frame]
        assert len(got) == 3
        for mean in means.values():
            assert any(torch.allclose(mean, row, atol=1e-5) for row in got)
    # pairing: every output token is its group's mean feature on its group's mean position and time, size 5
    members = [rows[list(g)].tolist() for frame in range(3)
               for rows in [torch.nonzero(tokens.frame_ids == frame).flatten()]
               for g in tome_reference(tokens.features[rows], tokens.sizes[rows], 3)]
    assert_paired(out, mean_rows(tokens, members))


def tmerge_reference(features, frame_ids, threshold):
    """Each token joins its most cosine-similar token of the previous frame present when above threshold;
    chains resolve to the earliest token."""
    f = torch.nn.functional.normalize(features.double(), dim=-1)
    frames = sorted(set(frame_ids.tolist()))
    root = list(range(features.shape[0]))
    for k in range(1, len(frames)):
        cur = [i for i in range(len(root)) if frame_ids[i] == frames[k]]
        prev = [i for i in range(len(root)) if frame_ids[i] == frames[k - 1]]
        for i in cur:
            sims = [float(f[i] @ f[j]) for j in prev]
            best = max(range(len(prev)), key=lambda m: sims[m])
            if sims[best] > threshold:
                root[i] = root[prev[best]]
    return partition(torch.tensor(root))


@pytest.mark.parametrize("seed", range(5))
def test_tmerge_equals_the_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(1, 2, 3, 4, generator=gen)
    grid = base + 0.4 * torch.randn(5, 2, 3, 4, generator=gen)  # frames resemble each other
    tokens = VisualTokens.from_grid(grid, torch.arange(5.0))
    out = TemporalMerge(TemporalMerge.Config(threshold=0.8))(tokens)
    expected = tmerge_reference(tokens.features, tokens.frame_ids, 0.8)
    assert out.num_tokens == len(expected)
    from mmlong.compressors.tome import temporal_merge_groups

    assert partition(temporal_merge_groups(tokens.features, tokens.frame_ids, 0.8)) == expected
    assert_paired(out, mean_rows(tokens, [sorted(group) for group in expected]))  # features on their own tokens
