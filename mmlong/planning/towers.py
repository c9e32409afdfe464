"""Vision towers for the planner: parameters, FLOPs and peak bytes of each family's tower, merger and projector.

Three kinds (:attr:`~mmlong.planning.shapes.VisionShape.kind`):

- ``qwen2-vl`` (Wang et al. 2024, "Qwen2-VL"; also Qwen3-VL and Qwen3.5, Bai et al. 2025): a 3-D patch
  convolution over ``temporal_patch`` frames, ``depth`` blocks (LayerNorm, qkv, proj, a two-layer MLP) attending
  within each temporal patch, a 2x2 merger (``4E -> 4E -> hidden``). Qwen3-VL adds a learned position table and
  ``deepstack`` more mergers (each with its own LayerNorm over ``4E``) whose outputs are DeepStack features.
- ``internvit`` (InternVL3.5, Wang et al. 2025): every frame resized to ``frame_side``, 2-D patches plus a CLS
  token, blocks with separate q/k/v and layer scale attending over the frame, the CLS dropped, pixel shuffle by
  0.5 (2x2 patches -> one ``4E`` token) and the projector ``LayerNorm(4E) -> hidden -> hidden``.
- ``siglip`` (VideoLLaMA3, Zhang et al. 2025): 2-D patches per frame (temporal patch 1), SigLIP blocks with 2-D
  RoPE attending within each frame, 2x2 bilinear pooling for video and the projector ``E -> hidden -> hidden``.

FLOPs follow ``torch.utils.flop_counter``: 2 per multiply-add of linear layers and convolutions, ``4 n^2 E``
for attention over ``n`` tokens; normalisation, interpolation and pooling are not counted.

>>> from mmlong.planning.families import family_shapes
>>> v = family_shapes()["internvl3.5-1b"].vision
>>> v.kind, v.frame_side, patches_per_frame(v, 448, 448)
('internvit', 448, 1024)
"""

from __future__ import annotations

import math
from typing import Any


def patches_per_frame(v: Any, height: int, width: int) -> int:
    """Patches of one frame (per temporal patch for ``qwen2-vl``), CLS excluded."""
    return (height // v.patch) * (width // v.patch)


def tower_tokens_per_frame(v: Any, height: int, width: int) -> int:
    """Tokens one frame (one temporal patch) gives the language model after the merger / shuffle / pooling."""
    return patches_per_frame(v, height, width) // v.merge**2


def tower_parameters(shape: Any) -> int:
    """Parameters of the tower, its merger(s) and projector for ``shape`` (a :class:`ModelShape`)."""
    v = shape.vision
    if v is None:
        return 0
    e, m, hidden = v.embed, v.mlp, shape.hidden
    mlp = (e * m + m) + (m * e + e)
    merged = e * v.merge**2
    if v.kind == "internvit":
        n = patches_per_frame(v, v.frame_side, v.frame_side) + 1
        embed = v.patch_dim * e + e + e + n * e  # patch conv with bias, CLS, position table
        block = 4 * e + 4 * e * e + (4 if v.qkv_bias else 1) * e + 2 * e + mlp  # LayerNorms, q/k/v/out, scale, MLP
        projector = 2 * merged + (merged * hidden + hidden) + (hidden * hidden + hidden)
        return embed + v.depth * block + projector
    if v.kind == "siglip":
        block = 4 * e + 4 * (e * e + e) + mlp
        projector = (e * hidden + hidden) + (hidden * hidden + hidden)
        return v.patch_dim * e + e + v.depth * block + 2 * e + projector
    block = 4 * e + (e * 3 * e + 3 * e) + (e * e + e) + mlp
    merger = (merged * merged + merged) + (merged * hidden + hidden)
    if v.pos_embed or v.deepstack:  # Qwen3-VL / Qwen3.5: biased patch conv, position table, DeepStack mergers
        embed = v.patch_dim * e + e + v.pos_embed * e
        return embed + v.depth * block + (2 * e + merger) + v.deepstack * (2 * merged + merger)
    return v.patch_dim * e + v.depth * block + 2 * e + merger


def tower_flops(shape: Any, frames: int, height: int, width: int) -> float:
    """The tower on ``frames`` frames of ``height x width`` (after the processor), merger(s) and projector."""
    v = shape.vision
    if v is None or frames == 0:
        return 0.0
    e, m, hidden = v.embed, v.mlp, shape.hidden
    merged = e * v.merge**2
    per_group = patches_per_frame(v, height, width)
    extra = 1 if v.kind == "internvit" else 0  # the CLS token
    groups = math.ceil(frames / v.temporal_patch)
    n = per_group + extra
    blocks = v.depth * groups * (2 * n * (4 * e * e + 2 * e * m) + 4 * n * n * e)
    embed = 2 * groups * per_group * v.patch_dim * e
    out = groups * per_group // v.merge**2
    if v.kind == "internvit":
        head = 2 * out * (merged * hidden + hidden * hidden)
    elif v.kind == "siglip":
        head = 2 * out * (e * hidden + hidden * hidden)
    else:
        head = (1 + v.deepstack) * 2 * out * (merged * merged + merged * hidden)
    return float(embed + blocks + head)


def tower_chunk_bytes(shape: Any, frames: int, height: int, width: int, dtype_bytes: int,
                      previous_chunk: bool = False) -> int:
    """Peak bytes of turning one chunk of ``frames`` frames into visual features (processor, then tower).

    With ``P`` patches of ``patch_dim`` values: the processor holds the resized uint8 frames and three float32
    copies (``13 P patch_dim`` bytes; InternVL's, which keeps frames whole, two: ``9 P patch_dim``). The tower
    holds the float32 pixels (and their cast), per patch its largest block step (MLP ``2E + 2M`` or attention
    ``6E``; float32 rotated q/k ``2E`` for the rotary towers), and the merger or projector's widest step;
    Qwen3-VL also holds the DeepStack features of the chunk. No tower holds ``n x n`` attention weights: the
    adapters load every tower with SDPA (counting InternViT's as eager attention planned InternVL3.5-1B at 1.14x
    and 1.26x its measured peak for 4 and 8 frames; without them 1.00x and 1.01x).
    """
    v = shape.vision
    if v is None or frames == 0:
        return 0
    groups = math.ceil(frames / v.temporal_patch)
    per_group = patches_per_frame(v, height, width)
    patches = groups * per_group
    processor = (13 + (4 if previous_chunk else 0)) * patches * v.patch_dim
    pixels = patches * v.patch_dim * (4 + (dtype_bytes if dtype_bytes != 4 else 0))
    block = max(2 * v.embed + 2 * v.mlp, 6 * v.embed) * dtype_bytes
    merged = v.embed * v.merge**2
    if v.kind == "internvit":  # its processor keeps frames whole: uint8, normalised float32, the stacked output
        processor = (9 + (4 if previous_chunk else 0)) * patches * v.patch_dim
        n = per_group + 1
        head = (2 * merged + shape.hidden) * dtype_bytes // v.merge**2
        tower = pixels + groups * n * (block + v.embed * dtype_bytes) + patches * head
        return max(processor, tower)
    rotary = 2 * (v.embed // v.heads) * 4 + 2 * v.embed * 4
    if v.kind == "siglip":
        head = (v.embed + 2 * shape.hidden) * dtype_bytes // v.merge**2
        return max(processor, pixels + patches * (block + rotary + v.embed * dtype_bytes + head))
    head = 3 * v.embed * dtype_bytes + (1 + v.deepstack) * shape.hidden * dtype_bytes // v.merge**2
    return max(processor, pixels + patches * (block + rotary + v.embed * dtype_bytes + head))
