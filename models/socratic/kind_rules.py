"""One answer rule per question kind (:mod:`mmlong.question_kinds`), over the evidence timeline.

The timeline is what the Socratic model already builds: each moment (a sampled frame or segment with its
classifier labels, or an expert's line of on-screen text or speech) at its time, and the relevance ``r(x, l)``
of a text ``x`` (an option, a target) to moment ``l`` (:func:`mmlong.models.socratic.grounding.moment_relevance`: ConSE
for image moments, word match / MiniLM for text moments). Each moment stands for a stretch of the video: an
image moment for the time nearest to it among the image moments (half the gap to each neighbour, the ends
stretched to the video's start and end), a text moment for its own span.

Presence of ``x`` at ``l`` is how far ``l`` stands above ``x``'s typical moment::

    p(x, l) = r(x, l) - median_{image l'} r(x, l')      (image moment)
    p(x, l) = r(x, l) - 0.5                             (text moment: half of the words said)

The rules (``D`` the video's duration, ``w_l`` the seconds moment ``l`` stands for):

- **holistic** (topic, summary, setting): each option's share of the whole video, by duration, not its peak
  or its rarest moment: ``H(o) = sum_l w_l softmax_o(r'(., l) / T)_o / sum_l w_l`` over image moments
  (:func:`holistic_scores`, ``T = 0.01``: nearly the share of the video each option matches best), where
  ``r'(o, l) = r(o, l) - lambda * r(o, null)`` (``lambda = 0.75``, tuned on the tuning set) is calibrated by
  the option's relevance to a content-free image (the mean of all class embeddings, :func:`null_relevance`;
  the ConSE analogue of the domain-conditional PMI of Holtzman et al. 2021): some texts ("a camera on a
  tripod") resemble every ConSE embedding a little;
- **counting**: separate episodes of presence (:func:`episodes`): ``p(x, l)`` in time order thresholded with
  hysteresis (an episode opens at ``p >= on``, ``on = max(on_abs, on_rel * max_l p)``, and stays open while
  ``p >= off_ratio * on``); episodes less than ``gap`` s apart are one episode. The answer is their number
  (the option nearest to it, :func:`count_scores`);
- **order**: the first time each named thing is seen (the start of its first episode, else its best moment),
  from its presence over the best of the other named things at each moment (``p(x, l) - max_{x'} p(x', l)``:
  a moment is evidence for the thing it matches best);
  an option scores the share of its pairs of things in the seen order (:func:`order_scores`);
- **when**: the target's evidence time ``tau`` (its best moment) against the span an option names
  (:func:`option_span`: "first quarter", "near the end", "at 02:10", "after the cat"):
  ``score(o) = -dist(tau, span_o) / D + 0.1 * (share of the target's presence inside span_o)``;
- **absence** (negation): presence inverted, ``score(o) = -max_l [p(o, l) - max_{o' != o} p(o', l)]`` (the
  same competition among the options);
- **duration**: the seconds of ``o``'s episodes (longest; negated for shortest).

>>> count_value("three times"), count_value("twice"), count_value("12"), count_value("a cat")
(3, 2, 12, None)
>>> option_span("in the first quarter", 100.0), option_span("near the end", 100.0), option_span("at 01:10", 100.0)
((0.0, 25.0), (75.0, 100.0), (70.0, 70.0))
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mmlong.models.socratic.grounding import line_says, moment_relevance
from mmlong.question_kinds import split_items

#: presence a text moment needs to count as saying a text (half of its words)
TEXT_MATCH = 0.5


@dataclass(frozen=True)
class EpisodeRule:
    """The hysteresis of :func:`episodes`: on_abs (least presence that opens an episode), on_rel (share of the
    curve's peak an episode's opening needs), off_ratio (an episode stays open while presence is at least
    ``off_ratio * on``), gap (seconds: closer episodes are one). Tuned on the tuning set (see the README)."""

    on_abs: float = 0.08
    on_rel: float = 0.5
    off_ratio: float = 0.6
    gap: float = 3.0


@dataclass(frozen=True)
class Timeline:
    """Moments in time order. ``times [M]`` centres (s), ``starts [M]``, ``ends [M]``, ``weights [M]`` (the
    seconds each stands for), ``is_text [M]`` (an expert's line), ``positions [M]`` (each moment's index in the
    list it was built from), ``duration`` (s)."""

    times: torch.Tensor
    starts: torch.Tensor
    ends: torch.Tensor
    weights: torch.Tensor
    is_text: torch.Tensor
    positions: list[int]
    duration: float

    def __len__(self) -> int:
        return len(self.positions)


def build_timeline(moments: Sequence[Any], duration: float | None = None,
                   within: tuple[float, float] | None = None) -> Timeline:
    """The :class:`Timeline` of ``moments`` (image lines and expert lines, any order); ``duration``: the
    video's length in seconds (default: the last moment's end plus the typical gap between image moments);
    ``within``: the span the moments were taken from (an image moment stands for no time outside it)."""
    order = sorted(range(len(moments)), key=lambda i: (float(moments[i].centre), i))
    times = torch.tensor([float(moments[i].centre) for i in order], dtype=torch.float64)
    starts = torch.tensor([float(moments[i].start) for i in order], dtype=torch.float64)
    ends = torch.tensor([float(moments[i].end) for i in order], dtype=torch.float64)
    is_text = torch.tensor([line_says(moments[i]) is not None for i in order], dtype=torch.bool)
    image = (~is_text).nonzero().flatten()
    img_t = times[image]
    step = float(img_t.diff().median()) if img_t.numel() > 1 else 1.0
    total = float(duration) if duration else (float(ends.max()) + step if len(order) else 0.0)
    weights = (ends - starts).clamp_min(0.5)
    if image.numel():
        mids = (img_t[1:] + img_t[:-1]) / 2
        lo = torch.cat([img_t.new_zeros(1), mids])
        hi = torch.cat([mids, img_t.new_full((1,), max(total, float(img_t[-1])))])
        if within is not None:
            lo, hi = lo.clamp(min=within[0]), hi.clamp(max=within[1])
        weights[image] = (hi - lo).clamp_min(1e-3)
    return Timeline(times, starts, ends, weights, is_text, order, total)


def presence(timeline: Timeline, relevance: torch.Tensor) -> torch.Tensor:
    """``[Q, M]`` presence ``p(x, l)`` (module docstring) from ``relevance [Q, M]`` in timeline order."""
    rel = relevance.double()
    out = rel - TEXT_MATCH
    image = ~timeline.is_text
    if bool(image.any()):
        out[:, image] = rel[:, image] - rel[:, image].median(dim=1, keepdim=True).values
    return out


def timeline_relevance(timeline: Timeline, moments: Sequence[Any], texts: Sequence[str],
                       encoder: Any) -> torch.Tensor:
    """``[Q, M]`` relevance of ``texts`` to the moments, in timeline order."""
    rel, _ = moment_relevance([moments[i] for i in timeline.positions], list(texts), encoder)
    return rel


def episodes(curve: torch.Tensor, timeline: Timeline, rule: EpisodeRule = EpisodeRule()) -> list[tuple[float, float]]:
    """``[(start, end)]`` seconds of the separate episodes where presence ``curve [M]`` (timeline order) is high
    (hysteresis and gap merging, see the module docstring)."""
    if curve.numel() == 0:
        return []
    peak = float(curve.max())
    on = max(rule.on_abs, rule.on_rel * peak)
    if peak < on:
        return []
    off = rule.off_ratio * on
    runs: list[list[float]] = []
    open_run = False
    for i in range(curve.numel()):
        value = float(curve[i])
        if open_run and value >= off:
            runs[-1][1] = float(timeline.ends[i])
        elif value >= on:
            runs.append([float(timeline.starts[i]), float(timeline.ends[i])])
            open_run = True
        else:
            open_run = False
    merged: list[list[float]] = []
    for run in runs:
        if merged and run[0] - merged[-1][1] < rule.gap:
            merged[-1][1] = max(merged[-1][1], run[1])
        else:
            merged.append(run)
    return [(a, b) for a, b in merged]


def holistic_scores(relevance: torch.Tensor, timeline: Timeline, temperature: float = 0.01) -> torch.Tensor:
    """``[K]`` each option's duration-weighted share of the video's image moments (module docstring)."""
    image = ~timeline.is_text
    if not bool(image.any()):
        return relevance.double().mean(dim=1)
    share = torch.softmax(relevance.double()[:, image] / max(temperature, 1e-9), dim=0)
    w = timeline.weights[image]
    return (share * w).sum(dim=1) / w.sum()


def null_relevance(encoder: Any, texts: Sequence[str]) -> torch.Tensor:
    """``[Q]`` relevance of ``texts`` to a content-free image: the cosine with the normalised mean of the
    encoder's ConSE class embeddings (zeros for an encoder without them)."""
    conse = getattr(encoder, "conse", None)
    classes = getattr(conse, "class_embeddings", None)
    if classes is None or not callable(getattr(encoder, "encode_text", None)):
        return torch.zeros(len(texts), dtype=torch.float64)
    null = torch.nn.functional.normalize(classes.double().mean(dim=0), dim=0)
    return encoder.encode_text(list(texts)).double() @ null


_NUMBER_WORDS = {"zero": 0, "no": 0, "none": 0, "never": 0, "once": 1, "one": 1, "single": 1, "twice": 2,
                 "two": 2, "thrice": 3, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                 "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}


def count_value(option: str) -> int | None:
    """The number an option says (``"3"``, ``"three times"``, ``"twice"``), or None."""
    text = str(option).lower()
    digits = re.search(r"\d+", text)
    if digits:
        return int(digits.group())
    for word in re.findall(r"[a-z]+", text):
        if word in _NUMBER_WORDS:
            return _NUMBER_WORDS[word]
    return None


def count_scores(options: Sequence[str], count: int) -> torch.Tensor:
    """``[K]``: ``-|n_o - count|`` for options that say a number ``n_o``, ``-inf`` for the rest."""
    values = [count_value(o) for o in options]
    return torch.tensor([-abs(v - count) if v is not None else float("-inf") for v in values], dtype=torch.float64)


def first_seen(curve: torch.Tensor, timeline: Timeline, rule: EpisodeRule = EpisodeRule()) -> float:
    """When a thing is first seen: the start of its first episode, else the time of its best moment."""
    found = episodes(curve, timeline, rule)
    if found:
        return found[0][0]
    return float(timeline.times[int(curve.argmax())]) if curve.numel() else 0.0


def order_scores(options: Sequence[str], first: Callable[[str], float]) -> torch.Tensor:
    """``[K]``: the share of each option's pairs of things (:func:`~mmlong.question_kinds.split_items`) whose
    first-seen times (``first(item)``) are in the option's order."""
    scores = []
    for option in options:
        items = split_items(option)
        times = [first(item) for item in items]
        pairs = [(i, j) for i in range(len(items)) for j in range(i + 1, len(items))]
        right = sum(1 for i, j in pairs if times[i] < times[j])
        scores.append(right / len(pairs) if pairs else 0.0)
    return torch.tensor(scores, dtype=torch.float64)


_ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3,
             "last": -1, "final": -1}
_PARTS = {"quarter": 4, "third": 3, "half": 2}


def _clock(text: str) -> list[float]:
    """Times written as ``mm:ss`` / ``h:mm:ss`` or ``N seconds`` / ``N minutes`` in ``text``, in seconds."""
    out = []
    for match in re.finditer(r"(\d+):(\d{2})(?::(\d{2}))?", text):
        a, b, c = match.groups()
        out.append(float(int(a) * 3600 + int(b) * 60 + int(c) if c else int(a) * 60 + int(b)))
    for match in re.finditer(r"(\d+(?:\.\d+)?)\s*(seconds?|secs?|s|minutes?|mins?)\b", text):
        value = float(match.group(1))
        out.append(value * 60 if match.group(2).startswith("m") else value)
    return out


def option_span(option: str, duration: float, anchor: Callable[[str], float] | None = None
                ) -> tuple[float, float] | None:
    """The ``(start, end)`` seconds an answer to "when" names, or None when it names none.

    Parts ("first quarter", "second half", "last third"), "beginning"/"middle"/"end", clock times ("at 02:10":
    that instant; "between 00:30 and 01:00"), "in the first/last N seconds", before/after a thing
    (``anchor(thing)``: when that thing is first seen), and a part less an excluded end ("in the first half, but
    not at the beginning": the half less its first quarter).

    >>> option_span("in the first half, but not at the beginning", 100.0), option_span("at the beginning", 100.0)
    ((25.0, 50.0), (0.0, 25.0))
    >>> option_span("in the second half, except the end", 100.0)
    (50.0, 75.0)
    """
    text = str(option).lower()
    d = float(duration)
    excluded = re.search(r"\b(?:but not|except|excluding|other than)\b(.*)", text)
    if excluded:  # "in the first half, but not at the beginning": the part named first, less the part excluded
        span, cut = option_span(text[:excluded.start()], d, anchor), option_span(excluded.group(1), d, anchor)
        if span is None or cut is None:
            return span
        if cut[0] <= span[0] < cut[1]:
            span = (cut[1], span[1])
        if cut[0] < span[1] <= cut[1]:
            span = (span[0], cut[0])
        return span if span[0] < span[1] else None
    rel = re.search(r"\b(after|before)\b\s+(.*)", text)
    if rel and anchor is not None and not _clock(rel.group(2)):
        t = anchor(rel.group(2))
        return (t, d) if rel.group(1) == "after" else (0.0, t)
    for part, n in _PARTS.items():
        match = re.search(rf"\b(first|1st|second|2nd|third|3rd|fourth|4th|last|final)\s+{part}\b", text)
        if match:
            k = _ORDINALS[match.group(1)] % n
            return (d * k / n, d * (k + 1) / n)
    clock = _clock(text)
    if clock:
        if re.search(r"\b(first|opening)\b", text):
            return (0.0, min(clock[0], d))
        if re.search(r"\b(last|final)\b", text):
            return (max(0.0, d - clock[0]), d)
        return (min(clock), max(clock)) if len(clock) > 1 else (clock[0], clock[0])
    if re.search(r"\b(beginning|begin|start|opening|early|earlier|intro\w*)\b", text):
        return (0.0, d / 4)
    if re.search(r"\b(middle|midway|halfway|centre|center)\b", text):
        return (d / 3, 2 * d / 3)
    if re.search(r"\b(end|ending|close|closing|late|later|final|finish\w*|last)\b", text):
        return (3 * d / 4, d)
    if re.search(r"\b(throughout|whole|entire|all along|all the time)\b", text):
        return (0.0, d)
    return None


def when_scores(options: Sequence[str], curve: torch.Tensor, timeline: Timeline,
                anchor: Callable[[str], float] | None = None, at: float | None = None) -> tuple[torch.Tensor, float]:
    """``([K] scores, tau)``: how near the target's evidence time ``tau`` (its best moment, or ``at`` when
    given) is to each option's span, plus a tenth of the share of the target's positive presence inside it
    (module docstring); ``-inf`` for an option naming no span."""
    d = max(timeline.duration, 1e-9)
    tau = at if at is not None else float(timeline.times[int(curve.argmax())]) if curve.numel() else 0.0
    mass = curve.clamp_min(0.0) * timeline.weights
    total = float(mass.sum())
    scores = []
    for option in options:
        span = option_span(option, d, anchor)
        if span is None:
            scores.append(float("-inf"))
            continue
        a, b = span
        dist = max(a - tau, 0.0, tau - b)
        inside = (timeline.times >= a) & (timeline.times <= b)
        share = float(mass[inside].sum()) / total if total > 0 else 0.0
        scores.append(-dist / d + 0.1 * share)
    return torch.tensor(scores, dtype=torch.float64), tau


def absence_scores(curves: torch.Tensor) -> torch.Tensor:
    """``[K]``: presence inverted, ``-max_l p(o, l)`` for ``curves [K, M]``."""
    return -curves.max(dim=1).values if curves.shape[1] else torch.zeros(curves.shape[0], dtype=torch.float64)


def episode_seconds(found: Sequence[tuple[float, float]], timeline: Timeline) -> float:
    """Seconds covered by ``found`` episodes (an instant moment counts as the time it stands for)."""
    total = 0.0
    for a, b in found:
        inside = (timeline.times >= a) & (timeline.times <= b)
        total += max(b - a, float(timeline.weights[inside].sum()))
    return total


def duration_scores(curves: torch.Tensor, timeline: Timeline, longest: bool = True,
                    rule: EpisodeRule = EpisodeRule()) -> torch.Tensor:
    """``[K]``: the seconds of each option's episodes (negated when the shortest is asked for); ties broken by
    the option's positive presence mass."""
    seconds = torch.tensor([episode_seconds(episodes(c, timeline, rule), timeline) for c in curves],
                           dtype=torch.float64)
    mass = (curves.clamp_min(0.0) * timeline.weights).sum(dim=1)
    score = seconds + 1e-3 * mass
    return score if longest else -score
