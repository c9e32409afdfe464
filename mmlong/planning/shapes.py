"""Qwen2-VL model shapes for the planner: from a checkpoint's ``config.json``, a released size, or a random-init size.

A :class:`ModelShape` holds what the analytic model of :mod:`mmlong.planning.estimate` needs (Wang et al. 2024,
"Qwen2-VL"): the language model's width, depth, heads, KV heads, MLP width and vocabulary, and the vision
tower (:class:`VisionShape`: blocks, width, patch size, the 2x2 merger, the temporal patch of 2 frames).
:func:`load_shape` reads a checkpoint folder (with the processor's pixel limits), a released checkpoint id
(``Qwen/Qwen2-VL-2B-Instruct``) or a named size (``0.5b``, ``2b``, ``tiny``).

>>> named_shape("tiny").layers, named_shape("2b").vision.embed
(4, 1280)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from mmlong.errors import ConfigError
from mmlong.limits import loads_json
from mmlong.planning.dims import ModelShape, VisionShape

__all__ = ["ModelShape", "VisionShape", "load_shape", "named_shape", "shape_from_config", "shape_names"]

#: Language-model shapes: (hidden, layers, heads, kv_heads, intermediate). 0.5b/1.5b are Qwen2-0.5B/1.5B.
LLM_SIZES = {
    "0.5b": (896, 24, 14, 2, 4864),
    "1.5b": (1536, 28, 12, 2, 8960),
    "small": (256, 6, 4, 2, 1024),
    "tiny": (128, 4, 4, 2, 256),
}
#: The vision tower of the random-init shapes (depth, embed_dim, heads); Qwen2-VL-2B's real one is (32, 1280, 16).
SHAPE_VISION = {"0.5b": (1, 32, 2), "1.5b": (1, 32, 2), "small": (2, 64, 2), "tiny": (1, 32, 2)}
SHAPE_VOCAB = 4096


def released_shapes() -> dict[str, ModelShape]:
    """The released Qwen2-VL checkpoints' shapes (their config.json), for planning without a local copy."""
    vision = VisionShape(32, 1280, 16, 5120)
    return {
        "2b": ModelShape("Qwen2-VL-2B", 1536, 28, 12, 2, 8960, 151936, tied=True, vision=vision),
        "7b": ModelShape("Qwen2-VL-7B", 3584, 28, 28, 4, 18944, 152064, tied=False, vision=vision),
    }


#: ``config.json`` model types planned by :mod:`mmlong.planning.families` (the others are Qwen2-VL's)
FAMILY_TYPES = ("qwen3_vl", "qwen3_5", "internvl", "video_llama_3")


def shape_names() -> list[str]:
    from mmlong.planning.families import family_shapes

    return sorted(LLM_SIZES) + sorted(released_shapes()) + sorted(family_shapes())


def named_shape(size: str) -> ModelShape:
    """A random-init Qwen2-VL shape of :data:`LLM_SIZES` (the one ``mmlong bench prefill --size`` builds), or a
    released checkpoint's (``2b``, ``7b``)."""
    from mmlong.planning.families import family_shapes

    released = {**released_shapes(), **family_shapes()}
    if size in released:
        return released[size]
    if size not in LLM_SIZES:
        raise ConfigError(f"unknown model shape {size!r}; shapes: {', '.join(shape_names())}")
    hidden, layers, heads, kv_heads, ffn = LLM_SIZES[size]
    depth, embed, vheads = SHAPE_VISION[size]
    return ModelShape(f"qwen2-vl-{size}", hidden, layers, heads, kv_heads, ffn, SHAPE_VOCAB, tied=True,
                      vision=VisionShape(depth, embed, vheads, 4 * embed))


def shape_from_config(config: Mapping[str, Any], name: str = "model") -> ModelShape:
    """From a Qwen2-VL ``config.json`` (nested ``text_config``/``vision_config`` or the older flat layout)."""
    if config.get("model_type") in FAMILY_TYPES:
        from mmlong.planning.families import family_shape

        return family_shape(config, name)
    text = dict(config.get("text_config") or config)
    vis = dict(config.get("vision_config") or {})
    try:
        hidden = int(text["hidden_size"])
        heads = int(text["num_attention_heads"])
        shape = ModelShape(
            name, hidden, int(text["num_hidden_layers"]), heads, int(text.get("num_key_value_heads") or heads),
            int(text["intermediate_size"]), int(text.get("vocab_size") or config.get("vocab_size")),
            head_dim=int(text.get("head_dim") or hidden // heads),
            tied=bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"model config lacks a language-model setting ({err})", name) from err
    if vis:
        embed = int(vis.get("embed_dim") or vis.get("hidden_size"))
        vision = VisionShape(int(vis.get("depth") or vis.get("num_hidden_layers")), embed,
                             int(vis.get("num_heads") or vis.get("num_attention_heads")),
                             int(vis.get("intermediate_size") or embed * float(vis.get("mlp_ratio", 4))),
                             int(vis.get("patch_size", 14)), int(vis.get("spatial_merge_size", 2)),
                             int(vis.get("temporal_patch_size", 2)), int(vis.get("in_channels", 3)))
        shape = replace(shape, vision=vision)
    return shape


def load_shape(model: str) -> tuple[ModelShape, dict[str, int]]:
    """A shape and the processor's pixel limits from a checkpoint folder, a named shape (``0.5b``, ``2b``) or
    a released checkpoint id (``Qwen/Qwen2-VL-2B-Instruct``)."""
    folder = Path(model).expanduser()
    if not folder.is_dir():
        from mmlong.planning.families import hub_shape_name

        name = hub_shape_name(model)
        return named_shape(name or model.lower().rsplit("/", 1)[-1].removeprefix("qwen2-vl-").removesuffix(
            "-instruct")), {}
    path = folder / "config.json"
    try:
        config = loads_json(path.read_text(), "config.json")
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read config.json ({err})", str(folder)) from err
    if not isinstance(config, dict):
        raise ConfigError(f"config.json holds a {type(config).__name__}, not a mapping of settings", str(folder))
    if config.get("model_type") not in ("qwen2_vl", "qwen2_5_vl", *FAMILY_TYPES):
        raise ConfigError(f"the planner knows Qwen2-VL, Qwen3-VL, Qwen3.5, InternVL and VideoLLaMA3 shapes; this is "
                          f"{config.get('model_type')!r}", str(folder))
    return shape_from_config(config, str(folder)), processor_pixels(folder)


def processor_pixels(folder: Path) -> dict[str, int]:
    """``min_pixels`` / ``max_pixels`` (and ``total_pixels`` when the processor caps a whole video) from a
    checkpoint's ``processor_config.json`` (its ``video_processor``), ``video_preprocessor_config.json`` or
    ``preprocessor_config.json``, when they set them."""
    for name in ("processor_config.json", "video_preprocessor_config.json", "preprocessor_config.json"):
        try:
            data = loads_json((folder / name).read_text(), name)
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        data = data.get("video_processor", data) if name == "processor_config.json" else data
        size = data.get("size") or {}
        if size.get("height"):  # InternVL: every frame resized to one square
            return {"frame_side": int(size["height"])}
        found = {"min_pixels": data.get("min_pixels") or size.get("shortest_edge"),
                 "max_pixels": data.get("max_pixels") or size.get("longest_edge")}
        if data.get("cap_pixels_per_frame"):  # transformers' qwen-vl-utils cap: 90 % of max_video_tokens
            side = int(data.get("patch_size", 14)) * int(data.get("merge_size", 2))
            found["total_pixels"] = int(0.9 * int(data.get("max_video_tokens", 128000)) * side * side)
        found = {k: int(v) for k, v in found.items() if v}
        if found:
            return found
    return {}
