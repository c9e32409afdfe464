"""Questions about a time ("What happens at the end?", "What is shown at 01:20?"): the moments of that time.

:func:`~mmlong.question_kinds.understand` reads such a question as ``appear`` with relation ``at`` and the time
phrase as its anchor; :func:`moments_at` keeps the moments the phrase names (the span of
:func:`~mmlong.models.socratic.kind_rules.option_span`: "at the end" is the last quarter, "at 01:20" that
instant), so the grounded option choice and the open sentence read only them, instead of the moment that
matches the words "what happens" best anywhere in the video.

>>> class M:
...     def __init__(self, t): self.start = self.end = self.centre = t
>>> kept, span = moments_at([M(t) for t in (0.0, 30.0, 60.0, 90.0)], "at the end", 100.0)
>>> [m.centre for m in kept], span
([90.0], (75.0, 100.0))
>>> [m.centre for m in moments_at([M(t) for t in (0.0, 30.0, 60.0)], "at 00:50", 100.0)[0]]
[60.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmlong.models.socratic.grounding import line_says
from mmlong.models.socratic.kind_rules import option_span


def moments_at(moments: Sequence[Any], phrase: str, duration: float) -> tuple[list[Any], tuple[float, float] | None]:
    """``(moments, span)``: the moments whose time overlaps the span ``phrase`` names in a video of ``duration``
    s; for an instant (or a span no image moment falls in), the image moment nearest it and the text lines
    around it. All of ``moments`` and None when the phrase names no span."""
    span = option_span(phrase, duration)
    if span is None or not moments:
        return list(moments), None
    a, b = span
    kept = [m for m in moments if float(m.end) >= a and float(m.start) <= b]
    if any(line_says(m) is None for m in kept):
        return kept, span
    image = [m for m in moments if line_says(m) is None] or list(moments)
    nearest = min(image, key=lambda m: abs(float(m.centre) - (a + b) / 2))
    t = float(nearest.centre)
    return [nearest, *(m for m in kept if m is not nearest)], (min(a, t), max(b, t))
