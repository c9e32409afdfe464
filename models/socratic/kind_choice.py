"""Multiple choice by the question's kind: the rule of :mod:`mmlong.models.socratic.kind_rules` that fits what the
question asks (:mod:`mmlong.question_kinds`) chooses the option.

``appear`` (but a question about a time: the option present most then) and ``attribute`` questions keep the
grounded rule of :mod:`mmlong.models.socratic.answerer` (the option a moment supports best); every other kind
is decided here. When a rule cannot tell the options apart (every
score equal, e.g. options that name no number for a counting question), :func:`choose_by_kind` returns None
and the grounded rule decides.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from mmlong.models.socratic.kind_rules import (
    EpisodeRule,
    Timeline,
    absence_scores,
    count_scores,
    count_value,
    duration_scores,
    episodes,
    first_seen,
    holistic_scores,
    null_relevance,
    order_scores,
    presence,
    timeline_relevance,
    when_scores,
)
from mmlong.models.socratic.segments import (
    Shots,
    assign,
    features_of,
    find_shots,
    likeliest_look,
    merge_spans,
    robust_z,
    seldom_looks,
    shot_episodes,
)
from mmlong.models.socratic.time_anchor import moments_at
from mmlong.question_kinds import QuestionKind, split_items

#: kinds whose multiple choice a rule of :mod:`mmlong.models.socratic.kind_rules` decides
RULED = frozenset({"topic", "count", "order", "when", "absence", "duration", "yesno"})


@dataclass
class KindChoice:
    """The rule's choice: ``index`` of the option, per-option ``scores [K]``, ``evidence`` (positions of the
    moments that carried it, in the moment list), ``details`` (what the rule measured, JSON-safe)."""

    index: int
    scores: torch.Tensor
    evidence: list[int] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


class Curves:
    """Presence curves over one timeline, computed once per text (an option, a target, an item)."""

    def __init__(self, timeline: Timeline, moments: Sequence[Any], encoder: Any, rule: EpisodeRule) -> None:
        self.timeline, self.moments, self.encoder, self.rule = timeline, moments, encoder, rule
        self._cache: dict[str, torch.Tensor] = {}
        self.relevance: dict[str, torch.Tensor] = {}
        self._shots: Shots | None = None
        self._shots_done = False

    @property
    def shots(self) -> Shots | None:
        """The timeline's :class:`~mmlong.models.socratic.segments.Shots` (None without image features)."""
        if not self._shots_done:
            features = features_of(self.timeline, self.moments)
            self._shots = find_shots(self.timeline, features) if features is not None else None
            self._shots_done = True
        return self._shots

    def candidates(self, needed: int) -> list[int]:
        """The looks named things are matched to: the seldom-seen looks
        (:func:`~mmlong.models.socratic.segments.seldom_looks`: things shown briefly) when there are at least
        ``needed`` of them, else every look; the things an order or negation question names are shown as
        distinct events, against footage that recurs."""
        shots = self.shots
        if shots is None:
            return []
        seldom = seldom_looks(shots, self.timeline)
        return seldom if len(seldom) >= needed else list(range(len(shots.looks)))

    def placed(self, texts: Sequence[str]) -> list[tuple[float, float]] | None:
        """Each text's showing ``(start s, score S)`` when the texts are assigned to distinct candidate looks
        (:meth:`candidates`, :func:`~mmlong.models.socratic.segments.assign`; the start is the look's first
        shot), or None when there are fewer looks than texts."""
        shots = self.shots
        if shots is None or len(shots.looks) < len(texts) or not texts:
            return None
        looks = self.candidates(len(texts))
        scores = shots.look_scores(self.of(list(texts)))[:, looks]
        cols, _ = assign(scores)
        return [(shots.spans(looks[c])[0][0], float(scores[r, c])) for r, c in enumerate(cols)]

    def left_out(self, texts: Sequence[str]) -> torch.Tensor | None:
        """``[K]`` how absent each text looks: the texts are assigned to distinct looks by ``S`` (which look
        each one is, decided by competition in common units), then each is judged on its own scale, ``-z`` of
        its ``S`` at its look (robust z over the looks: a thing the classifier matches weakly even where it is
        shown is not taken for the one never shown); the looks are the :meth:`candidates` for all texts but
        one. None with fewer looks than texts."""
        shots = self.shots
        if shots is None or len(shots.looks) < max(3, len(texts)) or len(texts) < 2:
            return None
        curves = self.of(list(texts))
        looks = self.candidates(len(texts) - 1)
        raw, per_shot = shots.look_scores(curves)[:, looks], shots.scores(curves)
        # with one look fewer than texts, one text takes "not shown" (presence 0, its own median moment)
        cols, _ = assign(torch.cat([raw, raw.new_zeros(len(texts), 1)], dim=1)) if raw.shape[1] < len(texts) \
            else assign(raw)
        z = torch.stack([robust_z(row, base) for row, base in zip(raw, per_shot)])
        return torch.tensor([-float(z[k, c]) if c < z.shape[1] else float("inf") for k, c in enumerate(cols)],
                            dtype=torch.float64)

    def absent(self, texts: Sequence[str]) -> torch.Tensor:
        """``[K]`` how absent each text looks: :meth:`left_out`, else (too few looks)
        :func:`~mmlong.models.socratic.kind_rules.absence_scores` of the competitive presence."""
        kept = self.left_out(texts)
        return kept if kept is not None else absence_scores(self.competitive(texts))

    def counted(self, text: str) -> list[tuple[float, float]] | None:
        """``[(start, end)]`` of the showings of the looks where ``text`` stands out (:func:`shot_episodes`),
        or None with fewer than three looks."""
        shots = self.shots
        if shots is None or len(shots.looks) < 3:
            return None
        return shot_episodes(shots, self.of([text])[0], self.rule.gap)

    def likeliest(self, text: str) -> list[tuple[float, float]]:
        """The showings of the look ``text`` matches best (:func:`likeliest_look`; shots less than the gap apart
        are one showing), or ``[]``: what a question that takes ``text`` to be shown counts when nothing
        stands out."""
        shots = self.shots
        look = likeliest_look(shots, self.of([text])[0]) if shots is not None else None
        return merge_spans(shots.spans(look), self.rule.gap) if look is not None else []

    def of(self, texts: Sequence[str]) -> torch.Tensor:
        """``[Q, M]`` presence of ``texts``."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            rel = timeline_relevance(self.timeline, self.moments, missing, self.encoder)
            for text, row, p in zip(missing, rel, presence(self.timeline, rel)):
                self.relevance[text], self._cache[text] = row, p
        if not texts:
            return torch.zeros(0, len(self.timeline), dtype=torch.float64)
        return torch.stack([self._cache[t] for t in texts])

    def first(self, text: str) -> float:
        return first_seen(self.of([text])[0], self.timeline, self.rule)

    def competitive(self, texts: Sequence[str]) -> torch.Tensor:
        """``[Q, M]`` presence of each text over the best of the *other* texts at each moment,
        ``p(x, l) - max_{x' != x} p(x', l)``: where alternatives are compared (the things of an order question,
        the options of a negation question), a moment is evidence for the one it matches best, so a cheetah's
        showing is not counted as a lion's as well."""
        p = self.of(list(texts))
        if p.shape[0] < 2:
            return p
        out = torch.empty_like(p)
        for k in range(p.shape[0]):
            others = torch.cat([p[:k], p[k + 1:]])
            out[k] = p[k] - others.max(dim=0).values
        return out

    def firsts(self, texts: Sequence[str]) -> list[float]:
        """When each of ``texts`` is first seen: the shot it is assigned to (:meth:`placed`), else from its
        :meth:`competitive` presence."""
        placed = self.placed(texts)
        if placed is not None:
            return [start for start, _ in placed]
        comp = self.competitive(texts)
        return [first_seen(row, self.timeline, self.rule) for row in comp]

    def sooner(self, text: str, anchor: str, relation: str) -> tuple[bool, list[float]]:
        """``(whether text is first seen before (relation "before") or after ``anchor``, [their first times])``,
        the two placed in distinct showings (:meth:`firsts`)."""
        seen = self.firsts([text, anchor])
        return (seen[0] < seen[1]) if relation == "before" else (seen[0] > seen[1]), seen

    def episodes(self, text: str) -> list[tuple[float, float]]:
        """The separate showings of ``text``: its standing-out shots (:meth:`counted`) and the text lines that
        say it (presence >= 0: half of its words read or heard), else the hysteresis episodes of its presence."""
        curve = self.of([text])[0]
        found = self.counted(text)
        if found is None:
            return episodes(curve, self.timeline, self.rule)
        said = curve.masked_fill(~self.timeline.is_text, float("-inf"))  # lines of text read or heard
        spoken = episodes(said, self.timeline, EpisodeRule(on_abs=0.0, on_rel=0.0, off_ratio=1.0,
                                                          gap=self.rule.gap)) if bool((said >= 0).any()) else []
        return merge_spans([*found, *spoken], self.rule.gap)

    def best(self, text: str, count: int = 3) -> list[int]:
        """Moment positions (in the moment list) of ``text``'s best moments, best first."""
        row = self.of([text])[0]
        order = torch.argsort(row, descending=True, stable=True)[:count].tolist()
        return [self.timeline.positions[i] for i in order]


#: targets a people expert's counts answer
PEOPLE = frozenset({"people", "person", "persons", "men", "man", "women", "woman", "faces", "face", "humans"})


def people_counts(moments: Sequence[Any]) -> list[tuple[float, float, int]]:
    """``(start, end, n)`` of the people expert's lines (``"2 people (2 faces, 0 bodies)"``), time order."""
    out = []
    for m in moments:
        match = re.match(r"\s*(\d+)\s+(?:people|person)", str(getattr(m, "text", ""))) \
            if getattr(m, "source", None) == "people" else None
        if match:
            out.append((float(m.start), float(m.end), int(match.group(1))))
    return sorted(out)


def counts_people(kind: QuestionKind, moments: Sequence[Any]) -> bool:
    """Whether a people expert's lines answer this counting question (how many people at once)."""
    words = set(kind.target.split())
    return kind.kind == "count" and kind.relation == "things" and bool(words & PEOPLE) and bool(
        people_counts(moments))


def _rounded(values: Any) -> Any:
    return [round(float(v), 4) if float(v) > float("-inf") else None for v in values]


def _spans(found: Sequence[tuple[float, float]]) -> list[list[float]]:
    return [[round(a, 2), round(b, 2)] for a, b in found]


def choose_by_kind(kind: QuestionKind, options: Sequence[str], curves: Curves,
                   temperature: float = 0.01, calibration: float = 0.75) -> KindChoice | None:
    """The option the kind's rule chooses, or None when the kind has no rule or the rule cannot decide;
    ``temperature``, ``calibration``: ``T`` and ``lambda`` of the holistic share."""
    if (kind.kind not in RULED and kind.relation != "at") or not options:
        return None
    timeline = curves.timeline
    opts = list(options)
    details: dict[str, Any] = {"rule": kind.kind}
    evidence: list[int] = []
    if kind.kind == "topic":
        curves.of(opts)
        rel = torch.stack([curves.relevance[o] for o in opts])
        null = null_relevance(curves.encoder, opts)
        scores = holistic_scores(rel - calibration * null[:, None], timeline, temperature)
        details["share"] = _rounded(scores)
    elif counts_people(kind, curves.moments):
        seen = people_counts(curves.moments)
        most = max(n for _, _, n in seen)
        scores = count_scores(opts, most)
        details.update(target=kind.target, count=most, source="people expert")
    elif kind.kind == "count":
        target = kind.target or opts[0]
        found = curves.episodes(target)
        presumed = not found and all((count_value(o) or 0) >= 1 for o in opts)
        if presumed:  # the options take it to be shown: the showings of the look most like it
            found = curves.likeliest(target)
        scores = count_scores(opts, len(found))
        details.update(target=target, count=len(found), episodes=_spans(found), likeliest_look=presumed)
        evidence = curves.best(target, max(1, len(found)))
    elif kind.kind == "order":
        if kind.relation in ("first", "last", "after", "before") and all(len(split_items(o)) == 1 for o in opts):
            firsts = torch.tensor(curves.firsts(opts), dtype=torch.float64)
            if kind.relation == "first":
                scores = -firsts
            elif kind.relation == "last":
                scores = firsts
            else:
                t = curves.first(kind.anchor) if kind.anchor else 0.0
                delta = firsts - t if kind.relation == "after" else t - firsts
                scores = torch.where(delta > 0, -delta, delta - timeline.duration)
                details["anchor_time"] = round(t, 2)
            details["first_seen"] = _rounded(firsts)
        else:
            items = list(dict.fromkeys(item for o in opts for item in split_items(o)))
            seen = dict(zip(items, curves.firsts(items)))
            scores = order_scores(opts, seen.__getitem__)
            details["first_seen"] = {k: round(v, 2) for k, v in seen.items()}
    elif kind.kind == "when":
        target = kind.target or ""
        if not target:
            return None
        curve = curves.of([target])[0]
        # nothing standing out: the question takes the target to be shown, so the look most like it says when
        likely = curves.likeliest(target) if curves.counted(target) == [] else []
        at = (likely[0][0] + likely[0][1]) / 2 if likely else None
        scores, tau = when_scores(opts, curve, timeline, curves.first, at)
        details.update(target=target, evidence_time=round(tau, 2), likeliest_look=bool(likely))
        evidence = curves.best(target, 1)
    elif kind.kind == "appear":  # "what is shown at 01:20?": the option present most at that time
        kept = {id(m) for m in moments_at(curves.moments, kind.anchor, timeline.duration)[0]}
        then = [i for i, p in enumerate(timeline.positions) if id(curves.moments[p]) in kept]
        scores = curves.of(opts)[:, then].max(dim=1).values
        details.update(at=kind.anchor, moments=len(then))
        evidence = [timeline.positions[i] for i in then][:3]
    elif kind.kind == "absence":
        scores = curves.absent(opts)
        details["absent"] = _rounded(scores)
    elif kind.kind == "duration":
        scores = duration_scores(curves.of(opts), timeline, kind.relation != "shortest", curves.rule)
        details["seconds"] = _rounded(scores.abs())
    else:  # yes/no
        target = kind.target
        if not target:
            return None
        said = [o.strip().lower().rstrip(".") for o in opts]
        if not {"yes", "no"} <= set(said):
            return None
        if kind.relation in ("before", "after") and kind.anchor:  # "does the cat appear before the rocket?"
            yes, seen = curves.sooner(target, kind.anchor, kind.relation)
            details.update(target=target, anchor=kind.anchor, first_seen=_rounded(seen))
        else:
            found = curves.episodes(target)
            yes = bool(found)
            details.update(target=target, episodes=_spans(found))
        scores = torch.tensor([1.0 if s == ("yes" if yes else "no") else 0.0 for s in said], dtype=torch.float64)
        evidence = curves.best(target, 1)
    if scores.numel() == 0 or not bool(torch.isfinite(scores).any()) or float(scores.max()) == float(scores.min()):
        return None
    index = int(torch.argmax(torch.nan_to_num(scores, neginf=-1e30)))
    if not evidence and kind.kind in ("absence", "topic", "duration", "order"):
        items = split_items(opts[index]) if kind.kind == "order" else [opts[index]]
        evidence = [p for item in items for p in curves.best(item, 1)] if kind.kind != "absence" else []
    details["scores"] = _rounded(scores)
    return KindChoice(index, scores, evidence, details)
