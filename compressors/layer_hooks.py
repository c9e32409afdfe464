"""One forward pre-hook per decoder layer, installed on entry and removed on exit.

The base of in-LLM compressors that bring their own hooks (:mod:`mmlong.compressors.dycoke`'s KV pruning,
:mod:`mmlong.compressors.framefusion`): subclasses implement ``_make_hook(index)`` (returning a
``hook(module, args, kwargs) -> (args, kwargs)`` for ``register_forward_pre_hook(..., with_kwargs=True)``),
``_reset()`` (fresh per-prompt state) and ``summary()``. The model's modules are never modified.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch


class LayerHooks:
    """Context manager over decoder ``layers``; ``__enter__`` resets the state and installs the hooks."""

    def __init__(self, layers: Sequence[torch.nn.Module]) -> None:
        self.layers = list(layers)
        self._handles: list[Any] = []

    def _make_hook(self, index: int) -> Any:
        raise NotImplementedError

    def _reset(self) -> None:
        pass

    def summary(self) -> dict[str, Any]:
        return {}

    def __enter__(self) -> "LayerHooks":
        self._reset()
        for index, layer in enumerate(self.layers):
            self._handles.append(layer.register_forward_pre_hook(self._make_hook(index), with_kwargs=True))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
