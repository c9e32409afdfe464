"""In-LLM visual token pruning on an unmodified transformers decoder.

- FastV: Chen et al. 2024, "An Image is Worth 1/2 Tokens After Layer 2: Plug-and-Play Inference Acceleration
  for Large Vision-Language Models" (ECCV 2024, arXiv:2403.06764); official code pkunlp-icler/FastV
  (``src/transformers/src/transformers/models/llama/modeling_llama.py``).
  Layer ``K-1``'s attention of the last prompt token (averaged over heads) ranks the visual tokens; before
  layer ``K`` only the ``round(N * (1 - R))`` most attended stay. Kept tokens keep their original positions
  (the official ``position_ids = keep_indexs``).
- PyramidDrop: Xing et al. 2024, "PyramidDrop: Accelerating Your Large Vision-Language Models via Pyramid
  Visual Redundancy Reduction" (CVPR 2025, arXiv:2410.17247); official code Cooperx521/PyramidDrop
  (``llava/model/modeling_llama_pdrop.py``). Before each stage boundary layer ``b_s`` (paper: 8, 16, 24 of 32) the
  boundary layer's own attention of the last instruction token ranks the visual tokens left and
  ``int(N * lambda ** s)`` of the prompt's ``N`` stay (lambda = ``1 - ratio``, paper 0.5). After each drop the
  positions are renumbered to ``arange(new_len)`` and, while decoding, each layer's new-token position is
  shifted down by the visual tokens dropped before it, as the official code does.

Both are :class:`~mmlong.compressors.base.Compressor` subclasses with ``stage = Placement.IN_LLM``; a model adapter runs
them through :class:`InLLMPruning`, a context manager that installs forward pre-hooks (``with_kwargs=True``) on
the decoder layers and removes them on exit. The ranking layer's hook recomputes, from that layer's input
hidden states, the query of the last prompt token and the keys of all tokens (``input_layernorm`` + ``q_proj`` /
``k_proj`` + the layer's RoPE from ``position_embeddings``), so no eager attention weights are needed and SDPA or
FlashAttention keep working. The hooks slice ``position_embeddings``, ``position_ids`` and 4-D masks with the
kept row index (or recompute ``position_embeddings`` with the model's rotary embedding after renumbering). Each
layer's KV cache then holds its own length; during decoding the hooks pick each layer's own mask columns.

Deviations: renumbering needs 1-D positions; with Qwen2-VL's 3-D M-RoPE (whose text positions after a video do
not count its tokens, so dropping leaves no gap to close) PyramidDrop keeps the original positions. Renumbered
positions are ``first position + arange(new_len)``, so V2PE's fractional steps are gone after the first stage.

``ratio`` is the fraction of visual tokens *dropped* at each pruning layer, for both (so ``ratio = 0`` is the
unpruned model; PyramidDrop's paper lambda is ``1 - ratio``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from mmlong.compressors.attention_scores import last_token_attention
from mmlong.compressors.base import CompressContext, Compressor, Placement
from mmlong.errors import ConfigError
from mmlong.types import VisualTokens


# ---------------------------------------------------------------------------------------------- schedules
@dataclass(frozen=True)
class Drop:
    """One pruning point: before ``layer`` only ``keep`` visual rows stay, ranked by ``score_layer``'s attention
    (FastV: ``layer - 1``; PyramidDrop: ``layer``); ``renumber``: positions become ``arange`` afterwards."""

    layer: int
    score_layer: int
    keep: int
    renumber: bool = False


def fastv_keep(num_visual: int, ratio: float) -> int:
    """Visual tokens FastV keeps: ``round(N * (1 - R))`` (official ``topk(round(...))``).

    >>> fastv_keep(100, 0.5), fastv_keep(7, 0.5), fastv_keep(10, 0.0), fastv_keep(5, 0.75)
    (50, 4, 10, 1)
    """
    return int(round(num_visual * (1.0 - ratio)))


def pyramid_keep(num_visual: int, ratio: float, stage: int) -> int:
    """Visual tokens PyramidDrop keeps after stage ``stage`` (1-based): ``int(N * (1 - ratio) ** stage)``.

    >>> [pyramid_keep(576, 0.5, s) for s in (1, 2, 3)], pyramid_keep(7, 0.5, 1)
    ([288, 144, 72], 3)
    """
    return int(num_visual * (1.0 - ratio) ** stage)


def planned_lengths(num_layers: int, drops: Sequence[Drop], num_text: int, num_visual: int) -> list[int]:
    """Sequence length each decoder layer processes during prefill under ``drops``.

    >>> planned_lengths(4, [Drop(1, 1, 4), Drop(3, 3, 2)], num_text=3, num_visual=8)
    [11, 7, 7, 5]
    """
    lengths, visual = [], num_visual
    for layer in range(num_layers):
        for drop in drops:
            if drop.layer == layer:
                visual = min(visual, drop.keep)
        lengths.append(num_text + visual)
    return lengths


def scored_at_attention(drops: Sequence[Drop], attention: Sequence[bool]) -> list[Drop]:
    """``drops`` with each score layer moved to a layer that has softmax attention (``attention[i]``).

    A hybrid model (Qwen3.5: Gated DeltaNet linear-attention layers beside full-attention ones) has attention
    scores only at its full-attention layers: a drop scored at a linear layer reads the last full-attention
    layer at or before it with no other drop in between (so the scores cover the same rows). ConfigError when
    there is none.

    >>> scored_at_attention([Drop(3, 2, 4)], [False, True, False, True])
    [Drop(layer=3, score_layer=1, keep=4, renumber=False)]
    """
    out = []
    for drop in drops:
        if attention[drop.score_layer]:
            out.append(drop)
            continue
        between = [other.layer for other in drops if other is not drop and other.layer < drop.layer]
        floor = max(between, default=0)
        candidates = [i for i in range(floor, drop.score_layer + 1) if attention[i]]
        if not candidates:
            full = [i for i, has in enumerate(attention) if has]
            raise ConfigError(
                f"in-LLM pruning: the drop before layer {drop.layer} would be scored at layer {drop.score_layer}, "
                f"a linear-attention layer, and no full-attention layer before it can score it; this model's "
                f"full-attention layers are {full[:6]}{'...' if len(full) > 6 else ''}: prune after one of them "
                "(e.g. fastv:K with K-1 a full-attention layer)"
            )
        out.append(Drop(drop.layer, candidates[-1], drop.keep, drop.renumber))
    return out


def check_drop_ratio(name: str, ratio: float) -> None:
    """Raise a ConfigError unless ``ratio`` (the fraction of visual tokens an in-LLM method drops) is in [0, 1]."""
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"{name}: ratio must be in [0, 1] (the fraction of visual tokens dropped), got {ratio}")


class _InLLMCompressor(Compressor):
    stage = Placement.IN_LLM

    def drops(self, num_layers: int, num_visual: int) -> list[Drop]:
        """The pruning points for a model of ``num_layers`` layers and a prompt of ``num_visual`` visual rows."""
        raise NotImplementedError

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        raise ConfigError(
            f"compressor {self.name!r} runs inside the language model; give it to a native VLM adapter "
            "(--model DIR) as an in-LLM step instead of calling it on tokens"
        )


class FastV(_InLLMCompressor):
    """``fastv:K,R``: before layer ``k`` drop the fraction ``ratio`` of visual tokens least attended by the last
    token at layer ``k - 1``."""

    name = "fastv"

    @dataclass
    class Config:
        k: int = 2
        ratio: float = 0.5

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        check_drop_ratio("fastv", self.config.ratio)
        if self.config.k < 1:
            raise ConfigError(f"fastv: k must be >= 1 (layers before k see every token), got {self.config.k}")

    def drops(self, num_layers: int, num_visual: int) -> list[Drop]:
        k = self.config.k
        if k >= num_layers:
            raise ConfigError(f"fastv: k={k} but the language model has {num_layers} layers")
        return [Drop(k, k - 1, fastv_keep(num_visual, self.config.ratio))]


class PyramidDrop(_InLLMCompressor):
    """``pyramiddrop[:RATIO[,layers=8/16/24]]``: drop ``ratio`` of the visual tokens left at each boundary,
    renumbering positions after each drop.

    Default boundaries: 1/4, 1/2 and 3/4 of the depth (layers 8, 16, 24 of a 32-layer model).
    """

    name = "pyramiddrop"

    @dataclass
    class Config:
        ratio: float = 0.5
        layers: tuple[int, ...] | None = None

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        check_drop_ratio("pyramiddrop", self.config.ratio)

    def boundaries(self, num_layers: int) -> tuple[int, ...]:
        if self.config.layers:
            layers = tuple(sorted(set(int(x) for x in self.config.layers)))
            if layers[0] < 1 or layers[-1] >= num_layers:
                raise ConfigError(f"pyramiddrop: layers {layers} must lie in 1..{num_layers - 1}")
            return layers
        return tuple(sorted({max(1, num_layers * q // 4) for q in (1, 2, 3)}))

    def drops(self, num_layers: int, num_visual: int) -> list[Drop]:
        return [Drop(layer, layer, pyramid_keep(num_visual, self.config.ratio, stage), renumber=True)
                for stage, layer in enumerate(self.boundaries(num_layers), start=1)]


# ---------------------------------------------------------------------------------------------- hooks
def slice_layer_rows(key: str, value: Any, index: torch.Tensor, length: int) -> Any:
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

    layers: the language model's decoder layers; steps: in-LLM compressors (each has ``drops(n, N)``);
    visual_mask: bool ``[L]`` marking the prompt's visual rows; rotary: the language model's rotary embedding
    module (``rotary(x, position_ids) -> (cos, sin)``) and position_ids: the prompt's (``[1, L]`` or
    ``[3, 1, L]``), both needed to renumber positions (1-D only). The first forward whose length is ``L`` is the
    prefill; later forwards are decode steps. ``planned`` and ``observed`` give the per-layer prefill lengths;
    ``kept_by_drop`` the prompt rows kept at each drop.

    >>> # with InLLMPruning(decoder_layers(model), [FastV()], prompt.visual_mask) as pruning: ...
    """

    def __init__(self, layers: Sequence[torch.nn.Module], steps: Sequence[Any], visual_mask: torch.Tensor,
                 rotary: torch.nn.Module | None = None, position_ids: torch.Tensor | None = None) -> None:
        self.layers = list(layers)
        self.steps = list(steps)
        self.visual_mask = visual_mask.bool().cpu()
        self.length = int(self.visual_mask.shape[0])
        num_visual = int(self.visual_mask.sum())
        drops = [d for step in self.steps for d in step.drops(len(self.layers), num_visual)]
        attention = [hasattr(layer, "self_attn") for layer in self.layers]
        self.drops = sorted(scored_at_attention(drops, attention), key=lambda d: d.layer)
        self.rotary = rotary
        one_d = position_ids is not None and position_ids.ndim == 2
        self.prompt_positions = position_ids.reshape(-1).cpu() if one_d else None
        self.renumbers = self.prompt_positions is not None and rotary is not None
        self.schedule = {d.layer: d.keep for d in self.drops}
        self.planned = planned_lengths(len(self.layers), self.drops, self.length - num_visual, num_visual)
        self.observed: list[int] = []
        self.kept_by_drop: list[torch.Tensor] = []
        self._handles: list[Any] = []
        self._keep: torch.Tensor | None = None
        self._positions: torch.Tensor | None = None  # renumbered 1-D positions of the current rows, or None
        self._scores: dict[int, torch.Tensor] = {}
        self._kept_by_layer: list[torch.Tensor | None] = []
        self._shift_by_layer: list[int] = []
        self._prefilled = False
        self._prefilling = False

    # ------------------------------------------------------------------ context
    def __enter__(self) -> "InLLMPruning":
        self.observed, self.kept_by_drop, self._prefilled, self._keep = [], [], False, None
        self._kept_by_layer, self._shift_by_layer = [None] * len(self.layers), [0] * len(self.layers)
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
            "drops": [{"layer": d.layer, "scored_at": d.score_layer, "keep": d.keep, "renumber": d.renumber}
                      for d in self.drops],
            "planned_lengths": list(self.planned),
            "observed_lengths": list(self.observed),
        }

    def rows_at(self, index: int) -> torch.Tensor | None:
        """Prompt rows (int64, sorted) decoder layer ``index`` processed in the last prefill, or None before one."""
        return self._kept_by_layer[index] if self._kept_by_layer else None

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
                    self._positions, self._scores, self.kept_by_drop = None, {}, []
            if self._prefilling:
                self._prefilling = index != last
                return self._prefill(index, module, args, kwargs, hidden)
            return args, self._decode_kwargs(index, hidden, kwargs)

        return hook

    def _prefill(self, index: int, module: torch.nn.Module, args: tuple, kwargs: dict, hidden: torch.Tensor):
        for drop in (d for d in self.drops if d.layer == index):
            scores = self._scores.pop(id(drop), None)
            if scores is None:  # ranked by this layer's own attention
                scores = self._attention(index, module, hidden, kwargs)
            local = self._select(drop, scores)
            if local.shape[0] != hidden.shape[1]:
                hidden = hidden.index_select(1, local.to(hidden.device))
                self._keep = self._keep[local]
                if self._positions is not None:
                    self._positions = self._positions[local]
                if drop.renumber and self.renumbers:
                    first = self.prompt_positions[0]
                    self._positions = first + torch.arange(hidden.shape[1], dtype=self.prompt_positions.dtype)
            self.kept_by_drop.append(self._keep)
        for drop in (d for d in self.drops if d.score_layer == index and d.layer > index):
            self._scores[id(drop)] = self._attention(index, module, hidden, kwargs)  # FastV: layer K-1
        self._kept_by_layer[index] = self._keep
        self._shift_by_layer[index] = 0 if self._positions is None else int(self.length - self._keep.shape[0])
        self.observed.append(int(hidden.shape[1]))
        kwargs = self._layer_kwargs(kwargs, hidden)
        if args:
            args = (hidden,) + tuple(args[1:])
        else:
            kwargs["hidden_states"] = hidden
        return args, kwargs

    def _layer_kwargs(self, kwargs: dict, hidden: torch.Tensor) -> dict:
        """The layer's keyword arguments for the current rows (sliced, or with renumbered positions)."""
        keep = self._keep
        if keep.shape[0] == self.length:
            return dict(kwargs)
        out = {key: slice_layer_rows(key, value, keep, self.length) for key, value in kwargs.items()}
        if self._positions is not None:
            out.update(self._rotated(kwargs, hidden, self._positions.unsqueeze(0)))
        return out

    def _rotated(self, kwargs: dict, hidden: torch.Tensor, positions: torch.Tensor) -> dict:
        """``position_ids`` and ``position_embeddings`` recomputed for 1-D ``positions [1, n]``."""
        original = kwargs.get("position_ids")
        dtype = original.dtype if isinstance(original, torch.Tensor) else positions.dtype
        ids = positions.to(device=hidden.device, dtype=dtype)
        with torch.no_grad():
            cos, sin = self.rotary(hidden, ids)
        out: dict[str, Any] = {"position_embeddings": (cos, sin)}
        if isinstance(original, torch.Tensor):
            out["position_ids"] = ids
        return out

    def _attention(self, index: int, layer: torch.nn.Module, hidden: torch.Tensor, kwargs: dict) -> torch.Tensor:
        """Head-averaged attention ``[L_now]`` of the last row to every current row at ``layer``."""
        position_embeddings = self._layer_kwargs(kwargs, hidden).get("position_embeddings")
        if position_embeddings is None:
            raise ConfigError(f"in-LLM pruning: layer {index} gets no position_embeddings; this model is unsupported")
        with torch.no_grad():
            return last_token_attention(layer, hidden, position_embeddings).cpu()

    def _select(self, drop: Drop, scores: torch.Tensor) -> torch.Tensor:
        """Local rows (into the current sequence) kept: all text rows + the ``drop.keep`` top visual rows."""
        visual = self.visual_mask[self._keep]
        visual_rows = visual.nonzero().flatten()
        keep_visual = min(drop.keep, visual_rows.shape[0])
        if keep_visual == visual_rows.shape[0]:
            return torch.arange(visual.shape[0])
        top = visual_rows[scores[visual_rows].topk(keep_visual).indices]
        return torch.cat([(~visual).nonzero().flatten(), top]).sort().values

    def _decode_kwargs(self, index: int, hidden: torch.Tensor, kwargs: dict) -> dict:
        """During decoding give each layer the mask columns of its own cache (kept prompt rows + new tokens) and,
        after renumbering, new-token positions shifted down by the rows dropped before this layer."""
        kept = self._kept_by_layer[index] if self._kept_by_layer else None
        if kept is None or kept.shape[0] == self.length:
            return kwargs
        out = dict(kwargs)
        mask = kwargs.get("attention_mask")
        if isinstance(mask, torch.Tensor) and mask.ndim == 4 and mask.shape[-1] > self.length:
            columns = torch.cat([kept, torch.arange(self.length, mask.shape[-1])]).to(mask.device)
            out["attention_mask"] = mask.index_select(-1, columns)
        shift = self._shift_by_layer[index]
        if shift:
            ids = kwargs.get("position_ids")
            if not isinstance(ids, torch.Tensor):
                raise ConfigError("pyramiddrop: this model gives its layers no position_ids to shift while decoding")
            out.update(self._rotated(kwargs, hidden, ids.reshape(1, -1) - shift))
        return out
