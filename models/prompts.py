"""MLVU-style prompts and reading the chosen option letter from a language model's next-token distribution.

MLVU: A Comprehensive Benchmark for Multi-Task Long Video Understanding (Zhou et al., 2024, arXiv:2406.04264).
The official multiple-choice evaluation (``videochat2/choice_bench.py`` in the MLVU repository) asks::

    Carefully watch this video and pay attention to every detail. Based on your observations, select the best
    option that accurately addresses the question.
    Question: <question>
    Options:
    (A) <option>
    (B) <option>
    Only give the best option.
    Best option: (

and the letter the model writes next is the answer. Here the letter is read without free-text parsing: the
next-token logits are restricted to the option letters' token ids and the largest wins (:func:`read_letter`).
Small base LMs bind letters to options poorly; for them :func:`choose_option` picks by any per-option score,
e.g. the log-likelihood of each option's text as the answer (the cloze scoring of Brown et al., 2020,
arXiv:2005.14165). Nothing in this module depends on a particular model; a tokenizer enters only as an
``encode(text) -> ids`` function.

>>> print(mc_prompt("What animal is shown?", ["a cat", "a dog"], system=""))
Question: What animal is shown?
Options:
(A) a cat
(B) a dog
Only give the best option.
Best option: (
>>> import torch
>>> read_letter(torch.tensor([0.0, 3.0, 1.0, 2.0]), letter_ids=[3, 1]).letter
'B'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from mmlong.errors import ConfigError
from mmlong.limits import MAX_OPTIONS  # one bound for every door
from mmlong.qa import Query

#: the instruction the official MLVU evaluation puts first
MLVU_SYSTEM = (
    "Carefully watch this video and pay attention to every detail. Based on your observations, select the best "
    "option that accurately addresses the question."
)
MLVU_QUESTION_SUFFIX = "Only give the best option."
#: the start of the answer; the model continues with the option letter
MLVU_ANSWER_PREFIX = "Best option: ("
OPEN_SYSTEM = "Carefully watch this video and pay attention to every detail. Answer the question briefly."
OPEN_ANSWER_PREFIX = "Answer:"


def option_letters(count: int) -> list[str]:
    """``["A", "B", ...]`` for ``count`` options (at most 26)."""
    if not 0 < count <= MAX_OPTIONS:
        raise ConfigError(f"a multiple-choice question needs 1 to {MAX_OPTIONS} options, got {count}")
    return [chr(ord("A") + i) for i in range(count)]


def format_option(index: int, option: str) -> str:
    """``"(B) a cat"`` for option ``index`` 1."""
    return f"({option_letters(index + 1)[index]}) {option}"


def mlvu_question(question: str, options: Sequence[str]) -> str:
    """The question block of the official MLVU template: ``Question: ...``, ``Options:``, ``(A) ...`` lines."""
    lines = [f"Question: {question.strip()}", "Options:"]
    lines += [format_option(i, str(option).strip()) for i, option in enumerate(options)]
    option_letters(len(options))  # validates the count
    return "\n".join(lines)


def _join(*parts: str) -> str:
    return "\n".join(p for p in parts if p)


def mc_prompt(
    question: str,
    options: Sequence[str],
    context: str = "",
    system: str = MLVU_SYSTEM,
    answer_prefix: str = MLVU_ANSWER_PREFIX,
) -> str:
    """The full multiple-choice prompt: instruction, ``context`` (e.g. a transcript), question block,
    ``Only give the best option.``, and ``answer_prefix`` (``"Best option: ("``) for the model to continue."""
    return _join(system, context, mlvu_question(question, options), MLVU_QUESTION_SUFFIX, answer_prefix)


def open_prompt(question: str, context: str = "", system: str = OPEN_SYSTEM) -> str:
    """A prompt for a free-form answer: instruction, ``context``, ``Question: ...`` and ``Answer:``."""
    return _join(system, context, f"Question: {question.strip()}", OPEN_ANSWER_PREFIX)


def letter_ids_after(encode: Callable[[str], Sequence[int]], count: int, prefix: str) -> list[int]:
    """The option letters' token ids as the next token after ``prefix``: written with a space (``" A"``, after an
    answer line such as ``The best answer is:``) when ``prefix`` ends in a word or colon and the tokenizer gives
    that one token, else bare (:func:`letter_token_ids`, e.g. after ``Best option: (`` or an empty prefix)."""
    if prefix and not prefix[-1].isspace() and prefix[-1] not in "([":
        try:
            return letter_token_ids(encode, count, prefix, space=True)
        except ConfigError:
            pass
    return letter_token_ids(encode, count, prefix)


def letter_prompt(query: Query, context: str) -> tuple[str, str]:
    """``(prompt, prefix)`` for reading the option letter from a text model's next token: MLVU's template ending
    in ``Best option: (`` (``context`` after the instruction), or ``context`` and the benchmark's official layout
    (:func:`benchmark_text`); ``prefix`` is what the letter follows (for :func:`letter_ids_after`)."""
    if not query.benchmark:
        return mc_prompt(query.question, query.options, context, system=query.instruction or MLVU_SYSTEM), \
            MLVU_ANSWER_PREFIX
    text = benchmark_text(query)
    return (context + "\n" if context else "") + text, text.splitlines()[-1]


def letter_token_ids(
    encode: Callable[[str], Sequence[int]], count: int, prefix: str = MLVU_ANSWER_PREFIX, space: bool = False
) -> list[int]:
    """The token id of each option letter as it follows ``prefix`` in the prompt.

    ``encode(text)`` returns token ids without special tokens. The id is what ``prefix + letter`` adds to
    ``prefix``; a tokenizer that fuses the letter with the prefix, or splits it, is refused, because then the
    next token alone cannot name the option. ``space``: the letter follows a space (``prefix + " A"``).
    """
    base = list(encode(prefix))
    ids = []
    for letter in option_letters(count):
        full = list(encode(prefix + (" " if space else "") + letter))
        if full[: len(base)] != base or len(full) != len(base) + 1:
            raise ConfigError(
                f"the tokenizer does not give option letter {letter!r} its own token after {prefix!r}; "
                "use an answer prefix that ends before the letter"
            )
        ids.append(full[-1])
    if len(set(ids)) != len(ids):
        raise ConfigError("the tokenizer maps two option letters to the same token")
    return ids


@dataclass(frozen=True)
class LetterChoice:
    """The option read from a next-token distribution.

    index: chosen option (0-based); letter: ``"A"``...; probs: ``[K]`` softmax over the K letters' logits only.
    """

    index: int
    letter: str
    probs: torch.Tensor

    def as_dict(self) -> dict[str, float]:
        """``{"A": 0.71, "B": 0.29}``."""
        return {chr(ord("A") + i): round(float(p), 4) for i, p in enumerate(self.probs)}


def read_letter(logits: torch.Tensor, letter_ids: Sequence[int]) -> LetterChoice:
    """Pick the option whose letter token has the largest logit.

    logits: ``[V]`` next-token logits; letter_ids: ``K`` token ids, option order. Ties go to the earlier option.
    """
    if logits.ndim != 1:
        raise ValueError(f"read_letter needs next-token logits [V], got {tuple(logits.shape)}")
    index = torch.as_tensor(list(letter_ids), dtype=torch.long)
    if index.numel() == 0 or int(index.max()) >= logits.shape[0] or int(index.min()) < 0:
        raise ValueError(f"letter ids {list(letter_ids)} are outside a vocabulary of {logits.shape[0]}")
    return choose_option(logits.float()[index])


def choose_option(scores: torch.Tensor) -> LetterChoice:
    """The option with the largest score; ``scores [K]`` are logits or log-likelihoods, one per option.

    ``probs`` is their softmax. Ties go to the earlier option.

    >>> choose_option(torch.tensor([-5.9, -7.8, -14.4])).letter
    'A'
    """
    if scores.ndim != 1 or scores.numel() == 0:
        raise ValueError(f"choose_option needs one score per option [K], got {tuple(scores.shape)}")
    option_letters(scores.numel())
    probs = torch.softmax(scores.float(), dim=0)
    best = int(torch.argmax(scores))
    return LetterChoice(best, chr(ord("A") + best), probs)


#: Video-MME's official prompt (README, "Evaluation Pipeline"; lmms-eval's videomme utils)
VIDEOMME_SUBTITLES_HEADER = "This video's subtitles are listed below:"
VIDEOMME_ANSWER_LINE = "The best answer is:"
#: LongVideoBench's official instruction (longvideobench_dataset.py)
LONGVIDEOBENCH_INSTRUCTION = "Answer with the option's letter from the given choices directly."
#: the benchmarks whose official layout :func:`benchmark_text` writes (besides MLVU's template, ``""``)
BENCHMARK_LAYOUTS = ("videomme", "longvideobench")


def benchmark_text(query: Query, subtitles: Sequence[str] = ()) -> str:
    """The question as its benchmark's official evaluation writes it (``query.benchmark``), ``subtitles`` (the
    lines of the sampled frames, in time order) included where that layout puts them:

    - ``"videomme"`` (Video-MME README): ``This video's subtitles are listed below:`` and the lines (only when
      there are subtitles), the instruction, the question, ``A. ...`` options, ``The best answer is:``;
    - ``"longvideobench"`` (``longvideobench_dataset.py``): the subtitle lines (after the frames they belong to),
      ``Question: ...``, ``A. ...`` options, ``Answer with the option's letter from the given choices directly.``;
    - ``""`` (MLVU's ``choice_bench.py``): the instruction, the lines, ``Question:``, ``Options:``, ``(A) ...``,
      ``Only give the best option.`` (the model then continues :data:`MLVU_ANSWER_PREFIX`).

    >>> print(benchmark_text(Query("Which colour?", ("red", "blue"), instruction="Select.", benchmark="videomme")))
    Select.
    Which colour?
    A. red
    B. blue
    The best answer is:
    """
    letters = option_letters(len(query.options))
    lettered = [f"{letter}. {str(option).strip()}" for letter, option in zip(letters, query.options)]
    lines = [str(line) for line in subtitles]
    if query.benchmark == "videomme":
        said = [VIDEOMME_SUBTITLES_HEADER, *lines] if lines else []
        return _join(*said, query.instruction, query.question.strip(), *lettered, VIDEOMME_ANSWER_LINE)
    if query.benchmark == "longvideobench":
        return _join(*lines, f"Question: {query.question.strip()}", *lettered,
                     query.instruction or LONGVIDEOBENCH_INSTRUCTION)
    if query.benchmark:
        raise ConfigError(f"unknown benchmark prompt layout {query.benchmark!r}; "
                          f"layouts: {', '.join(BENCHMARK_LAYOUTS)}")
    return _join(query.instruction or MLVU_SYSTEM, *lines, mlvu_question(query.question, query.options),
                 MLVU_QUESTION_SUFFIX)


def answer_prefix(query: Query) -> str:
    """What the assistant turn starts with before the option letter: MLVU's ``Best option: (``; nothing for the
    layouts whose question text ends with its own answer line (Video-MME, LongVideoBench); nothing for an open
    question."""
    return MLVU_ANSWER_PREFIX if query.is_multiple_choice and not query.benchmark else ""


def scoring_prompt(query: Query, context: str) -> tuple[str, str]:
    """``(prompt, shared)`` for scoring the option texts of ``query`` after ``context`` (a text model's
    transcript): the free-answer prompt for MLVU's questions (:func:`open_prompt`), the official layout
    (:func:`benchmark_text`) for a benchmark's; ``shared`` is the prompt's start that does not depend on the
    question (its key/value cache can be kept across a video's questions)."""
    if not query.benchmark:
        return open_prompt(query.question, context), open_prompt("", context).rsplit("Question:", 1)[0]
    shared = context + "\n" if context else ""
    return shared + benchmark_text(query), shared


def multiple_choice_text(query: Query, subtitles: str = "") -> str:
    """The question text that follows the video in a chat prompt: the benchmark's official layout when there are
    options (:func:`benchmark_text`; the assistant turn then starts with :func:`answer_prefix`, so the next
    token is the letter :func:`read_letter` reads), else the question; ``subtitles`` (a block from
    :func:`mmlong.models.subtitles.subtitle_context`) goes where the layout puts subtitles."""
    if not query.is_multiple_choice:
        return "\n".join(p for p in (subtitles, query.question) if p)
    return benchmark_text(query, subtitles.splitlines() if subtitles else ())


def chatml_turn(video: str, question: str, system: str = "", answer_prefix: str = "") -> str:
    """One ChatML user turn with the video before the question, as InternVL3.5 and VideoLLaMA3 template it (an
    empty ``system`` writes no system turn); the assistant turn starts with ``answer_prefix``.

    >>> chatml_turn("<v>", "Why?")
    '<|im_start|>user\\n<v>\\nWhy?<|im_end|>\\n<|im_start|>assistant\\n'
    """
    head = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    return f"{head}<|im_start|>user\n{video}\n{question}<|im_end|>\n<|im_start|>assistant\n{answer_prefix}"
