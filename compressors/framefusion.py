"""FrameFusion: merge similar tokens of consecutive frames in the first LLM layers, then prune by importance.

Fu, Liu, Han, Dai, Yan, Yang, Ning & Wang 2025, "FrameFusion: Combining Similarity and Importance for Video Token
Reduction on Large Visual Language Models" (ICCV 2025, arXiv:2501.01986); official code thu-nics/FrameFusion
(``framefusion/main.py``).

``framefusion[:COST][,threshold=0.6,ratio_floor=0.1]`` runs inside the language model during the prefill. Each
visual token has a patch id (its place in the frame). At each merging step the hidden state of every visual
token is compared (cosine) with the previous token *of the same patch* in sequence order (the same place in the
frame before); tokens above ``threshold`` join the chain's first token, which becomes the plain mean of the
chain. The step's sparsity (merged / visual) is recorded; merging goes on at the next layer until a step merges
fewer than ``ratio_floor`` of the visual tokens. Then the next layer's attention of the last prompt token
(recomputed from Q/K, head-averaged) ranks the visual tokens left and the top ``round(V * (1 - s))`` are kept,
``s`` chosen so that the visual tokens summed over all layers come to ``COST`` of the unreduced count (the
official ``_compute_pruning_ratio``). If a merging step alone would pass that sparsity, only its most similar
``int(s * V)`` tokens merge and nothing is pruned.

Deviations (forward pre-hooks see layer boundaries only): the official code merges after each layer's attention,
before its MLP; here the merging steps after layer 0's input run at the next layers' inputs (after the MLP),
so similarities are read one half-layer later. Pruning is exact: the scores are the attention of the layer that
follows the last merge, applied before the layer after it (MLPs are per token). The cost formula uses the
model's own layer count (the official code fixes 28). Kept and merged tokens keep the chain head's position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from mmlong.compressors.base import CompressContext, Compressor, Placement
from mmlong.compressors.layer_hooks import LayerHooks
from mmlong.compressors.llm_pruning import last_token_attention, slice_layer_rows
from mmlong.errors import ConfigError
from mmlong.types import VisualTokens


def pruning_sparsity(sparsities: Sequence[float], cost: float, num_layers: int) -> float:
    """Sparsity for every layer left so the mean visual fraction over ``num_layers`` layers is ``cost``.

    >>> round(pruning_sparsity([0.5], cost=0.3, num_layers=10), 4)
    0.4444
    """
    kept, spent = 1.0, 0.0
    for s in sparsities:
        kept *= 1.0 - s
        spent += kept
    left = num_layers * cost - spent
    if left < 0:
        raise ConfigError(f"framefusion: cost {cost} is too small for the merging already done")
    share = left / ((num_layers - len(sparsities)) * kept)
    return 0.0 if share > 1 else 1.0 - share


def merge_step(hidden: torch.Tensor, patch: torch.Tensor, threshold: float, upper: float,
               floor: float) -> tuple[torch.Tensor, torch.Tensor, float | None, bool, bool]:
    """One FrameFusion merging step on hidden ``[L, D]`` with patch ids ``[L]`` (``-1`` for text rows).

    Returns ``(kept rows [L'], new hidden [L', D], sparsity or None, merging done, pruning done)``.
    """
    visual = (patch >= 0).nonzero().flatten()
    order = visual[torch.argsort(patch[visual] * hidden.shape[0] + visual)]  # by patch, then by row
    same = patch[order[1:]] == patch[order[:-1]]
    sim = torch.full((order.shape[0],), -2.0)
    sim[1:] = torch.where(same, F.cosine_similarity(hidden[order[1:]].float(), hidden[order[:-1]].float(), dim=-1),
                          torch.tensor(-2.0))
    chosen = sim >= threshold
    ratio = float(chosen.sum()) / max(1, order.shape[0])
    sparsity, done_merging, done_pruning = None, False, False
    if ratio < upper:
        sparsity, done_merging = ratio, ratio < floor
    else:
        chosen = torch.zeros_like(chosen)
        chosen[sim.topk(int(upper * order.shape[0])).indices] = True
        done_merging = done_pruning = True
    chosen[0] = False
    head = torch.cummax(torch.where(chosen, -1, torch.arange(order.shape[0])), 0).values  # chain's first token
    target = torch.arange(hidden.shape[0])
    target[order] = order[head]
    sums = torch.zeros(hidden.shape, dtype=torch.float32).index_add_(0, target, hidden.float())
    counts = torch.bincount(target, minlength=hidden.shape[0]).clamp_min(1).unsqueeze(1)
    kept = (target == torch.arange(hidden.shape[0])).nonzero().flatten()
    new = (sums / counts).to(hidden.dtype)[kept] if bool(chosen.any()) else hidden
    return kept, new, sparsity, done_merging, done_pruning


def patch_ids(tokens: VisualTokens) -> torch.Tensor:
    """Place of each token in its frame, ``h * W + w`` on the encoder grid, ``[N]``."""
    hw = tokens.positions[:, 1:].round().long()
    return hw[:, 0] * tokens.grid[2] + hw[:, 1]


class FrameFusionHooks(LayerHooks):
    """Forward pre-hooks on decoder ``layers`` running FrameFusion in the prefill of one prompt.

    visual_mask bool ``[L]``; patch int64 ``[V]`` (patch id of each visual row, in row order). ``kept_rows``
    are the prompt rows the last layer holds (merged chains by their first row); ``observed`` the per-layer
    lengths; ``sparsities`` the merging steps'. Each layer's cache keeps its own length; during decoding the
    hooks give a 4-D mask (eager attention) the columns of that layer's cache.
    """

    def __init__(self, layers: Sequence[torch.nn.Module], visual_mask: torch.Tensor, patch: torch.Tensor,
                 config: Any) -> None:
        super().__init__(layers)
        self.config = config
        self.length = int(visual_mask.shape[0])
        self.patch = torch.full((self.length,), -1, dtype=torch.long)
        self.patch[visual_mask.bool().cpu()] = patch.long().cpu()
        self._reset()

    def _reset(self) -> None:
        self.kept_rows = torch.arange(self.length)
        self.observed: list[int] = []
        self.sparsities: list[float] = []
        self._by_layer: list[torch.Tensor] = []
        self._merging, self._pruning, self._scores = True, True, None

    def summary(self) -> dict[str, Any]:
        return {"framefusion": {"observed_lengths": list(self.observed),
                                "merge_sparsities": [round(s, 4) for s in self.sparsities]}}

    def _make_hook(self, index: int) -> Any:
        def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            hidden = args[0] if args else kwargs["hidden_states"]
            if index == 0 and hidden.shape[1] == self.length:
                self._reset()
            if hidden.shape[1] == 1 or len(self._by_layer) > index:
                return args, self._decode_kwargs(index, kwargs)
            with torch.no_grad():
                hidden = self._reduce(index, module, hidden, kwargs)
            self._by_layer.append(self.kept_rows)
            self.observed.append(int(hidden.shape[1]))
            kwargs = {key: slice_layer_rows(key, value, self.kept_rows, self.length) for key, value in kwargs.items()}
            if args:
                return (hidden,) + tuple(args[1:]), kwargs
            return args, {**kwargs, "hidden_states": hidden}

        return hook

    def _reduce(self, index: int, layer: torch.nn.Module, hidden: torch.Tensor, kwargs: dict) -> torch.Tensor:
        cfg, num_layers = self.config, len(self.layers)
        if self._scores is not None:  # prune with the previous layer's attention
            patch = self.patch[self.kept_rows]
            visual = (patch >= 0).nonzero().flatten()
            keep = round(visual.shape[0] * (1 - pruning_sparsity(self.sparsities, cfg.cost, num_layers)))
            top = visual[self._scores[visual].topk(keep).indices]
            local = torch.cat([(patch < 0).nonzero().flatten(), top]).sort().values
            hidden, self.kept_rows = hidden[:, local.to(hidden.device)], self.kept_rows[local]
            self._scores, self._pruning = None, False
        if self._merging:
            upper = pruning_sparsity(self.sparsities, cfg.cost, num_layers)
            local, new, sparsity, done, no_prune = merge_step(
                hidden[0].cpu(), self.patch[self.kept_rows], cfg.threshold, upper, cfg.ratio_floor)
            hidden = new.to(hidden.device, hidden.dtype).unsqueeze(0)
            self.kept_rows = self.kept_rows[local]
            if sparsity is not None:
                self.sparsities.append(sparsity)
            self._merging = not done
            self._pruning = self._pruning and not no_prune
        if not self._merging and self._pruning and index + 1 < num_layers:
            sliced = {key: slice_layer_rows(key, value, self.kept_rows, self.length) for key, value in kwargs.items()}
            self._scores = last_token_attention(layer, hidden, sliced["position_embeddings"]).cpu()
            self._pruning = False  # done once the scores are used at the next layer
        return hidden

    def _decode_kwargs(self, index: int, kwargs: dict) -> dict:
        """A 4-D decode mask is as wide as layer 0's cache + the new tokens: give layer ``index`` its own columns."""
        mask = kwargs.get("attention_mask")
        if index == 0 or index >= len(self._by_layer) or not isinstance(mask, torch.Tensor) or mask.ndim != 4:
            return kwargs
        first, kept = self._by_layer[0], self._by_layer[index]
        if mask.shape[-1] <= first.shape[0] or kept.shape[0] == first.shape[0]:
            return kwargs
        columns = torch.cat([torch.searchsorted(first, kept), torch.arange(first.shape[0], mask.shape[-1])])
        return {**kwargs, "attention_mask": mask.index_select(-1, columns.to(mask.device))}


class FrameFusion(Compressor):
    """``framefusion[:COST]``: visual compute over the layers kept at ``COST`` (paper default 0.3)."""

    name = "framefusion"
    stage = Placement.IN_LLM

    @dataclass
    class Config:
        cost: float = 0.3
        threshold: float = 0.6
        ratio_floor: float = 0.1

        def __post_init__(self) -> None:
            if not 0.0 < self.cost <= 1.0:
                raise ValueError(f"framefusion cost must be in (0, 1], got {self.cost}")

    def schedule(self, num_layers: int) -> dict[int, float]:
        return {}

    def hooks(self, layers: Sequence[torch.nn.Module], visual_mask: torch.Tensor,
              tokens: VisualTokens | None = None) -> FrameFusionHooks:
        if tokens is None or tokens.num_tokens != int(visual_mask.sum()):
            raise ConfigError("framefusion needs the prompt's visual tokens (one row per token) to know their patches")
        return FrameFusionHooks(layers, visual_mask, patch_ids(tokens), self.config)

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        raise ConfigError(f"compressor {self.name!r} runs inside the language model; give it to a native VLM adapter")
