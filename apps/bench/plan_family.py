"""``mmlong bench plan`` for the newer families: the planner against measurement on Qwen3-VL, Qwen3.5, InternVL3.5
and VideoLLaMA3 models built from their transformers configs.

``FAMILY:tiny`` is the family's released shape scaled down (:func:`mmlong.apps.bench.prefill_arch.arch_shape`:
hidden 128, 4 layers, Qwen3.5 alternating linear and full attention) with a vision tower of 2 blocks of width 64
(InternViT on 112-px frames); ``FAMILY:SIZE`` a released size (only sensible on a large machine). Each is run
through its adapter's ``encode_frames`` (the family's own video processor and tower) and the prefill of the
family's prompt layout (:func:`mmlong.apps.bench.prefill.prefill` with the family's
:class:`~mmlong.apps.bench.prefill_arch.Arch`), and measured as :func:`mmlong.apps.bench.plan.measure` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

#: the family's adapter and its video processor class (transformers)
ADAPTERS = {
    "qwen3-vl": ("mmlong.models.native.qwen3_vl:Qwen3VLAdapter", "Qwen3VLVideoProcessor"),
    "qwen3.5": ("mmlong.models.native.qwen3_5:Qwen3_5Adapter", "Qwen3VLVideoProcessor"),
    "internvl": ("mmlong.models.native.internvl:InternVLAdapter", "InternVLVideoProcessor"),
    "videollama3": ("mmlong.models.native.video_llama_3:VideoLlama3Adapter", "VideoLlama3VideoProcessor"),
}
#: the processor's pixel limits in the check (whole-clip for the Qwen3 and VideoLLaMA3 processors)
PIXELS = {"qwen3-vl": (64 * 32 * 32, 1024 * 32 * 32), "qwen3.5": (64 * 32 * 32, 1024 * 32 * 32),
          "videollama3": (16 * 28 * 28, 2048 * 28 * 28)}
INTERNVL_SIDE = 112


def family_shape_for(spec: str) -> Any:
    """``FAMILY:SIZE`` -> the model shape the check builds (``tiny``: the scaled-down one with a 2-block tower)."""
    from mmlong.apps.bench.prefill_arch import arch_shape
    from mmlong.planning.shapes import VisionShape

    family, size = spec.split(":", 1)
    shape = arch_shape(family, size, tower=size != "tiny")
    if size == "tiny":
        v = shape.vision
        side = INTERNVL_SIDE if v.kind == "internvit" else 0
        shape = replace(shape, vision=VisionShape(2, 64, 2, 128, v.patch, v.merge, v.temporal_patch, kind=v.kind,
                                                  deepstack=min(v.deepstack, 2), pos_embed=64 if v.pos_embed else 0,
                                                  frame_side=side))
    return replace(shape, name=spec)


def family_adapter(shape: Any, device: str, dtype: str) -> Any:
    """The family's adapter holding a random-init model of ``shape`` and its stock video processor."""
    import importlib
    from types import SimpleNamespace

    import transformers

    from mmlong.apps.bench.prefill_arch import build_family

    path, processor_name = ADAPTERS[shape.family]
    module, name = path.split(":")
    adapter_class = getattr(importlib.import_module(module), name)
    v = shape.vision
    cls = getattr(transformers, processor_name)
    if v.kind == "internvit":
        video_processor = cls(size={"height": v.frame_side, "width": v.frame_side}, do_sample_frames=False)
    else:
        low, high = PIXELS[shape.family]
        extra = {"cap_pixels_per_frame": False} if v.kind == "qwen2-vl" else {}
        video_processor = cls(patch_size=v.patch, merge_size=v.merge, size={"shortest_edge": low, "longest_edge": high},
                              do_sample_frames=False, **extra)
    model = build_family(shape, device, dtype, seed=0).requires_grad_(False)
    adapter = adapter_class(adapter_class.Config(path="random-init", device=device, dtype=dtype))
    return adapter.load(model=model, processor=SimpleNamespace(video_processor=video_processor))


def plan_pixels(shape: Any) -> dict[str, Any]:
    """The planner's limits matching :func:`family_adapter`'s processor."""
    if shape.vision.kind == "internvit":
        return {"frame_side": shape.vision.frame_side}
    low, high = PIXELS[shape.family]
    return {"min_pixels": low, "max_pixels": high, "clip_pixels": True}


def check_families(specs: Sequence[str], frame_counts: Sequence[int], side: int, dtype: str = "float32",
                   device: str = "cpu", *, measure: Any) -> list[dict[str, Any]]:
    """One row per (family shape, frames): measured (``measure``: :func:`mmlong.apps.bench.plan.measure`, which
    ``bench plan`` passes in) and estimated peak and FLOPs, and their ratios."""
    from mmlong.apps.bench.prefill import TEXT_AFTER, TEXT_BEFORE
    from mmlong.apps.bench.prefill_arch import ARCHS, BLOCK_TEXT
    from mmlong.planning.estimate import estimate, frame_plan

    rows = []
    for spec in specs:
        shape = family_shape_for(spec)
        adapter = family_adapter(shape, device, dtype)
        arch = ARCHS[shape.family]
        for frames in frame_counts:
            measured = measure(adapter, frames, side, dtype, arch)
            blocks = -(-frames // arch.frames_per_block)
            text = TEXT_BEFORE + TEXT_AFTER + blocks * sum(BLOCK_TEXT[shape.family])
            plan = frame_plan(shape, frames, side, side, text_tokens=text,
                              chunk_frames=int(getattr(adapter.config, "frames_per_batch", 16)), **plan_pixels(shape))
            rows.append(compare_row(spec, frames, side, measured, plan, estimate(shape, plan, dtype)))
        del adapter
    return rows


def compare_row(size: str, frames: int, side: int, measured: dict[str, Any], plan: Any, est: Any) -> dict[str, Any]:
    """One ``bench plan`` row: the measured figures beside the planner's, and their ratios."""
    return {"size": size, "frames": frames, "resolution": side, **measured,
            "planned_visual_tokens": plan.visual_tokens, "estimated_peak_bytes": est.peak,
            "estimated_flops": int(est.flops), "memory_ratio": round(est.peak / measured["peak_bytes"], 3),
            "flops_ratio": round(est.flops / measured["flops"], 3)}


def meta_flops(name: str, frames: int, side: int = 448, text_tokens: int = 60) -> dict[str, Any]:
    """Counted FLOPs of a released shape (:func:`mmlong.planning.families.family_shapes` ``name``) built on the
    meta device (no weights, no memory), against the planner: the language model's prefill over the planned
    prompt length (every row's logits for VideoLLaMA3, whose forward computes them all; the last row's otherwise),
    and InternViT's tower on ``frames`` frames (the other towers read their patch grid as numbers, which meta
    tensors do not hold, so only their language model is counted)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from mmlong.apps.bench.flops import counted_flops
    from mmlong.apps.bench.prefill_arch import family_config
    from mmlong.planning.estimate import estimate, frame_plan
    from mmlong.planning.families import family_shapes

    shape = family_shapes()[name]
    config = family_config(shape)
    config.text_config._attn_implementation = "sdpa"
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config).eval().requires_grad_(False)
    clip = shape.family != "internvl"
    plan = frame_plan(shape, frames, side, side, text_tokens=text_tokens, min_pixels=side * side,
                      max_pixels=side * side * (frames if clip else 1), clip_pixels=clip)
    est = estimate(shape, plan, "bfloat16")
    row = {"shape": name, "frames": frames, "visual_tokens": plan.visual_tokens,
           "planned_llm_flops": est.llm_flops, "planned_vision_flops": est.vision_flops}
    with torch.inference_mode():
        if shape.family == "internvl":
            pixels = torch.empty(frames, 3, side, side, device="meta")
            _, row["vision_flops"] = counted_flops(lambda: model.model.get_image_features(pixels))
        embeds = torch.empty(1, plan.prompt_tokens, shape.hidden, device="meta")

        def prefill() -> Any:
            hidden = model.model.language_model(inputs_embeds=embeds).last_hidden_state
            return model.lm_head(hidden if shape.family == "videollama3" else hidden[:, -1:])

        _, row["llm_flops"] = counted_flops(prefill)
    return row


def tower_flops_at_size(name: str, frames: int = 2, side: int = 224) -> dict[str, Any]:
    """Counted FLOPs of a released shape's vision tower with its mergers (Qwen3-VL: and DeepStack mergers) or
    projector-free tower (VideoLLaMA3's SigLIP), at its real size: built on the meta device, then given
    uninitialised bfloat16 CPU memory (about 0.8 GB for a 0.4 B tower; the values do not matter to the count), on
    ``frames`` frames of ``side`` px, against :func:`mmlong.planning.towers.tower_flops` (without the projector
    for VideoLLaMA3, whose projector sits outside its tower)."""
    from dataclasses import replace

    import torch
    from transformers import AutoModel

    from mmlong.apps.bench.flops import counted_flops
    from mmlong.apps.bench.prefill_arch import family_config
    from mmlong.planning.families import family_shapes
    from mmlong.planning.towers import tower_flops

    shape = family_shapes()[name]
    v = shape.vision
    with torch.device("meta"):
        model = AutoModel.from_config(family_config(shape)).eval().requires_grad_(False)
    tower = getattr(model, "visual", None) or model.vision_model
    tower = tower.to_empty(device="cpu").to(torch.bfloat16)
    grid = torch.tensor([[frames // v.temporal_patch if v.temporal_patch > 1 else frames, side // v.patch,
                          side // v.patch]])
    pixels = torch.zeros(int(grid.prod()), v.patch_dim, dtype=torch.bfloat16)
    extra = {"merge_sizes": torch.tensor([v.merge])} if v.kind == "siglip" else {}
    with torch.inference_mode():
        _, counted = counted_flops(lambda: tower(pixels, grid_thw=grid, **extra))
    planned = tower_flops(shape, frames, side, side)
    if v.kind == "siglip":  # the projector is the model's, not the tower's
        planned -= tower_flops(replace(shape, vision=replace(v, depth=0)), frames, side, side) - 2 * int(
            grid.prod()) * v.patch_dim * v.embed
    return {"shape": name, "frames": frames, "side": side, "tower_flops": counted, "planned_tower_flops": planned}
