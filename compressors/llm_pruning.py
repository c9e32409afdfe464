"""In-LLM visual token pruning on an unmodified transformers decoder.

- FastV: Chen et al. 2024, "An Image is Worth 1/2 Tokens After Layer 2: Plug-and-Play Inference Acceleration
  for Large Vision-Language Models" (ECCV 2024). At layer K, drop the fraction R of visual tokens that the last
  instruction token attends to least.
- PyramidDrop: Xing et al. 2024, "PyramidDrop: Accelerating Your Large Vision-Language Models via Pyramid
  Visual Redundancy Reduction". At each stage boundary (paper: layers 8, 16, 24 of 32) keep a fraction
  (paper: lambda = 0.5) of the visual tokens left, ranked the same way.

Both are :class:`~mmlong.compressors.base.Compressor` subclasses with ``stage = "in_llm"``; a model adapter runs
them through :class:`InLLMPruning`, a context manager that installs forward pre-hooks (``with_kwargs=True``) on
the decoder layers and removes them on exit. At a pruning layer the hook recomputes, from that layer's input
hidden states, the query of the last prompt token and the keys of all tokens (``input_layernorm`` + ``q_proj`` /
``k_proj`` + the layer's RoPE from ``position_embeddings``), so no eager attention weights are needed and SDPA or
FlashAttention keep working. Kept tokens keep their original positions: the hooks slice ``position_embeddings``,
``position_ids``, ``cache_position`` and 4-D masks with the same row index. Each layer's KV cache then holds its
own length; during decoding the hooks pick each layer's own mask columns.

``ratio`` is the fraction of visual tokens *dropped* at each pruning layer, for both (so ``ratio = 0`` is the
unpruned model; PyramidDrop's paper lambda is ``1 - ratio``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import torch

from mmlong.compressors.base import CompressContext, Compressor
from mmlong.errors import ConfigError
from mmlong.types import VisualTokens


# ---------------------------------------------------------------------------------------------- schedules
def kept_count(num_visual: int, drop: float) -> int:
    """Visual tokens left after dropping the fraction ``drop`` of ``num_visual``.

    >>> kept_count(100, 0.5), kept_count(7, 0.5), kept_count(10, 0.0)
    (50, 4, 10)
    """
    return num_visual - int(math.floor(num_visual * drop))


def merge_schedules(schedules: Iterable[dict[int, float]]) -> dict[int, float]:
    """Combine per-layer drop fractions; two drops at one layer compose (keep = product of keeps).

    >>> merge_schedules([{2: 0.5}, {2: 0.5, 4: 0.25}])
    {2: 0.75, 4: 0.25}
    """
    keep: dict[int, float] = {}
    for schedule in schedules:
        for layer, drop in schedule.items():
            keep[layer] = keep.get(layer, 1.0) * (1.0 - drop)
    return {layer: 1.0 - k for layer, k in sorted(keep.items())}


def planned_lengths(num_layers: int, schedule: dict[int, float], num_text: int, num_visual: int) -> list[int]:
    """Sequence length each decoder layer processes during prefill under ``schedule``.

    >>> planned_lengths(4, {1: 0.5, 3: 0.5}, num_text=3, num_visual=8)
    [11, 7, 7, 5]
    """
    lengths, visual = [], num_visual
    for layer in range(num_layers):
        if layer in schedule:
            visual = kept_count(visual, schedule[layer])
        lengths.append(num_text + visual)
    return lengths


def _check_ratio(name: str, ratio: float) -> None:
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"{name}: ratio must be in [0, 1] (the fraction of visual tokens dropped), got {ratio}")


class _InLLMCompressor(Compressor):
    stage = "in_llm"

    def schedule(self, num_layers: int) -> dict[int, float]:
        """``{layer index: fraction of the visual tokens left that this layer drops}``."""
        raise NotImplementedError

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        raise ConfigError(
            f"compressor {self.name!r} runs inside the language model; give it to a native VLM adapter "
            "(--model DIR) as an in-LLM step instead of calling it on tokens"
        )


class FastV(_InLLMCompressor):
    """``fastv:K,R``: at layer ``k`` drop the fraction ``ratio`` of visual tokens least attended by the last token."""

    name = "fastv"

    @dataclass
    class Config:
        k: int = 2
        ratio: float = 0.5

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        _check_ratio("fastv", self.config.ratio)
        if self.config.k < 1:
            raise ConfigError(f"fastv: k must be >= 1 (layers before k see every token), got {self.config.k}")

    def schedule(self, num_layers: int) -> dict[int, float]:
        if self.config.k >= num_layers:
            raise ConfigError(f"fastv: k={self.config.k} but the language model has {num_layers} layers")
        return {self.config.k: self.config.ratio}


class PyramidDrop(_InLLMCompressor):
    """``pyramiddrop[:RATIO[,layers=8/16/24]]``: drop ``ratio`` of the visual tokens left at each boundary.

    Default boundaries: 1/4, 1/2 and 3/4 of the depth (layers 8, 16, 24 of a 32-layer model).
    """

    name = "pyramiddrop"

    @dataclass
    class Config:
        ratio: float = 0.5
        layers: tuple[int, ...] | None = None

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        _check_ratio("pyramiddrop", self.config.ratio)

    def boundaries(self, num_layers: int) -> tuple[int, ...]:
        if self.config.layers:
            layers = tuple(sorted(set(int(x) for x in self.config.layers)))
            if layers[0] < 1 or layers[-1] >= num_layers:
                raise ConfigError(f"pyramiddrop: layers {layers} must lie in 1..{num_layers - 1}")
            return layers
        return tuple(sorted({max(1, num_layers * q // 4) for q in (1, 2, 3)}))

    def schedule(self, num_layers: int) -> dict[int, float]:
        return {layer: self.config.ratio for layer in self.boundaries(num_layers)}


# ---------------------------------------------------------------------------------------------- scoring
def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x ``[B, H, L, hd]``, cos/sin ``[B, L, r]`` (``r <= hd``: partial rotary leaves the rest unrotated)."""
    rot = cos.shape[-1]
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    return torch.cat((x_rot * cos + _rotate_half(x_rot) * sin, x_pass), dim=-1)


def last_token_attention(
    layer: torch.nn.Module, hidden: torch.Tensor, position_embeddings: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """Head-averaged attention of the last token to every token at ``layer``, recomputed from its input.

    hidden ``[1, L, D]`` (the layer's input); position_embeddings ``(cos, sin)`` each ``[1, L, r]``.
    Returns float32 ``[L]`` (a softmax row averaged over query heads; GQA key heads are shared).
    """
    attn = layer.self_attn
    x = layer.input_layernorm(hidden)
    head_dim = int(getattr(attn, "head_dim", 0) or attn.q_proj.out_features // attn.config.num_attention_heads)
    b, length, _ = x.shape
    q = attn.q_proj(x[:, -1:]).view(b, 1, -1, head_dim)
    k = attn.k_proj(x).view(b, length, -1, head_dim)
    if getattr(attn, "q_norm", None) is not None:
        q = attn.q_norm(q)
    if getattr(attn, "k_norm", None) is not None:
        k = attn.k_norm(k)
    q, k = q.transpose(1, 2).float(), k.transpose(1, 2).float()
    cos, sin = (t.float() for t in position_embeddings)
    q = _apply_rope(q, cos[:, -1:], sin[:, -1:])
    k = _apply_rope(k, cos, sin)
    k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    scaling = float(getattr(attn, "scaling", head_dim ** -0.5))
    weights = ((q @ k.transpose(-1, -2)) * scaling).softmax(dim=-1)  # [B, Hq, 1, L]
    return weights.mean(dim=1)[0, 0]


# ---------------------------------------------------------------------------------------------- hooks
def _slice_rows(key: str, value: Any, index: torch.Tensor, length: int) -> Any:
    """Slice one decoder-layer keyword argument along its sequence dimension(s) of size ``length``.

    ``position_embeddings``: (cos, sin) ``[B, L, r]``; ``attention_mask``: ``[B, 1, L, L]``; any other tensor
    whose last dimension is ``L`` (``position_ids [B, L]`` / ``[3, B, L]``, ``cache_position [L]``).
    """
    if not isinstance(value, (torch.Tensor, tuple)):
        return value
    if key == "position_embeddings":
        return tuple(t.index_select(-2, index.to(t.device)) for t in value)
    if not isinstance(value, torch.Tensor) or value.ndim == 0 or value.shape[-1] != length:
        return value
    index = index.to(value.device)
    if key == "attention_mask" and value.ndim == 4:
        return value.index_select(-2, index).index_select(-1, index)
    return value.index_select(-1, index)


class InLLMPruning:
    """Context manager running in-LLM compressors on a decoder's layers for one prompt.

    layers: the language model's decoder layers; steps: in-LLM compressors (each has ``schedule(n)``);
    visual_mask: bool ``[L]`` marking the prompt's visual rows. The first forward whose length is ``L`` is the
    prefill; later forwards are decode steps. ``planned`` and ``observed`` give the per-layer prefill lengths.

    >>> # with InLLMPruning(decoder_layers(model), [FastV()], prompt.visual_mask) as pruning: ...
    """

    def __init__(self, layers: Sequence[torch.nn.Module], steps: Sequence[Any], visual_mask: torch.Tensor) -> None:
        self.layers = list(layers)
        self.steps = list(steps)
        self.visual_mask = visual_mask.bool().cpu()
        self.length = int(self.visual_mask.shape[0])
        num_visual = int(self.visual_mask.sum())
        self.schedule = merge_schedules(step.schedule(len(self.layers)) for step in self.steps)
        self.planned = planned_lengths(len(self.layers), self.schedule, self.length - num_visual, num_visual)
        self.observed: list[int] = []
        self._handles: list[Any] = []
        self._keep: torch.Tensor | None = None
        self._kept_by_layer: list[torch.Tensor | None] = []
        self._prefilled = False
        self._prefilling = False

    # ------------------------------------------------------------------ context
    def __enter__(self) -> "InLLMPruning":
        self.observed, self._kept_by_layer, self._prefilled = [], [None] * len(self.layers), False
        self._keep = None
        for index, layer in enumerate(self.layers):
            hook = self._make_hook(index)
            self._handles.append(layer.register_forward_pre_hook(hook, with_kwargs=True))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def summary(self) -> dict[str, Any]:
        return {
            "schedule": {str(k): round(v, 4) for k, v in self.schedule.items()},
            "planned_lengths": list(self.planned),
            "observed_lengths": list(self.observed),
        }

    @property
    def kept_rows(self) -> torch.Tensor | None:
        """Prompt rows the last layer kept (int64, sorted), or None before a prefill."""
        return self._keep

    # ------------------------------------------------------------------ hooks
    def _make_hook(self, index: int) -> Any:
        last = len(self.layers) - 1

        def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            hidden = args[0] if args else kwargs["hidden_states"]
            if index == 0:
                self._prefilling = not self._prefilled and hidden.shape[1] == self.length
                if self._prefilling:
                    self._keep, self._prefilled, self.observed = torch.arange(self.length), True, []
            if self._prefilling:
                self._prefilling = index != last
                return self._prefill(index, module, args, kwargs, hidden)
            return args, self._decode_kwargs(index, kwargs)

        return hook

    def _prefill(self, index: int, module: torch.nn.Module, args: tuple, kwargs: dict, hidden: torch.Tensor):
        keep = self._keep
        if index in self.schedule:
            local = self._select(index, module, hidden, self._sliced(kwargs, keep))
            if local.shape[0] != hidden.shape[1]:
                hidden = hidden.index_select(1, local.to(hidden.device))
                keep = keep[local]
                self._keep = keep
        self._kept_by_layer[index] = keep
        self.observed.append(int(hidden.shape[1]))
        kwargs = self._sliced(kwargs, keep)
        if args:
            args = (hidden,) + tuple(args[1:])
        else:
            kwargs["hidden_states"] = hidden
        return args, kwargs

    def _sliced(self, kwargs: dict, keep: torch.Tensor) -> dict:
        if keep.shape[0] == self.length:
            return dict(kwargs)
        return {key: _slice_rows(key, value, keep, self.length) for key, value in kwargs.items()}

    def _select(self, index: int, layer: torch.nn.Module, hidden: torch.Tensor, kwargs: dict) -> torch.Tensor:
        """Local rows (into the current sequence) kept at ``layer``: all text rows + the top visual rows."""
        visual = self.visual_mask[self._keep]
        num_visual = int(visual.sum())
        keep_visual = kept_count(num_visual, self.schedule[index])
        if keep_visual == num_visual:
            return torch.arange(hidden.shape[1])
        position_embeddings = kwargs.get("position_embeddings")
        if position_embeddings is None:
            raise ConfigError(f"in-LLM pruning: layer {index} gets no position_embeddings; this model is unsupported")
        with torch.no_grad():
            scores = last_token_attention(layer, hidden, position_embeddings).cpu()
        visual_rows = visual.nonzero().flatten()
        top = visual_rows[scores[visual_rows].topk(keep_visual).indices]
        return torch.cat([(~visual).nonzero().flatten(), top]).sort().values

    def _decode_kwargs(self, index: int, kwargs: dict) -> dict:
        """During decoding give each layer the mask columns of its own cache (kept prompt rows + new tokens)."""
        kept = self._kept_by_layer[index] if self._kept_by_layer else None
        mask = kwargs.get("attention_mask")
        if kept is None or kept.shape[0] == self.length or not isinstance(mask, torch.Tensor) or mask.ndim != 4:
            return kwargs
        if mask.shape[-1] <= self.length:
            return kwargs
        columns = torch.cat([kept, torch.arange(self.length, mask.shape[-1])]).to(mask.device)
        return {**kwargs, "attention_mask": mask.index_select(-1, columns)}
