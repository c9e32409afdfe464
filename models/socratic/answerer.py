"""The offline default answerer: a Socratic video-QA model (image classifier + text LM).

Socratic Models: Composing Zero-Shot Multimodal Reasoning with Language (Zeng et al., 2022, arXiv:2204.00598).
The encoder's image classifier describes the (compressed) visual tokens as a timestamped transcript
(:mod:`mmlong.models.socratic.transcript`); a text-only language model (Gemma 3 270M,
:mod:`mmlong.models.socratic.gemma`) reads
it with the question in the MLVU prompt (:mod:`mmlong.models.prompts`).

Multiple choice is **grounded** (``scoring="fused"``, the default). Every moment of the video (each sampled
frame or segment, and each expert line: on-screen text, speech) is compared with every option
(:mod:`mmlong.models.socratic.grounding`: ConSE for image moments, fuzzy word match and MiniLM for text moments), and
an option's evidence is its best moment's support, ``e_o = max_l [r(o, l) - median_l' r(o, l') + u * b_l]``,
where ``b_l`` is how much more the moment stands apart from the rest of the video than its typical moment does
(a brief event is unlike everything outside its own few seconds; 0 for expert lines), ``u = 0.5``. The LM
score is calibrated: the domain-conditional PMI of Holtzman et al. 2021 (arXiv:2104.08315),
``pmi_o = log p(o | transcript, question) - log p(o | question, no transcript)`` (summed over the option's
tokens), so short, common options lose the head start a base LM gives them. The fused rule::

    score_o = log_softmax_o(e / T) + w * log_softmax_o(pmi)        T = 0.02, w = 0.5 (tuned on the tuning set)

chooses the option with the highest score: clear evidence decides, and the LM decides between options the
video supports equally. ``scoring="evidence"`` (``e`` only), ``"lm"`` (``pmi`` only), ``"likelihood"`` (the
summed log-likelihood, the rule before grounding) and ``"letter"`` (the MLVU letter read from the next-token
distribution, for larger LMs) stay selectable for ablations. Evidence times are the moments that carried the
chosen option, most prominent first.

**Question kinds** (``kind_rules=True``, the default). The question is first understood
(:mod:`mmlong.question_kinds`: what appears, topic, count, order, when, absence, duration, attribute, yes/no,
with its target), recorded in ``details["question"]``. Multiple choice of every kind but ``appear`` and
``attribute`` is decided by that kind's rule over the evidence timeline (:mod:`mmlong.models.socratic.kind_rules`,
chosen
in :mod:`mmlong.models.socratic.kind_choice`: holistic share by duration, episodes counted with hysteresis, first-seen
order, the evidence time against each option's span, presence inverted, episode seconds); the rule's
measurements are in ``details["kind_rule"]``. ``kind_rules=False`` answers every question with the grounded
rule above (the ablation).

Open questions get a sentence of the kind asked (:mod:`mmlong.models.socratic.open_answers`: a count with its times, a
time and part of the video, a summary of what most of the video shows and what happens briefly, the text read,
the words heard), and say plainly when no moment shows the target. An ``appear`` question is answered from the
moment with the most support for the question (its prominence plus, for an image moment, ``u * b_l``): that
moment's own words (``open_answer="extract"``: its most likely class, or the text read or heard) with its time,
or the LM's greedy answer given only the best moments (``"generate"``). Evidence: that moment's time.

The model accepts tokens from any chain (pooled, merged, selected, segmented): it reads only features, frame
ids, timestamps, sizes and segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from mmlong.errors import ConfigError
from mmlong.models.base import VideoQAModel
from mmlong.models.prompts import (
    LetterChoice,
    choose_option,
    format_option,
    letter_ids_after,
    letter_prompt,
    letter_token_ids,
    open_prompt,
    read_letter,
    scoring_prompt,
)
from mmlong.models.socratic.grounding import Grounding, ground, line_says, moment_rarity, moment_text
from mmlong.models.socratic.kind_choice import Curves, choose_by_kind
from mmlong.models.socratic.kind_rules import EpisodeRule, build_timeline
from mmlong.models.socratic.open_answers import open_sentence
from mmlong.models.socratic.time_anchor import moments_at
from mmlong.models.socratic.transcript import Transcript, build_transcript, spread
from mmlong.qa import Answer, Query
from mmlong.question_kinds import understand
from mmlong.types import VisualTokens

TRANSCRIPT_HEADER = "Video transcript (what each moment shows):"
#: said after the header when the transcript holds expert lines
SOURCES_LEGEND = (
    "[text] lines are words written on screen; [speech] lines are words spoken; [subtitle] lines are subtitles."
)
EVIDENCE_HEADER = "The most relevant moments of the video:"
EMPTY_TRANSCRIPT = "(no frames were kept)"
#: lm: calibrated LM only; evidence: grounding only; fused: both (default); likelihood: summed log-likelihood
#: (the old rule, kept for comparison); letter: the MLVU option letter
SCORINGS = ("fused", "evidence", "lm", "likelihood", "letter")
#: extract: the best moment's own words (its most likely class, or its text); generate: the LM's answer from it
OPEN_ANSWERS = ("extract", "generate")


def transcript_context(transcript: Transcript, header: str = TRANSCRIPT_HEADER) -> str:
    """The transcript as the prompt's context block."""
    body = transcript.text() if len(transcript) or transcript.texts else EMPTY_TRANSCRIPT
    legend = f"\n{SOURCES_LEGEND}" if any(t.source != "note" for t in transcript.texts) else ""
    return f"{header}{legend}\n{body}"


def fuse_scores(evidence: torch.Tensor, lm: torch.Tensor, temperature: float, lm_weight: float) -> torch.Tensor:
    """``[K]`` fused option scores: ``log_softmax(evidence / temperature) + lm_weight * log_softmax(lm)``.

    >>> fuse_scores(torch.tensor([0.30, 0.05]), torch.tensor([-1.0, 1.0]), 0.05, 0.5).argmax().item()
    0
    >>> fuse_scores(torch.tensor([0.05, 0.05]), torch.tensor([-1.0, 1.0]), 0.05, 0.5).argmax().item()
    1
    """
    e = torch.log_softmax(evidence.double() / max(temperature, 1e-9), dim=0)
    return e + lm_weight * torch.log_softmax(lm.double(), dim=0)


def video_duration(tokens: VisualTokens) -> float | None:
    """The video's duration in seconds from the tokens' meta, or None."""
    return ((tokens.meta or {}).get("video") or {}).get("duration")


def moment_words(line: Any) -> str:
    """What a moment says in words: the text of a text moment, else its most likely class (``""`` if none)."""
    said = line_says(line)
    if said is not None:
        return said
    labels = getattr(line, "labels", ())
    return labels[0][0] if labels else ""


class SocraticModel(VideoQAModel):
    """Image classifier describes, Gemma 3 270M answers, grounded in the transcript. Registered as ``"socratic"``."""

    name: ClassVar[str] = "socratic"
    supports_in_llm: ClassVar[bool] = False
    reads_timed_text: ClassVar[bool] = True

    @dataclass
    class Config:
        """path: a local LM directory instead of the packaged Gemma 3 270M; top_k: classes per transcript line;
        min_prob: least probability for a class to be mentioned (the top one always is); min_confidence: a
        moment whose top_k classes together hold less probability than this is written as nothing recognisable
        (an ImageNet classifier's low-confidence guesses on out-of-domain footage, e.g. dog breeds for a cartoon
        rabbit, otherwise read to the LM like facts); max_lines: most transcript lines the LM reads (more time
        groups are pooled into coarser spans; grounding always compares every moment); max_text_lines: most
        expert lines (on-screen text, speech) in the transcript; max_new_tokens: length
        of open answers; evidence: how many evidence times to give; scoring: ``fused`` (default), ``evidence``,
        ``lm``, ``likelihood`` or ``letter`` (see the module docstring); evidence_temperature, lm_weight: the
        fusion rule's constants (tuned on the tuning needle set, see README); rarity_weight: ``u``, how much an
        image moment's rarity adds to its support for every text (0: prominence alone); rarity_window: seconds
        around a moment inside which its twins do not count against its rarity (a brief event's own span);
        open_moments: how many of the most
        relevant moments an open answer is generated from; kind_rules: answer each question kind by its own
        rule (False: every question by the grounded rule); episode_on, episode_gap: the least presence that
        opens an episode and the seconds that separate two (:class:`~mmlong.models.socratic.kind_rules.EpisodeRule`);
        holistic_temperature, holistic_calibration: ``T`` and ``lambda`` of the holistic share; device,
        dtype: where and how the LM runs; cache_dir:
        cache root for the converted LM (default ``$MMLONG_CACHE_DIR`` or the user cache dir)."""

        path: str | None = None
        top_k: int = 3
        min_prob: float = 0.05
        min_confidence: float = 0.5
        max_lines: int = 48
        max_text_lines: int = 64
        max_new_tokens: int = 32
        evidence: int = 3
        scoring: str = "fused"
        evidence_temperature: float = 0.02
        lm_weight: float = 0.5
        rarity_weight: float = 0.5
        rarity_window: float = 2.5
        open_moments: int = 1
        open_answer: str = "extract"
        kind_rules: bool = True
        episode_on: float = 0.08
        episode_gap: float = 3.0
        holistic_temperature: float = 0.01
        holistic_calibration: float = 0.75
        device: str = "cpu"
        dtype: str = "float32"
        cache_dir: str | None = None

        def __post_init__(self) -> None:
            if self.top_k < 1 or self.max_lines < 1 or self.max_new_tokens < 1 or self.open_moments < 1:
                raise ValueError("top_k, max_lines, max_new_tokens and open_moments must be at least 1")
            if self.max_text_lines < 0:
                raise ValueError("max_text_lines must be at least 0")
            for name in ("min_prob", "min_confidence"):
                if not 0.0 <= getattr(self, name) <= 1.0:
                    raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)}")
            if self.scoring not in SCORINGS:
                raise ValueError(f"scoring must be one of {', '.join(SCORINGS)}, got {self.scoring!r}")
            if self.open_answer not in OPEN_ANSWERS:
                raise ValueError(f"open_answer must be one of {', '.join(OPEN_ANSWERS)}, got {self.open_answer!r}")
            if self.evidence_temperature <= 0 or self.lm_weight < 0:
                raise ValueError("evidence_temperature must be positive and lm_weight 0 or more")
            if self.rarity_weight < 0 or self.rarity_window < 0:
                raise ValueError("rarity_weight and rarity_window must be 0 or more")
            if self.episode_on <= 0 or self.episode_gap < 0 or self.holistic_temperature <= 0:
                raise ValueError("episode_on and holistic_temperature must be positive, episode_gap 0 or more")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._lm: Any = None
        self._letter_ids: dict[int, list[int]] = {}
        self._describer: tuple[Any, Any] | None = None

    # ------------------------------------------------------------------ the language model, loaded once
    @property
    def lm(self) -> Any:
        """The answerer LM (:class:`~mmlong.models.socratic.gemma.TextLM`), loaded on first use."""
        if self._lm is None:
            from mmlong.models.socratic.gemma import load_gemma

            cfg = self.config
            self._lm = load_gemma(cfg.path, cache_dir=cfg.cache_dir, device=cfg.device, dtype=cfg.dtype)
        return self._lm

    def load(self) -> SocraticModel:
        """Load the answerer LM now (otherwise on the first answer)."""
        _ = self.lm
        return self

    def letter_ids(self, count: int) -> list[int]:
        """Token ids of the first ``count`` option letters as they follow ``Best option: (``."""
        if count not in self._letter_ids:
            self._letter_ids[count] = letter_token_ids(self.lm.encode, count)
        return self._letter_ids[count]

    # ------------------------------------------------------------------ answering
    def describer(self, encoder: Any) -> Any:
        """What names the moments: ``encoder``'s image classifier, or a zero-shot one over a large vocabulary from
        an image-text encoder's text tower (:func:`mmlong.models.socratic.open_vocab.describer`); kept for the next
        question."""
        from mmlong.models.socratic.open_vocab import describer

        if self._describer is None or self._describer[0] is not encoder:
            self._describer = (encoder, describer(encoder))
        return self._describer[1]

    def transcript(self, tokens: VisualTokens, encoder: Any, timed_text: Sequence[Any] = (),
                   merge: bool = True) -> Transcript:
        """The timestamped transcript of ``tokens`` from ``encoder``'s classifier, with the experts' lines;
        ``merge=False``: one line per moment (frame or segment), every moment labelled, and every expert line
        but notes (the moments grounding compares)."""
        encoder = self.describer(encoder)
        cfg = self.config
        visual = build_transcript(tokens, encoder.classify, list(encoder.class_names), top_k=cfg.top_k,
                                  min_prob=cfg.min_prob, max_lines=cfg.max_lines if merge else 1 << 30,
                                  min_confidence=cfg.min_confidence if merge else 0.0, merge=merge)
        texts = sorted(timed_text, key=lambda t: (t.start, t.end))
        notes = [t for t in texts if t.source == "note"]  # what the experts say about the video: always kept
        spoken = [t for t in texts if t.source != "note"]
        if not merge:
            return visual.with_texts(spoken)
        return visual.with_texts(notes + spread(spoken, cfg.max_text_lines))

    def lm_scores(self, query: Query, context: str) -> tuple[str, torch.Tensor, torch.Tensor]:
        """``(prompt, summed log-likelihood [K], PMI [K])`` of each option's text as the answer.

        PMI is the domain-conditional PMI of Holtzman et al. 2021 (arXiv:2104.08315): the log-likelihood after
        the transcript minus the log-likelihood after a content-free prompt (the same instruction and question,
        no transcript), so options that are likely whatever the video shows (short, common words) lose their
        head start.
        """
        prompt, shared = scoring_prompt(query, context)  # shared: instruction + transcript, kept across questions
        options = [" " + option.strip() for option in query.options]
        given = torch.stack([lp.sum() for lp in self.lm.continuation_logprobs(prompt, options, prefix=shared)])
        blank = scoring_prompt(query, transcript_context(Transcript(())))[0]
        prior = torch.stack([lp.sum() for lp in self.lm.continuation_logprobs(blank, options)])
        return prompt, given.double(), (given - prior).double()

    def choose(self, query: Query, context: str, grounding: Grounding) -> tuple[str, LetterChoice, dict[str, Any]]:
        """The prompt, the chosen option of a multiple-choice ``query`` and the per-option scores."""
        cfg = self.config
        if cfg.scoring == "letter":
            prompt, prefix = letter_prompt(query, context)  # the benchmark's official layout
            ids = self.letter_ids(len(query.options)) if not query.benchmark else \
                letter_ids_after(self.lm.encode, len(query.options), prefix)
            logits = self.lm.next_token_logits(prompt)
            vocabulary = torch.log_softmax(logits.float(), dim=-1)  # each letter's real log-likelihood
            return prompt, read_letter(logits, ids), {"letter_loglik": [round(float(vocabulary[i]), 6) for i in ids]}
        scores: dict[str, Any] = {"evidence": [round(float(e), 4) for e in grounding.evidence]}
        if cfg.scoring == "evidence":
            return "", choose_option(grounding.evidence / cfg.evidence_temperature), scores
        prompt, summed, pmi = self.lm_scores(query, context)
        scores.update(likelihood=[round(float(v), 4) for v in summed], pmi=[round(float(v), 4) for v in pmi])
        if cfg.scoring == "likelihood":
            return prompt, choose_option(summed), scores
        if cfg.scoring == "lm":
            return prompt, choose_option(pmi), scores
        fused = fuse_scores(grounding.evidence, pmi, cfg.evidence_temperature, cfg.lm_weight)
        scores["fused"] = [round(float(v), 4) for v in fused]
        return prompt, choose_option(fused), scores

    def text_loglik(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        """The LM's summed log-likelihood of each continuation after ``prompt`` (no transcript, no video)."""
        return [float(lp.sum()) for lp in self.lm.continuation_logprobs(prompt, list(continuations))]

    def ground(self, moments: Sequence[Any], texts: Sequence[str], encoder: Any) -> Grounding:
        """:func:`~mmlong.models.socratic.grounding.ground` of ``texts`` with the moments' rarity at
        ``rarity_weight``."""
        cfg = self.config
        rarity = moment_rarity(moments, cfg.rarity_window) if cfg.rarity_weight > 0 else None
        return ground(moments, texts, encoder, rarity, cfg.rarity_weight)

    def curves(self, tokens: VisualTokens, moments: Sequence[Any], encoder: Any,
               within: tuple[float, float] | None = None) -> Curves:
        """Presence curves over the timeline of ``moments`` (the video's duration from the tokens' meta), taken
        from the span ``within`` when the question asks about a time."""
        rule = EpisodeRule(on_abs=self.config.episode_on, gap=self.config.episode_gap)
        return Curves(build_timeline(moments, video_duration(tokens), within), moments, encoder, rule)

    def open_answer(self, query: Query, moments: Sequence[Any], encoder: Any) -> tuple[str, str, list[int], Grounding]:
        """``(prompt, answer, moment positions, grounding)`` for an open question, from the ``open_moments``
        moments with the most support for the question: their own words (``open_answer="extract"``: the most
        likely class of an image moment, the text of a text moment) or the LM's greedy answer given only those
        moments (``"generate"``)."""
        grounding = self.ground(moments, [query.question], encoder)
        scores = grounding.support[0]
        order = sorted(range(len(moments)), key=lambda i: (-float(scores[i]), i))[: self.config.open_moments]
        if not order:
            return "", "", [], grounding
        if self.config.open_answer == "extract":
            return "", moment_words(moments[order[0]]), order, grounding
        chosen = [moments[i] for i in sorted(order)]
        best = Transcript(tuple(m for m in chosen if line_says(m) is None),
                          tuple(m for m in chosen if line_says(m) is not None))
        prompt = open_prompt(query.question, transcript_context(best, EVIDENCE_HEADER))
        text = self.lm.generate(prompt, max_new_tokens=self.config.max_new_tokens, stop=("\n",))
        return prompt, text, order, grounding

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
        encoder = self.describer(encoder)
        transcript = self.transcript(tokens, encoder, timed_text)
        fine = self.transcript(tokens, encoder, timed_text, merge=False)
        moments = [*fine.lines, *fine.texts]  # every frame (or segment) and every expert line
        context = transcript_context(transcript)
        details: dict[str, Any] = {"transcript": transcript.text(), "transcript_lines": transcript.to_dicts(),
                                   "text_lines": [t.to_dict() for t in transcript.texts],
                                   "timed_text_seen": [t.to_dict() for t in transcript.texts if t.source != "note"]}
        cfg = self.config
        kind = understand(query.question, query.options)
        details["question"] = {**kind.to_dict(), "summary": kind.describe()}
        moments, span = moments_at(moments, kind.anchor, video_duration(tokens) or 0.0) \
            if kind.relation == "at" and not query.is_multiple_choice else (moments, None)  # the moments then
        curves = self.curves(tokens, moments, encoder, span)
        ruled = choose_by_kind(kind, query.options, curves, cfg.holistic_temperature, cfg.holistic_calibration) \
            if cfg.kind_rules and query.is_multiple_choice else None
        prompt = ""
        if ruled is not None:
            grounding = self.ground(moments, list(query.options), encoder)
            choice = choose_option(ruled.scores.nan_to_num(neginf=-1e9) / cfg.evidence_temperature)
            option = query.options[choice.index]
            carried = ruled.evidence
            details.update(scoring=f"rule:{kind.kind}", option_probs=choice.as_dict(), kind_rule=ruled.details,
                           option_scores={"evidence": [round(float(e), 4) for e in grounding.evidence]})
            result = Answer(text=format_option(choice.index, option), option=option, option_index=choice.index,
                            evidence=[moments[i].centre for i in carried])
        elif query.is_multiple_choice:
            grounding = self.ground(moments, list(query.options), encoder)
            prompt, choice, scores = self.choose(query, context, grounding)
            option = query.options[choice.index]
            carried = grounding.moments(choice.index, cfg.evidence)
            details.update(scoring=cfg.scoring, option_probs=choice.as_dict(), option_scores=scores)
            if "likelihood" in scores or "letter_loglik" in scores:  # real log-likelihoods (the lmms-eval bridge)
                kind = "text" if "likelihood" in scores else "letter"
                details.update(option_loglik=scores["likelihood" if kind == "text" else "letter_loglik"],
                               option_loglik_kind=kind)
            result = Answer(text=format_option(choice.index, option), option=option, option_index=choice.index,
                            evidence=[moments[i].centre for i in carried])
        else:
            prompt, text, carried, grounding = self.open_answer(query, moments, encoder)
            if cfg.kind_rules and (cfg.open_answer == "extract" or kind.kind != "appear"):
                best = moments[carried[0]] if carried else None
                rarity = moment_rarity(moments, cfg.rarity_window) if cfg.rarity_weight > 0 else None
                text, ruled_evidence = open_sentence(
                    kind, curves, rarity, best_words=text, best_time=best.centre if best is not None else None,
                    best_source=str(getattr(best, "source", "") or ""), min_confidence=cfg.min_confidence)
                carried = ruled_evidence or carried
            result = Answer(text=text, evidence=[moments[i].centre for i in carried])
        details["evidence_method"] = grounding.method
        details["evidence_lines"] = [moment_text(moments[i]) for i in carried]
        details["prompt_tokens"] = len(self.lm.encode(prompt, special=True)) if prompt else 0
        result.details.update(details)
        return result
