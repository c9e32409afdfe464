"""MLVU prompt text and reading the chosen option from logits or scores."""

from __future__ import annotations

import pytest
import torch

from mmlong.errors import ConfigError, MmlongError
from mmlong.models.prompts import (
    MLVU_SYSTEM,
    choose_option,
    format_option,
    letter_token_ids,
    mc_prompt,
    mlvu_question,
    open_prompt,
    option_letters,
    read_letter,
)


def test_exact_mlvu_prompt():
    prompt = mc_prompt("What animal appears in the video?", ["a cat", "a dog", " a guitar ", "a sailboat"],
                       context="Video transcript (what each moment shows):\n00:12: Egyptian cat 0.81")
    assert prompt == (
        "Carefully watch this video and pay attention to every detail. Based on your observations, select the "
        "best option that accurately addresses the question.\n"
        "Video transcript (what each moment shows):\n"
        "00:12: Egyptian cat 0.81\n"
        "Question: What animal appears in the video?\n"
        "Options:\n"
        "(A) a cat\n"
        "(B) a dog\n"
        "(C) a guitar\n"
        "(D) a sailboat\n"
        "Only give the best option.\n"
        "Best option: ("
    )
    assert mc_prompt("Q?", ["x"], system="").startswith("Question: Q?\nOptions:\n(A) x\n")
    assert MLVU_SYSTEM in prompt


def test_question_block_and_open_prompt():
    assert mlvu_question("How many?", ["2", "3"]) == "Question: How many?\nOptions:\n(A) 2\n(B) 3"
    assert open_prompt("What happens?", context="ctx", system="") == "ctx\nQuestion: What happens?\nAnswer:"
    assert format_option(1, "a cat") == "(B) a cat"
    assert option_letters(3) == ["A", "B", "C"]


def test_option_count_is_checked():
    with pytest.raises(ConfigError, match="1 to 26 options"):
        option_letters(0)
    with pytest.raises(MmlongError):
        mlvu_question("Q?", [str(i) for i in range(27)])


def test_letter_read_from_logits():
    logits = torch.full((50,), -3.0)
    logits[10], logits[11], logits[12], logits[13] = 1.0, 4.0, 2.0, 0.5  # letter tokens A..D
    logits[7] = 9.0  # a non-letter token with the largest logit is ignored
    choice = read_letter(logits, [10, 11, 12, 13])
    assert (choice.index, choice.letter) == (1, "B")
    expected = torch.softmax(torch.tensor([1.0, 4.0, 2.0, 0.5]), 0)
    assert torch.allclose(choice.probs, expected)
    assert choice.as_dict() == {k: round(float(v), 4) for k, v in zip("ABCD", expected)}
    # the option order follows the ids given, not the vocabulary order
    assert read_letter(logits, [13, 12, 11]).letter == "C"
    with pytest.raises(ValueError, match="outside a vocabulary"):
        read_letter(logits, [10, 99])


def test_choose_option_from_scores():
    choice = choose_option(torch.tensor([-5.86, -7.84, -14.41, -11.75]))
    assert choice.letter == "A" and float(choice.probs.sum()) == pytest.approx(1.0)
    assert choose_option(torch.tensor([-3.0, -1.0, -1.0])).index == 1  # a tie goes to the earlier option


def test_letter_token_ids_follow_the_prefix():
    def char_encode(text: str) -> list[int]:  # one token per character
        return [ord(c) for c in text]

    assert letter_token_ids(char_encode, 3) == [ord("A"), ord("B"), ord("C")]

    def fused_encode(text: str) -> list[int]:  # "(A" is one token: the letter has no token of its own
        return [hash(w) % 1000 for w in text.split(" ")]

    with pytest.raises(ConfigError, match="its own token"):
        letter_token_ids(fused_encode, 2)
