"""The encoder interface: frames in, :class:`~mmlong.types.VisualTokens` out.

An encoder has a small surface (as in open_clip): ``encode(frames)``, and when it has a text side,
``encode_text(texts)`` plus ``embed_visual(features)`` that map into the same joint space, so that
``embed_visual(f) @ encode_text(q).T`` is a text-to-visual relevance score usable by query-aware stages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, ClassVar

import torch

from mmlong.types import Frames, VisualTokens


class Encoder:
    """Base class. Subclasses set ``name`` and a ``Config`` dataclass and implement ``encode``."""

    name: ClassVar[str] = "encoder"
    #: True when ``encode_text`` / ``embed_visual`` are available.
    has_text: ClassVar[bool] = False

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()  # type: ignore[attr-defined]

    def encode(self, frames: Frames) -> VisualTokens:
        """Encode ``frames`` (uint8 ``[T, H, W, 3]``) to tokens on the encoder's ``(T, h, w)`` grid."""
        raise NotImplementedError

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """L2-normalised text embeddings ``[Q, E]`` in the joint space."""
        raise NotImplementedError(f"encoder {self.name!r} has no text side")

    def embed_visual(self, features: torch.Tensor) -> torch.Tensor:
        """L2-normalised joint-space embeddings ``[F, E]`` of visual features ``[F, D]`` (e.g. frame means)."""
        raise NotImplementedError(f"encoder {self.name!r} has no text side")

    def relevance(self, features: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """Cosine relevance ``[Q, F]`` of each text to each visual feature row."""
        return self.encode_text(texts) @ self.embed_visual(features).T

    def feature_dim(self) -> int | None:
        """Width ``D`` of the features :meth:`encode` returns, when known without encoding (``None``: unknown);
        a cached entry of another width is refused (:func:`mmlong.cache.check_tokens`)."""
        for name in ("embed_dim", "token_dim"):
            try:
                value = getattr(self, name, None)
            except Exception:  # a property needing weights that cannot load: unknown
                return None
            if isinstance(value, int) and value > 0:
                return value
        return None

    def weights_id(self) -> str:
        """A short fingerprint of the weights (for cache keys), computed once per encoder instance.

        The weights of an encoder do not change after it is built, so every later video reuses the first
        fingerprint instead of hashing the weights again. Subclasses say how to fingerprint in
        :meth:`fingerprint_weights`.
        """
        cached = self.__dict__.get("_weights_id")
        if cached is None:
            cached = self.fingerprint_weights()
            self.__dict__["_weights_id"] = cached
        return cached

    def fingerprint_weights(self) -> str:
        """Hash the weights. Default: the ``module``'s state dict (names, shapes and sums of every tensor)."""
        module = getattr(self, "module", None)
        h = hashlib.sha256()
        if isinstance(module, torch.nn.Module):
            for key, value in sorted(module.state_dict().items()):
                h.update(key.encode())
                h.update(str(tuple(value.shape)).encode())
                h.update(f"{float(value.double().sum()):.6e}".encode())
        return h.hexdigest()[:16]

    def cache_id(self) -> str:
        """Identifies encoder + config + weights, for the feature cache key."""
        cfg = dataclasses.asdict(self.config) if dataclasses.is_dataclass(self.config) else {}
        cfg = {k: v for k, v in cfg.items() if k not in ("device", "batch_size")}
        return f"{self.name}:{json.dumps(cfg, sort_keys=True, default=str)}:{self.weights_id()}"
