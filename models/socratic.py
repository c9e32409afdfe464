"""The offline default answerer: a Socratic video-QA model (image classifier + text LM).

Socratic Models: Composing Zero-Shot Multimodal Reasoning with Language (Zeng et al., 2022, arXiv:2204.00598).
The encoder's image classifier describes the (compressed) visual tokens as a timestamped transcript
(:mod:`mmlong.models.transcript`); a text-only language model (Gemma 3 270M, :mod:`mmlong.models.gemma`) reads
it with the question in the MLVU prompt (:mod:`mmlong.models.prompts`).

- Multiple choice, ``scoring="likelihood"`` (default): each option's text is scored by its log-likelihood as the
  answer after the transcript and question (cloze scoring, Brown et al., 2020, arXiv:2005.14165). A 270M base
  LM barely binds option letters to options: with the MLVU letter prompt it answers ``(A)`` whatever the
  options say, while the likelihood of the option text follows the transcript.
- Multiple choice, ``scoring="letter"``: the MLVU prompt ending in ``Best option: (``; the option letter is
  read from the LM's next-token distribution restricted to the option letters' token ids (for larger LMs).
- Open questions: a short greedy answer, cut at the first newline.
- Evidence: the transcript lines most relevant to the chosen option (or the open answer), most relevant first,
  as the lines' centre times in seconds. Relevance uses the encoder's text side when it has one
  (``encode_text`` vs ``embed_visual`` of each line's mean feature), else the overlap of words between the text
  and the line's class names.

Experts' lines (on-screen text, speech, subtitles; ``timed_text``) join the transcript in time order, marked
by source (``00:29 [text] "The secret word is banana."``); at most ``max_text_lines`` of them (notes such as
"no audio track" not counted), evenly spread in time when there are more.

The model accepts tokens from any chain (pooled, merged, selected, segmented): it reads only features, frame
ids, timestamps, sizes and segments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch

from mmlong.errors import ConfigError
from mmlong.models.base import VideoQAModel
from mmlong.models.prompts import (
    MLVU_SYSTEM,
    LetterChoice,
    choose_option,
    format_option,
    letter_token_ids,
    mc_prompt,
    open_prompt,
    read_letter,
)
from mmlong.models.transcript import Transcript, build_transcript
from mmlong.types import Answer, Query, VisualTokens

TRANSCRIPT_HEADER = "Video transcript (what each moment shows):"
EMPTY_TRANSCRIPT = "(no frames were kept)"
#: said after the header when the transcript holds expert lines
SOURCES_LEGEND = (
    "[text] lines are words written on screen; [speech] lines are words spoken; [subtitle] lines are subtitles."
)
SCORINGS = ("likelihood", "letter")
_STOPWORDS = frozenset(
    "a an the of and or in on at to with by for from is are was were be it its this that what which who "
    "where when how does do did video shown shows show there".split()
)


def transcript_context(transcript: Transcript) -> str:
    """The transcript as the prompt's context block."""
    body = transcript.text() if len(transcript) or transcript.texts else EMPTY_TRANSCRIPT
    legend = f"\n{SOURCES_LEGEND}" if any(t.source != "note" for t in transcript.texts) else ""
    return f"{TRANSCRIPT_HEADER}{legend}\n{body}"


def spread(items: Sequence[Any], count: int) -> list[Any]:
    """At most ``count`` of ``items``, evenly spaced over the sequence (first and last kept), order kept.

    >>> spread(list(range(10)), 4)
    [0, 3, 6, 9]
    """
    if len(items) <= count:
        return list(items)
    if count <= 1:
        return list(items[:count])
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


def _words(text: str) -> set[str]:
    """Lower-case content words of ``text``, with a plural ``s`` dropped (``"cats"`` -> ``"cat"``)."""
    out = set()
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word in _STOPWORDS:
            continue
        out.add(word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word)
    return out


def name_overlap(transcript: Transcript, text: str) -> torch.Tensor:
    """``[L]`` per line: sum over its classes of probability x the share of the class name's words in ``text``."""
    wanted = _words(text)
    scores = []
    for line in transcript.lines:
        score = 0.0
        for name, prob in line.labels:
            words = _words(name)
            if words:
                score += prob * len(words & wanted) / len(words)
        scores.append(score)
    return torch.tensor(scores, dtype=torch.float64)


def line_relevance(transcript: Transcript, text: str, encoder: Any) -> tuple[torch.Tensor, str]:
    """``([L] relevance of each line to text, method)``; method is ``"text-embedding"`` or ``"name-overlap"``."""
    if getattr(encoder, "has_text", False):
        try:
            scores = encoder.relevance(transcript.features(), [text])[0]
            return scores.detach().double().cpu(), "text-embedding"
        except NotImplementedError:
            pass
    return name_overlap(transcript, text), "name-overlap"


def evidence_times(transcript: Transcript, text: str, encoder: Any, count: int = 3) -> tuple[list[float], str]:
    """Centre times (s) of the ``count`` lines most relevant to ``text``, most relevant first.

    Only lines that stand out count: above the mean relevance of all lines (the best line always, for
    embeddings); with name overlap, lines that share no word with ``text`` are never evidence.
    """
    if not len(transcript) or count < 1:
        return [], "none"
    scores, method = line_relevance(transcript, text, encoder)
    order = sorted(range(len(transcript)), key=lambda i: (-float(scores[i]), transcript.lines[i].start))
    mean = float(scores.mean())
    order = [i for rank, i in enumerate(order) if float(scores[i]) > mean or (rank == 0 and method != "name-overlap")]
    if method == "name-overlap":
        order = [i for i in order if float(scores[i]) > 0.0]
    return [transcript.lines[i].centre for i in order[:count]], method


class SocraticModel(VideoQAModel):
    """Image classifier describes, Gemma 3 270M answers. Registered as ``"socratic"``."""

    name: ClassVar[str] = "socratic"
    supports_in_llm: ClassVar[bool] = False
    reads_timed_text: ClassVar[bool] = True

    @dataclass
    class Config:
        """path: a local LM directory instead of the packaged Gemma 3 270M; top_k: classes per transcript line;
        min_prob: least probability for a class to be mentioned (the top one always is); min_confidence: a
        moment whose top_k classes together hold less probability than this is written as nothing recognisable
        (an ImageNet classifier's low-confidence guesses on out-of-domain footage, e.g. dog breeds for a cartoon rabbit,
        otherwise read to the LM like facts); max_lines: most
        transcript lines (more time groups are pooled into coarser spans); max_text_lines: most expert lines
        (on-screen text, speech) in the transcript; max_new_tokens: length of open
        answers; evidence: how many evidence times to give; scoring: ``"likelihood"`` (option text
        log-likelihood) or ``"letter"`` (MLVU letter from the next-token distribution); device, dtype: where and
        how the LM runs; cache_dir: cache root for the converted LM (default ``$MMLONG_CACHE_DIR`` or the user
        cache dir)."""

        path: str | None = None
        top_k: int = 3
        min_prob: float = 0.05
        min_confidence: float = 0.5
        max_lines: int = 48
        max_text_lines: int = 64
        max_new_tokens: int = 32
        evidence: int = 3
        scoring: str = "likelihood"
        device: str = "cpu"
        dtype: str = "float32"
        cache_dir: str | None = None

        def __post_init__(self) -> None:
            if self.top_k < 1 or self.max_lines < 1 or self.max_new_tokens < 1 or self.max_text_lines < 0:
                raise ValueError("top_k, max_lines and max_new_tokens must be at least 1, max_text_lines at least 0")
            for name in ("min_prob", "min_confidence"):
                if not 0.0 <= getattr(self, name) <= 1.0:
                    raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)}")
            if self.scoring not in SCORINGS:
                raise ValueError(f"scoring must be one of {', '.join(SCORINGS)}, got {self.scoring!r}")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._lm: Any = None
        self._letter_ids: dict[int, list[int]] = {}

    # ------------------------------------------------------------------ the language model, loaded once
    @property
    def lm(self) -> Any:
        """The answerer LM (:class:`~mmlong.models.gemma.TextLM`), loaded on first use."""
        if self._lm is None:
            from mmlong.models.gemma import load_gemma

            cfg = self.config
            self._lm = load_gemma(cfg.path, cache_dir=cfg.cache_dir, device=cfg.device, dtype=cfg.dtype)
        return self._lm

    def load(self) -> "SocraticModel":
        """Load the answerer LM now (otherwise on the first answer)."""
        _ = self.lm
        return self

    def letter_ids(self, count: int) -> list[int]:
        """Token ids of the first ``count`` option letters as they follow ``Best option: (``."""
        if count not in self._letter_ids:
            self._letter_ids[count] = letter_token_ids(self.lm.encode, count)
        return self._letter_ids[count]

    # ------------------------------------------------------------------ answering
    def transcript(self, tokens: VisualTokens, encoder: Any, timed_text: Sequence[Any] = ()) -> Transcript:
        """The timestamped transcript of ``tokens`` from ``encoder``'s classifier, with the experts' lines."""
        has_classifier = callable(getattr(encoder, "classify", None)) and getattr(encoder, "class_names", None)
        if encoder is None or not has_classifier:
            name = getattr(encoder, "name", None)
            raise ConfigError(
                f"the socratic model needs an encoder with an image classifier (classify, class_names); "
                f"{'encoder ' + repr(name) + ' has none' if encoder is not None else 'none was given'}; "
                "use --encoder efficientnet-lite0"
            )
        cfg = self.config
        visual = build_transcript(tokens, encoder.classify, list(encoder.class_names), top_k=cfg.top_k,
                                  min_prob=cfg.min_prob, max_lines=cfg.max_lines,
                                  min_confidence=cfg.min_confidence)
        texts = sorted(timed_text, key=lambda t: (t.start, t.end))
        notes = [t for t in texts if t.source == "note"]  # what the experts say about the video: always kept
        return visual.with_texts(notes + spread([t for t in texts if t.source != "note"], cfg.max_text_lines))

    def choose(self, query: Query, context: str) -> tuple[str, LetterChoice]:
        """The prompt and the chosen option of a multiple-choice ``query`` given the transcript ``context``."""
        if self.config.scoring == "letter":
            prompt = mc_prompt(query.question, query.options, context, system=query.instruction or MLVU_SYSTEM)
            logits = self.lm.next_token_logits(prompt)
            return prompt, read_letter(logits, self.letter_ids(len(query.options)))
        prompt = open_prompt(query.question, context)
        shared = open_prompt("", context).rsplit("Question:", 1)[0]  # instruction + transcript, kept across questions
        logprobs = self.lm.continuation_logprobs(prompt, [" " + option.strip() for option in query.options],
                                                 prefix=shared)
        return prompt, choose_option(torch.stack([lp.sum() for lp in logprobs]))

    def answer(
        self,
        tokens: VisualTokens,
        query: Query,
        *,
        encoder: Any = None,
        in_llm: Sequence[Any] = (),
        timed_text: Sequence[Any] = (),
    ) -> Answer:
        if in_llm:
            raise ConfigError(
                "the socratic model has no visual tokens inside its LM, so in-LLM compressors "
                f"({', '.join(getattr(s, 'name', type(s).__name__) for s in in_llm)}) cannot run; remove them"
            )
        transcript = self.transcript(tokens, encoder, timed_text)
        context = transcript_context(transcript)
        details: dict[str, Any] = {"transcript": transcript.text(), "transcript_lines": transcript.to_dicts(),
                                   "text_lines": [t.to_dict() for t in transcript.texts]}
        if query.is_multiple_choice:
            prompt, choice = self.choose(query, context)
            option = query.options[choice.index]
            evidence, method = evidence_times(transcript, option, encoder, self.config.evidence)
            details["scoring"] = self.config.scoring
            details["option_probs"] = choice.as_dict()
            result = Answer(text=format_option(choice.index, option), option=option, option_index=choice.index,
                            evidence=evidence)
        else:
            prompt = open_prompt(query.question, context)
            text = self.lm.generate(prompt, max_new_tokens=self.config.max_new_tokens, stop=("\n",))
            evidence, method = evidence_times(transcript, text or query.question, encoder, self.config.evidence)
            result = Answer(text=text, evidence=evidence)
        details["evidence_method"] = method
        details["prompt_tokens"] = len(self.lm.encode(prompt, special=True))
        result.details.update(details)
        return result
