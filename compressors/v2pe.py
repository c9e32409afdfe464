"""V2PE: variable visual position encoding.

Ge et al. 2024, "V2PE: Improving Multimodal Long-Context Capability of Vision-Language Models with Variable
Visual Position Encoding". Text tokens advance the position by 1; visual tokens advance it by a smaller,
variable increment ``delta`` (the paper trains with delta in {1, 1/2, 1/4, ..., 1/256}), so long videos use
fewer positions of the language model's RoPE range. Text after a visual span continues at
``ceil(last visual position) + 1``. ``delta = 1`` gives the model's own positions exactly.

The pure functions below build the positions; :class:`V2PE` (``v2pe:DELTA``) is a pre-LLM compressor that only
records ``delta`` in :attr:`VisualTokens.position_step`, which a model adapter reads when it builds position ids
(float positions go straight into the rotary embedding).

>>> positions_1d(torch.tensor([False, True, True, True, False]), delta=0.25).tolist()
[0.0, 1.0, 1.25, 1.5, 3.0]
>>> positions_1d(torch.tensor([False, True, True, False]), delta=1.0).tolist()
[0.0, 1.0, 2.0, 3.0]
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from mmlong.compressors.base import CompressContext, Compressor
from mmlong.errors import ConfigError
from mmlong.types import VisualTokens

#: a run of text tokens (its length) or a visual span ``(offsets [n, 3] (t, h, w) from the span start, extent)``
Segment = int | tuple[torch.Tensor, float]


def ceil_position(value: float) -> int:
    """``ceil`` that forgives float noise: ``ceil_position(2.0000001) == 2``."""
    return int(math.ceil(value - 1e-6))


def positions_1d(visual_mask: torch.Tensor, delta: float = 1.0, start: float = 0.0) -> torch.Tensor:
    """1-D positions float64 ``[L]`` for a sequence whose visual rows are ``visual_mask`` (bool ``[L]``).

    Text steps by 1, visual by ``delta``; the first token after a visual run sits at ``ceil(last visual) + 1``.
    """
    out = torch.empty(visual_mask.shape[0], dtype=torch.float64)
    next_pos, row = float(start), 0
    for is_visual, run in itertools.groupby(visual_mask.tolist()):
        n = len(list(run))
        if is_visual:
            out[row:row + n] = next_pos + delta * torch.arange(n, dtype=torch.float64)
            next_pos = ceil_position(next_pos + delta * (n - 1)) + 1
        else:
            out[row:row + n] = next_pos + torch.arange(n, dtype=torch.float64)
            next_pos += n
        row += n
    return out


def mrope_positions(segments: Sequence[Segment], delta: float = 1.0) -> torch.Tensor:
    """Qwen2-VL style 3-D (t, h, w) positions float64 ``[3, L]`` with visual increments scaled by ``delta``.

    A text run of n tokens takes ``p, p+1, ...`` on all three axes. A visual span starting at ``p`` puts each
    token at ``p + delta * (t, h, w)`` and the text after it at ``p + ceil(delta * (extent - 1)) + 1``, where
    ``extent`` is how far the model itself advances past the span (``delta = 1``: ``p + extent``).

    >>> offsets = torch.tensor([[0., 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1]])
    >>> mrope_positions([2, (offsets, 2.0), 1]).tolist()[2]
    [0.0, 1.0, 2.0, 3.0, 2.0, 3.0, 4.0]
    >>> mrope_positions([2, (offsets, 2.0), 1], delta=0.5).tolist()[1]
    [0.0, 1.0, 2.0, 2.0, 2.5, 2.5, 4.0]
    """
    columns, next_pos = [], 0.0
    for segment in segments:
        if isinstance(segment, int):
            columns.append((next_pos + torch.arange(segment, dtype=torch.float64)).expand(3, -1))
            next_pos += segment
        else:
            offsets, extent = segment
            columns.append(next_pos + delta * offsets.to(torch.float64).T)
            next_pos = next_pos + ceil_position(delta * (float(extent) - 1.0)) + 1
    return torch.cat(columns, dim=1)


def as_position_ids(positions: torch.Tensor, device: Any = None) -> torch.Tensor:
    """Long when every position is whole (bit-identical to the model's own ids), else float32."""
    if torch.equal(positions, positions.round()):
        return positions.long().to(device)
    return positions.float().to(device)


class V2PE(Compressor):
    """``v2pe:DELTA``: visual tokens advance the position by ``delta`` (0 < delta <= 1) instead of 1."""

    name = "v2pe"

    @dataclass
    class Config:
        delta: float = 0.25

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        if not 0.0 < self.config.delta <= 1.0:
            raise ConfigError(f"v2pe: delta must be in (0, 1] (e.g. 0.25 or 1/16 = 0.0625), got {self.config.delta}")

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        return tokens.replace(position_step=float(self.config.delta))
