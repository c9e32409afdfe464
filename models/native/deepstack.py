"""DeepStack on an unmodified decoder: visual features added to the visual rows after each of the first K layers.

Meng et al. 2024, "DeepStack: Deeply Stacking Visual Tokens is Surprisingly Simple and Effective for LMMs";
Qwen3-VL feeds the outputs of K vision blocks (each through its own patch merger) into its first K text layers:
after layer ``k`` the hidden state of every visual row gets ``deepstack[k]`` of that token added (the installed
``Qwen3VLTextModel._deepstack_process``). The model only does this when it built the visual features itself from
pixels; an adapter that splices (compressed) tokens as ``inputs_embeds`` adds them with :class:`DeepStackHooks`:
forward hooks on the first K decoder layers, removed on exit, that add the same tensors in the same order as the
model would (bit-identical uncompressed). Under in-LLM pruning the hook adds, after layer ``k``, the features of
the visual rows that layer still holds (:meth:`~mmlong.compressors.llm_pruning.InLLMPruning.rows_at`), so pruned
tokens lose their DeepStack features with them.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from mmlong.errors import ConfigError


class DeepStackHooks:
    """Context manager adding ``features [K, N_visual, D]`` to the visual rows after decoder layers ``0..K-1``.

    layers: the language model's decoder layers; visual_mask: bool ``[L]`` of the prompt (its ``N_visual`` True
    rows take ``features[:, i]`` in order); pruner: the in-LLM pruning context (anything with ``rows_at(k)``) or
    None. Only the prefill (the first forward of length > 1) is touched; decode steps carry no visual rows.
    """

    def __init__(self, layers: Sequence[torch.nn.Module], visual_mask: torch.Tensor, features: torch.Tensor,
                 pruner: Any = None, family: str = "qwen3-vl") -> None:
        if features.shape[0] > len(layers):
            raise ConfigError(f"{family}: {features.shape[0]} DeepStack levels for {len(layers)} decoder layers")
        self.layers = list(layers)[: features.shape[0]]
        self.visual_mask = visual_mask.bool().cpu()
        self.features = features
        self.pruner = pruner
        self.family = family
        self.visual_index = torch.cumsum(self.visual_mask.long(), 0) - 1  # prompt row -> visual token index
        self._done: set[int] = set()
        self._handles: list[Any] = []

    def __enter__(self) -> "DeepStackHooks":
        self._done = set()
        for index, layer in enumerate(self.layers):
            self._handles.append(layer.register_forward_hook(self._make_hook(index)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def rows(self, index: int, length: int) -> torch.Tensor:
        """Prompt rows the output of layer ``index`` holds (all of them unless a pruner dropped some)."""
        rows = self.pruner.rows_at(index) if hasattr(self.pruner, "rows_at") else None
        if rows is None:
            rows = torch.arange(self.visual_mask.shape[0])
        if rows.shape[0] != length:
            name = getattr(self.pruner, "name", type(self.pruner).__name__)
            raise ConfigError(
                f"{self.family}: in-LLM step {name!r} changes the prompt's rows inside the first "
                f"{len(self.layers)} layers, where DeepStack adds visual features to fixed rows; use fastv or "
                "pyramiddrop (their kept rows are known) or prune after those layers"
            )
        return rows

    def _make_hook(self, index: int) -> Any:
        def hook(module: torch.nn.Module, args: tuple, output: Any) -> Any:
            hidden = output[0] if isinstance(output, tuple) else output
            if index in self._done or hidden.shape[1] <= 1:
                return output
            self._done.add(index)
            rows = self.rows(index, hidden.shape[1])
            local = self.visual_mask[rows].to(hidden.device)
            added = self.features[index, self.visual_index[rows][self.visual_mask[rows]]]
            hidden = hidden.clone()
            hidden[0, local] = hidden[0, local] + added.to(hidden.device, hidden.dtype)
            return (hidden,) + tuple(output[1:]) if isinstance(output, tuple) else hidden

        return hook
