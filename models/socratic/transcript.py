"""A timestamped transcript of what each moment of a video shows, from visual tokens and an image classifier.

Socratic Models (Zeng et al., 2022, arXiv:2204.00598) let a vision model describe the video in words that a
language model then reasons over. Here the description is a list of time spans with the classifier's most
likely classes::

    00:00–00:11: seashore 0.62, sandbar 0.20
    00:12–00:14: Egyptian cat 0.81, tabby 0.10

Experts' lines (:class:`~mmlong.experts.base.TimedText`: on-screen text, speech, subtitles, notes) sit beside
the visual lines in time order, marked by their source::

    00:29–00:31 [text] "The secret word is banana."
    00:40–00:42 [speech] "The password is seventeen."

Tokens are grouped by time span: by scene segment where a segmentation ran (``tokens.segments != -1``), else by
frame. Each group's size-weighted mean feature goes through the classifier (for a CNN whose head pools its
feature grid, the mean of a frame's tokens is exactly the pooled feature). Consecutive lines naming the same most
likely class and the same set of classes merge into one span. Any compressed token set works: only features,
frame ids, timestamps, sizes and segments are read.

>>> clean_class_name("tabby, tabby cat"), clean_class_name("great_white_shark")
('tabby', 'great white shark')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from mmlong.experts.base import format_span
from mmlong.types import VisualTokens

#: what a line says when no class is confident enough to name
UNCLEAR = "nothing recognisable"


def clean_class_name(name: str) -> str:
    """The first synonym of a class name, with underscores as spaces: ``"tabby, tabby cat"`` -> ``"tabby"``."""
    first = str(name).split(",")[0]
    return " ".join(first.replace("_", " ").split())


@dataclass(frozen=True)
class TranscriptLine:
    """One span of the transcript.

    start/end: seconds (earliest and latest token time in the span); labels: ``(class name, probability)``
    pairs, most likely first; feature: ``[D]`` size-weighted mean visual feature of the span; weight: total token
    size; groups: how many time groups (frames or segments) the span merges.
    """

    start: float
    end: float
    labels: tuple[tuple[str, float], ...]
    feature: torch.Tensor = field(repr=False)
    weight: float = 1.0
    groups: int = 1

    @property
    def centre(self) -> float:
        return 0.5 * (self.start + self.end)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.labels)

    @property
    def says(self) -> tuple[str, frozenset[str]]:
        """What the line says, for merging: its most likely class and the set of classes it names."""
        return (self.labels[0][0] if self.labels else ""), self.names

    def text(self) -> str:
        said = ", ".join(f"{name} {prob:.2f}" for name, prob in self.labels) or UNCLEAR
        return f"{format_span(self.start, self.end)}: {said}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "labels": [[name, round(prob, 4)] for name, prob in self.labels],
            "groups": self.groups,
        }


@dataclass(frozen=True)
class Transcript:
    """The lines of a transcript in time order.

    lines: the visual lines (what the classifier saw; ``len()`` and :meth:`features` count only these);
    texts: the experts' timestamped lines (on-screen text, speech, subtitles, notes), time order.
    """

    lines: tuple[TranscriptLine, ...]
    texts: tuple[Any, ...] = ()

    def __len__(self) -> int:
        return len(self.lines)

    def text(self) -> str:
        """Visual and expert lines interleaved by start time (a visual line first on a tie)."""
        rows = [(line.start, 0, i, line.text()) for i, line in enumerate(self.lines)]
        rows += [(line.start, 1, i, line.render()) for i, line in enumerate(self.texts)]
        return "\n".join(row[3] for row in sorted(rows, key=lambda r: r[:3]))

    def with_texts(self, texts: Sequence[Any]) -> "Transcript":
        """This transcript with the experts' ``texts`` (time-sorted) beside its visual lines."""
        return Transcript(self.lines, tuple(sorted(texts, key=lambda t: (t.start, t.end))))

    def features(self) -> torch.Tensor:
        """``[L, D]`` mean visual feature of each line."""
        return torch.stack([line.feature for line in self.lines])

    def to_dicts(self) -> list[dict[str, Any]]:
        """The visual lines as dicts (the expert lines are ``[t.to_dict() for t in texts]``)."""
        return [line.to_dict() for line in self.lines]


def time_groups(tokens: VisualTokens) -> torch.Tensor:
    """Group id ``[N]`` of each token: its scene segment when it has one (``>= 0``), else its frame."""
    segments = tokens.segments.long()
    frames = tokens.frame_ids.long()
    offset = int(segments.max()) + 1 if segments.numel() and int(segments.max()) >= 0 else 0
    return torch.where(segments >= 0, segments, offset + frames)


@dataclass(frozen=True)
class _Spans:
    """Per-group arrays, ordered by time: start/end ``[G]`` seconds, features ``[G, D]``, weights ``[G]``."""

    start: torch.Tensor
    end: torch.Tensor
    features: torch.Tensor
    weights: torch.Tensor
    counts: torch.Tensor


def _pool(groups: torch.Tensor, start: torch.Tensor, end: torch.Tensor, features: torch.Tensor,
          weights: torch.Tensor, counts: torch.Tensor) -> _Spans:
    """Weighted means of ``features`` per group id, ordered by (start, end)."""
    _, inverse = torch.unique(groups, return_inverse=True)
    g = int(inverse.max()) + 1
    w = weights.to(torch.float64)
    sums = torch.zeros(g, features.shape[1], dtype=torch.float64).index_add_(
        0, inverse, features.to(torch.float64) * w[:, None])
    total = torch.zeros(g, dtype=torch.float64).index_add_(0, inverse, w)
    starts = torch.full((g,), float("inf"), dtype=torch.float64).scatter_reduce(0, inverse, start, "amin")
    ends = torch.full((g,), float("-inf"), dtype=torch.float64).scatter_reduce(0, inverse, end, "amax")
    n = torch.zeros(g, dtype=torch.long).index_add_(0, inverse, counts)
    order = sorted(range(g), key=lambda i: (float(starts[i]), float(ends[i])))
    idx = torch.tensor(order, dtype=torch.long)
    mean = (sums / total.clamp_min(1e-12)[:, None]).to(torch.float32)
    return _Spans(starts[idx], ends[idx], mean[idx], total[idx], n[idx])


def group_spans(tokens: VisualTokens) -> _Spans:
    """Time span, mean feature and weight of each time group of ``tokens``, in time order."""
    ts = tokens.timestamps.to(torch.float64)
    return _pool(time_groups(tokens), ts, ts, tokens.features, tokens.sizes,
                 torch.ones(tokens.num_tokens, dtype=torch.long))


def _named_probs(probs: torch.Tensor, class_names: Sequence[str]) -> tuple[torch.Tensor, list[str]]:
    """Sum the probabilities of classes whose cleaned names coincide: ``[G, C]`` -> ``[G, U]``, names ``[U]``."""
    names: list[str] = []
    index: dict[str, int] = {}
    column = []
    for raw in class_names:
        name = clean_class_name(raw)
        if name not in index:
            index[name] = len(names)
            names.append(name)
        column.append(index[name])
    out = torch.zeros(probs.shape[0], len(names), dtype=probs.dtype)
    out.index_add_(1, torch.tensor(column, dtype=torch.long), probs)
    return out, names


def _labels(probs: torch.Tensor, names: Sequence[str], top_k: int, min_prob: float,
            min_confidence: float = 0.0) -> tuple[tuple[str, float], ...]:
    """Top ``top_k`` classes of one probability row ``[U]`` with at least ``min_prob`` (the top one always,
    unless the top ``top_k`` classes together hold less than ``min_confidence`` of the probability: then nothing
    is recognisable and the labels are empty)."""
    values, idx = torch.topk(probs, k=min(top_k, probs.shape[0]))
    if float(values.sum()) < min_confidence:
        return ()
    keep = [(names[int(i)], float(v)) for rank, (v, i) in enumerate(zip(values, idx)) if rank == 0 or v >= min_prob]
    return tuple(keep)


def _lines(
    spans: _Spans, probs: torch.Tensor, names: Sequence[str], top_k: int, min_prob: float,
    min_confidence: float = 0.0,
    merge: bool = True,
) -> list[TranscriptLine]:
    """One line per span, then (``merge``) consecutive lines that say the same (same top class, same class set)
    merged.

    A merged line keeps the shared classes, with probabilities averaged by token weight.
    """
    column = {name: i for i, name in enumerate(names)}
    lines: list[TranscriptLine] = []
    merged_probs: list[torch.Tensor] = []
    for i in range(spans.start.shape[0]):
        p = probs[i].to(torch.float64)
        labels = _labels(p, names, top_k, min_prob, min_confidence)
        line = TranscriptLine(float(spans.start[i]), float(spans.end[i]), labels, spans.features[i],
                              float(spans.weights[i]), 1)
        if not merge or not lines or lines[-1].says != line.says:
            lines.append(line)
            merged_probs.append(p)
            continue
        prev = lines[-1]
        w0, w1 = prev.weight, line.weight
        total = max(w0 + w1, 1e-12)
        p = (merged_probs[-1] * w0 + p * w1) / total
        feature = ((prev.feature.double() * w0 + line.feature.double() * w1) / total).float()
        labels = sorted(((n, float(p[column[n]])) for n, _ in prev.labels), key=lambda item: -item[1])
        lines[-1] = TranscriptLine(prev.start, max(prev.end, line.end), tuple(labels), feature, w0 + w1,
                                   prev.groups + 1)
        merged_probs[-1] = p
    return lines


def _coarsen(spans: _Spans, bins: int) -> _Spans:
    """Join consecutive spans into ``bins`` contiguous bins of (nearly) equal span count."""
    g = spans.start.shape[0]
    groups = torch.div(torch.arange(g) * bins, g, rounding_mode="floor")
    return _pool(groups, spans.start, spans.end, spans.features, spans.weights, spans.counts)


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


def build_transcript(
    tokens: VisualTokens,
    classify: Callable[[torch.Tensor], torch.Tensor],
    class_names: Sequence[str],
    top_k: int = 3,
    min_prob: float = 0.05,
    max_lines: int = 64,
    min_confidence: float = 0.0,
    merge: bool = True,
) -> Transcript:
    """The transcript of ``tokens``.

    classify: ``[G, D]`` mean features -> ``[G, C]`` class probabilities; class_names: ``C`` names (cleaned to
    their first synonym; classes sharing a cleaned name add up). Each line keeps the ``top_k`` classes with at
    least ``min_prob`` (always the most likely one); a moment whose ``top_k`` classes together hold less than
    ``min_confidence`` is written as nothing recognisable rather than as a confident-looking guess. When more
    than ``max_lines`` lines remain after merging, consecutive time groups are pooled into ``max_lines`` coarser
    spans and classified again. ``merge=False``
    keeps one line per time group (the moments grounded option scoring compares,
    :mod:`mmlong.models.socratic.grounding`).
    """
    if tokens.num_tokens == 0:
        return Transcript(())
    if top_k < 1 or max_lines < 1:
        raise ValueError(f"top_k and max_lines must be at least 1, got {top_k} and {max_lines}")

    def lines_of(spans: _Spans) -> list[TranscriptLine]:
        with torch.inference_mode():
            probs = classify(spans.features)
        probs = torch.as_tensor(probs).detach().float().cpu()
        if probs.shape != (spans.features.shape[0], len(class_names)):
            raise ValueError(
                f"classify returned {tuple(probs.shape)} for {spans.features.shape[0]} spans and "
                f"{len(class_names)} class names"
            )
        named, names = _named_probs(probs, class_names)
        return _lines(spans, named, names, top_k, min_prob, min_confidence, merge)

    spans = group_spans(tokens)
    lines = lines_of(spans)
    if len(lines) > max_lines:
        lines = lines_of(_coarsen(spans, max_lines))
    return Transcript(tuple(lines))
