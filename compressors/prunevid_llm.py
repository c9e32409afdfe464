"""PruneVid (in-LLM part): question-guided visual token selection at one LLM layer, with KV-cache pruning.

Huang, Zhou & Han 2024, "PruneVid: Visual Token Pruning for Efficient Video Large Language Models" (ACL 2025
Findings, arXiv:2412.16117), Sec. 3.3; official code Visual-AI/PruneVid (``models/pllava/llama.py``: the decoder
forward at ``selected_layer``; ``models/pllava/elastic_cache.py``: ``VTPWindowCache.process_attention`` /
``prompt_prefill``). The pre-LLM merging is :mod:`mmlong.compressors.prunevid`.

``prunevid-llm[:LAYER,ALPHA]`` (official ``selected_layer = 10``, ``alpha = 0.4``). During the prefill, layer
``LAYER`` runs on every token; its attention of the question tokens (every row after the last visual row) to the
visual rows, ``[H, Q, V]``, is reduced by a max over heads, then a max over queries, to one score per visual row.
As in the official ``attn_weights_wo_pos`` (``LlamaAttention.forward`` in ``llama.py``) that attention is
``softmax(q k^T / sqrt(head_dim))`` of the layer's queries and keys *before* rotary embedding and *without* the
causal mask (each question row's softmax runs over all ``L`` prompt keys). Within each selection set the top
``int(alpha * size)`` rows are kept: the sets are, as in the official code, each temporal segment's static tokens
and each frame's dynamic tokens (recorded by ``prunevid`` in ``tokens.meta``); without that record each sampled
frame is one set (the official rule for dynamic tokens), and with no token metadata at all the visual rows form one
set. Text rows are always kept. Layers ``LAYER + 1 ..`` then see only the kept rows, and the KV cache of layers
``0..LAYER`` is cut to the same rows, so every layer's cache holds the same tokens while decoding. Kept rows keep
their original positions (the official ``position_ids[:, index_list]``; Qwen2-VL's 3-D M-RoPE positions are sliced
the same way) and new tokens continue from the unpruned prompt's positions (the official
``position_ids = original_number - 1``).

Deviations: the official code returns those weights from its patched attention module; here a forward pre-hook
recomputes them from the layer's input (``input_layernorm`` + ``q_proj`` / ``k_proj``, + ``q_norm`` / ``k_norm``
on families that have them, no RoPE, no mask: :func:`mmlong.compressors.attention_scores.query_attention` with
``rotary=False, causal=False``), so no modeling file is patched and SDPA / FlashAttention keep working; with
grouped-query attention each key head serves its query heads (the official Llama code has one key per query
head). The official code takes the visual rows as one contiguous span (first to last image token) and queries
after it; here the visual rows are the prompt's visual mask (text rows between them are kept, never scored).
``alpha = 1`` keeps everything (the unpruned model). ``LAYER`` must leave at least one layer after it (the
official setting prunes before layer 11 of 32).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from mmlong.compressors.attention_scores import linear_attention_layers, query_attention
from mmlong.compressors.base import CompressContext, Compressor, Placement
from mmlong.compressors.layer_hooks import LayerHooks
from mmlong.compressors.llm_pruning import Drop, slice_layer_rows
from mmlong.compressors.prunevid import SELECTION_KEY
from mmlong.errors import ConfigError
from mmlong.types import VisualTokens


def question_scores(attention: torch.Tensor, visual_rows: torch.Tensor) -> torch.Tensor:
    """One score per visual row: attention ``[H, Q, L]`` at ``visual_rows`` maxed over heads, then queries.

    >>> question_scores(torch.tensor([[[0.1, 0.5, 0.4]], [[0.3, 0.2, 0.5]]]), torch.tensor([0, 1]))
    tensor([0.3000, 0.5000])
    """
    return attention[:, :, visual_rows].amax(dim=0).amax(dim=0)


def select_per_set(scores: torch.Tensor, sets: torch.Tensor, alpha: float) -> torch.Tensor:
    """Sorted indices into ``scores [V]`` kept: in each set of ``sets [V]``, the ``int(alpha * size)`` top.

    >>> select_per_set(torch.tensor([0.1, 0.9, 0.5, 0.2, 0.8, 0.3]), torch.tensor([0, 0, 0, 1, 1, 1]), 0.67)
    tensor([1, 2, 4])
    """
    kept = []
    for value in torch.unique(sets):
        members = (sets == value).nonzero().flatten()
        count = int(members.shape[0] * alpha)
        if count:
            kept.append(members[scores[members].topk(count).indices])
    return torch.cat(kept).sort().values if kept else torch.zeros(0, dtype=torch.long)


def selection_sets(tokens: VisualTokens | None, num_visual: int) -> torch.Tensor:
    """int64 ``[V]``: PruneVid's record in ``tokens.meta`` if it matches, else the frame ids, else one set."""
    if tokens is not None and tokens.num_tokens == num_visual:
        recorded = tokens.meta.get(SELECTION_KEY)
        if recorded is not None and len(recorded) == num_visual:  # a later step that changed the count drops it
            return torch.as_tensor(recorded, dtype=torch.long).cpu()
        return tokens.frame_ids.long().cpu()
    return torch.zeros(num_visual, dtype=torch.long)


def _cache_of(kwargs: dict) -> Any:
    for key in ("past_key_values", "past_key_value", "cache"):
        if kwargs.get(key) is not None:
            return kwargs[key]
    return None


def prune_cache(cache: Any, upto: int, rows: torch.Tensor) -> None:
    """Keep only ``rows`` (int64 ``[K]``) of the cached keys/values ``[B, H, S, hd]`` of layers ``0..upto``."""
    layers = getattr(cache, "layers", None)
    for index in range(upto + 1):
        if layers is not None:
            entry = layers[index]
            idx = rows.to(entry.keys.device)
            entry.keys = entry.keys.index_select(-2, idx).contiguous()
            entry.values = entry.values.index_select(-2, idx).contiguous()
        else:
            idx = rows.to(cache.key_cache[index].device)
            cache.key_cache[index] = cache.key_cache[index].index_select(-2, idx).contiguous()
            cache.value_cache[index] = cache.value_cache[index].index_select(-2, idx).contiguous()


class PruneVidLLMHooks(LayerHooks):
    """Forward pre-hooks on decoder ``layers`` running PruneVid's in-LLM selection for one prompt.

    visual_mask bool ``[L]``; sets int64 ``[V]`` (selection set of each visual row, in row order); ``layer``
    scores, the layer after it prunes. ``kept_rows`` are the prompt rows kept (sorted), ``scores`` the visual
    rows' scores ``[V]``, ``observed`` the per-layer prefill lengths.
    """

    def __init__(self, layers: Sequence[torch.nn.Module], visual_mask: torch.Tensor, sets: torch.Tensor,
                 layer: int, alpha: float) -> None:
        super().__init__(layers)
        if not 0 <= layer < len(self.layers) - 1:
            raise ConfigError(f"prunevid-llm: layer {layer} must lie in 0..{len(self.layers) - 2} "
                              f"(the language model has {len(self.layers)} layers)")
        self.visual_mask = visual_mask.bool().cpu()
        self.length = int(self.visual_mask.shape[0])
        self.sets, self.layer, self.alpha = sets.long().cpu(), layer, alpha
        self._reset()

    def _reset(self) -> None:
        self.kept_rows = torch.arange(self.length)
        self.scores: torch.Tensor | None = None
        self.observed: list[int] = []
        self._prefilling = False

    def summary(self) -> dict[str, Any]:
        return {"prunevid_llm": {"layer": self.layer, "alpha": self.alpha, "observed_lengths": list(self.observed),
                                 "kept_visual": int(self.visual_mask[self.kept_rows].sum())}}

    def _make_hook(self, index: int) -> Any:
        def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            hidden = args[0] if args else kwargs["hidden_states"]
            if index == 0:
                self._prefilling = hidden.shape[1] == self.length and not self.observed
            if not self._prefilling:
                return args, self._decode_kwargs(kwargs)
            if index == self.layer:
                with torch.no_grad():
                    self.scores = self._score(module, hidden, kwargs)
            if index == self.layer + 1:
                self._prune(kwargs)
            if index > self.layer and self.kept_rows.shape[0] != self.length:
                if hidden.shape[1] == self.length:
                    hidden = hidden.index_select(1, self.kept_rows.to(hidden.device))
                kwargs = {key: slice_layer_rows(key, value, self.kept_rows, self.length)
                          for key, value in kwargs.items()}
            self.observed.append(int(hidden.shape[1]))
            if args:
                return (hidden,) + tuple(args[1:]), kwargs
            return args, {**kwargs, "hidden_states": hidden}

        return hook

    def _score(self, layer: torch.nn.Module, hidden: torch.Tensor, kwargs: dict) -> torch.Tensor:
        visual_rows = self.visual_mask.nonzero().flatten()
        queries = torch.arange(int(visual_rows.max()) + 1, self.length) if visual_rows.numel() else visual_rows
        if queries.numel() == 0:
            raise ConfigError("prunevid-llm: the prompt has no text after the video to guide the selection")
        attention = query_attention(layer, hidden, None, queries, rotary=False, causal=False).cpu()
        return question_scores(attention, visual_rows)

    def _prune(self, kwargs: dict) -> None:
        visual_rows = self.visual_mask.nonzero().flatten()
        kept = visual_rows[select_per_set(self.scores, self.sets, self.alpha)]
        self.kept_rows = torch.cat([(~self.visual_mask).nonzero().flatten(), kept]).sort().values
        cache = _cache_of(kwargs)
        if cache is not None and self.kept_rows.shape[0] != self.length:
            prune_cache(cache, self.layer, self.kept_rows)

    def _decode_kwargs(self, kwargs: dict) -> dict:
        """A 4-D decode mask as wide as the unpruned prompt + new tokens gets the kept prompt columns only."""
        mask = kwargs.get("attention_mask")
        if self.kept_rows.shape[0] == self.length or not isinstance(mask, torch.Tensor) or mask.ndim != 4:
            return kwargs
        if mask.shape[-1] <= self.length:
            return kwargs
        columns = torch.cat([self.kept_rows, torch.arange(self.length, mask.shape[-1])])
        return {**kwargs, "attention_mask": mask.index_select(-1, columns.to(mask.device))}


class PruneVidLLM(Compressor):
    """``prunevid-llm[:LAYER,ALPHA]``: keep ``alpha`` of each selection set's visual tokens after layer ``LAYER``,
    ranked by the question's attention, and cut the earlier layers' KV cache to them."""

    name = "prunevid-llm"
    stage = Placement.IN_LLM

    @dataclass
    class Config:
        layer: int = 10
        alpha: float = 0.4

        def __post_init__(self) -> None:
            if not 0.0 <= self.alpha <= 1.0:
                raise ValueError(f"prunevid-llm alpha (the fraction of visual tokens kept) must be in [0, 1], "
                                 f"got {self.alpha}")
            if self.layer < 0:
                raise ValueError(f"prunevid-llm layer must be >= 0, got {self.layer}")

    def schedule(self, num_layers: int) -> dict[int, float]:
        return {}

    def drops(self, num_layers: int, num_visual: int) -> list[Drop]:
        """For cost planning only: the prefill's visual rows after ``layer`` (the hooks do the pruning)."""
        return [Drop(self.config.layer + 1, self.config.layer, int(num_visual * self.config.alpha))]

    def hooks(self, layers: Sequence[torch.nn.Module], visual_mask: torch.Tensor,
              tokens: VisualTokens | None = None) -> PruneVidLLMHooks:
        linear = [i for i in linear_attention_layers(layers) if i <= self.config.layer]
        if linear:
            raise ConfigError(
                f"prunevid-llm: layers {linear[:4]}{'...' if len(linear) > 4 else ''} up to layer {self.config.layer} "
                "are linear-attention layers whose recurrent state already holds the tokens this method removes "
                "from earlier layers' caches; use fastv or pyramiddrop on this hybrid model"
            )
        sets = selection_sets(tokens, int(visual_mask.sum()))
        return PruneVidLLMHooks(layers, visual_mask, sets, self.config.layer, self.config.alpha)

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        raise ConfigError(f"compressor {self.name!r} runs inside the language model; give it to a native VLM adapter")
