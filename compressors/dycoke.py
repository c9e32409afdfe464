"""DyCoke: temporal token pruning before the LLM and dynamic KV-cache pruning while decoding.

Tao, Qin, You, Sui, Wang 2025, "DyCoke: Dynamic Compression of Tokens for Fast Video Large Language Models"
(CVPR 2025, arXiv:2411.15024); official code KD-TAO/DyCoke (``dycole_ttm`` in ``llava_arch.py``,
``PrunableDynamicCache`` in ``modeling_qwen2.py``).

``dycoke-ttm[:RATIO]`` (temporal token merging, pre-LLM), frames taken in windows of four, ``n`` tokens each:

1. in each pair of frames ``(2i, 2i+1)`` frame ``2i+1`` keeps the ``int((1 - RATIO) * n)`` tokens least
   cosine-similar to the token at the same place in frame ``2i``;
2. in each window ``(4j .. 4j+3)`` with ``4j < F - 4`` frame ``4j+2`` keeps the same number of tokens least
   similar to frame ``4j`` (so frames ``4j`` stay whole and anchor their window).

``dycoke-kv[:LAYER,RATIO]`` (dynamic KV-cache pruning, in-LLM): the prefill runs unpruned. At every decode step,
the new token's head-averaged attention over the visual rows at layer ``LAYER - 1`` is recomputed from that
layer's input and cached keys; when its cosine similarity to the previous step's is below ``threshold`` (the
first step always), layers ``LAYER..`` attend only to the ``int((1 - RATIO) * V)`` most attended visual rows
plus every text and generated row, through an additive attention mask (the cache itself is kept whole, as in
the official cache, which gathers the kept rows at each step). A step whose visual attention stays similar
attends to the whole cache, as the official code does.

Deviations from the official code: tokens kept in a frame stay in their spatial order (the official code emits
them in ascending-similarity order); with an odd frame count the last frame is kept whole (the official code
drops it); tokens are compared by their order within the frame, so every frame must hold the same number of
tokens (run ``dycoke-ttm`` first in a chain); ``RATIO = auto`` derives the per-frame keep count from the chain's
token budget. ``dycoke-kv`` is the only in-LLM step of a chain (it does not combine with FastV/PyramidDrop).
``dycoke-kv``'s attention history starts afresh with every prompt: its first decode step always prunes (the
similarity to no history counts as 0). The official code keeps the previous step's visual attention on the
model's ``DycokeConfigs`` (``attention_score``, set once in ``LlavaQwenForCausalLM.__init__`` and never reset),
so there the first step of a later prompt is compared with the last step of the one before (another question,
often another video) and may attend to the whole cache; here answers do not depend on which prompt came before
(a batch gives the same answer for an item in any order). The official per-generation ``kv_cache`` index list
does start empty for each prompt, as here.

>>> import torch
>>> from mmlong.types import VisualTokens
>>> tok = VisualTokens.from_grid(torch.randn(4, 2, 2, 8, generator=torch.Generator().manual_seed(0)), torch.arange(4.0))
>>> DyCokeTTM(DyCokeTTM.Config(ratio=0.5))(tok).num_tokens   # frames 0 and 2 whole, 1 and 3 keep 2 of 4
12
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from mmlong.compressors.attention_scores import (
    apply_rope,
    linear_attention_layers,
    project_queries,
    softmax_attention,
)
from mmlong.compressors.base import CompressContext, Compressor, Placement, report
from mmlong.compressors.layer_hooks import LayerHooks
from mmlong.compressors.llm_pruning import check_drop_ratio
from mmlong.errors import ConfigError
from mmlong.types import VisualTokens


# ---------------------------------------------------------------------------------------------- TTM
def ttm_references(num_frames: int) -> dict[int, int]:
    """``{pruned frame: the frame it is compared with}`` for ``num_frames`` frames (DyCoke's two stages).

    >>> ttm_references(8)
    {1: 0, 3: 2, 5: 4, 7: 6, 2: 0}
    """
    pairs = {i + 1: i for i in range(0, num_frames - 1, 2)}
    windows = {i + 2: i for i in range(0, num_frames - 4, 4)}
    return {**pairs, **windows}


def ttm_keep(features: torch.Tensor, keep: int) -> torch.Tensor:
    """Tokens each frame keeps: features ``[F, n, D]`` -> bool ``[F, n]``.

    A pruned frame keeps its ``keep`` tokens least cosine-similar to the same place in its reference frame
    (:func:`ttm_references`); reference frames are compared whole.
    """
    frames, n, _ = features.shape
    kept = torch.ones(frames, n, dtype=torch.bool)
    unit = F.normalize(features.float(), dim=-1)
    for target, source in ttm_references(frames).items():
        similarity = (unit[target] * unit[source]).sum(-1)  # [n]
        kept[target] = False
        kept[target, similarity.topk(min(keep, n), largest=False).indices] = True
    return kept


def frame_blocks(tokens: VisualTokens, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Token indices frame by frame, ``[F, n]``, and each frame's id ``[F]``; every frame must hold ``n`` tokens."""
    ids, rank, counts = torch.unique(tokens.frame_ids, return_inverse=True, return_counts=True)
    if not bool((counts == counts[0]).all()):
        raise ConfigError(f"{name}: frames hold different token counts ({sorted(set(counts.tolist()))}); "
                          f"put {name} before compressors that change per-frame tokens")
    order = torch.argsort(rank, stable=True)
    return order.view(ids.shape[0], int(counts[0])), ids


class DyCokeTTM(Compressor):
    """``dycoke-ttm[:RATIO]``: drop ``RATIO`` (default 0.7) of the tokens of the non-anchor frames of each window
    of four (``auto``: the largest keep count that fits ``ctx.budget``)."""

    name = "dycoke-ttm"

    @dataclass
    class Config:
        ratio: float | str = 0.7

        def __post_init__(self) -> None:
            if self.ratio != "auto" and not (isinstance(self.ratio, (int, float)) and 0.0 <= self.ratio <= 1.0):
                raise ValueError(f"dycoke-ttm ratio must be in [0, 1] or 'auto', got {self.ratio!r}")

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        if tokens.num_tokens == 0:
            return tokens
        blocks, _ = frame_blocks(tokens, self.name)
        frames, n = blocks.shape
        pruned = len(ttm_references(frames))
        if self.config.ratio == "auto":
            if ctx.budget is None:
                raise ConfigError("dycoke-ttm:auto needs a token budget; pass --budget N or give a ratio")
            room = int(ctx.budget) - n * (frames - pruned)
            keep = n if pruned == 0 else max(0, min(n, room // pruned))
        else:
            keep = int((1.0 - float(self.config.ratio)) * n)
        kept = ttm_keep(tokens.features[blocks], keep)
        index = blocks[kept].sort().values
        extra: dict[str, Any] = {"kept_per_frame": kept.sum(1).tolist()}
        if ctx.budget is not None:
            extra["budget_met"] = index.shape[0] <= ctx.budget
        return report(tokens.select(index), extra)


# ---------------------------------------------------------------------------------------------- dynamic KV
def decode_attention(layer: torch.nn.Module, hidden: torch.Tensor, position_embeddings: Any,
                     keys: torch.Tensor) -> torch.Tensor:
    """Head-averaged attention of the one new token over every cached key at ``layer``.

    hidden ``[1, 1, D]`` (the layer's input); position_embeddings ``(cos, sin)`` ``[1, 1, r]``; keys
    ``[1, Hkv, S, hd]`` (the layer's cache after this step, RoPE applied). Returns float32 ``[S]``.
    """
    attn = softmax_attention(layer)
    x = layer.input_layernorm(hidden)
    head_dim = keys.shape[-1]
    q = project_queries(attn, x, head_dim)
    if getattr(attn, "q_norm", None) is not None:
        q = attn.q_norm(q)
    cos, sin = (t.float() for t in position_embeddings)
    q = apply_rope(q.transpose(1, 2).float(), cos, sin)  # [1, Hq, 1, hd]
    k = keys.float().repeat_interleave(q.shape[1] // keys.shape[1], dim=1)
    scaling = float(getattr(attn, "scaling", head_dim ** -0.5))
    return ((q @ k.transpose(-1, -2)) * scaling).softmax(dim=-1).mean(dim=1)[0, 0]


def _layer_keys(cache: Any, index: int) -> torch.Tensor:
    layers = getattr(cache, "layers", None)
    return layers[index].keys if layers is not None else cache.key_cache[index]


class DyCokeKVHooks(LayerHooks):
    """Forward pre-hooks on decoder ``layers`` running DyCoke's decode-time KV pruning for one prompt.

    visual_mask: bool ``[L]`` (the prompt's visual rows). ``steps`` records, per decode step, whether layers
    ``layer..`` attended to a pruned cache and the cosine similarity that decided it.
    """

    def __init__(self, layers: Sequence[torch.nn.Module], visual_mask: torch.Tensor, layer: int, ratio: float,
                 threshold: float) -> None:
        super().__init__(layers)
        self.layer, self.ratio, self.threshold = layer, ratio, threshold
        self.visual_rows = visual_mask.bool().cpu().nonzero().flatten()
        self.length = int(visual_mask.shape[0])
        self._query: tuple[torch.Tensor, Any] | None = None
        self._reset()

    def _reset(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self._previous: torch.Tensor | None = None
        self._keep: torch.Tensor | None = None

    def summary(self) -> dict[str, Any]:
        return {"dycoke_kv": {"layer": self.layer, "pruned_steps": sum(s["pruned"] for s in self.steps),
                              "decode_steps": len(self.steps)}}

    def kept_visual(self) -> int:
        return int(self.visual_rows.shape[0] * (1.0 - self.ratio))

    def _make_hook(self, index: int) -> Any:
        def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            hidden = args[0] if args else kwargs["hidden_states"]
            if hidden.shape[1] != 1:  # a prefill: new prompt, no pruning
                if index == 0 and hidden.shape[1] == self.length:
                    self._reset()
                return args, kwargs
            if index == self.layer - 1:
                self._query = (hidden, kwargs["position_embeddings"])
            elif index == self.layer:
                self._decide(kwargs)
            if index >= self.layer and self._keep is not None:
                kwargs = {**kwargs, "attention_mask": self._masked(kwargs.get("attention_mask"), hidden)}
            return args, kwargs

        return hook

    def _decide(self, kwargs: dict) -> None:
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        hidden, position_embeddings = self._query
        with torch.no_grad():
            keys = _layer_keys(cache, self.layer - 1)
            scores = decode_attention(self.layers[self.layer - 1], hidden, position_embeddings, keys).cpu()
        visual = scores[self.visual_rows]
        similarity = 0.0 if self._previous is None else float(F.cosine_similarity(visual, self._previous, dim=0))
        self._previous = visual
        self._keep = None
        if similarity < self.threshold:
            keep = torch.ones(scores.shape[0], dtype=torch.bool)
            keep[self.visual_rows] = False
            keep[self.visual_rows[visual.topk(self.kept_visual(), sorted=False).indices]] = True
            self._keep = keep
        self.steps.append({"similarity": round(similarity, 4), "pruned": self._keep is not None})

    def _masked(self, mask: Any, hidden: torch.Tensor) -> torch.Tensor:
        """The layer's attention mask with the dropped visual columns masked out, ``[1, 1, 1, S]``."""
        keep = self._keep.to(hidden.device).view(1, 1, 1, -1)
        if isinstance(mask, torch.Tensor) and mask.dtype == torch.bool:
            return mask[..., : keep.shape[-1]] & keep
        base = mask[..., : keep.shape[-1]] if isinstance(mask, torch.Tensor) else torch.zeros(
            keep.shape, dtype=hidden.dtype, device=hidden.device)
        return base.masked_fill(~keep, torch.finfo(base.dtype).min)


class DyCokeKV(Compressor):
    """``dycoke-kv[:LAYER,RATIO][,threshold=0.9]``: DyCoke's dynamic KV pruning at decode time (paper: L = 3,
    P = 0.8 of the visual rows dropped)."""

    name = "dycoke-kv"
    stage = Placement.IN_LLM

    @dataclass
    class Config:
        layer: int = 3
        ratio: float = 0.8
        threshold: float = 0.9

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        check_drop_ratio(self.name, self.config.ratio)
        if self.config.layer < 1:
            raise ConfigError(f"dycoke-kv: layer must be >= 1 (scores come from layer - 1), got {self.config.layer}")

    def schedule(self, num_layers: int) -> dict[int, float]:
        return {}  # nothing is pruned during the prefill

    def hooks(self, layers: Sequence[torch.nn.Module], visual_mask: torch.Tensor,
              tokens: VisualTokens | None = None) -> DyCokeKVHooks:
        """The context manager an adapter enters around decoding (see :meth:`NativeVLMAdapter.pruning`)."""
        if self.config.layer >= len(layers):
            raise ConfigError(f"dycoke-kv: layer={self.config.layer} but the language model has {len(layers)} layers")
        linear = linear_attention_layers(layers)
        if linear:
            raise ConfigError(
                f"dycoke-kv: layers {linear[:4]}{'...' if len(linear) > 4 else ''} of this model are linear-attention "
                "layers whose recurrent state already holds every token (no KV cache to prune); use fastv or "
                "pyramiddrop on this hybrid model"
            )
        return DyCokeKVHooks(layers, visual_mask, self.config.layer, self.config.ratio, self.config.threshold)

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        raise ConfigError(f"compressor {self.name!r} runs inside the language model; give it to a native VLM adapter")
