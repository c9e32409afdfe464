"""Tiny random-init vision-language models for tests: configs, tokenizers and processors built here, offline.

Each builder returns ``(model, processor)`` with a fixed seed. Tokenizers are small BPEs trained with the
``tokenizers`` library on a few sentences, wrapped as ``PreTrainedTokenizerFast`` with the family's special
tokens; image/video processors are the family's own classes constructed from arguments. Nothing is downloaded.
"""

from __future__ import annotations

import numpy as np
import torch

CORPUS = (
    "a cat sits on the red sofa and looks at the camera",
    "the dog runs across a green field chasing a ball",
    "what happens in the video? describe the scene in one sentence",
    "question: which animal appears first? options: a cat, a dog, a bird, a fish",
    "best option: the answer is a cat. the video shows a kitchen, a street and a park",
    "frame from 00:05: the man opens the door and walks outside into the rain",
)


def build_bpe_tokenizer(special_tokens: list[str], vocab_size: int = 300, **named: str):
    """A byte-level BPE trained on :data:`CORPUS`, with ``special_tokens`` first (ids 0..n-1).

    ``named`` sets tokenizer attributes such as ``eos_token="<|im_end|>"``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(list(CORPUS), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, **named)
    tokenizer.add_special_tokens({"additional_special_tokens": list(special_tokens)})
    return tokenizer


QWEN2_VL_SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>",
]


def build_qwen2_vl(num_layers: int = 4, seed: int = 0, hidden: int = 64):
    """A tiny Qwen2-VL (``num_layers`` text layers, 2 vision blocks, patch 14, merge 2, temporal patch 2)."""
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = build_bpe_tokenizer(QWEN2_VL_SPECIAL, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN2_VL_SPECIAL}
    heads = 4
    head_dim = hidden // heads
    config = Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=num_layers,
            num_attention_heads=heads,
            num_key_value_heads=2,
            max_position_embeddings=4096,
            rope_parameters=dict(rope_type="default", rope_theta=10000.0,
                                 mrope_section=[head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]),
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=hidden, num_heads=2, mlp_ratio=2,
                           patch_size=14, temporal_patch_size=2, spatial_merge_size=2),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    config.text_config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    pixels = dict(min_pixels=56 * 56, max_pixels=112 * 112)
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**pixels, cap_pixels_per_frame=False),
    )
    return model, processor


def random_video(num_frames: int = 8, height: int = 112, width: int = 112, seed: int = 0) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` frames: smooth moving colour gradients plus noise (not constant, not pure noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    frames = []
    for t in range(num_frames):
        r = (np.sin(6 * xx + t * 0.7) + 1) * 120
        g = (np.cos(5 * yy - t * 0.5) + 1) * 110
        b = ((xx + yy + t / num_frames) % 1.0) * 250
        img = np.stack([r, g, b], axis=-1) + rng.normal(0, 8, (height, width, 3))
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return torch.from_numpy(np.stack(frames))


def frames_of(video: torch.Tensor, fps: float = 2.0):
    """Wrap ``[T, H, W, 3]`` uint8 as :class:`mmlong.types.Frames` sampled at ``fps``."""
    from mmlong.types import Frames, VideoMeta

    t = video.shape[0]
    meta = VideoMeta(path="generated.mp4", duration=t / fps, fps=fps, num_frames=t,
                     width=int(video.shape[2]), height=int(video.shape[1]), decoder="test")
    return Frames(data=video, indices=torch.arange(t), timestamps=torch.arange(t, dtype=torch.float64) / fps,
                  meta=meta)
