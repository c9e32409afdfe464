"""Frame-level scores shared by the query-aware and content-aware stages.

A frame is scored by its relevance to the question when a query and an encoder with a text side are at hand
(``encoder.relevance`` in the joint text-image space), otherwise by its novelty (how much it differs from the
frame before it). :func:`diverse_top` then picks high-scoring frames that are spread in time, in the spirit of
maximal marginal relevance (Carbonell & Goldstein 1998, "The Use of MMR, Diversity-Based Reranking for
Reordering Documents and Producing Summaries") with a temporal kernel as the redundancy term, so a cluster of
neighbouring frames cannot crowd out other events.

>>> import torch
>>> scores = torch.tensor([0.9, 1.0, 0.95, 0.1, 0.1, 0.1, 0.8, 0.1])
>>> diverse_top(scores, torch.arange(8.0), 2).tolist()   # one pick per event, not two neighbours
[1, 6]
>>> novelty(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])).tolist()
[1.0, 0.0, 1.0]
>>> brief_rarity(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), torch.tensor([0.0, 5.0, 10.0, 15.0]),
...              2.5).tolist()   # the third moment is unlike everything outside its own few seconds
[0.0, 0.0, 1.0, 0.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from mmlong.qa import Query
from mmlong.types import VisualTokens


@dataclass(frozen=True)
class FrameScores:
    """One score per frame still present: ids int64 ``[F]``, times float64 ``[F]``, scores float ``[F]``;
    ``method`` is ``"query"`` or ``"novelty"``; ``features [F, D]`` the size-weighted frame means."""

    ids: torch.Tensor
    times: torch.Tensor
    scores: torch.Tensor
    method: str
    features: torch.Tensor

    def to_extra(self, selected: torch.Tensor | None = None) -> dict[str, Any]:
        """Plain lists for a Step's ``extra`` (what the demo's relevance plot reads)."""
        extra: dict[str, Any] = {
            "frame_times": [round(float(t), 3) for t in self.times],
            "scores": [round(float(s), 4) for s in self.scores],
            "scored_by": self.method,
        }
        if selected is not None:
            extra["selected"] = [bool(s) for s in selected]
        return extra


def query_texts(query: Query) -> list[str]:
    """The texts a frame is scored against: the question, then each option."""
    return [query.question, *query.options]


def has_text_side(encoder: Any) -> bool:
    return encoder is not None and encoder.has_text


def combine_relevance(relevance: torch.Tensor) -> torch.Tensor:
    """``[Q, F]`` relevance of (question, option 1, ...) to frames -> one score per frame ``[F]``.

    With options, the question's row and the best option's row count half each: a frame showing any answer
    candidate is evidence for the question.
    """
    if relevance.shape[0] == 1:
        return relevance[0]
    return 0.5 * relevance[0] + 0.5 * relevance[1:].max(dim=0).values


def novelty(frame_features: torch.Tensor) -> torch.Tensor:
    """``[F, D]`` -> ``[F]``: 1 - cosine similarity to the previous frame; the first frame counts as new (1)."""
    if frame_features.shape[0] == 0:
        return frame_features.new_zeros(0)
    sim = F.cosine_similarity(frame_features[1:].float(), frame_features[:-1].float(), dim=-1)
    return torch.cat([sim.new_ones(1), 1.0 - sim])


def brief_rarity(features: torch.Tensor, times: torch.Tensor, window: float, block: int = 256) -> torch.Tensor:
    """``[L, D]`` moment features at ``times [L]`` (s) -> ``[L]``: 1 - the largest cosine similarity to a moment
    more than ``window`` seconds away (0 when there is none).

    A brief event (a needle shown for a second or two) is unlike everything outside its own few seconds, while
    a moment of a longer scene has a near twin a few seconds on, and a moment of a recurring scene one further
    away; the median similarity to the rest of the video cannot tell these apart in footage that is varied
    anyway (every scene is unlike most others). Computed ``block`` rows of the ``[L, L]`` similarity at a
    time, so memory stays ``block x L`` (an hour's scan, L = 3600, held four float64 ``[L, L]`` matrices,
    about 400 MB, at once).
    """
    count = features.shape[0]
    if count == 0:
        return features.new_zeros(0, dtype=torch.float64)
    unit = F.normalize(features.double(), dim=-1)
    t = times.double()
    out = torch.zeros(count, dtype=torch.float64)
    for start in range(0, count, max(1, block)):
        stop = min(start + max(1, block), count)
        sim = unit[start:stop] @ unit.T
        far = (t[start:stop, None] - t[None, :]).abs() > window
        nearest = sim.masked_fill_(~far, -2.0).max(dim=1).values
        out[start:stop] = torch.where(far.any(dim=1), 1.0 - nearest, torch.zeros_like(nearest))
    return out


def seldom_seconds(duration: float) -> float:
    """Seconds of a video of ``duration`` s that a thing seen *seldom* is shown for at most, all showings
    together: ``max(12 s, 2 %)`` (a photo shown four times for 2-3 s; footage recurs for longer)."""
    return max(12.0, 0.02 * float(duration))


def twin_counts(features: torch.Tensor, twin: float, block: int = 256) -> torch.Tensor:
    """``[L, D]`` -> ``[L]``: how many moments (itself included) have a feature cosine of at least ``twin`` with
    each moment: how much of the video shows the same thing. A thing shown briefly, even several times, has a
    handful of twins; footage, however it cuts between its scenes, has many. ``block`` rows of the ``[L, L]``
    similarity at a time.

    >>> twin_counts(torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [1.0, 0.0]]), 0.9).tolist()
    [3, 3, 1, 3]
    """
    unit = F.normalize(features.double(), dim=-1)
    out = torch.zeros(features.shape[0], dtype=torch.long)
    for start in range(0, features.shape[0], max(1, block)):
        stop = min(start + max(1, block), features.shape[0])
        out[start:stop] = ((unit[start:stop] @ unit.T) >= twin).sum(dim=1)
    return out


def score_frames(frame_features: torch.Tensor, query: Query | None, encoder: Any) -> tuple[torch.Tensor, str]:
    """``[F, D]`` frame features -> (``[F]`` scores, method): query relevance when possible, else novelty."""
    if query is not None and query.question.strip() and has_text_side(encoder):
        relevance = encoder.relevance(frame_features, query_texts(query))
        return combine_relevance(relevance.float()), "query"
    return novelty(frame_features), "novelty"


def frame_scores(tokens: VisualTokens, query: Query | None, encoder: Any) -> FrameScores:
    """Score every frame still present in ``tokens`` (see :func:`score_frames`)."""
    ids, times, means = tokens.frame_means()
    scores, method = score_frames(means, query, encoder)
    return FrameScores(ids, times, scores, method, means)


def diverse_top(
    scores: torch.Tensor,
    times: torch.Tensor,
    k: int | None = None,
    diversity: float = 0.5,
    costs: Sequence[int] | None = None,
    budget: int | None = None,
) -> torch.Tensor:
    """Greedy MMR over frames: returns the chosen positions (sorted ascending, int64 ``[K]``).

    scores ``[F]`` (any scale; min-max normalised here), times ``[F]`` seconds. Each step takes the frame
    maximising ``score - diversity * max_s exp(-|t - t_s| / tau)`` over already chosen frames ``s``, with
    ``tau`` = the span of the video divided by twice the number of picks. Stops after ``k`` picks, or when the
    next frame's cost (tokens) would overflow ``budget``; at least one frame is kept.
    """
    n = int(scores.shape[0])
    if n == 0:
        return torch.zeros(0, dtype=torch.long)
    cost = torch.ones(n) if costs is None else torch.as_tensor(costs, dtype=torch.float64).float()
    if k is None:
        k = n if budget is None else max(1, int(budget // max(float(cost.mean()), 1.0)))
    k = max(1, min(int(k), n))
    s = scores.double()
    spread = float(s.max() - s.min())
    s = (s - s.min()) / spread if spread > 0 else torch.zeros_like(s)
    t = times.double()
    span = float(t.max() - t.min()) if n > 1 else 1.0
    tau = max(span / (2.0 * k), 1e-6)
    redundancy = torch.zeros(n, dtype=torch.float64)
    available = torch.ones(n, dtype=torch.bool)
    chosen: list[int] = []
    used = 0.0
    while len(chosen) < k and bool(available.any()):
        value = torch.where(available, s - diversity * redundancy, torch.tensor(-float("inf"), dtype=torch.float64))
        best = int(torch.argmax(value))
        available[best] = False
        if budget is not None and chosen and used + float(cost[best]) > budget:
            continue  # too big for what is left; a smaller frame may still fit
        chosen.append(best)
        used += float(cost[best])
        redundancy = torch.maximum(redundancy, torch.exp(-(t - t[best]).abs() / tau))
    return torch.tensor(sorted(chosen), dtype=torch.long)
