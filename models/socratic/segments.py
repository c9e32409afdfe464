"""Segment first, then match: the video's shots, the showings of a named thing among them, and named things
assigned to shots with competition.

An image classifier's relevance to a text is noisy on footage it does not know (ConSE matches cyclists to "a
motorcycle" and dark footage of the Earth to "a temple"), so rules that threshold each moment's relevance on
its own mistake steady footage for a brief showing. A brief thing shown in a video is instead a *segment*: a
run of moments that cuts in and out of the surrounding footage and looks like little else in the video. The
rules of :mod:`mmlong.models.socratic.kind_choice` therefore segment the timeline first and match the named
things to segments second:

- **shots**: the image moments in time order, cut between neighbours whose feature cosine is below ``CUT``
  (shot-boundary detection by feature difference): a brief thing shown cuts in and out of the footage, so its
  showing is one shot;
- **looks**: shots that look alike wherever they are in the video, grouped (single linkage over the shots'
  mean features, cosine at least ``TWIN``): the same thing shown again is the same look, and one showing's
  shot split by a fade or a flicker stays one look, so named things compete for *looks*, not for neighbouring
  frames of one showing (:func:`group_looks`);
- **score** ``S[x, s] = max_{l in s} p(x, l)``: a named thing's presence (relevance over its median moment,
  :func:`~mmlong.models.socratic.kind_rules.presence`) at its best moment in the shot, and
  ``S[x, g] = mean_{l in g} p(x, l)`` over a look's moments (one thing shown matches all through; recurring
  footage is a mixture whose best moment matches many texts by chance, its average none);
- **showings** of one thing (:func:`standing_out`): the looks above the widest break of its robust z-scores
  ``(S - median) / (1.4826 MAD)`` (median and MAD of its scores over the shots, the footage's many samples),
  when they stand out of the video's own baseline (steady footage that resembles a text a little is that
  text's baseline, a brief photo of it a spike); each shot of such a look is a showing (a thing shown three
  times is one look of three shots);
- **assignment** (:func:`assign`): named things to *distinct* looks maximising ``sum S`` (exhaustive search,
  the assignment problem of Kuhn 1955 at the sizes questions have), so two things shown in turn cannot both
  claim the same showing and a thing with no showing of its own is left with a weak one.

>>> assign(torch.tensor([[0.9, 0.8], [0.7, 0.1]]))
([1, 0], 1.5)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from mmlong.models.socratic.kind_rules import Timeline
from mmlong.scoring.frames import seldom_seconds

#: consecutive image moments less alike than this (feature cosine) are in different shots
CUT = 0.6
#: shots at least this alike (cosine of their mean features) are one look: the same thing shown again
TWIN = 0.9
#: robust z-score (against the shots) at which a thing's match to a look stands out of the video's baseline
STANDS_OUT = 2.0
#: least gap (robust standard deviations) between a thing's showings and the rest of its matches
BREAK = 1.0
#: most candidate shots per named thing the exhaustive assignment searches
CANDIDATES = 8


@dataclass(frozen=True)
class Shots:
    """Shots of a timeline. ``members``: per shot, its moments' timeline indices (image moments, time order);
    ``starts``/``ends`` [N] seconds (its first and last moment); ``looks``: the shots grouped by look
    (:func:`group_looks`; each look's shots in time order, looks in order of their first shot)."""

    members: list[list[int]]
    starts: torch.Tensor
    ends: torch.Tensor
    looks: list[list[int]]

    def __len__(self) -> int:
        return len(self.members)

    def scores(self, curves: torch.Tensor) -> torch.Tensor:
        """``[Q, N]`` ``S[x, s]``: presence ``curves [Q, M]`` (timeline order) at each shot's best moment."""
        if not self.members:
            return curves.new_zeros(curves.shape[0], 0)
        return torch.stack([curves[:, m].max(dim=1).values for m in self.members], dim=1)

    def look_scores(self, curves: torch.Tensor) -> torch.Tensor:
        """``[Q, G]`` ``S[x, g]``: presence ``curves [Q, M]`` over each look's moments, on average (a look is
        one thing shown, so all of it should match; footage that recurs through the video is a mixture whose
        best moment matches many texts by chance, its average none)."""
        if not self.looks:
            return self.scores(curves)
        moments = [[i for s in g for i in self.members[s]] for g in self.looks]
        return torch.stack([curves[:, m].mean(dim=1) for m in moments], dim=1)

    def spans(self, look: int) -> list[tuple[float, float]]:
        """``[(start, end)]`` of the look's shots."""
        return [(float(self.starts[s]), float(self.ends[s])) for s in self.looks[look]]


def features_of(timeline: Timeline, moments: Sequence[Any]) -> torch.Tensor | None:
    """``[M, D]`` unit features of the timeline's moments (zeros for text moments), or None when an image
    moment has no feature."""
    rows = []
    for i, pos in enumerate(timeline.positions):
        feature = getattr(moments[pos], "feature", None)
        if bool(timeline.is_text[i]):
            rows.append(None)
        elif feature is None:
            return None
        else:
            rows.append(feature.flatten().double())
    dim = next((r.shape[0] for r in rows if r is not None), 1)
    return F.normalize(torch.stack([r if r is not None else torch.zeros(dim, dtype=torch.float64) for r in rows]),
                       dim=-1)


def find_shots(timeline: Timeline, features: torch.Tensor) -> Shots:
    """The :class:`Shots` of the image moments (module docstring)."""
    image = [i for i in range(len(timeline)) if not bool(timeline.is_text[i])]
    members: list[list[int]] = []
    for i in image:
        if members and float(features[members[-1][-1]] @ features[i]) >= CUT:
            members[-1].append(i)
        else:
            members.append([i])
    starts = torch.tensor([float(timeline.times[m[0]]) for m in members], dtype=torch.float64)
    ends = torch.tensor([float(timeline.times[m[-1]]) for m in members], dtype=torch.float64)
    return Shots(members, starts, ends, group_looks(members, features))


def group_looks(members: Sequence[Sequence[int]], features: torch.Tensor, twin: float = TWIN) -> list[list[int]]:
    """Shots grouped by look: connected components of "mean features' cosine >= ``twin``" (single linkage,
    union-find) over the shots ``members`` (moment indices into ``features [M, D]``).

    >>> f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.0, 1.0]])
    >>> group_looks([[0], [1], [2], [3]], f)
    [[0, 2], [1, 3]]
    """
    if not members:
        return []
    means = F.normalize(torch.stack([features[list(m)].mean(dim=0) for m in members]), dim=-1)
    alike = (means @ means.T) >= twin
    root = list(range(len(members)))

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    for i, j in torch.nonzero(torch.triu(alike, diagonal=1)).tolist():
        root[find(j)] = find(i)
    groups: dict[int, list[int]] = {}
    for s in range(len(members)):
        groups.setdefault(find(s), []).append(s)
    return sorted(groups.values(), key=lambda g: g[0])


def assign(scores: torch.Tensor) -> tuple[list[int], float]:
    """``(column of each row, total)``: rows of ``scores [R, C]`` to distinct columns maximising the total
    (each row searched over its ``CANDIDATES`` best columns; ``R <= C``)."""
    rows, cols = scores.shape
    if rows == 0:
        return [], 0.0
    if rows > cols:
        raise ValueError(f"{rows} things cannot take distinct places among {cols}")
    pools = [torch.argsort(scores[r], descending=True, stable=True)[:max(CANDIDATES, rows)].tolist()
             for r in range(rows)]
    best: tuple[float, list[int]] = (float("-inf"), list(range(rows)))
    for pick in itertools.product(*pools):
        if len(set(pick)) < rows:
            continue
        total = float(sum(scores[r, c] for r, c in enumerate(pick)))
        if total > best[0]:
            best = (total, list(pick))
    return best[1], best[0]


def robust_z(values: torch.Tensor, baseline: torch.Tensor | None = None) -> torch.Tensor:
    """``(v - median) / (1.4826 MAD)``: how far each value stands out of ``baseline``'s distribution (by
    default its own; the MAD is floored at a hundredth of the baseline's range so a flat curve does not divide
    by zero)."""
    base = values if baseline is None else baseline
    med = base.median()
    mad = (base - med).abs().median()
    floor = 0.01 * float(base.max() - base.min()) + 1e-9
    return (values - med) / (1.4826 * max(float(mad), floor))


def standing_out(scores: torch.Tensor, most: int = 8, baseline: torch.Tensor | None = None) -> list[int]:
    """Shots or looks (indices) where ``scores [N]`` (``S[x, .]``) stands out of the video's own baseline
    (``baseline``, by default ``scores`` itself; the looks are judged against the shots' scores, the many
    samples of the footage's baseline): sort the robust z-scores (:func:`robust_z`) and cut at the widest break
    among the ``most`` best (a natural break: the showings of one thing score alike, the footage's false
    matches trail off; with fewer candidates than that, the baseline's median, z = 0, closes the list); the
    ones above it count when the break is at least ``BREAK`` (robust standard deviations) and the weakest of
    them stands ``STANDS_OUT`` above the median. Empty when nothing stands out."""
    if (scores if baseline is None else baseline).numel() < 3 or scores.numel() == 0:
        return []
    z = robust_z(scores, baseline)
    order = torch.argsort(z, descending=True, stable=True)
    top = z[order[:min(most + 1, z.numel())]]
    if z.numel() <= most:
        top = torch.cat([top, top.new_zeros(1).clamp(max=float(top[-1]))])
    gaps = top[:-1] - top[1:]
    k = int(gaps.argmax()) + 1
    if float(gaps[k - 1]) < BREAK or float(top[k - 1]) < STANDS_OUT:
        return []
    return sorted(order[:k].tolist())


def merge_spans(spans: Sequence[tuple[float, float]], gap: float) -> list[tuple[float, float]]:
    """``spans`` in time order, those less than ``gap`` s apart joined."""
    found: list[list[float]] = []
    for a, b in sorted(spans):
        if found and a - found[-1][1] < gap:
            found[-1][1] = max(found[-1][1], b)
        else:
            found.append([a, b])
    return [(a, b) for a, b in found]


def seldom_looks(shots: Shots, timeline: Timeline) -> list[int]:
    """Looks the video shows for at most :func:`~mmlong.scoring.frames.seldom_seconds` in all: things shown
    briefly, against the footage that recurs. A moment stands for the time to its nearest neighbour among the
    image moments (the local sampling step: frames are dense where the sampler saw something brief, so the
    half-gaps of ``timeline.weights`` would stretch a 2 s showing over the sparse frames around it)."""
    most = seldom_seconds(timeline.duration)
    image = [i for s in shots.members for i in s]  # timeline indices, in time order
    gaps = timeline.times[image].double().diff()
    inf = torch.full((1,), float("inf"), dtype=torch.float64)
    step = torch.minimum(torch.cat([inf, gaps]), torch.cat([gaps, inf])).clamp(max=float(timeline.duration))
    seconds_of = dict(zip(image, step.tolist()))
    seconds = [sum(seconds_of[i] for s in g for i in shots.members[s]) for g in shots.looks]
    return [g for g, sec in enumerate(seconds) if sec <= most]


def likeliest_look(shots: Shots, curve: torch.Tensor) -> int | None:
    """The look the presence ``curve [M]`` matches best (robust z of ``S[x, g]`` against the shots), when it
    is above the shots' median; None otherwise. For a question that takes a thing to be shown ("how many
    times is X shown?", options from 1) when no look stands out: its showings are those of this look."""
    if not shots.looks or len(shots) < 3:
        return None
    z = robust_z(shots.look_scores(curve[None])[0], shots.scores(curve[None])[0])
    best = int(torch.argmax(z))
    return best if float(z[best]) > 0 else None


def shot_episodes(shots: Shots, curve: torch.Tensor, gap: float) -> list[tuple[float, float]]:
    """``[(start, end)]`` of the shots of the looks where the presence ``curve [M]`` stands out
    (:func:`standing_out` of ``S[x, g]`` against the shots' ``S[x, s]``); shots less than ``gap`` s apart are
    one showing."""
    found = standing_out(shots.look_scores(curve[None])[0], baseline=shots.scores(curve[None])[0])
    return merge_spans([span for g in found for span in shots.spans(g)], gap)
