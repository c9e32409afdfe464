"""V2PE: variable visual position encoding.

Reference: Ge et al. 2024, "V2PE: Improving Multimodal Long-Context Capability of Vision-Language Models with
Variable Visual Position Encoding" (arXiv:2412.09616); official code OpenGVLab/V2PE, ``get_rope_pos_id``
(``v2pe_fix``) in ``internvl/model/internvl_chat/modeling_internvl_chat.py``. Text
tokens advance the position by 1; visual tokens advance it by a smaller increment ``delta`` (the paper trains
with delta in {1, 1/2, 1/4, ..., 1/256}): after the token at ``q`` a span sits at ``q + delta, q + 2 delta, ...``
and the text after it at ``ceil(last visual position) + 1``. ``delta = 1`` gives the model's own positions.

:class:`V2PE` (``v2pe:DELTA``) only records ``delta`` in :attr:`VisualTokens.position_step`; the model adapter
builds the position ids with :mod:`mmlong.models.positions` (float positions go straight into the rotary
embedding). Deviations: V2PE is a training recipe; InternVL3 / InternVL3.5 were trained with it (tokens of
their ``native`` encoder say ``family: internvl``); applied to any other model it is zero-shot, and mmlong warns
once. The M-RoPE form (Qwen2-VL) is mmlong's extension, see
:func:`mmlong.models.positions.mrope_positions`.

>>> import torch
>>> from mmlong.models.positions import positions_1d
>>> positions_1d(torch.tensor([False, True, True, True, False]), delta=0.25).tolist()
[0.0, 0.25, 0.5, 0.75, 2.0]
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from mmlong.compressors.base import CompressContext, Compressor
from mmlong.errors import ConfigError
from mmlong.types import VisualTokens

ZERO_SHOT_WARNING = ("v2pe: the language model was not trained with variable visual position encoding; "
                     "delta < 1 is applied zero-shot and may change answers")
#: native families trained with variable visual position encoding (InternVL3 and later)
TRAINED_FAMILIES = ("internvl",)


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
        if self.config.delta < 1.0 and tokens.meta.get("family") not in TRAINED_FAMILIES:
            # the default warnings filter shows this once per run
            warnings.warn(ZERO_SHOT_WARNING, UserWarning, stacklevel=2)
        return tokens.replace(position_step=float(self.config.delta))
