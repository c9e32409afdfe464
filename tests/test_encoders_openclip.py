from __future__ import annotations

import pytest
import torch

from mmlong.errors import ConfigError, ModelLoadError
from mmlong.registry import ENCODERS
from mmlong.types import Frames, VideoMeta

# A small architecture at a small input size, randomly initialised: no download anywhere.
SMALL = dict(model="ViT-S-32", image_size=64, batch_size=2)


def random_frames(t=3, h=48, w=64, seed=0) -> Frames:
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(0, 256, (t, h, w, 3), dtype=torch.uint8, generator=g)
    meta = VideoMeta(path="rand", duration=t / 2, fps=2.0, num_frames=t, width=w, height=h)
    return Frames(data, torch.arange(t) * 3, torch.arange(t, dtype=torch.float64) * 1.5, meta)


@pytest.fixture(scope="module")
def encoder():
    with pytest.warns(UserWarning, match="random weights"):
        return ENCODERS.create("open_clip", **SMALL)


@pytest.fixture(scope="module")
def weights_file(encoder, tmp_path_factory):
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("oc") / "vit-s-32.safetensors"
    save_file({k: v.contiguous() for k, v in encoder.module.state_dict().items()}, str(path))
    return path


def test_patch_tokens_grid_and_times(encoder):
    frames = random_frames()
    tok = encoder.encode(frames)
    assert tok.grid == (3, 2, 2)  # 64 px / 32 px patches
    assert tok.features.shape == (12, 384)
    assert tok.timestamps.tolist() == [0.0] * 4 + [1.5] * 4 + [3.0] * 4
    assert tok.positions[6].tolist() == [1.0, 1.0, 0.0]
    assert tok.meta["frame_indices"] == [0, 3, 6] and tok.meta["model"] == "ViT-S-32"


def test_tokens_are_open_clips_own_patch_tokens_projected(encoder):
    frames = random_frames(t=2)
    ours = encoder.encode(frames).features.reshape(2, 4, -1)
    visual = encoder.module.visual
    pixels = encoder._pixels(frames.data)
    visual.output_tokens = True
    try:
        with torch.inference_mode():
            pooled, tokens = visual(pixels)
    finally:
        visual.output_tokens = False
    assert torch.allclose(ours, tokens @ visual.proj, atol=1e-5)
    assert not torch.allclose(ours[0], ours[1], atol=1e-3)  # different frames, different tokens


def test_text_side_and_joint_space(encoder):
    text = encoder.encode_text(["a cat", "a dog", "a cup of coffee"])
    assert text.shape == (3, 384)
    assert torch.allclose(text.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert not torch.allclose(text[0], text[1], atol=1e-3)
    feats = torch.randn(5, 384)
    assert torch.allclose(encoder.embed_visual(feats), feats / feats.norm(dim=-1, keepdim=True), atol=1e-6)
    assert encoder.relevance(feats, ["a cat"]).shape == (1, 5)


def test_local_weights_load_from_safetensors(encoder, weights_file):
    frames = random_frames(t=1, seed=3)
    expected = encoder.encode(frames).features
    loaded = ENCODERS.create("open_clip", pretrained=str(weights_file), **SMALL)
    assert torch.allclose(loaded.encode(frames).features, expected, atol=1e-5)
    assert loaded.weights_path == weights_file
    assert loaded.cache_id().endswith(loaded.weights_id()) and len(loaded.weights_id()) == 16


def test_bad_weights_and_names_fail_clearly(tmp_path):
    with pytest.raises(ConfigError, match="did you mean"):
        ENCODERS.create("open_clip", model="ViT-S-33")
    with pytest.raises(ModelLoadError, match="local weights file"):
        ENCODERS.create("open_clip", pretrained="openai", **SMALL)
    with pytest.raises(ModelLoadError, match="unknown weights format"):
        (tmp_path / "w.ckpt").write_bytes(b"x")
        ENCODERS.create("open_clip", pretrained=str(tmp_path / "w.ckpt"), **SMALL)
    pickled = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "meta": VideoMeta("v", 1, 1, 1, 1, 1)}, pickled)
    with pytest.raises(ModelLoadError, match="evil.pt"):
        ENCODERS.create("open_clip", pretrained=str(pickled), **SMALL)
    wrong = tmp_path / "wrong.safetensors"
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(wrong))
    with pytest.raises(ModelLoadError, match="cannot load into open_clip"):
        ENCODERS.create("open_clip", pretrained=str(wrong), **SMALL)

