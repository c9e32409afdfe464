"""The Socratic model end to end on hand-built tokens: transcript -> Gemma 3 270M -> Answer."""

from __future__ import annotations

import pytest
import torch

from mmlong.errors import ConfigError
from mmlong.models.socratic.answerer import SocraticModel
from mmlong.models.socratic.grounding import ground, name_overlap
from mmlong.models.socratic.transcript import build_transcript
from mmlong.qa import Query
from mmlong.registry import MODELS, PluginConfigError
from mmlong.types import VisualTokens

CLASS_NAMES = ["Egyptian cat", "seashore, coast", "golden retriever", "acoustic guitar", "catamaran"]
OPTIONS = ("a cat", "a dog", "a guitar", "a sailboat")


class LinearClassifierHead:
    """A real linear classifier over 5-d features (one-hot feature k -> class k at probability 0.8)."""

    has_text = False
    class_names = CLASS_NAMES

    def __init__(self) -> None:
        self.head = torch.nn.Linear(5, 5, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(5) * 3.0)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(features), dim=-1)


def video_tokens(kinds: list[int]) -> VisualTokens:
    """One frame per second, 4 tokens per frame, each frame showing class ``kinds[t]``."""
    grid = torch.zeros(len(kinds), 2, 2, 5)
    for t, kind in enumerate(kinds):
        grid[t, :, :, kind] = 1.0
    return VisualTokens.from_grid(grid, timestamps=torch.arange(len(kinds), dtype=torch.float64))


def cat_at_twelve() -> VisualTokens:
    return video_tokens([1] * 12 + [0] * 3 + [1] * 15)  # seashore, the cat at 00:12-00:14, seashore


@pytest.fixture(scope="module")
def model():
    return SocraticModel()


@pytest.fixture(scope="module")
def encoder():
    return LinearClassifierHead()


def test_transcript_shows_the_cat_at_twelve_seconds(model, encoder):
    transcript = model.transcript(cat_at_twelve(), encoder)
    assert transcript.text().splitlines()[1] == "00:12\u201300:14: Egyptian cat 0.83"
    assert [(line.start, line.end) for line in transcript.lines] == [(0.0, 11.0), (12.0, 14.0), (15.0, 29.0)]


@pytest.mark.slow
@pytest.mark.parametrize("shift", [0, 1])  # the cat listed first (A), then last (D)
def test_the_cat_wins_wherever_it_is_listed(model, encoder, shift):
    options = OPTIONS[shift:] + OPTIONS[:shift]
    answer = model.answer(cat_at_twelve(), Query("What animal appears in the video?", options), encoder=encoder)
    assert answer.option == "a cat"
    assert answer.text == f"({answer.letter}) a cat" and options[answer.option_index] == "a cat"
    assert answer.evidence == [12.0, 13.0, 14.0]  # the three moments (frames) that show the cat
    probs = answer.details["option_probs"]
    assert max(probs, key=probs.get) == answer.letter and sum(probs.values()) == pytest.approx(1.0, abs=1e-3)
    assert "00:12\u201300:14: Egyptian cat" in answer.details["transcript"]


@pytest.mark.slow
def test_the_answer_follows_the_video(model, encoder):
    # This encoder has no text side, so no moment grounds "a dog" in "golden retriever" (no shared word): the
    # fused rule has no evidence to go on here. The summed-likelihood rule (kept as scoring="likelihood")
    # still reads the transcript through the LM.
    dog = video_tokens([1] * 5 + [2] * 5 + [1] * 5)
    likelihood = SocraticModel(SocraticModel.Config(scoring="likelihood"))
    likelihood._lm = model.lm  # share the loaded LM
    answer = likelihood.answer(dog, Query("What animal appears in the video?", OPTIONS), encoder=encoder)
    assert answer.option == "a dog"


@pytest.mark.slow
def test_letter_scoring_reads_a_letter(model, encoder):
    letter_model = SocraticModel(SocraticModel.Config(scoring="letter"))
    letter_model._lm = model.lm  # share the loaded LM
    answer = letter_model.answer(cat_at_twelve(), Query("What animal appears?", OPTIONS), encoder=encoder)
    assert answer.letter in "ABCD" and answer.option == OPTIONS[answer.option_index]
    assert set(answer.details["option_probs"]) == set("ABCD")


@pytest.mark.slow
def test_open_question_gives_one_short_line(model, encoder):
    short = SocraticModel(SocraticModel.Config(max_new_tokens=8))
    short._lm = model.lm  # share the loaded LM
    answer = short.answer(cat_at_twelve(), Query("What animal appears in the video?"), encoder=encoder)
    assert answer.text and "\n" not in answer.text and answer.option is None
    # an open "what appears" answer is a sentence from the timeline (the thing and when), not free LM text
    assert "cat" in answer.text.lower() and "00:1" in answer.text


def test_evidence_by_name_overlap_ranks_lines(encoder):
    tokens = video_tokens([0, 0, 1, 4, 4, 1, 0])
    transcript = build_transcript(tokens, encoder.classify, CLASS_NAMES, top_k=1)
    # "Egyptian cat" at 0.83 shares one of its two words with "the cats"; "catamaran" shares none
    assert name_overlap(transcript.lines, "the cats").tolist() == pytest.approx([0.417, 0.0, 0.0, 0.0, 0.417],
                                                                               abs=1e-3)
    grounding = ground(transcript.lines, ["a cat", "a piano"], encoder)
    assert grounding.method == "name-overlap"
    assert [transcript.lines[i].centre for i in grounding.moments(0, 3)] == [0.5, 6.0]
    assert grounding.evidence.tolist() == pytest.approx([0.417, 0.0], abs=1e-3)


def test_bad_setups_are_clear_errors(model, encoder):
    with pytest.raises(ConfigError, match="needs an encoder with an image classifier"):
        model.answer(cat_at_twelve(), Query("What?"), encoder=None)
    with pytest.raises(ConfigError, match="in-LLM compressors"):
        model.answer(cat_at_twelve(), Query("What?"), encoder=encoder, in_llm=[object()])
    with pytest.raises(PluginConfigError, match="scoring"):
        MODELS.create("socratic", scoring="vote")
    built = MODELS.create("socratic", top_k="2", max_lines="16")
    assert isinstance(built, SocraticModel) and (built.config.top_k, built.config.max_lines) == (2, 16)
