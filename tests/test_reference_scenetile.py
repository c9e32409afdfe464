"""Reference test: SceneTilling as VideoLLaMB's ``self_segment.segment`` runs it (bigai-nlco/VideoLLaMB), written
here independently: cosine similarity of adjacent frames, depth = lpeak + rpeak - 2 sim, cuts where the depth
exceeds mean + alpha * std (unbiased std), at most 15 cuts (the deepest), the last frame always ends a scene;
with k, the k deepest gaps. Also the scene sampler's spans follow the cuts."""

from __future__ import annotations

import pytest
import torch

from mmlong.compressors.scenetiling import SceneTile, segment_boundaries
from mmlong.types import VisualTokens
from tests.pairing import token_rows


def depth_reference(sim: list[float]) -> list[float]:
    out = []
    for i, s in enumerate(sim):
        left = s
        for j in range(i - 1, -1, -1):
            if sim[j] >= left:
                left = sim[j]
            else:
                break
        right = s
        for j in range(i + 1, len(sim)):
            if sim[j] >= right:
                right = sim[j]
            else:
                break
        out.append(left + right - 2 * s)
    return out


def segment_reference(features: torch.Tensor, alpha: float = 0.5, k: int | None = None) -> list[int]:
    sim = torch.cosine_similarity(features[:-1].double(), features[1:].double(), dim=-1).tolist()
    depth = torch.tensor(depth_reference(sim), dtype=torch.float64)
    if k is not None:
        cuts = sorted(torch.topk(depth, k).indices.tolist())
    else:
        std, mean = torch.std_mean(depth)
        cuts = torch.nonzero(depth > mean + alpha * std).flatten().tolist()
        if len(cuts) > 15:
            cuts = sorted(torch.topk(depth, 15).indices.tolist())
    if not cuts or cuts[-1] != features.shape[0] - 1:
        cuts.append(features.shape[0] - 1)
    return cuts


def scene_features(seed: int, frames: int = 40):
    gen = torch.Generator().manual_seed(seed)
    cuts = sorted(torch.randperm(frames - 2, generator=gen)[:5].add(1).tolist())
    scene = torch.zeros(frames, dtype=torch.long)
    for c in cuts:
        scene[c:] += 1
    centres = torch.randn(6, 12, generator=gen)
    noise = torch.rand(frames, 1, generator=gen) * 1.5  # scenes of uneven stability
    return centres[scene] + noise * torch.randn(frames, 12, generator=gen)


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("alpha", [0.5, 1.5])
def test_threshold_boundaries_equal_the_reference(seed, alpha):
    features = scene_features(seed)
    assert segment_boundaries(features.float(), alpha=alpha, max_segments=16) == segment_reference(features, alpha)


@pytest.mark.parametrize("seed", range(5))
def test_top_k_and_at_most_15_cuts_equal_the_reference(seed):
    features = scene_features(seed)
    assert segment_boundaries(features.float(), k=3) == segment_reference(features, k=3)
    noisy = torch.randn(80, 6, generator=torch.Generator().manual_seed(seed))  # many deep gaps
    assert segment_boundaries(noisy, alpha=-1.0, max_segments=16) == segment_reference(noisy, alpha=-1.0)


def test_scenetile_tags_tokens_with_the_reference_scenes():
    features = scene_features(3, frames=20)
    tokens = VisualTokens.from_grid(features.view(20, 1, 1, 12).expand(20, 2, 2, 12).contiguous(),
                                    torch.arange(20.0))
    out = SceneTile()(tokens)
    ends = segment_reference(features)
    expected = torch.searchsorted(torch.tensor(ends), torch.arange(20))
    assert torch.equal(out.segments, expected.repeat_interleave(4))
    # scenetile tags, merges nothing: every token keeps its feature, place, time and size, in order
    assert torch.equal(token_rows(out), token_rows(tokens))
