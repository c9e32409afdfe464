"""Plan a run before anything heavy loads: frames, resolution, visual tokens, peak memory, prefill FLOPs and time.

An analytic model of what the native Qwen2-VL path of :class:`~mmlong.pipeline.Pipeline` allocates (Wang et al.
2024, "Qwen2-VL"): the processor resizes every frame to multiples of 28 px within ``min_pixels`` /
``max_pixels`` (``total_pixels`` over the whole video lowers ``max_pixels`` per frame, as qwen-vl-utils does),
the vision tower cuts 14-px patches over 2 frames (temporal patch 2) and its merger joins 2x2 patches into one
token, so a frame pair of ``H x W`` pixels gives ``(H/28)(W/28)`` tokens. Memory is

    weights + visual features + max(vision tower on one chunk of frames, language-model prefill)

where the prefill holds its inputs, the KV cache (``2 x layers x kv_heads x head_dim x tokens x bytes``), the
largest per-layer activations (attention or MLP) and the logits it keeps. FLOPs count 2 per multiply-add of every
linear layer and convolution plus full (non-causal) attention ``4 n^2 d``, the convention of
``torch.utils.flop_counter`` that the validation (:mod:`mmlong.apps.bench.plan`) counts against. Time is FLOPs
over a throughput (measured with a short matmul, or given). The shapes themselves are :mod:`mmlong.planning.shapes`.

>>> from mmlong.planning.shapes import named_shape
>>> shape = named_shape("tiny")
>>> video = frame_plan(shape, frames=8, height=224, width=224)  # below min_pixels: scaled up to 336 px
>>> video.frames, (video.height, video.width), video.tokens_per_patch, video.visual_tokens
(8, (336, 336), 144, 576)
>>> est = estimate(shape, video)
>>> est.kv_cache == 2 * 4 * 2 * 32 * est.prompt_tokens * 4
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmlong.errors import ConfigError
from mmlong.planning.shapes import ModelShape, VisionShape
from mmlong.planning.towers import tower_chunk_bytes, tower_flops, tower_tokens_per_frame

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
MIN_PIXELS, MAX_PIXELS = 128 * 28 * 28, 768 * 28 * 28  # Qwen2-VL video processor defaults
TEXT_TOKENS = 60  # chat template + question: a typical multiple-choice prompt


# ---------------------------------------------------------------------------------------------- frames
def smart_resize(height: int, width: int, factor: int = 28, min_pixels: int = MIN_PIXELS,
                 max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """Qwen2-VL's resize: sides rounded to multiples of ``factor``, area within ``[min_pixels, max_pixels]``.

    >>> smart_resize(252, 448), smart_resize(1080, 1920)
    ((252, 448), (560, 1008))
    """
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar, w_bar = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return int(h_bar), int(w_bar)


def frame_pixels_cap(frames: int, min_pixels: int, max_pixels: int, total_pixels: int | None,
                     temporal_patch: int = 2) -> int:
    """Per-frame ``max_pixels`` under a video-wide ``total_pixels`` (qwen-vl-utils: a frame pair shares it)."""
    if not total_pixels:
        return max_pixels
    return int(max(min(max_pixels, total_pixels / max(1, frames) * temporal_patch), min_pixels * 1.05))


@dataclass(frozen=True)
class FramePlan:
    """What the model sees: ``frames`` frames resized to ``height x width``; tokens before and after the chain.

    ``layer_lengths``: the prompt length at every decoder layer (in-LLM pruning shortens the later ones).
    """

    frames: int
    height: int
    width: int
    tokens_per_patch: int
    temporal_patches: int
    visual_tokens: int
    compressed_tokens: int
    text_tokens: int
    layer_lengths: tuple[int, ...]
    chunk_frames: int = 16
    chain: str = ""

    @property
    def prompt_tokens(self) -> int:
        return self.compressed_tokens + self.text_tokens


def frame_plan(shape: ModelShape, frames: int, height: int, width: int, *, min_pixels: int = MIN_PIXELS,
               max_pixels: int = MAX_PIXELS, total_pixels: int | None = None, compressed_tokens: int | None = None,
               drops: Mapping[int, float] | None = None, text_tokens: int = TEXT_TOKENS, chunk_frames: int = 16,
               chain: str = "", clip_pixels: bool = False, frame_side: int = 0) -> FramePlan:
    """Frames of ``height x width`` (after decoding) through the processor, the tower and the chain.

    ``compressed_tokens``: visual tokens after the pre-LLM chain (default: all). ``drops``: in-LLM pruning as
    ``{layer: fraction of the visual tokens left that is dropped there}`` (FastV / PyramidDrop schedules).
    ``clip_pixels``: the pixel limits hold for the whole clip (Qwen3-VL, Qwen3.5, VideoLLaMA3); ``frame_side``:
    InternViT's square frame (default: the shape's).
    """
    if clip_pixels:
        min_pixels, max_pixels, total_pixels = clip_limits(shape.vision, frames, min_pixels, max_pixels)
    vision = shape.vision or VisionShape(0, 0, 1, 0)
    h, w = processed_size(vision, frames, height, width, min_pixels, max_pixels, total_pixels, frame_side)
    per_patch = tower_tokens_per_frame(vision, h, w)
    temporal = math.ceil(frames / vision.temporal_patch)
    visual = temporal * per_patch
    kept = visual if compressed_tokens is None else int(compressed_tokens)
    lengths, left = [], kept
    for layer in range(shape.layers):
        if drops and layer in drops:
            left = left - int(left * float(drops[layer]))
        lengths.append(left + text_tokens)
    return FramePlan(frames, h, w, per_patch, temporal, visual, kept, text_tokens, tuple(lengths),
                     chunk_frames, chain)


def clip_limits(vision: VisionShape | None, frames: int, min_pixels: int, max_pixels: int) -> tuple[int, int, None]:
    """Per-frame limits from whole-clip ones: Qwen3-VL's processor bounds ``t x H x W`` (``t`` rounded to its
    temporal patch), VideoLLaMA3's divides ``longest_edge`` by the frame count."""
    if vision is not None and vision.temporal_patch == 1:
        return min_pixels, max(1, max_pixels // max(1, frames)), None
    t = max(2, round(frames / 2) * 2)
    return max(1, min_pixels // t), max(1, max_pixels // t), None


def processed_size(vision: VisionShape, frames: int, height: int, width: int, min_pixels: int, max_pixels: int,
                   total_pixels: int | None, frame_side: int = 0) -> tuple[int, int]:
    """The frame size the family's processor gives: InternViT's fixed square, else the smart resize."""
    if vision.kind == "internvit":
        side = frame_side or vision.frame_side
        return side, side
    cap = frame_pixels_cap(frames, min_pixels, max_pixels, total_pixels, vision.temporal_patch)
    return smart_resize(height, width, vision.patch * vision.merge, min(min_pixels, cap), cap)


# ---------------------------------------------------------------------------------------------- estimates
@dataclass
class Estimate:
    """Bytes of each part of the peak, FLOPs, and seconds at ``throughput`` FLOP/s."""

    weights: int
    visual_features: int
    vision_activations: int
    kv_cache: int
    llm_activations: int
    logits: int
    prompt_tokens: int
    vision_flops: float
    llm_flops: float
    throughput: float | None = None
    parts: dict[str, int] = field(default_factory=dict)

    @property
    def peak(self) -> int:
        prefill = self.kv_cache + self.llm_activations + self.logits
        return self.weights + self.visual_features + max(self.vision_activations, prefill)

    @property
    def flops(self) -> float:
        return self.vision_flops + self.llm_flops

    @property
    def seconds(self) -> float | None:
        return self.flops / self.throughput if self.throughput else None


def vision_chunk_bytes(shape: ModelShape, frames: int, height: int, width: int, dtype_bytes: int,
                       previous_chunk: bool = False) -> int:
    """Peak bytes of turning one chunk of ``frames`` frames into visual features
    (:func:`mmlong.planning.towers.tower_chunk_bytes`)."""
    return tower_chunk_bytes(shape, frames, height, width, dtype_bytes, previous_chunk)


def llm_layer_bytes(shape: ModelShape, length: int, dtype_bytes: int) -> int:
    """Largest activations of one decoder layer over ``length`` tokens (sdpa, GQA keys repeated to all heads).

    MLP: residual, normed input, the activated gate, up and their product: ``L x (2 h + 3 f)``. Attention:
    residual, normed input, q, rotated q, k/v repeated to every head, output: ``L x 7 h``; RMSNorm works in
    float32 (``L x h`` twice).
    """
    h = shape.hidden
    mlp = 2 * h + 3 * shape.ffn
    attention = 7 * h
    return length * (max(mlp, attention) * dtype_bytes + 2 * h * 4)


def llm_layer_flops(length: int, hidden: int, q_dim: int, kv_dim: int, ffn: int, causal: bool = False) -> float:
    """One decoder layer over ``length`` tokens: projections and MLP (2 per multiply-add) plus attention.

    ``q_dim`` / ``kv_dim``: query and key/value widths (heads x head_dim). Attention is ``QK^T`` and ``AV``:
    ``4 n^2 q_dim`` in full (what ``torch.utils.flop_counter`` counts), half of it when ``causal`` (what a
    causal kernel needs).
    """
    h = hidden
    per_token = 2 * (h * (q_dim + 2 * kv_dim) + q_dim * h + 3 * h * ffn)
    attention = 4 * length * length * q_dim
    return float(length * per_token + (attention / 2 if causal else attention))


def vision_flops(shape: ModelShape, frames: int, height: int, width: int, chunk_frames: int) -> float:
    """The tower on every chunk: patch embedding, blocks, merger(s) / projector
    (:func:`mmlong.planning.towers.tower_flops`; chunks cut at temporal patches, so their sum is the whole)."""
    return tower_flops(shape, frames, height, width)


def linear_layer_flops(shape: ModelShape, length: int) -> float:
    """One Gated DeltaNet layer (Qwen3.5; Yang et al. 2025, "Gated Delta Networks") over ``length`` tokens:
    projections (qkv, z, b, a, out), the depthwise causal convolution, and the chunked delta rule (chunks of
    ``C = 64``) per value head: ``k_beta k^T`` and ``q k^T`` within a chunk (``4 C d_k`` per token), then per chunk
    the state reads and writes (``6 d_k d_v + 2 C d_v`` per token)."""
    k_heads, v_heads, k_dim, v_dim, kernel = shape.linear
    key, value, h = k_heads * k_dim, v_heads * v_dim, shape.hidden
    conv = 2 * key + value
    projections = 2 * length * (h * (conv + value + 2 * v_heads) + value * h)
    chunk = 64
    padded = math.ceil(length / chunk) * chunk
    rule = v_heads * padded * (4 * chunk * k_dim + 6 * k_dim * v_dim + 2 * chunk * v_dim)
    return float(projections + 2 * conv * (length + kernel - 1) * kernel + rule + 2 * length * h * shape.ffn * 3)


def linear_state_bytes(shape: ModelShape, dtype_bytes: int) -> int:
    """Qwen3.5's recurrent state, per linear-attention layer in place of a KV cache: the convolution's last
    ``kernel`` inputs (``conv_dim x kernel``) and the float32 ``value heads x d_k x d_v`` delta-rule state."""
    k_heads, v_heads, k_dim, v_dim, kernel = shape.linear
    return (2 * k_heads * k_dim + v_heads * v_dim) * kernel * dtype_bytes + v_heads * k_dim * v_dim * 4


def estimate(shape: ModelShape, plan: FramePlan, dtype: str = "float32", logits_kept: int = 1,
             throughput: float | None = None) -> Estimate:
    """The analytic peak memory and FLOPs of sampling -> vision tower (chunked) -> prefill for ``plan``."""
    b = DTYPE_BYTES.get(dtype)
    if b is None:
        raise ConfigError(f"unknown dtype {dtype!r}; dtypes: {', '.join(DTYPE_BYTES)}")
    weights = (shape.llm_parameters() + shape.vision_parameters()) * b
    whole = shape.vision is not None and shape.vision.kind == "siglip"  # VideoLLaMA3: one call (DiffFP)
    chunk = plan.frames if whole else min(plan.frames, max(1, plan.chunk_frames))
    vision_act = vision_chunk_bytes(shape, chunk, plan.height, plan.width, b, previous_chunk=plan.frames > chunk)
    copies = 1 + (shape.vision.deepstack if shape.vision else 0)  # Qwen3-VL: DeepStack features ride along
    features = (plan.visual_tokens + plan.compressed_tokens) * shape.hidden * 4 * copies  # float32 on host
    lengths = plan.layer_lengths or (plan.prompt_tokens,)
    linear = set(shape.linear_layers)
    kv = 2 * shape.kv_dim * b * sum(n for i, n in enumerate(lengths) if i not in linear)
    kv += len(linear) * linear_state_bytes(shape, b) if linear else 0
    embeds = plan.prompt_tokens * shape.hidden * b * 2  # spliced prompt and the hidden state it becomes
    rotary = 3 * 2 * plan.prompt_tokens * shape.dim_head * 4
    activations = embeds + rotary + llm_layer_bytes(shape, max(lengths), b)
    logits = logits_kept * shape.vocab * (b + 4)
    if shape.family == "videollama3":  # its forward takes no logits_to_keep: every row's logits are computed
        logits_kept = plan.prompt_tokens
        logits = logits_kept * shape.vocab * b
    gate = 2 if shape.llm == "qwen3.5" else 1  # gated attention: q_proj also gives the gate
    llm = sum(linear_layer_flops(shape, n) if i in linear else
              llm_layer_flops(n, shape.hidden, shape.q_dim, shape.kv_dim, shape.ffn) + 2.0 * n * shape.hidden
              * shape.q_dim * (gate - 1) for i, n in enumerate(lengths))
    llm += 2.0 * logits_kept * shape.hidden * shape.vocab
    vis = vision_flops(shape, plan.frames, plan.height, plan.width, plan.chunk_frames)
    return Estimate(weights, features, vision_act, kv, activations, logits, plan.prompt_tokens, vis, llm,
                    throughput)


def measure_throughput(device: str = "cpu", seconds: float = 0.2) -> float:
    """FLOP/s of a float32 matmul on ``device`` (a short, cheap probe; the planner's time is flops / this)."""
    import time

    import torch

    n = 512
    a = torch.randn(n, n, device=device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or count < 2:
        a @ a
        count += 1
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    return 2.0 * n**3 * count / (time.perf_counter() - start)


def layer_drops(steps: Sequence[Any], num_layers: int, num_visual: int = 1_000_000) -> dict[int, float]:
    """The joint in-LLM schedule ``{layer: fraction of the visual tokens left that is dropped there}`` of
    FastV / PyramidDrop-like steps, from their ``drops(num_layers, num_visual)`` pruning points (keep counts
    taken at a large ``num_visual``, so the fractions are the methods' own ratios).

    A step that prunes through its own hooks instead (DyCoKe's decode-time KV pruning, FrameFusion's
    similarity-driven merging, whose per-layer counts depend on the video) gives its ``schedule(num_layers)``:
    empty for both, so the plan counts their prefill unpruned, an upper bound on memory and FLOPs."""
    drops: dict[int, float] = {}
    for step in steps:
        if not hasattr(step, "drops"):
            for layer, fraction in step.schedule(num_layers).items():
                drops[layer] = 1.0 - (1.0 - drops.get(layer, 0.0)) * (1.0 - fraction)
            continue
        left = num_visual
        for point in sorted(step.drops(num_layers, num_visual), key=lambda d: d.layer):
            fraction = 1.0 - point.keep / left if left else 0.0
            drops[point.layer] = 1.0 - (1.0 - drops.get(point.layer, 0.0)) * (1.0 - fraction)
            left = point.keep
    return drops
