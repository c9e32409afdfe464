"""Qwen2-VL on an unmodified transformers model (Wang et al. 2024, "Qwen2-VL: Enhancing Vision-Language Model's
Perception of the World at Any Resolution").

Video path: the family's own video processor (smart resize to multiples of 28, temporal patches of 2 frames)
and vision tower with its 2x2 patch merger give one token per (temporal patch, merged row, merged column).
:meth:`Qwen2VLAdapter.encode_frames` returns them as :class:`~mmlong.types.VisualTokens` with grid
``(T/2, H/28, W/28)``; each token's ``positions`` are ``(first frame index of its temporal patch, row, column)``
so that frame-unit offsets added by a chunked pipeline stay correct. The adapter builds the chat prompt
``<|vision_start|>`` + visual features + ``<|vision_end|>`` + question, and the 3-D M-RoPE positions from the
(possibly compressed) tokens' positions: temporal patch index, row and column, offset by the span start; text after
the span continues where the installed model's ``get_rope_index`` continues it (``start + max(H', W')``). Qwen2-VL
carries time in the temporal M-RoPE axis, not as timestamps in the prompt. V2PE scales the visual offsets by
``tokens.position_step``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmlong.models.native.base import NativeVLMAdapter, NativeVLMConfig
from mmlong.models.positions import as_position_ids, mrope_positions
from mmlong.models.prompt_inputs import PromptInputs, splice_embeddings
from mmlong.models.prompts import answer_prefix, multiple_choice_text
from mmlong.qa import Query
from mmlong.types import Frames, VisualTokens

VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"


def qwen2_vl_prompt(question: str, system: str, answer_prefix: str = "") -> tuple[str, str]:
    """The chat text before and after the video placeholder (Qwen2-VL's chat template)."""
    before = f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{VISION_START}"
    after = f"{VISION_END}{question}<|im_end|>\n<|im_start|>assistant\n{answer_prefix}"
    return before, after


def mrope_offsets(tokens: VisualTokens, temporal_patch_size: int) -> tuple[torch.Tensor, float]:
    """Per-token (t, h, w) offsets ``[N, 3]`` in the language model's units and the span's extent.

    t is the temporal patch index (floor of frame index / temporal patch size), h and w the merged grid row and
    column, rounded to whole numbers so that merged tokens (mean positions) keep integer position ids; only V2PE
    makes them fractional. The extent is how far text after the span advances: ``max(H', W')`` for the full
    grid, as the model's ``get_rope_index`` does, or past the furthest row/column a compressed set still holds.
    """
    offsets = tokens.positions.to(torch.float64).clone()
    offsets[:, 0] = torch.floor(offsets[:, 0] / temporal_patch_size + 1e-6)
    offsets[:, 1:] = torch.round(offsets[:, 1:])
    if offsets.shape[0] == 0:
        return offsets, 0.0
    extent = float(torch.floor(offsets[:, 1:].max()).item()) + 1.0
    return offsets, extent


class Qwen2VLAdapter(NativeVLMAdapter):
    """``qwen2-vl``: Qwen2-VL (2B/7B/72B Instruct) from a local directory or hub id."""

    name = "qwen2-vl"
    model_type = "qwen2_vl"

    @dataclass
    class Config(NativeVLMConfig):
        path: str = "Qwen/Qwen2-VL-2B-Instruct"
        system_prompt: str = "You are a helpful assistant."

    def model_class(self) -> type:
        from transformers import Qwen2VLForConditionalGeneration

        return Qwen2VLForConditionalGeneration

    def vision_module(self) -> torch.nn.Module:
        return self.load().model.model.visual

    @property
    def temporal_patch_size(self) -> int:
        return int(self.load().processor.video_processor.temporal_patch_size)

    @torch.inference_mode()
    def encode_frames(self, frames: Frames) -> VisualTokens:
        """Frames ``[T, H, W, 3]`` -> tokens ``[T/2 * H/28 * W/28, D_llm]`` on grid ``(T/2, H/28, W/28)``."""
        self.load()
        video_processor = self.processor.video_processor
        step = self.temporal_patch_size
        merge = int(video_processor.merge_size)
        chunk = max(step, int(self.config.frames_per_batch) // step * step)
        parts = []
        for start in range(0, len(frames), chunk):
            data = frames.data[start:start + chunk]
            batch = video_processor(videos=[data], return_tensors="pt")
            grid = batch["video_grid_thw"]
            pixels = batch["pixel_values_videos"].to(self.device)
            features = self.model.model.get_video_features(pixels, grid.to(self.device)).pooler_output[0]
            t, h, w = (int(x) for x in grid[0])
            first = (start + step * torch.arange(t)).clamp_max(len(frames) - 1)
            part = VisualTokens.from_grid(features.reshape(t, h // merge, w // merge, -1).float().cpu(),
                                          frames.timestamps[first])
            positions = part.positions.clone()
            positions[:, 0] = first[part.frame_ids].float()
            parts.append(part.replace(frame_ids=first[part.frame_ids], positions=positions))
        tokens = VisualTokens.concat(parts)
        meta = {"encoder": "native", "family": self.name, "temporal_patch_size": step, "merge_size": merge}
        return tokens.replace(frame_times=frames.timestamps.to(torch.float64).clone(), meta=meta)

    def build_prompt(self, tokens: VisualTokens, query: Query, subtitles: str = "") -> PromptInputs:
        self.load()
        prefix = answer_prefix(query)
        before, after = qwen2_vl_prompt(multiple_choice_text(query, subtitles), self.config.system_prompt, prefix)
        before_ids, after_ids = self.text_ids(before), self.text_ids(after)
        embed = self.model.get_input_embeddings()
        inputs_embeds, visual_mask = splice_embeddings(embed, [before_ids, tokens.features, after_ids])
        offsets, extent = mrope_offsets(tokens, self.temporal_patch_size)
        segments = [before_ids.shape[0], (offsets, extent), after_ids.shape[0]]
        positions = mrope_positions(segments, delta=float(tokens.position_step))
        position_ids = as_position_ids(positions, self.device).unsqueeze(1)  # [3, 1, L]
        return PromptInputs(inputs_embeds, position_ids, visual_mask, text=before + "<|video_pad|>" + after)
