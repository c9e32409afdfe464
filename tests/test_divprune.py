"""DivPrune against the official greedy Max-Min selection (vbdi/divprune, ``llava_arch.py``), written here."""

from __future__ import annotations

import torch

from mmlong.compressors.base import Chain, CompressContext
from mmlong.compressors.divprune import max_min_diverse, nearest_other_distance
from mmlong.types import VisualTokens


def official_divprune(features: torch.Tensor, ratio: float) -> torch.Tensor:
    """The official loop on the full distance matrix: column scores, argmax, min over the picked rows."""
    k = int(round(ratio * features.shape[0]))
    unit = features / features.norm(dim=1, keepdim=True)
    distance = 1.0 - unit @ unit.T
    picked = torch.empty(k, dtype=torch.long)
    for i in range(k):
        if i == 0:
            scores = torch.topk(distance, 2, dim=0, largest=False).values[1, :]
        else:
            scores = torch.min(distance[picked[:i]], dim=0).values
        picked[i] = torch.argmax(scores)
    return picked


def video(seed=0, t=4, h=5, w=5, d=12) -> VisualTokens:
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(t, h, w, d, generator=gen)
    feats[1] = feats[0] + 0.05 * torch.randn(h, w, d, generator=gen)  # a near-duplicate frame
    return VisualTokens.from_grid(feats, torch.arange(t))


def test_divprune_picks_what_the_official_code_picks():
    for seed in range(4):
        tok = video(seed)
        for ratio in (0.5, 0.25, 0.1):
            ref = official_divprune(tok.features, ratio)
            assert max_min_diverse(tok.features, len(ref)).tolist() == ref.tolist()
            out = Chain.from_spec(f"divprune:{ratio}")(tok)
            assert torch.equal(out.features, tok.features[torch.sort(ref).values])


def test_blocked_nearest_neighbour_distance_matches_the_full_matrix():
    tok = video(1)
    unit = torch.nn.functional.normalize(tok.features, dim=-1)
    full = torch.topk(1.0 - unit @ unit.T, 2, dim=0, largest=False).values[1]
    torch.testing.assert_close(nearest_other_distance(unit, block=7), full)


def test_divprune_prefers_diverse_tokens_over_duplicates():
    base = torch.eye(4)
    feats = torch.cat([base[[0]].repeat(5, 1), base[1:]])  # five copies of e0, then e1, e2, e3
    tok = VisualTokens.from_grid(feats.reshape(1, 2, 4, 4), torch.zeros(1))
    out = Chain.from_spec("divprune:0.5")(tok)
    assert sorted(out.features.argmax(dim=1).tolist()) == [0, 1, 2, 3]


def test_divprune_budget_and_per_frame_variant():
    tok = video(2)
    assert Chain.from_spec("divprune")(tok, CompressContext(budget=17)).num_tokens == 17
    assert Chain.from_spec("divprune")(tok).num_tokens == round(0.098 * 100)
    out = Chain.from_spec("divprune:0.2,per_frame=true")(tok)
    assert torch.bincount(out.frame_ids).tolist() == [5, 5, 5, 5]
    first = tok.features[:25]
    assert torch.equal(out.features[:5], first[torch.sort(official_divprune(first, 0.2)).values])
