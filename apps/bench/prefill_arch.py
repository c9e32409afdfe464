"""The newer families for ``mmlong bench prefill --arch``: random-init Qwen3-VL and InternVL3.5 of real shapes.

Each :class:`Arch` builds a random-init model whose language model has a released checkpoint's shape (the vision
tower is one small block: it is not timed), random visual features of the count a real video gives, and the
prompt the family's adapter builds, so the prefill sees the same sequence layout and positions:

- ``qwen3-vl`` (Qwen3-VL-2B: hidden 2048, 28 layers, 16 heads of 128, 8 KV heads, MLP 6144): 32-px merged
  patches per temporal patch of 2 frames (448 px: 14x14 = 196 tokens), one ``<t seconds><|vision_start|> ...
  <|vision_end|>`` block each (6 + 1 text tokens), interleaved M-RoPE per block
  (:mod:`mmlong.models.native.qwen3_vl`), DeepStack features (3 levels) added after layers 0-2
  (:class:`~mmlong.models.native.deepstack.DeepStackHooks`);
- ``internvl`` (InternVL3.5-1B: the Qwen3-0.6B language model, hidden 1024, 28 layers, 16 heads of 128, 8 KV
  heads, MLP 3072): 256 pixel-shuffled tokens per 448-px frame, one ``FrameN: <img> ... </img>`` line each
  (5 + 2 text tokens), 1-D positions (:mod:`mmlong.models.native.internvl`).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable

#: released language-model shapes: (hidden, layers, heads, kv_heads, intermediate, head_dim)
ARCH_SIZES = {
    "qwen3-vl": {"2b": (2048, 28, 16, 8, 6144, 128), "4b": (2560, 36, 32, 8, 9728, 128),
                 "tiny": (128, 4, 4, 2, 256, 32)},
    "internvl": {"1b": (1024, 28, 16, 8, 3072, 128), "2b": (2048, 28, 16, 8, 6144, 128),
                 "tiny": (128, 4, 4, 2, 256, 32)},
}
VOCAB = 4096
BLOCK_TEXT = {"qwen3-vl": (6, 1), "internvl": (5, 2)}  # text tokens before / after each visual block
DEEPSTACK_LEVELS = 3


@dataclass(frozen=True)
class Arch:
    """One family's bench model and prompt layout (see the module docstring)."""

    name: str
    build: Callable[[tuple, str, str, int], Any]
    side: int  # pixels per merged token side
    frames_per_block: int

    def shape(self, size: str) -> tuple:
        return ARCH_SIZES[self.name][size]


def _text(shape: tuple, ids: dict[str, int], **extra: Any) -> dict:
    hidden, layers, heads, kv_heads, ffn, head_dim = shape
    return dict(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
                num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim,
                max_position_embeddings=65536, bos_token_id=VOCAB - 5, eos_token_id=VOCAB - 5,
                pad_token_id=VOCAB - 5, **extra)


def build_qwen3_vl(shape: tuple, device: str, dtype: str, seed: int) -> Any:
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    from mmlong.models.loading import resolve_dtype

    head_dim = shape[5]
    section = [head_dim * 3 // 16 + head_dim // 2 - 3 * (head_dim * 3 // 16), head_dim * 3 // 16, head_dim * 3 // 16]
    rope = dict(rope_type="default", rope_theta=5e6, mrope_section=section, mrope_interleaved=True)
    config = Qwen3VLConfig(
        text_config=_text(shape, {}, rope_parameters=rope),
        vision_config=dict(depth=DEEPSTACK_LEVELS, hidden_size=32, intermediate_size=64, num_heads=2,
                           out_hidden_size=shape[0], deepstack_visual_indexes=list(range(DEEPSTACK_LEVELS))),
        image_token_id=VOCAB - 1, video_token_id=VOCAB - 2, vision_start_token_id=VOCAB - 3,
        vision_end_token_id=VOCAB - 4, tie_word_embeddings=True,
    )
    config.text_config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    return Qwen3VLForConditionalGeneration(config).eval().to(device=device, dtype=resolve_dtype(dtype))


def build_internvl(shape: tuple, device: str, dtype: str, seed: int) -> Any:
    import torch
    from transformers import InternVLConfig, InternVLForConditionalGeneration

    from mmlong.models.loading import resolve_dtype

    config = InternVLConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                           image_size=[448, 448], patch_size=[14, 14]),
        text_config=dict(model_type="qwen3", **_text(shape, {}, tie_word_embeddings=True)),
        image_token_id=VOCAB - 1, downsample_ratio=0.5, tie_word_embeddings=True,
    )
    config.text_config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    return InternVLForConditionalGeneration(config).eval().to(device=device, dtype=resolve_dtype(dtype))


ARCHS = {
    "qwen3-vl": Arch("qwen3-vl", build_qwen3_vl, side=32, frames_per_block=2),
    "internvl": Arch("internvl", build_internvl, side=28, frames_per_block=1),
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
    if arch.name == "qwen3-vl":
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
    if arch.name == "qwen3-vl":
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
