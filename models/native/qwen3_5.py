"""Qwen3.5's vision-language path on an unmodified transformers model (Qwen team 2026, Qwen3.5: natively
multimodal, a hybrid language model of Gated DeltaNet linear-attention layers and gated full-attention layers,
three linear to one full in the released checkpoints).

The video path, the prompt (``<t seconds>`` blocks per temporal patch) and the interleaved M-RoPE positions are
Qwen3-VL's (:mod:`mmlong.models.native.qwen3_vl`, whose table applies), without DeepStack. What the hybrid model
changes:

=====================  ==================================================================================
visual tokens enter    as in Qwen3-VL: one ``<t seconds><|vision_start|> ... <|vision_end|>`` block per
                       temporal patch that still has tokens
positions              as in Qwen3-VL (3-D M-RoPE, partial rotary); the linear-attention layers use none
in-LLM pruning         attention scores exist only at full-attention layers: a drop scored at a linear
                       layer reads the last full-attention layer at or before it
                       (:class:`~mmlong.compressors.llm_pruning.InLLMPruning`), refused when there is none;
                       a linear layer after a drop runs on the kept rows only, so its recurrent state is the
                       state of the kept sequence (what the model computes without the dropped tokens)
a compressor may not   score attention at a linear-attention layer (there is no softmax to read)
=====================  ==================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmlong.models.native.base import NativeVLMConfig
from mmlong.models.native.qwen3_vl import Qwen3VLAdapter


class Qwen3_5Adapter(Qwen3VLAdapter):
    """``qwen3.5``: Qwen3.5 (dense, vision-language checkpoints) from a local directory or hub id."""

    name = "qwen3.5"
    model_type = "qwen3_5"
    deepstack = False

    @dataclass
    class Config(NativeVLMConfig):
        path: str = "Qwen/Qwen3.5-2B"
        system_prompt: str = ""

    def model_class(self) -> type:
        from transformers import Qwen3_5ForConditionalGeneration

        return Qwen3_5ForConditionalGeneration

    def vision_module(self) -> torch.nn.Module:
        return self.load().model.model.visual
