"""LLaVA-OneVision on an unmodified transformers model (Li et al. 2024, "LLaVA-OneVision: Easy Visual Task
Transfer"); the same class loads LLaVA-Video checkpoints (Zhang et al. 2024, "Video Instruction Tuning with
Synthetic Data"), whose time instruction this adapter writes.

Video path, as the installed ``LlavaOnevisionModel.get_video_features`` does it: every frame goes through the
SigLIP tower on its own (384 px, patch 14: a 27x27 grid), the 2-layer projector, then the model's own
``apply_pooling`` (2x bilinear down-sampling to ceil(27/2) = 14x14). :meth:`LlavaOneVisionAdapter.encode_frames`
returns those tokens as :class:`~mmlong.types.VisualTokens` on grid ``(T, 14, 14)`` with positions
``(frame, row, column)``. The model appends one learned ``image_newline`` after the whole video (not one per row,
as it does for images); the adapter appends it after the (possibly compressed) visual tokens and keeps it out of
the visual mask, so in-LLM pruning never drops it.

Prompt (the HF chat template, with the original Qwen-1.5 system turn)::

    <|im_start|>system\\nSYSTEM<|im_end|>\\n<|im_start|>user\\n<video>\\nTIME INSTRUCTION\\nQUESTION<|im_end|>\\n
    <|im_start|>assistant\\n

where ``<video>`` stands for the visual tokens + ``image_newline`` and the time instruction (LLaVA-Video's) lists
the sampled frames' times. Position ids are 1-D; V2PE scales the visual increments by ``tokens.position_step``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmlong.encoders.attention import capture_inputs, received_attention
from mmlong.errors import ConfigError
from mmlong.models.native.base import NativeVLMAdapter, NativeVLMConfig
from mmlong.models.positions import as_position_ids, positions_1d
from mmlong.models.prompt_inputs import PromptInputs, placeholder_segments, splice_embeddings, video_duration
from mmlong.models.prompts import answer_prefix, multiple_choice_text
from mmlong.qa import Query
from mmlong.types import Frames, VisualTokens

VIDEO_TOKEN = "<video>"


def time_instruction(duration: float, frame_times: list[float]) -> str:
    """LLaVA-Video's sentence telling the model how long the video is and when each frame was taken.

    >>> text = time_instruction(4.0, [0.0, 2.0])
    >>> text[:text.index(" These")]
    'The video lasts for 4.00 seconds, and 2 frames are uniformly sampled from it.'
    >>> text[text.index("These"):]
    'These frames are located at 0.00s,2.00s.Please answer the following questions related to this video.'
    """
    times = ",".join(f"{t:.2f}s" for t in frame_times)
    return (
        f"The video lasts for {duration:.2f} seconds, and {len(frame_times)} frames are uniformly sampled from it. "
        f"These frames are located at {times}.Please answer the following questions related to this video."
    )


def llava_onevision_prompt(question: str, system: str = "", timing: str = "", answer_prefix: str = "") -> str:
    """The chat text with one ``<video>`` placeholder where the visual tokens and ``image_newline`` go."""
    head = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    body = "\n".join(part for part in (timing, question) if part)
    return f"{head}<|im_start|>user\n{VIDEO_TOKEN}\n{body}<|im_end|>\n<|im_start|>assistant\n{answer_prefix}"


class LlavaOneVisionAdapter(NativeVLMAdapter):
    """``llava-onevision``: LLaVA-OneVision / LLaVA-Video (``llava-hf/*-hf`` checkpoints) from a directory or hub id.

    ``time_instruction``: state the duration and the sampled frames' times before the question (LLaVA-Video's
    prompt); ``system_prompt``: the system turn ("" for none).
    """

    name = "llava-onevision"
    model_type = "llava_onevision"

    @dataclass
    class Config(NativeVLMConfig):
        path: str = "llava-hf/llava-onevision-qwen2-0.5b-ov-hf"
        system_prompt: str = "You are a helpful assistant."
        time_instruction: bool = True
        #: Record each token's received attention at the tower's feature layer (SigLIP: mean over heads and
        #: queries, pooled like the features), as VisionZip and HoliTom read it for LLaVA-OneVision.
        attention: bool = False

    def model_class(self) -> type:
        from transformers import LlavaOnevisionForConditionalGeneration

        return LlavaOnevisionForConditionalGeneration

    def vision_module(self) -> torch.nn.Module:
        return self.load().model.model.vision_tower

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[t, H, W, 3]`` -> ``[t * 14 * 14, D_llm]``: vision tower, projector, 2x bilinear pooling.

        The trailing ``image_newline`` that ``get_video_features`` appends is not a frame's token; it is dropped
        here and added back by :meth:`build_prompt`.
        """
        batch = self.processor.video_processor(videos=[frames], do_sample_frames=False, return_tensors="pt")
        pixels = batch["pixel_values_videos"].to(self.device)
        if not self.config.attention:
            return self.model.model.get_video_features(pixels).pooler_output[0, :-1]
        attention_module = self.feature_layer_attention()
        with capture_inputs(attention_module) as seen:
            features = self.model.model.get_video_features(pixels).pooler_output[0, :-1]
        scores = received_attention(attention_module, seen[-1], has_cls=False)  # [t, patches]
        if self.model.config.vision_feature_select_strategy == "default":
            scores = scores[:, 1:]
        pooled = self.model.model.apply_pooling(scores.unsqueeze(-1).to(features.dtype))  # [t, s * s, 1]
        return torch.cat([features, pooled.reshape(-1, 1)], dim=-1)

    def feature_layer_attention(self) -> torch.nn.Module:
        """The attention module of the tower layer whose output the projector reads (``vision_feature_layer``)."""
        layer = self.model.config.vision_feature_layer
        tower = self.model.model.vision_tower
        layers = getattr(tower, "vision_model", tower).encoder.layers
        if not isinstance(layer, int) or layer == 0:
            raise ConfigError(f"llava-onevision attention=true needs one integer vision_feature_layer, got {layer!r}")
        return layers[layer if layer < 0 else layer - 1].self_attn

    def encode_frames(self, frames: Frames) -> VisualTokens:
        """Frames ``[T, H, W, 3]`` -> tokens ``[T * h * w, D_llm]`` on grid ``(T, h, w)`` (14x14 for 384 px)."""
        return self.encode_square_grids(frames)

    def prompt_text(self, tokens: VisualTokens, query: Query, subtitles: str = "") -> str:
        """The chat prompt with one ``<video>`` placeholder (what the family's processor would expand)."""
        timing = ""
        if self.config.time_instruction:
            times = tokens.frame_times if tokens.frame_times is not None else tokens.timestamps.unique()
            timing = time_instruction(video_duration(tokens), [float(t) for t in times])
        prefix = answer_prefix(query)
        return llava_onevision_prompt(multiple_choice_text(query, subtitles), self.config.system_prompt, timing,
                                      prefix)

    def build_prompt(self, tokens: VisualTokens, query: Query, subtitles: str = "") -> PromptInputs:
        self.load()
        text = self.prompt_text(tokens, query, subtitles)
        ids = self.text_ids(text)
        newline = self.model.model.image_newline.detach().float().cpu()[None]
        span = torch.cat([tokens.features.float(), newline])
        video_id = self.tokenizer.convert_tokens_to_ids(VIDEO_TOKEN)
        segments = placeholder_segments(ids, video_id, [span])
        inputs_embeds, visual_mask = splice_embeddings(self.model.get_input_embeddings(), segments)
        newline_row = segments[0].shape[0] + tokens.num_tokens
        visual_mask[newline_row] = False  # the newline closes the video; it is not a frame's token
        positions = positions_1d(visual_mask, delta=float(tokens.position_step))
        position_ids = as_position_ids(positions, self.device).unsqueeze(0)  # [1, L]
        return PromptInputs(inputs_embeds, position_ids, visual_mask, text=text)
