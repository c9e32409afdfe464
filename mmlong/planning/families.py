"""The planner's shapes of the newer families: Qwen3-VL, Qwen3.5, InternVL3.5 and VideoLLaMA3.

:func:`family_shape` reads a checkpoint's ``config.json`` (``model_type`` ``qwen3_vl``, ``qwen3_5``, ``internvl``,
``video_llama_3``) into a :class:`~mmlong.planning.shapes.ModelShape`; :func:`family_shapes` holds the released
sizes, so ``--shape qwen3-vl-2b`` (or ``--model Qwen/Qwen3-VL-2B-Instruct`` without a local copy) plans without
weights. The numbers are the released checkpoints' ``config.json`` values (Hugging Face model repositories,
``huggingface.co/<id>/blob/main/config.json``; the table with each source is in ``docs/vlm-families.md``):

- Qwen3-VL (``Qwen/Qwen3-VL-{2B,4B,8B}-Instruct``): Qwen3 language model, a patch-16 tower with a learned position
  table of 2304 entries, 2x2 merger, temporal patch 2, three DeepStack mergers (vision blocks 5/11/17 or 8/16/24).
- Qwen3.5 (``Qwen/Qwen3.5-{0.8B,2B}``): the same tower without DeepStack; a hybrid language model where three of
  every four layers are Gated DeltaNet (linear attention: a fixed recurrent state, no KV cache) and the fourth
  is gated softmax attention (``q_proj`` gives queries and their gate).
- InternVL3.5 (``OpenGVLab/InternVL3_5-{1B,2B,8B}-HF``): InternViT-300M (448-px frames, patch 14, CLS), pixel
  shuffle 0.5 (256 tokens per frame), MLP projector; Qwen3-0.6B / 1.7B / 8B language models.
- VideoLLaMA3 (``DAMO-NLP-SG/VideoLLaMA3-{2B,7B}``, ``-HF`` conversions): a SigLIP-so400m tower (27 blocks of
  1152, patch 14, 2-D RoPE), 2x2 pooling for video, MLP projector; Qwen2.5-1.5B / 7B language models.

>>> s = family_shapes()["qwen3.5-0.8b"]
>>> s.layers, s.full_layers, s.linear_layers[:4], s.kv_dim
(24, 6, (0, 1, 2, 4), 512)
>>> hub_shape_name("OpenGVLab/InternVL3_5-1B-HF"), hub_shape_name("Qwen/Qwen3-VL-8B-Instruct")
('internvl3.5-1b', 'qwen3-vl-8b')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mmlong.errors import ConfigError
from mmlong.planning.dims import ModelShape, VisionShape

#: config.json model_type -> the family's name (as ``--model`` and the registry name it)
FAMILIES = {"qwen3_vl": "qwen3-vl", "qwen3_5": "qwen3.5", "internvl": "internvl", "video_llama_3": "videollama3"}

#: processor pixel defaults when a checkpoint sets none: Qwen3-VL / Qwen3.5 limit the whole clip
#: (``video_preprocessor_config.json``: shortest_edge 4096, longest_edge 25165824), VideoLLaMA3 limits the clip too
#: (its video processor divides ``longest_edge`` by the frame count), InternVL resizes every frame to 448 px
FAMILY_PIXELS = {
    "qwen3-vl": {"min_pixels": 4096, "max_pixels": 25165824, "clip_pixels": 1},
    "qwen3.5": {"min_pixels": 4096, "max_pixels": 25165824, "clip_pixels": 1},
    "videollama3": {"min_pixels": 128 * 28 * 28, "max_pixels": 28 * 28 * 768, "clip_pixels": 1},
    "internvl": {"frame_side": 448},
}


def _qwen3_tower(depth: int, embed: int, heads: int, mlp: int, deepstack: int) -> VisionShape:
    return VisionShape(depth, embed, heads, mlp, patch=16, merge=2, temporal_patch=2, kind="qwen2-vl",
                       deepstack=deepstack, pos_embed=2304)


def _hybrid(layers: int) -> tuple[int, ...]:
    """Qwen3.5's layer types: every fourth layer full attention, the others Gated DeltaNet."""
    return tuple(i for i in range(layers) if (i + 1) % 4)


INTERNVIT_300M = VisionShape(24, 1024, 16, 4096, patch=14, merge=2, temporal_patch=1, kind="internvit",
                             frame_side=448)
SIGLIP_VL3 = VisionShape(27, 1152, 16, 4304, patch=14, merge=2, temporal_patch=1, kind="siglip")
QWEN35_LINEAR = (16, 16, 128, 128, 4)  # linear_num_key_heads, linear_num_value_heads, key/value head dims, conv


def family_shapes() -> dict[str, ModelShape]:
    """The released checkpoints' shapes (see the module docstring for where each number comes from)."""
    s = ModelShape
    return {
        "qwen3-vl-2b": s("Qwen3-VL-2B", 2048, 28, 16, 8, 6144, 151936, head_dim=128, tied=True, llm="qwen3",
                         vision=_qwen3_tower(24, 1024, 16, 4096, 3), family="qwen3-vl"),
        "qwen3-vl-4b": s("Qwen3-VL-4B", 2560, 36, 32, 8, 9728, 151936, head_dim=128, tied=True, llm="qwen3",
                         vision=_qwen3_tower(24, 1024, 16, 4096, 3), family="qwen3-vl"),
        "qwen3-vl-8b": s("Qwen3-VL-8B", 4096, 36, 32, 8, 12288, 151936, head_dim=128, tied=False, llm="qwen3",
                         vision=_qwen3_tower(27, 1152, 16, 4304, 3), family="qwen3-vl"),
        "qwen3.5-0.8b": s("Qwen3.5-0.8B", 1024, 24, 8, 2, 3584, 248320, head_dim=256, tied=True, llm="qwen3.5",
                          vision=_qwen3_tower(12, 768, 12, 3072, 0), linear_layers=_hybrid(24),
                          linear=QWEN35_LINEAR, family="qwen3.5"),
        "qwen3.5-2b": s("Qwen3.5-2B", 2048, 24, 8, 2, 6144, 248320, head_dim=256, tied=True, llm="qwen3.5",
                        vision=_qwen3_tower(24, 1024, 16, 4096, 0), linear_layers=_hybrid(24),
                        linear=QWEN35_LINEAR, family="qwen3.5"),
        "internvl3.5-1b": s("InternVL3.5-1B", 1024, 28, 16, 8, 3072, 151936, head_dim=128, tied=False, llm="qwen3",
                            vision=INTERNVIT_300M, family="internvl"),
        "internvl3.5-2b": s("InternVL3.5-2B", 2048, 28, 16, 8, 6144, 151936, head_dim=128, tied=False, llm="qwen3",
                            vision=INTERNVIT_300M, family="internvl"),
        "internvl3.5-8b": s("InternVL3.5-8B", 4096, 36, 32, 8, 12288, 151936, head_dim=128, tied=False,
                            llm="qwen3", vision=INTERNVIT_300M, family="internvl"),
        "videollama3-2b": s("VideoLLaMA3-2B", 1536, 28, 12, 2, 8960, 151936, head_dim=128, tied=True, llm="qwen2",
                            vision=SIGLIP_VL3, family="videollama3"),
        "videollama3-7b": s("VideoLLaMA3-7B", 3584, 28, 28, 4, 18944, 152064, head_dim=128, tied=False,
                            llm="qwen2", vision=SIGLIP_VL3, family="videollama3"),
    }


def hub_shape_name(model: str) -> str | None:
    """The :func:`family_shapes` name of a released checkpoint id (``Qwen/Qwen3-VL-2B-Instruct`` ->
    ``qwen3-vl-2b``), or None when it names none of them."""
    name = model.lower().rsplit("/", 1)[-1].replace("_", ".")
    name = re.sub(r"-(instruct|hf|thinking)$", "", re.sub(r"-(instruct|hf|thinking)$", "", name))
    return name if name in family_shapes() else None


def _int(mapping: Mapping[str, Any], *keys: str, default: Any = None) -> int:
    for key in keys:
        value = mapping.get(key)
        if value is not None:
            return int(value[0] if isinstance(value, (list, tuple)) else value)
    if default is None:
        raise KeyError(keys[0])
    return int(default)


def _language(config: Mapping[str, Any], name: str, llm: str) -> dict[str, Any]:
    text = dict(config.get("text_config") or {})
    hidden, heads = _int(text, "hidden_size"), _int(text, "num_attention_heads")
    tied = config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))
    return dict(name=name, hidden=hidden, layers=_int(text, "num_hidden_layers"), heads=heads,
                kv_heads=_int(text, "num_key_value_heads", default=heads), ffn=_int(text, "intermediate_size"),
                vocab=_int(text, "vocab_size", default=config.get("vocab_size")),
                head_dim=_int(text, "head_dim", default=hidden // heads), tied=bool(tied), llm=llm)


def family_shape(config: Mapping[str, Any], name: str = "model") -> ModelShape:
    """The shape of a Qwen3-VL, Qwen3.5, InternVL or VideoLLaMA3 ``config.json`` (transformers' layout)."""
    kind = config.get("model_type")
    vis = dict(config.get("vision_config") or {})
    text = dict(config.get("text_config") or {})
    try:
        if kind in ("qwen3_vl", "qwen3_5"):
            llm = "qwen3.5" if kind == "qwen3_5" else "qwen3"
            fields = _language(config, name, llm)
            vision = VisionShape(_int(vis, "depth"), _int(vis, "hidden_size"), _int(vis, "num_heads"),
                                 _int(vis, "intermediate_size"), _int(vis, "patch_size", default=16),
                                 _int(vis, "spatial_merge_size", default=2), _int(vis, "temporal_patch_size",
                                                                                  default=2),
                                 _int(vis, "in_channels", default=3), kind="qwen2-vl",
                                 deepstack=len(vis.get("deepstack_visual_indexes") or []),
                                 pos_embed=_int(vis, "num_position_embeddings", default=2304))
            if kind == "qwen3_5":
                types = text.get("layer_types") or ["full_attention" if (i + 1) % int(
                    text.get("full_attention_interval", 4)) == 0 else "linear_attention"
                    for i in range(fields["layers"])]
                fields["linear_layers"] = tuple(i for i, t in enumerate(types) if t == "linear_attention")
                fields["linear"] = (_int(text, "linear_num_key_heads"), _int(text, "linear_num_value_heads"),
                                    _int(text, "linear_key_head_dim"), _int(text, "linear_value_head_dim"),
                                    _int(text, "linear_conv_kernel_dim", default=4))
            return ModelShape(**fields, vision=vision, family=FAMILIES[kind])
        if kind == "internvl":
            llm = "qwen3" if text.get("model_type", "qwen2") == "qwen3" else "qwen2"
            side = _int(vis, "image_size", default=448)
            merge = round(1 / float(config.get("downsample_ratio", 0.5)))
            vision = VisionShape(_int(vis, "num_hidden_layers"), _int(vis, "hidden_size"),
                                 _int(vis, "num_attention_heads"), _int(vis, "intermediate_size"),
                                 _int(vis, "patch_size", default=14), merge, 1, _int(vis, "num_channels", default=3),
                                 kind="internvit", frame_side=side,
                                 qkv_bias=bool(vis.get("attention_bias", True)))
            return ModelShape(**_language(config, name, llm), vision=vision, family="internvl")
        if kind == "video_llama_3":
            vision = VisionShape(_int(vis, "num_hidden_layers"), _int(vis, "hidden_size"),
                                 _int(vis, "num_attention_heads"), _int(vis, "intermediate_size"),
                                 _int(vis, "patch_size", default=14), 2, 1, _int(vis, "num_channels", default=3),
                                 kind="siglip")
            return ModelShape(**_language(config, name, "qwen2"), vision=vision, family="videollama3")
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"model config lacks a setting the planner needs ({err})", name) from err
    raise ConfigError(f"the planner has no shape for model type {kind!r}", name)
