"""A tiny encoder with a real text side over hand-built concept embeddings, for query-aware tests.

Visual feature dimension ``i`` measures how much of concept ``CONCEPTS[i]`` a token shows. ``embed_visual``
maps features to the joint space through the concept table; ``encode_text`` sums the concept vectors of the
concept words a text mentions (plus a shared "any text" direction, so a text without concepts is not zero).
Both are L2-normalised, so ``relevance`` is a cosine as in encoders/base.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mmlong.encoders.base import Encoder
from mmlong.types import Frames, VisualTokens

CONCEPTS = ("cat", "dog", "car", "tree", "boat", "sky")


class TinyTextEncoder(Encoder):
    name = "tiny-text"
    has_text = True

    @dataclass
    class Config:
        joint_dim: int = 16
        seed: int = 0

    def __init__(self, config: "TinyTextEncoder.Config | None" = None) -> None:
        super().__init__(config)
        gen = torch.Generator().manual_seed(self.config.seed)
        table = torch.randn(len(CONCEPTS) + 1, self.config.joint_dim, generator=gen)
        self.table = F.normalize(table, dim=-1)  # one joint-space direction per concept, last = "any text"

    def encode(self, frames: Frames) -> VisualTokens:
        raise NotImplementedError("TinyTextEncoder works on hand-built features only")

    def embed_visual(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features.float() @ self.table[: len(CONCEPTS)], dim=-1)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for text in texts:
            words = text.lower().replace("?", " ").replace(".", " ").split()
            weights = torch.tensor([float(c in words) for c in CONCEPTS] + [0.2])
            rows.append(weights @ self.table)
        return F.normalize(torch.stack(rows), dim=-1)


def concept_frames(labels: list[str], hw: int = 2, strength: float = 1.0, noise: float = 0.05,
                   seed: int = 0) -> torch.Tensor:
    """``[T, hw, hw, len(CONCEPTS)]`` grid features: every token of frame ``t`` shows concept ``labels[t]``."""
    gen = torch.Generator().manual_seed(seed)
    t = len(labels)
    grid = noise * torch.rand(t, hw, hw, len(CONCEPTS), generator=gen)
    for i, label in enumerate(labels):
        grid[i, :, :, CONCEPTS.index(label)] += strength
    return grid
