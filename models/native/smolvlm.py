"""SmolVLM2 on an unmodified transformers model (Marafioti et al. 2025, "SmolVLM: Redefining small and efficient
multimodal models").

Video path, as the installed processor and ``SmolVLMModel.get_image_features`` do it: every frame is resized to a
square of the vision tower's size (512 px for SmolVLM2, patch 16: a 32x32 grid), encoded on its own, and the
connector's pixel shuffle (scale factor 4) folds it to an 8x8 grid before the linear projection into the language
model (64 tokens a frame). :meth:`SmolVLMAdapter.encode_frames` returns those tokens as
:class:`~mmlong.types.VisualTokens` on grid ``(T, h, w)`` of the connector output, positions ``(frame, row, col)``.

Prompt, as the processor's video template writes it (times as MM:SS, the duration as H:MM:SS)::

    <|im_start|>User: You are provided the following series of eight frames from a 0:00:04 [H:MM:SS] video.\\n
    \\nFrame from 00:00:<fake_token_around_image><global-img>TOKENS OF FRAME 0<fake_token_around_image>
    \\nFrame from 00:01:...\\n\\nQUESTION<end_of_utterance>\\nAssistant:

Each frame that still has tokens after pre-LLM compression keeps its timestamp line and its own (shorter) image
block; a frame whose tokens were all dropped disappears from the list, and the frame count says how many remain.
Position ids are 1-D; V2PE scales the visual increments by ``tokens.position_step``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import torch

from mmlong.models.native.base import NativeVLMAdapter, NativeVLMConfig
from mmlong.models.positions import as_position_ids, positions_1d
from mmlong.models.prompt_inputs import (
    PromptInputs,
    frame_time,
    placeholder_segments,
    splice_embeddings,
    video_duration,
)
from mmlong.models.prompts import answer_prefix, multiple_choice_text
from mmlong.qa import Query
from mmlong.types import Frames, VisualTokens

IMAGE_TOKEN = "<image>"
FRAME_OPEN = "<fake_token_around_image><global-img>"
FRAME_CLOSE = "<fake_token_around_image>"


def clock(seconds: float) -> str:
    """``MM:SS`` of a frame time, as SmolVLM2's processor writes it.

    >>> clock(5.9), clock(125.0)
    ('00:05', '02:05')
    """
    return f"{int(seconds // 60):02d}:{int(seconds % 60):02d}"


def video_block(frame_times: list[float], duration: float) -> str:
    """The video part of the user turn with one ``<image>`` placeholder per frame.

    >>> video_block([0.0, 5.0], 9.5)  # doctest: +NORMALIZE_WHITESPACE
    'You are provided the following series of two frames from a 0:00:09 [H:MM:SS] video.\\n\\nFrame from
    00:00:<fake_token_around_image><global-img><image><fake_token_around_image>\\nFrame from
    00:05:<fake_token_around_image><global-img><image><fake_token_around_image>\\n\\n'
    """
    from num2words import num2words

    text = (
        f"You are provided the following series of {num2words(len(frame_times))} frames from a "
        f"{timedelta(seconds=int(duration))} [H:MM:SS] video.\n"
    )
    for seconds in frame_times:
        text += f"\nFrame from {clock(seconds)}:{FRAME_OPEN}{IMAGE_TOKEN}{FRAME_CLOSE}"
    return text + "\n\n"


def smolvlm_prompt(video: str, question: str, system: str = "", answer_prefix: str = "") -> str:
    """SmolVLM2's chat template (the processor's video template) for one user turn and the assistant's start."""
    head = f"System: {system}<end_of_utterance>\n" if system else ""
    tail = f" {answer_prefix}" if answer_prefix else ""
    return f"<|im_start|>{head}User: {video}{question}<end_of_utterance>\nAssistant:{tail}"


class SmolVLMAdapter(NativeVLMAdapter):
    """``smolvlm2``: SmolVLM2 (256M/500M/2.2B Video-Instruct) from a local directory or hub id."""

    name = "smolvlm2"
    model_type = "smolvlm"

    @dataclass
    class Config(NativeVLMConfig):
        path: str = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
        system_prompt: str = ""

    def model_class(self) -> type:
        from transformers import SmolVLMForConditionalGeneration

        return SmolVLMForConditionalGeneration

    def vision_module(self) -> torch.nn.Module:
        return self.load().model.model.vision_model

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[t, H, W, 3]`` -> ``[t * 8 * 8, D_llm]``: vision tower + pixel-shuffle connector per frame."""
        batch = self.processor.video_processor(videos=[frames], do_sample_frames=False, return_tensors="pt")
        pixels = batch["pixel_values"].to(self.device)
        mask = batch["pixel_attention_mask"].to(self.device)
        return self.model.model.get_image_features(pixels, mask).pooler_output[0]

    def encode_frames(self, frames: Frames) -> VisualTokens:
        """Frames ``[T, H, W, 3]`` -> tokens ``[T * h * w, D_llm]`` on grid ``(T, h, w)`` (8x8 for SmolVLM2)."""
        return self.encode_square_grids(frames)

    def frame_spans(self, tokens: VisualTokens) -> tuple[list[float], list[torch.Tensor]]:
        """Times and token features ``[n_f, D]`` of every frame that still has tokens, in time order."""
        times, spans = [], []
        for frame_id in tokens.frames().tolist():
            rows = (tokens.frame_ids == frame_id).nonzero().flatten()
            times.append(frame_time(tokens, frame_id))
            spans.append(tokens.features[rows])
        order = sorted(range(len(times)), key=times.__getitem__)
        return [times[i] for i in order], [spans[i] for i in order]

    def prompt_text(self, tokens: VisualTokens, query: Query, subtitles: str = "") -> str:
        """The chat prompt with one ``<image>`` placeholder per frame (what the processor would expand)."""
        return self._chat_text(tokens, query, self.frame_spans(tokens)[0], subtitles)

    def _chat_text(self, tokens: VisualTokens, query: Query, times: list[float], subtitles: str = "") -> str:
        prefix = answer_prefix(query)
        video = video_block(times, video_duration(tokens))
        return smolvlm_prompt(video, multiple_choice_text(query, subtitles), self.config.system_prompt, prefix)

    def build_prompt(self, tokens: VisualTokens, query: Query, subtitles: str = "") -> PromptInputs:
        self.load()
        times, spans = self.frame_spans(tokens)
        text = self._chat_text(tokens, query, times, subtitles)
        ids = self.text_ids(text)
        segments = placeholder_segments(ids, self.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), spans)
        inputs_embeds, visual_mask = splice_embeddings(self.model.get_input_embeddings(), segments)
        positions = positions_1d(visual_mask, delta=float(tokens.position_step))
        position_ids = as_position_ids(positions, self.device).unsqueeze(0)  # [1, L]
        return PromptInputs(inputs_embeds, position_ids, visual_mask, text=text)
