from __future__ import annotations

import pytest
import torch

from mmlong.encoders.conse import ConSE, SentenceEmbedder, conse_embed, mean_pool, top_t_weights
from mmlong.errors import ModelLoadError


def test_top_t_weights_renormalise():
    probs = torch.tensor([[0.1, 0.6, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]])
    idx, w = top_t_weights(probs, 2)
    assert idx[0].tolist() == [1, 2]
    assert torch.allclose(w[0], torch.tensor([0.75, 0.25]))
    assert torch.allclose(w.sum(-1), torch.ones(2))
    assert top_t_weights(probs, 99)[0].shape == (2, 4)  # clipped to the number of classes


def test_conse_embed_is_the_weighted_convex_combination():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    probs = torch.tensor([[0.6, 0.3, 0.1]])
    out = conse_embed(probs, emb, top_t=2)
    expected = torch.tensor([[2.0, 1.0]]) / 5**0.5  # 0.6/0.9 e0 + 0.3/0.9 e1, normalised
    assert torch.allclose(out, expected, atol=1e-6)
    # with all three classes the third one pulls the first coordinate down
    assert conse_embed(probs, emb, top_t=3)[0, 0] < out[0, 0]


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert mean_pool(hidden, mask).tolist() == [[2.0, 2.0]]


@pytest.fixture(scope="module")
def embedder():
    return SentenceEmbedder()


def test_minilm_embeds_meaning(embedder):
    e = embedder.embed(["a cat", "a photo of an Egyptian cat", "a photo of an espresso", "a cup of coffee"])
    assert e.shape == (4, 384)
    assert torch.allclose(e.norm(dim=-1), torch.ones(4), atol=1e-5)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] + 0.2
    assert sim[3, 2] > sim[3, 1] + 0.2
    # padding in a batch does not change an embedding
    assert torch.allclose(embedder.embed(["a cat"])[0], e[0], atol=1e-5)


def test_conse_class_uses_names_and_template(embedder):
    conse = ConSE(["tabby", "espresso", "missile"], embedder, top_t=1, template="a photo of a {}")
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])
    scores = conse.embed_text(["a cat", "a rocket"]) @ conse.embed_probabilities(probs).T
    assert scores.argmax(-1).tolist() == [0, 1]
    assert torch.allclose(conse.embed_probabilities(probs)[1], embedder.embed(["a photo of a missile"])[0], atol=1e-5)
    with pytest.raises(ValueError, match="3 class names"):
        conse.embed_probabilities(torch.ones(1, 4))


def test_missing_text_model_dir_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="config.json"):
        SentenceEmbedder(tmp_path)


@pytest.mark.parametrize("module", ["mmlong.encoders.conse", "mmlong.encoders.preprocess", "mmlong.assets.imagenet"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_prepare_pixels_modes_and_errors():
    from mmlong.encoders.preprocess import prepare_pixels, resolve_device, resolve_dtype
    from mmlong.errors import ConfigError

    frame = torch.zeros(1, 20, 40, 3, dtype=torch.uint8)
    frame[:, :, 10:30] = 255  # white centre square, black side bands
    squash = prepare_pixels(frame, (8, 8), (0.0,) * 3, (1.0,) * 3, resize="squash")
    crop = prepare_pixels(frame, (8, 8), (0.0,) * 3, (1.0,) * 3, resize="center-crop")
    assert float(crop.min()) > 0.999  # the centred square is all white
    assert float(squash[0, 0, :, 0].max()) < 0.05  # squashing keeps the black band at the left edge
    with pytest.raises(ConfigError, match="resize"):
        prepare_pixels(frame, (8, 8), (0.0,) * 3, (1.0,) * 3, resize="stretch")
    assert resolve_dtype("bf16") == torch.bfloat16
    with pytest.raises(ConfigError, match="float32"):
        resolve_dtype("float8")
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


def test_the_scan_s_look_resizes_in_float_like_the_full_encode():
    """Resizing the uint8 pixels first (~3x cheaper, within a grey level) moved the scan's frame choice enough to
    flip two held-out open needle answers ("cheetah" -> "reel"); the scan resizes in float like the encode."""
    from skimage import data

    from mmlong.encoders.efficientnet import EfficientNetLite0
    from mmlong.encoders.preprocess import prepare_pixels

    encoder = EfficientNetLite0()
    photo = torch.from_numpy(data.chelsea()[None].copy())
    exact = prepare_pixels(photo, (96, 96), encoder.mean, encoder.std, resize=encoder.config.resize)
    with torch.inference_mode():
        scanned = encoder._inference.extract_features(exact.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(encoder.pooled_features(photo, 96), scanned.float().mean(dim=(2, 3)), atol=1e-6)
