"""An image-text encoder serves the Socratic answerer: zero-shot naming over a large vocabulary, text-tower relevance.

The encoder is a tiny randomly initialised open_clip model (no download). Its weights mean nothing, so the
tokens are built in its joint space: a brief moment whose feature is the text tower's embedding of a name (or of
an option) among haystack moments of noise, which a working mechanism must find and name.
"""

from __future__ import annotations

import pytest
import torch

from mmlong.models.socratic.answerer import SocraticModel
from mmlong.models.socratic.open_vocab import COMMON_NOUNS, LOGIT_SCALE, OpenVocabulary, describer, vocabulary
from mmlong.qa import Query
from mmlong.registry import ENCODERS
from mmlong.types import VisualTokens


@pytest.fixture(scope="module")
def clip():
    with pytest.warns(UserWarning, match="random weights"):
        return ENCODERS.create("open_clip", model="ViT-S-32", image_size=64, batch_size=2)


@pytest.fixture(scope="module")
def model():
    return SocraticModel(SocraticModel.Config(scoring="evidence"))  # grounding alone: no LM is loaded


def haystack_with(feature: torch.Tensor, at: int = 17, frames: int = 40, seed: int = 0) -> VisualTokens:
    """One frame a second, 2x2 tokens a frame: a haystack of one noisy scene, ``feature`` at second ``at``."""
    g = torch.Generator().manual_seed(seed)
    dim = feature.shape[-1]
    scene = torch.randn(dim, generator=g)
    grid = scene + 0.3 * torch.randn(frames, 2, 2, dim, generator=g)
    grid[at] = feature
    return VisualTokens.from_grid(grid, timestamps=torch.arange(frames, dtype=torch.float64))


def test_vocabulary_is_imagenet_plus_common_nouns():
    names = vocabulary(("zebra crossing",))
    assert len(names) == len(set(names)) and len(names) >= 1000 + 200
    assert {"tabby", "espresso", "man", "street", "cartoon", "earth", "zebra crossing"} <= set(names)
    assert names[:3] == ("tench", "goldfish", "great white shark")  # ImageNet's order, cleaned names
    assert len(COMMON_NOUNS) > 200 and all(n == n.strip() and n for n in COMMON_NOUNS)


def test_zero_shot_classifier_is_clips_softmax_over_prompted_names(clip):
    names = ["zebra", "lighthouse", "violin", "street"]
    vocab = OpenVocabulary(clip, names)
    features = torch.randn(3, clip.embed_dim)
    text = clip.encode_text([f"a photo of a {n}" for n in names])
    image = torch.nn.functional.normalize(features, dim=-1)
    expected = (LOGIT_SCALE * image @ text.T).softmax(dim=-1)  # CLIP zero-shot, written out
    assert torch.allclose(vocab.classify(features), expected, atol=1e-5)
    assert torch.allclose(vocab.relevance(features, ["a zebra"]), clip.relevance(features, ["a zebra"]))
    assert describer(clip).class_names == list(vocabulary()) and describer(vocab) is vocab


def test_socratic_names_a_brief_moment_from_the_vocabulary(clip, model):
    vocab = model.describer(clip)
    assert isinstance(vocab, OpenVocabulary) and model.describer(clip) is vocab  # built once
    index = vocab.class_names.index("street")  # a common noun ImageNet lacks
    tokens = haystack_with(vocab.names_embedded()[index] * 5.0)
    transcript = model.transcript(tokens, clip, merge=False)
    assert transcript.lines[17].labels[0][0] == "street"  # named from the text tower's vocabulary
    answer = model.answer(tokens, Query("What object is briefly shown in the video?"), encoder=clip)
    assert "street" in answer.text.lower()
    assert answer.evidence and answer.evidence[0] == pytest.approx(17.0, abs=0.6)


def test_socratic_grounds_options_with_the_text_tower(clip, model):
    options = ("a zebra", "a violin", "a red tractor", "a snowy mountain")
    for right in (0, 2):  # whichever option the brief moment shows is chosen
        tokens = haystack_with(clip.encode_text([options[right]])[0] * 5.0, at=9 + right, seed=right)
        answer = model.answer(tokens, Query("Which object is briefly shown?", options), encoder=clip)
        assert answer.option_index == right
        assert answer.evidence[0] == pytest.approx(9 + right, abs=0.6)
