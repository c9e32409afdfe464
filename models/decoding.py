"""The language model side of a native VLM: finding its decoder layers and greedy decoding over ``inputs_embeds``.

:func:`greedy_decode` runs the prefill and then one token at a time with a KV cache; its first logits row is the
next-token distribution multiple choice reads (:func:`mmlong.models.prompts.read_letter`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from mmlong.errors import ModelLoadError


def language_model(model: torch.nn.Module) -> torch.nn.Module:
    """The decoder-only text model inside a VLM (the module that owns ``layers``)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    for candidate in (decoder, getattr(getattr(model, "model", None), "language_model", None),
                      getattr(getattr(model, "model", None), "text_model", None)):
        if candidate is not None and isinstance(getattr(candidate, "layers", None), torch.nn.ModuleList):
            return candidate
    raise ModelLoadError(f"{type(model).__name__}: cannot find the language model's decoder layers")


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The decoder layers of the VLM's language model, where in-LLM compressors hook."""
    return language_model(model).layers


@dataclass
class DecodeResult:
    """Greedy decode output: generated ``token_ids``, ``logits`` float32 ``[steps, V]`` (row 0 is the prefill's
    next-token distribution), ``prefill_ms`` and ``decode_ms``."""

    token_ids: list[int]
    logits: torch.Tensor
    prefill_ms: float
    decode_ms: float


def _cache_keyword(model: torch.nn.Module) -> str:
    import inspect

    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


@torch.inference_mode()
def greedy_decode(
    model: torch.nn.Module,
    inputs_embeds: torch.Tensor,
    position_ids: torch.Tensor,
    *,
    max_new_tokens: int,
    eos_token_ids: Sequence[int] = (),
) -> DecodeResult:
    """Greedy decoding from ``inputs_embeds [1, L, D]`` with a KV cache.

    ``position_ids`` (``[1, L]`` or ``[3, 1, L]``) are the prompt's; each new token takes ``max + 1``, then
    ``+1`` per step (as transformers' own M-RoPE ``rope_deltas`` do). ``max_new_tokens = 0`` runs the prefill
    only (its logits are what multiple choice reads). Stops after an ``eos_token_ids`` token.
    """
    cache_kw = _cache_keyword(model)
    embed = model.get_input_embeddings()
    length = inputs_embeds.shape[1]
    attention_mask = torch.ones(1, length, dtype=torch.long, device=inputs_embeds.device)
    start = time.perf_counter()
    out = model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                use_cache=True, logits_to_keep=1)
    prefill_ms = (time.perf_counter() - start) * 1000.0
    logits = [out.logits[0, -1].float()]
    cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    next_position = position_ids.max() + 1
    tokens: list[int] = []
    eos = set(int(e) for e in eos_token_ids)
    start = time.perf_counter()
    for step in range(max_new_tokens):
        token = int(logits[-1].argmax())
        tokens.append(token)
        if token in eos or step == max_new_tokens - 1:
            break
        step_embeds = embed(torch.tensor([[token]], device=inputs_embeds.device))
        step_positions = torch.full_like(position_ids[..., :1], 0) + next_position + step
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(1, 1)], dim=1)
        out = model(inputs_embeds=step_embeds, attention_mask=attention_mask, position_ids=step_positions,
                    use_cache=True, logits_to_keep=1, **{cache_kw: cache})
        cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        logits.append(out.logits[0, -1].float())
    decode_ms = (time.perf_counter() - start) * 1000.0
    return DecodeResult(tokens, torch.stack(logits), prefill_ms, decode_ms)


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """End-of-sequence ids: the generation config's (an int or a list), else the tokenizer's."""
    gen = getattr(model, "generation_config", None)
    ids = getattr(gen, "eos_token_id", None) if gen is not None else None
    if ids is None:
        ids = getattr(tokenizer, "eos_token_id", None)
    if ids is None:
        return []
    return [int(i) for i in (ids if isinstance(ids, (list, tuple)) else [ids])]
