"""The newer families for ``mmlong bench prefill --arch``: random-init Qwen3-VL, Qwen3.5, InternVL3.5 and VideoLLaMA3
of real shapes.

Each :class:`Arch` builds a random-init model whose language model has a released checkpoint's shape (the
planner's :func:`mmlong.planning.families.family_shapes`; the vision tower is one small block: it is not timed),
random visual features of the count a real video gives, and the prompt the family's adapter builds, so the
prefill sees the same sequence layout and positions:

- ``qwen3-vl`` (Qwen3-VL-2B: hidden 2048, 28 layers, 16 heads of 128, 8 KV heads, MLP 6144): 32-px merged
  patches per temporal patch of 2 frames (448 px: 14x14 = 196 tokens), one ``<t seconds><|vision_start|> ...
  <|vision_end|>`` block each (6 + 1 text tokens), interleaved M-RoPE per block
  (:mod:`mmlong.models.native.qwen3_vl`), DeepStack features (3 levels) added after layers 0-2
  (:class:`~mmlong.models.native.deepstack.DeepStackHooks`);
- ``internvl`` (InternVL3.5-1B: the Qwen3-0.6B language model, hidden 1024, 28 layers, 16 heads of 128, 8 KV
  heads, MLP 3072): 256 pixel-shuffled tokens per 448-px frame, one ``FrameN: <img> ... </img>`` line each
  (5 + 2 text tokens), 1-D positions (:mod:`mmlong.models.native.internvl`);
- ``qwen3.5`` (Qwen3.5-0.8B: hidden 1024, 24 layers of which 18 Gated DeltaNet, 8 heads of 256, 2 KV heads, MLP
  3584): Qwen3-VL's layout without DeepStack;
- ``videollama3`` (VideoLLaMA3-2B: the Qwen2.5-1.5B language model, hidden 1536, 28 layers, 12 heads, 2 KV
  heads, MLP 8960): 2x2-pooled 14-px patches per frame (448 px: 256 tokens), one ``Time t.ts:`` entry each,
  1-D positions (:mod:`mmlong.models.native.video_llama_3`).

:func:`family_config` writes a :class:`~mmlong.planning.shapes.ModelShape` as the family's transformers config
(also for ``mmlong bench plan``'s checks, :mod:`mmlong.apps.bench.plan_family`).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

VOCAB = 4096
#: text tokens before / after each visual block (Qwen3-VL / Qwen3.5: ``<t seconds><|vision_start|>`` ...
#: ``<|vision_end|>``; InternVL: ``FrameN: <img>`` ... ``</img>``; VideoLLaMA3: ``Time t.ts:`` ... ``,``)
BLOCK_TEXT = {"qwen3-vl": (6, 1), "qwen3.5": (6, 1), "internvl": (5, 2), "videollama3": (6, 1)}
SHAPE_NAMES = {"qwen3-vl": ("2b", "4b", "8b"), "qwen3.5": ("0.8b", "2b"), "internvl": ("1b", "2b", "8b"),
               "videollama3": ("2b", "7b")}
DEEPSTACK_LEVELS = 3


def arch_shape(name: str, size: str, tower: bool = False) -> Any:
    """The :class:`~mmlong.planning.shapes.ModelShape` of family ``name`` at ``size`` (a released size, or ``tiny``),
    with the bench's vocabulary; ``tower=False`` swaps the vision tower for one small block (it is not timed)."""
    from dataclasses import replace

    from mmlong.planning.families import family_shapes
    from mmlong.planning.shapes import VisionShape

    prefix = {"internvl": "internvl3.5", "videollama3": "videollama3"}.get(name, name)
    base = family_shapes()[f"{prefix}-{SHAPE_NAMES[name][0]}" if size == "tiny" else f"{prefix}-{size}"]
    if size == "tiny":
        linear = tuple(i for i in range(4) if i % 2 == 0) if base.linear_layers else ()
        base = replace(base, hidden=128, layers=4, heads=4, kv_heads=2, ffn=256, head_dim=32,
                       linear_layers=linear, linear=(2, 4, 16, 16, 4) if linear else base.linear)
    shape = replace(base, vocab=VOCAB, tied=True)
    if not tower:
        v = base.vision
        small = VisionShape(DEEPSTACK_LEVELS if v.deepstack else 1, 32, 2, 64, v.patch, v.merge, v.temporal_patch,
                            kind=v.kind, deepstack=v.deepstack, pos_embed=16 if v.pos_embed else 0,
                            frame_side=v.frame_side)
        shape = replace(shape, vision=small)
    return shape


@dataclass(frozen=True)
class Arch:
    """One family's bench model and prompt layout (see the module docstring)."""

    name: str
    side: int  # pixels per merged token side
    frames_per_block: int

    def shape(self, size: str, tower: bool = False) -> Any:
        return arch_shape(self.name, size, tower)

    def build(self, shape: Any, device: str, dtype: str, seed: int) -> Any:
        return build_family(shape, device, dtype, seed)


def _text(shape: Any, **extra: Any) -> dict:
    return dict(vocab_size=shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.ffn,
                num_hidden_layers=shape.layers, num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
                head_dim=shape.dim_head, max_position_embeddings=65536, bos_token_id=VOCAB - 5,
                eos_token_id=VOCAB - 5, pad_token_id=VOCAB - 5, tie_word_embeddings=shape.tied, **extra)


def family_config(shape: Any) -> Any:
    """The transformers config of a :class:`~mmlong.planning.shapes.ModelShape` of a newer family (random-init
    builds for ``bench prefill`` and ``bench plan``; ``mmlong.planning.families.family_shape`` reads it back)."""
    v = shape.vision
    tokens = dict(image_token_id=VOCAB - 1, video_token_id=VOCAB - 2)
    if shape.family in ("qwen3-vl", "qwen3.5"):
        from transformers import Qwen3_5Config, Qwen3VLConfig

        d = shape.dim_head
        rotary = d // 4 if shape.family == "qwen3.5" else d  # Qwen3.5 rotates a quarter of each head
        section = [rotary // 2 - 2 * (3 * rotary // 16), 3 * rotary // 16, 3 * rotary // 16]
        rope = dict(rope_type="default", rope_theta=5e6, mrope_section=section, mrope_interleaved=True)
        vision = dict(depth=v.depth, hidden_size=v.embed, intermediate_size=v.mlp, num_heads=v.heads,
                      out_hidden_size=shape.hidden, patch_size=v.patch, temporal_patch_size=v.temporal_patch,
                      spatial_merge_size=v.merge, num_position_embeddings=v.pos_embed)
        ids = dict(**tokens, vision_start_token_id=VOCAB - 3, vision_end_token_id=VOCAB - 4)
        if shape.family == "qwen3-vl":
            vision["deepstack_visual_indexes"] = list(range(min(v.deepstack, v.depth)))
            return Qwen3VLConfig(text_config=_text(shape, rope_parameters=rope), vision_config=vision,
                                 tie_word_embeddings=shape.tied, **ids)
        k_heads, v_heads, k_dim, v_dim, kernel = shape.linear
        rope["partial_rotary_factor"] = 0.25
        types = ["linear_attention" if i in shape.linear_layers else "full_attention" for i in range(shape.layers)]
        text = _text(shape, rope_parameters=rope, layer_types=types, linear_num_key_heads=k_heads,
                     linear_num_value_heads=v_heads, linear_key_head_dim=k_dim, linear_value_head_dim=v_dim,
                     linear_conv_kernel_dim=kernel)
        return Qwen3_5Config(text_config=text, vision_config=vision, tie_word_embeddings=shape.tied, **ids)
    if shape.family == "internvl":
        from transformers import InternVLConfig

        vision = dict(hidden_size=v.embed, num_hidden_layers=v.depth, num_attention_heads=v.heads,
                      intermediate_size=v.mlp, image_size=[v.frame_side, v.frame_side], patch_size=[v.patch, v.patch],
                      attention_bias=v.qkv_bias)
        return InternVLConfig(vision_config=vision, text_config=dict(model_type="qwen3", **_text(shape)),
                              image_token_id=VOCAB - 1, downsample_ratio=1 / v.merge, tie_word_embeddings=shape.tied,
                              image_seq_length=(v.frame_side // v.patch) ** 2 // v.merge**2)
    from transformers import VideoLlama3Config

    vision = dict(hidden_size=v.embed, intermediate_size=v.mlp, num_hidden_layers=v.depth, num_attention_heads=v.heads,
                  patch_size=v.patch)
    return VideoLlama3Config(text_config=dict(model_type="qwen2", **_text(shape)), vision_config=vision,
                             tie_word_embeddings=shape.tied, **tokens)


def build_family(shape: Any, device: str, dtype: str, seed: int) -> Any:
    """A seeded random-init model of ``shape`` (its family's unmodified transformers class), sdpa attention."""
    import torch
    from transformers import AutoModelForImageTextToText

    from mmlong.models.loading import resolve_dtype

    config = family_config(shape)
    config.text_config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config)
    return model.eval().to(device=device, dtype=resolve_dtype(dtype))


ARCHS = {
    "qwen3-vl": Arch("qwen3-vl", side=32, frames_per_block=2),
    "qwen3.5": Arch("qwen3.5", side=32, frames_per_block=2),
    "internvl": Arch("internvl", side=28, frames_per_block=1),
    "videollama3": Arch("videollama3", side=28, frames_per_block=1),
}


def arch_tokens(arch: Arch, frames: int, resolution: int, hidden: int, seed: int) -> Any:
    """Random features on the family's grid: one block per ``frames_per_block`` frames, ``resolution // side``
    tokens a side (InternVL: always 448 px, 16x16); Qwen3-VL's carry DeepStack ``layer_features`` too."""
    import torch

    from mmlong.types import VisualTokens

    blocks = max(1, frames // arch.frames_per_block)
    side = 16 if arch.name == "internvl" else max(1, resolution // arch.side)
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(blocks, side, side, hidden, generator=gen) * 0.02
    tokens = VisualTokens.from_grid(features, torch.arange(blocks, dtype=torch.float64) * arch.frames_per_block)
    step = arch.frames_per_block
    positions = tokens.positions.clone()
    positions[:, 0] *= step
    tokens = tokens.replace(positions=positions, frame_ids=tokens.frame_ids * step,
                            meta={"family": arch.name, "temporal_patch_size": step})
    if arch.name == "qwen3-vl":  # DeepStack features ride along
        stacked = torch.randn(tokens.num_tokens, DEEPSTACK_LEVELS, hidden, generator=gen) * 0.02
        tokens = tokens.replace(layer_features=stacked)
    return tokens


def arch_prompt(arch: Arch, model: Any, tokens: Any, text_before: int, text_after: int, seed: int):
    """``(inputs_embeds [1, L, D], visual_mask [L], position_ids, side)``: the family's block layout around the
    (compressed) tokens; ``side(layers, pruner)`` is the context manager the family adds (DeepStack) or a no-op."""
    import torch

    from mmlong.models.native.qwen2_vl import mrope_offsets
    from mmlong.models.positions import as_position_ids, mrope_positions, positions_1d
    from mmlong.models.prompt_inputs import splice_embeddings

    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)

    def text(count: int) -> torch.Tensor:
        return torch.randint(0, VOCAB - 8, (count,), generator=gen)

    pre, post = BLOCK_TEXT[arch.name]
    pieces, segments, order = [text(text_before)], [text_before], []
    for frame_id in tokens.frames().tolist():
        rows = (tokens.frame_ids == frame_id).nonzero().flatten()
        pieces += [text(pre), tokens.features[rows], text(post)]
        offsets, extent = mrope_offsets(tokens.select(rows), 1)
        offsets[:, 0] = 0.0
        segments += [pre, (offsets, extent), post]
        order.append(rows)
    pieces.append(text(text_after))
    segments.append(text_after)
    embeds, visual_mask = splice_embeddings(model.get_input_embeddings(), pieces)
    if arch.name in ("qwen3-vl", "qwen3.5"):
        position_ids = as_position_ids(mrope_positions(segments, delta=float(tokens.position_step)), device)
        position_ids = position_ids.unsqueeze(1)
    else:
        position_ids = as_position_ids(positions_1d(visual_mask, delta=float(tokens.position_step)), device)
        position_ids = position_ids.unsqueeze(0)

    def side(layers: Any, pruner: Any) -> Any:
        if tokens.layer_features is None:
            return nullcontext()
        from mmlong.models.native.deepstack import DeepStackHooks

        stacked = tokens.layer_features[torch.cat(order)].transpose(0, 1).to(device, embeds.dtype)
        return DeepStackHooks(layers, visual_mask, stacked, pruner, arch.name)

    return embeds, visual_mask, position_ids, side
