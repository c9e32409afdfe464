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
        return RecurrentBridge(RecurrentBridge.Config(**{"memory_tokens": 4, "width": 32, **options}))


def run(compressor: RecurrentBridge, tokens: VisualTokens) -> VisualTokens:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compressor(tokens, CompressContext())


def test_output_is_m_memory_tokens_per_scene_with_scene_times():
    tokens = scene_video()
    out = run(bridge_compressor(), Chain.from_spec("scenetile")(tokens))
    assert out.num_tokens == 3 * 4 and out.dim == DIM
    assert out.segments.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # each scene has 4 frames x 9 tokens; its 4 memory tokens stand for 9 tokens each (one frame's worth here)
    assert out.sizes.tolist() == [9.0] * 12
    assert out.timestamps.tolist() == [float(i) for i in range(12)]
    assert float(out.sizes.sum()) == tokens.num_tokens
    extra = out.provenance[-1].extra
    assert extra["scenes"] == 3 and extra["cache_tokens"] == 12


def test_short_scenes_repeat_tokens_and_share_their_size():
    tokens = scene_video(scenes=2, frames_per_scene=1, hw=1).replace(segments=torch.tensor([0, 1]))
    out = run(bridge_compressor(memory_tokens=4), tokens)
    assert out.num_tokens == 8 and out.sizes.tolist() == [0.25] * 8
    assert out.timestamps.tolist() == [0.0] * 4 + [1.0] * 4


def test_memory_recurs_over_scenes_and_is_causal():
    bridge = bridge_compressor()
    tokens = Chain.from_spec("scenetile")(scene_video())
    base = run(bridge, tokens)
    changed_first = tokens.replace(features=torch.where(tokens.segments.unsqueeze(1) == 0,
                                                        tokens.features + 1.0, tokens.features))
    out = run(bridge, changed_first)
    # scene 2's memory depends on scene 0 although scene 2's own tokens are unchanged
    assert not torch.allclose(out.features[8:], base.features[8:], atol=1e-4)
    changed_last = tokens.replace(features=torch.where(tokens.segments.unsqueeze(1) == 2,
                                                       tokens.features - 1.0, tokens.features))
    out = run(bridge, changed_last)
    torch.testing.assert_close(out.features[:8], base.features[:8])  # earlier memories ignore the future
    assert not torch.allclose(out.features[8:], base.features[8:], atol=1e-4)


def test_cost_is_linear_in_segment_length_and_cache_is_s_by_m():
    torch.manual_seed(0)
    bridge = RecurrentMemoryBridge(DIM, width=32, memory_tokens=8, layers=2, heads=4).eval()
    segments = [torch.randn(50, DIM) for _ in range(6)]
    with torch.no_grad():
        memories, stats = bridge(segments)
    assert memories.shape == (6, 8, DIM)
    assert stats["cache_tokens"] == 6 * 8
    assert stats["attention_scores"] == [2 * 8 * (8 + 50) + 8 * s * 8 for s in range(6)]
    full_attention = (6 * 50) ** 2
    assert sum(stats["attention_scores"]) < full_attention / 5
    # doubling the tokens of every segment roughly doubles the bridge cost, it does not quadruple it
    with torch.no_grad():
        _, longer = bridge([torch.randn(100, DIM) for _ in range(6)])
    ratio = sum(longer["attention_scores"]) / sum(stats["attention_scores"])
    assert 1.5 < ratio < 2.0


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
    with pytest.warns(UserWarning, match="random initialisation"):
        a = RecurrentBridge(RecurrentBridge.Config(memory_tokens=4, width=32))(scene_video())
    b = run(bridge_compressor(), scene_video())
    torch.testing.assert_close(a.features, b.features)
    c = run(bridge_compressor(seed=1), scene_video())
    assert not torch.allclose(a.features, c.features)
    with pytest.raises(ConfigError, match="memory_tokens"):
        Chain.from_spec("recurrent-bridge:0")
