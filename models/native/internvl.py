"""InternVL3 / InternVL3.5 on an unmodified transformers model (Wang et al. 2025, "InternVL3.5: Advancing
Open-Source Multimodal Models in Versatility, Reasoning, and Efficiency", arXiv:2508.18265; the ``-HF``
checkpoints that the installed ``InternVLForConditionalGeneration`` loads).

Video path, as the installed processor and ``InternVLModel.get_image_features`` do it: every frame is resized to
the tower's square (448 px, patch 14: a 32x32 grid), encoded on its own by InternViT, the CLS token dropped, and
the pixel shuffle (``downsample_ratio`` 0.5) folds 2x2 neighbours into one token before the MLP projector: 16x16 =
256 tokens a frame. :meth:`InternVLAdapter.encode_frames` returns them on grid ``(T, 16, 16)``, positions
``(frame, row, column)``.

Prompt (the processor's video expansion inside the chat template)::

    <|im_start|>user\\nFrame1: <img>TOKENS OF FRAME 0</img>\\nFrame2: <img>...</img>\\nQUESTION<|im_end|>\\n
    <|im_start|>assistant\\n

=====================  ==================================================================================
visual tokens enter    one ``FrameN: <img> ... </img>`` line per sampled frame that still has tokens
                       (N: the frame's own number among the sampled frames, so a dropped frame leaves a gap)
positions              1-D RoPE over the whole sequence: each visual token one step, text one step; V2PE
                       (Ge et al. 2024, from the InternVL team) scales the visual steps by
                       ``tokens.position_step``, the rule V2PE was trained with on this family
a compressor may not   nothing specific: any number of tokens per frame, in any order within a frame
=====================  ==================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmlong.models.native.base import NativeVLMAdapter, NativeVLMConfig
from mmlong.models.positions import as_position_ids, positions_1d
from mmlong.models.prompt_inputs import PromptInputs, placeholder_segments, splice_embeddings
from mmlong.models.prompts import MLVU_ANSWER_PREFIX, chatml_turn, multiple_choice_text
from mmlong.qa import Query
from mmlong.types import Frames, VisualTokens

IMAGE_CONTEXT = "<IMG_CONTEXT>"


def frame_lines(numbers: list[int]) -> str:
    """The processor's expansion of ``<video>`` with one placeholder per frame (``numbers``: 1-based).

    >>> frame_lines([1, 3])
    'Frame1: <img><IMG_CONTEXT></img>\\nFrame3: <img><IMG_CONTEXT></img>'
    """
    return "\n".join(f"Frame{n}: <img>{IMAGE_CONTEXT}</img>" for n in numbers)


class InternVLAdapter(NativeVLMAdapter):
    """``internvl``: InternVL3 / InternVL3.5 ``-HF`` checkpoints (1B ... 38B) from a local directory or hub id."""

    name = "internvl"
    model_type = "internvl"

    @dataclass
    class Config(NativeVLMConfig):
        path: str = "OpenGVLab/InternVL3_5-1B-HF"
        system_prompt: str = ""

    def model_class(self) -> type:
        from transformers import InternVLForConditionalGeneration

        return InternVLForConditionalGeneration

    def vision_module(self) -> torch.nn.Module:
        return self.load().model.model.vision_tower

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[t, H, W, 3]`` -> ``[t * s * s, D_llm]``: InternViT, pixel shuffle and projector per frame."""
        batch = self.processor.video_processor(videos=[frames], do_sample_frames=False, return_tensors="pt")
        pixels = batch["pixel_values_videos"].flatten(0, 1).to(self.device)
        features = self.model.model.get_image_features(pixel_values=pixels).pooler_output  # [t, s * s, D]
        return features.reshape(-1, features.shape[-1])

    def encode_frames(self, frames: Frames) -> VisualTokens:
        """Frames ``[T, H, W, 3]`` -> tokens ``[T * s * s, D_llm]`` on grid ``(T, s, s)`` (16x16 at 448 px)."""
        return self.encode_square_grids(frames)

    def frame_spans(self, tokens: VisualTokens) -> tuple[list[int], list[torch.Tensor]]:
        """1-based numbers and features ``[n_f, D]`` of every frame that still has tokens, in time order."""
        frame_ids = tokens.frames().tolist()
        first_time = [float(tokens.timestamps[tokens.frame_ids == f].min()) for f in frame_ids]
        order = sorted(range(len(frame_ids)), key=first_time.__getitem__)
        numbers = [frame_ids[i] + 1 for i in order]
        return numbers, [tokens.features[tokens.frame_ids == frame_ids[i]] for i in order]

    def prompt_text(self, tokens: VisualTokens, query: Query, subtitles: str = "") -> str:
        """The chat prompt with one ``<IMG_CONTEXT>`` placeholder per remaining frame."""
        return self._chat_text(self.frame_spans(tokens)[0], query, subtitles)

    def _chat_text(self, numbers: list[int], query: Query, subtitles: str = "") -> str:
        prefix = MLVU_ANSWER_PREFIX if query.is_multiple_choice else ""
        return chatml_turn(frame_lines(numbers), multiple_choice_text(query, subtitles), self.config.system_prompt,
                             prefix)

    def build_prompt(self, tokens: VisualTokens, query: Query, subtitles: str = "") -> PromptInputs:
        self.load()
        numbers, spans = self.frame_spans(tokens)
        text = self._chat_text(numbers, query, subtitles)
        segments = placeholder_segments(self.text_ids(text), self.tokenizer.convert_tokens_to_ids(IMAGE_CONTEXT),
                                        spans)
        inputs_embeds, visual_mask = splice_embeddings(self.model.get_input_embeddings(), segments)
        positions = positions_1d(visual_mask, delta=float(tokens.position_step))
        position_ids = as_position_ids(positions, self.device).unsqueeze(0)  # [1, L]
        return PromptInputs(inputs_embeds, position_ids, visual_mask, text=text)
