"""Compressors that report what they decided in their provenance Step's ``extra``.

:class:`~mmlong.compressors.base.Compressor.__call__` records name, config, tokens in/out and milliseconds.
A :class:`ReportingCompressor` may also hand back per-frame details (scores, chosen frames, scene boundaries,
pooling factors) as plain lists: ``compress`` returns ``report(tokens, {...})`` and the details land in the
Step's ``extra``, never in the tokens' meta.

>>> import torch
>>> from mmlong.types import VisualTokens
>>> class Count(ReportingCompressor):
...     name = "count"
...     def compress(self, tokens, ctx):
...         return report(tokens, {"frames": tokens.grid[0]})
>>> out = Count()(VisualTokens.from_grid(torch.ones(3, 1, 1, 2), torch.arange(3.0)))
>>> out.provenance[-1].extra, EXTRA_KEY in out.meta
({'frames': 3}, False)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from mmlong.compressors.base import CompressContext, Compressor
from mmlong.types import VisualTokens

#: meta key that carries a compressor's report from ``compress`` to ``__call__`` (removed there)
EXTRA_KEY = "_step_extra"


def report(tokens: VisualTokens, extra: Mapping[str, Any]) -> VisualTokens:
    """``tokens`` carrying ``extra`` for the Step that :class:`ReportingCompressor` appends."""
    return tokens.replace(meta={**tokens.meta, EXTRA_KEY: dict(extra)})


def move_report_to_step(tokens: VisualTokens) -> VisualTokens:
    """Move a pending report from ``tokens.meta`` into the last provenance Step's ``extra``."""
    if EXTRA_KEY not in tokens.meta:
        return tokens
    meta = {k: v for k, v in tokens.meta.items() if k != EXTRA_KEY}
    extra = tokens.meta[EXTRA_KEY]
    if not tokens.provenance:
        return tokens.replace(meta=meta)
    last = tokens.provenance[-1]
    step = dataclasses.replace(last, extra={**last.extra, **extra})
    return tokens.replace(meta=meta, provenance=tokens.provenance[:-1] + (step,))


class ReportingCompressor(Compressor):
    """A :class:`Compressor` whose ``compress`` may return ``report(tokens, extra)``."""

    def __call__(self, tokens: VisualTokens, ctx: CompressContext | None = None) -> VisualTokens:
        return move_report_to_step(super().__call__(tokens, ctx))
