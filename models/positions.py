"""Position ids of a prompt: 1-D RoPE and Qwen2-VL's 3-D M-RoPE, with V2PE's variable visual increment.

Every model adapter builds its position ids here from the (possibly compressed) visual tokens; no adapter
and no compressor carries its own copy of these rules.

- ``delta = 1``: the model's own positions. Text steps by 1; a 1-D visual span of n tokens takes n
  consecutive positions; a Qwen2-VL span starting at ``p`` puts each token at ``p + (t, h, w)`` and the text
  after it at ``p + extent`` (the installed ``get_rope_index``: ``extent = max(H', W')``).
- ``delta < 1``: V2PE, Ge et al. 2024, "V2PE: Improving Multimodal Long-Context Capability of Vision-Language
  Models with Variable Visual Position Encoding" (official ``get_rope_pos_id``, ``v2pe_fix``): with ``q`` the
  position of the token before a visual span, its visual tokens sit at ``q + delta, q + 2 delta, ...`` and the
  text after it at ``ceil(last visual position) + 1``. For M-RoPE (mmlong's extension; V2PE itself is 1-D)
  each token sits at ``q + delta * (1 + offset)`` on each axis and the text after at
  ``ceil(q + delta * extent) + 1``, which is the model's own rule at ``delta = 1``.

>>> positions_1d(torch.tensor([False, True, True, True, False]), delta=0.25).tolist()
[0.0, 0.25, 0.5, 0.75, 2.0]
>>> positions_1d(torch.tensor([False, True, True, False]), delta=1.0).tolist()
[0.0, 1.0, 2.0, 3.0]
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Sequence

import torch

#: a run of text tokens (its length) or a visual span ``(offsets [n, 3] (t, h, w) from the span start, extent)``
Segment = int | tuple[torch.Tensor, float]


def ceil_position(value: float) -> int:
    """``ceil`` that forgives float noise: ``ceil_position(2.0000001) == 2``."""
    return int(math.ceil(value - 1e-6))


def positions_1d(visual_mask: torch.Tensor, delta: float = 1.0, start: float = 0.0) -> torch.Tensor:
    """1-D positions float64 ``[L]`` for a sequence whose visual rows are ``visual_mask`` (bool ``[L]``).

    Text steps by 1 from ``start``; visual row ``i`` of a span after position ``q`` sits at ``q + delta * i``
    (``i = 1..n``); the first text token after the span at ``ceil(q + delta * n) + 1``.
    """
    out = torch.empty(visual_mask.shape[0], dtype=torch.float64)
    previous, row = float(start) - 1.0, 0
    for is_visual, run in itertools.groupby(visual_mask.tolist()):
        n = len(list(run))
        if is_visual:
            out[row:row + n] = previous + delta * torch.arange(1, n + 1, dtype=torch.float64)
            previous = float(ceil_position(previous + delta * n))
        else:
            out[row:row + n] = previous + torch.arange(1, n + 1, dtype=torch.float64)
            previous += n
        row += n
    return out


def mrope_positions(segments: Sequence[Segment], delta: float = 1.0) -> torch.Tensor:
    """Qwen2-VL style 3-D (t, h, w) positions float64 ``[3, L]`` with visual increments scaled by ``delta``.

    A text run of n tokens takes ``q+1, q+2, ...`` on all three axes (``q``: the position before it). A visual
    span after ``q`` puts each token at ``q + delta * (1 + (t, h, w))`` and the text after it at
    ``ceil(q + delta * extent) + 1``, where ``extent`` is how far the model itself advances past the span.

    >>> offsets = torch.tensor([[0., 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1]])
    >>> mrope_positions([2, (offsets, 2.0), 1]).tolist()[2]
    [0.0, 1.0, 2.0, 3.0, 2.0, 3.0, 4.0]
    >>> mrope_positions([2, (offsets, 2.0), 1], delta=0.5).tolist()[1]
    [0.0, 1.0, 1.5, 1.5, 2.0, 2.0, 3.0]
    """
    columns, previous = [], -1.0
    for segment in segments:
        if isinstance(segment, int):
            columns.append((previous + torch.arange(1, segment + 1, dtype=torch.float64)).expand(3, -1))
            previous += segment
        else:
            offsets, extent = segment
            columns.append(previous + delta * (1.0 + offsets.to(torch.float64).T))
            previous = float(ceil_position(previous + delta * float(extent)))
    return torch.cat(columns, dim=1)


def as_position_ids(positions: torch.Tensor, device: Any = None) -> torch.Tensor:
    """Long when every position is whole (bit-identical to the model's own ids), else float32."""
    if torch.equal(positions, positions.round()):
        return positions.long().to(device)
    return positions.float().to(device)
