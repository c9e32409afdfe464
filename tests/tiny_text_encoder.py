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


COLOURS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0), "yellow": (1.0, 1.0, 0.0)}


class ColourEncoder(Encoder):
    """Encodes frames as the mean RGB of a 2x2 grid of cells; texts by the colour words they mention.

    The joint space is chroma (RGB minus its grey level), so "red" matches red frames by cosine.
    """

    name = "colour"
    has_text = True

    @dataclass
    class Config:
        grid: int = 2

    def encode(self, frames: Frames) -> VisualTokens:
        t, h, w, _ = frames.data.shape
        g = self.config.grid
        pixels = frames.data.float().div(255.0).permute(0, 3, 1, 2)  # [T, 3, H, W]
        cells = F.adaptive_avg_pool2d(pixels, (g, g)).permute(0, 2, 3, 1)  # [T, g, g, 3]
        return VisualTokens.from_grid(cells, frames.timestamps, meta={"encoder": self.name})

    def embed_visual(self, features: torch.Tensor) -> torch.Tensor:
        chroma = features.float() - features.float().mean(dim=-1, keepdim=True)
        return F.normalize(chroma, dim=-1)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for text in texts:
            words = text.lower().replace("?", " ").split()
            rgb = sum((torch.tensor(COLOURS[c]) for c in COLOURS if c in words), torch.zeros(3))
            rows.append(rgb - rgb.mean())
        return F.normalize(torch.stack(rows), dim=-1)


def write_colour_video(path: str, colours: list[str], seconds_each: float, fps: int = 10, size: int = 64) -> str:
    """A video of solid-colour scenes (with a little texture), ``seconds_each`` per colour."""
    from mmlong.media.video.write import write_video

    gen = torch.Generator().manual_seed(0)
    frames = []
    for colour in colours:
        base = torch.tensor(COLOURS[colour]) * 200 + 30
        for _ in range(int(seconds_each * fps)):
            texture = torch.rand(size, size, 1, generator=gen) * 20
            frames.append((base + texture).clamp(0, 255).to(torch.uint8))
    return write_video(path, frames, fps=fps)
