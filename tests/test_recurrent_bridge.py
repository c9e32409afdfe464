"""The recurrent memory bridge: shapes, recurrence over scenes, linear cost, weights round trip."""

from __future__ import annotations

import warnings

import pytest
import torch

from mmlong.compressors.base import Chain, CompressContext
from mmlong.compressors.recurrent_bridge import RecurrentBridge, RecurrentMemoryBridge, load_bridge, save_bridge
from mmlong.errors import ConfigError, ModelLoadError
from mmlong.types import VisualTokens

DIM = 24


def scene_video(scenes: int = 3, frames_per_scene: int = 4, hw: int = 3, seed: int = 0) -> VisualTokens:
    """Frames of ``scenes`` distinct scenes (SceneTilling finds them), ``hw x hw`` tokens of DIM each."""
    gen = torch.Generator().manual_seed(seed)
    parts = [torch.randn(DIM, generator=gen) * 3 + 0.2 * torch.randn(frames_per_scene, hw, hw, DIM, generator=gen)
             for _ in range(scenes)]
    t = scenes * frames_per_scene
    return VisualTokens.from_grid(torch.cat(parts), torch.arange(t, dtype=torch.float64))


def bridge_compressor(**options) -> RecurrentBridge:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RecurrentBridge(RecurrentBridge.Config(**{"memory_tokens": 4, "width": 32, "heads": 4, **options}))


def run(compressor: RecurrentBridge, tokens: VisualTokens) -> VisualTokens:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compressor(tokens, CompressContext())


def test_last_scene_tokens_are_bridged_and_all_emits_every_scene():
    tokens = Chain.from_spec("scenetile")(scene_video())
    out = run(bridge_compressor(), tokens)
    # 3 scenes of 4 frames x 9 tokens; the LLM gets the last scene's 36 bridged tokens (all 4 frames <= 8)
    assert out.num_tokens == 36 and out.dim == DIM
    assert out.segments.tolist() == [2] * 36 and out.timestamps.min() == 8.0
    assert not torch.allclose(out.features, tokens.features[tokens.segments == 2])
    every = run(bridge_compressor(emit="all"), tokens)
    assert every.num_tokens == 108 and every.segments.tolist() == [0] * 36 + [1] * 36 + [2] * 36
    extra = out.provenance[-1].extra
    assert extra["scenes"] == 3 and extra["cache_tokens"] == 12 and extra["emit"] == "last"


def test_long_scenes_are_subsampled_to_8_frames_by_linspace():
    tokens = scene_video(scenes=1, frames_per_scene=20, hw=1).replace(segments=torch.zeros(20, dtype=torch.long))
    out = run(bridge_compressor(), tokens)
    assert out.frame_ids.tolist() == torch.linspace(0, 19, 8).long().tolist()


def test_memory_recurs_over_scenes_and_is_causal():
    bridge = bridge_compressor(emit="all")
    tokens = Chain.from_spec("scenetile")(scene_video())
    base = run(bridge, tokens)
    changed_first = tokens.replace(features=torch.where(tokens.segments.unsqueeze(1) == 0,
                                                        tokens.features + 1.0, tokens.features))
    out = run(bridge, changed_first)
    # scene 2's bridged tokens depend on scene 0 although scene 2's own tokens are unchanged
    assert not torch.allclose(out.features[72:], base.features[72:], atol=1e-4)
    changed_last = tokens.replace(features=torch.where(tokens.segments.unsqueeze(1) == 2,
                                                       tokens.features - 1.0, tokens.features))
    out = run(bridge, changed_last)
    torch.testing.assert_close(out.features[:72], base.features[:72])  # earlier scenes ignore the future
    assert not torch.allclose(out.features[72:], base.features[72:], atol=1e-4)


def test_cost_is_linear_in_the_number_of_scenes_and_cache_is_s_by_m():
    torch.manual_seed(0)
    bridge = RecurrentMemoryBridge(DIM, width=32, memory_tokens=8, layers=2, heads=4).eval()
    segments = [torch.randn(50, DIM) for _ in range(6)]
    with torch.no_grad():
        bridged, stats = bridge(segments)
    assert [b.shape for b in bridged] == [(50, DIM)] * 6
    assert stats["cache_tokens"] == 6 * 8
    assert stats["attention_scores"] == [2 * 58 * 58 + 64 + 64 * (s + 1) for s in range(6)]
    assert sum(stats["attention_scores"]) < (6 * 50) ** 2 / 2
    with torch.no_grad():
        _, more = bridge([torch.randn(50, DIM) for _ in range(12)])
    assert 1.9 < sum(more["attention_scores"]) / sum(stats["attention_scores"]) < 2.3


def test_weights_round_trip_and_errors(tmp_path):
    first = bridge_compressor(seed=3)
    tokens = scene_video()
    expected = run(first, tokens).features
    path = tmp_path / "bridge.safetensors"
    save_bridge(first.bridge(DIM), path)
    loaded = RecurrentBridge(RecurrentBridge.Config(weights=str(path)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no random-init warning with weights
        torch.testing.assert_close(loaded(tokens).features, expected)
    assert load_bridge(path).arch["memory_tokens"] == 4
    with pytest.raises(ModelLoadError, match="not found"):
        load_bridge(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="junk.safetensors"):
        load_bridge(tmp_path / "junk.safetensors")
    wrong_dim = VisualTokens.from_grid(torch.randn(2, 2, 2, DIM + 1), torch.arange(2.0))
    with pytest.raises(ModelLoadError, match="24-d"):
        loaded(wrong_dim)


def test_random_init_warns_and_is_seeded():
    with pytest.warns(UserWarning, match="random"):
        a = RecurrentBridge(RecurrentBridge.Config(memory_tokens=4, width=32))(scene_video())
    b = run(bridge_compressor(), scene_video())
    torch.testing.assert_close(a.features, b.features)
    c = run(bridge_compressor(seed=1), scene_video())
    assert not torch.allclose(a.features, c.features)
    with pytest.raises(ConfigError, match="memory_tokens"):
        Chain.from_spec("recurrent-bridge:0")
