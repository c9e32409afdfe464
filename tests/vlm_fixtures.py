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


LLAVA_ONEVISION_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]


def build_llava_onevision(num_layers: int = 4, seed: int = 0, hidden: int = 64, image_size: int = 70):
    """A tiny LLaVA-OneVision: SigLIP tower (patch 14 on ``image_size`` frames: a 5x5 grid, pooled to 3x3 as the
    real 27x27 grid is pooled to 14x14), 2-layer projector, Qwen2 text model with ``num_layers`` layers."""
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    tokenizer = build_bpe_tokenizer(LLAVA_ONEVISION_SPECIAL, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in LLAVA_ONEVISION_SPECIAL}
    patch = 14
    config = LlavaOnevisionConfig(
        text_config=dict(
            model_type="qwen2",
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=num_layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=4096,
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=2, image_size=image_size, patch_size=patch,
                           vision_use_head=False),
        image_token_index=ids["<image>"],
        video_token_index=ids["<video>"],
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=[[image_size, image_size]],
    )
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    size = {"height": image_size, "width": image_size}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=[[image_size, image_size]]),
        tokenizer=tokenizer,
        video_processor=LlavaOnevisionVideoProcessor(size=size),
        num_image_tokens=(image_size // patch) ** 2,
        vision_feature_select_strategy="full",
    )
    return model, processor


SMOLVLM_SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<image>", "<video>", "<fake_token_around_image>",
    "<global-img>",
]


def build_smolvlm(num_layers: int = 4, seed: int = 0, hidden: int = 64, image_size: int = 64):
    """A tiny SmolVLM2: SigLIP-style tower (patch 8 on ``image_size`` frames: an 8x8 grid), pixel-shuffle
    connector with scale factor 2 (4x4 = 16 tokens per frame), Llama text model with ``num_layers`` layers."""
    from transformers import (
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    tokenizer = build_bpe_tokenizer(SMOLVLM_SPECIAL, eos_token="<end_of_utterance>", pad_token="<|endoftext|>")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SMOLVLM_SPECIAL}
    patch, scale = 8, 2
    config = SmolVLMConfig(
        text_config=dict(
            model_type="llama",
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=num_layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=4096,
            rms_norm_eps=1e-5,
            bos_token_id=ids["<|im_start|>"],
            eos_token_id=ids["<end_of_utterance>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=image_size, patch_size=patch),
        image_token_id=ids["<image>"],
        scale_factor=scale,
        pad_token_id=ids["<|endoftext|>"],
    )
    torch.manual_seed(seed)
    model = SmolVLMForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<end_of_utterance>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    edge = {"longest_edge": image_size}
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(do_image_splitting=False, size=edge, max_image_size=edge),
        tokenizer=tokenizer,
        video_processor=SmolVLMVideoProcessor(size=edge, max_image_size=edge),
        image_seq_len=(image_size // patch) ** 2 // scale ** 2,
    )
    return model, processor


def stock_generate(model, inputs, max_new_tokens: int):
    """Greedy ``model.generate`` on processor outputs: (new token ids, logits float32 ``[steps, V]``)."""
    ref = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, output_logits=True,
                         return_dict_in_generate=True)
    new_ids = ref.sequences[0, inputs["input_ids"].shape[1]:].tolist()
    return new_ids, torch.stack([step[0].float() for step in ref.logits])


def save_checkpoint(model, processor, directory) -> str:
    """``save_pretrained`` of model + processor (tokenizer included) into ``directory``; returns its path."""
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return str(directory)


def write_remote_code_checkpoint(directory, model_type: str) -> str:
    """A checkpoint directory whose config.json maps to its own Python code (needs trust_remote_code)."""
    import json
    from pathlib import Path

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(
        {"model_type": model_type, "auto_map": {"AutoModel": "modeling_custom.CustomModel"}}))
    (root / "model.safetensors").write_bytes(b"")
    return str(root)


def cli_ask(capsys, video: str, question: str, model: str, *flags: str):
    """Run ``mmlong ask VIDEO QUESTION --model MODEL --json --no-cache FLAGS``: (exit code, JSON or None, stderr)."""
    import json

    from mmlong.apps.cli import main

    capsys.readouterr()
    code = main(["ask", video, question, "--model", model, "--json", "--no-cache", *flags])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err
