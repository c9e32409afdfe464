"""Qwen3-VL on an unmodified transformers model (Qwen team 2025, "Qwen3-VL Technical Report", arXiv:2511.21631).

Video path: the family's own video processor (smart resize to multiples of 32, temporal patches of 2 frames), the
vision tower with its 2x2 patch merger, and DeepStack: the outputs of K vision blocks, each through its own merger,
are added to the visual rows' hidden states after the first K text layers. :meth:`Qwen3VLAdapter.encode_frames`
returns one token per (temporal patch, merged row, merged column) as :class:`~mmlong.types.VisualTokens`, the
DeepStack features in ``layer_features [N, K, D]``; ``frame_ids`` / ``positions[:, 0]`` are the first frame of the
token's temporal patch, ``timestamps`` the patch's time as the prompt states it (mean of its two frames' times).

Prompt (the processor's video expansion, Qwen3-VL's chat template)::

    <|im_start|>user\\n<0.6 seconds><|vision_start|>TOKENS OF PATCH 0<|vision_end|><1.9 seconds><|vision_start|>
    ...<|vision_end|>QUESTION<|im_end|>\\n<|im_start|>assistant\\n

=====================  ==================================================================================
visual tokens enter    one ``<t seconds><|vision_start|> ... <|vision_end|>`` block per temporal patch that
                       still has tokens (a patch whose tokens were all dropped loses its time line too)
positions              interleaved 3-D M-RoPE; within a block each token sits at ``p + (0, row, column)``
                       (``p``: the block's start; time is in the text, not on the t axis) and the text after
                       it at ``p + extent`` (``max(H', W')`` for a whole grid, past the furthest row/column
                       a compressed block still holds); V2PE scales the visual increments
DeepStack              ``layer_features`` follow select/merge like the features; :class:`~mmlong.models.
                       deepstack.DeepStackHooks` adds them after layers 0..K-1 to the rows those layers hold
a compressor may not   replace tokens by new ones without their ``layer_features`` (refused); change the
                       prompt's rows inside the first K layers by its own hooks (FrameFusion: refused)
=====================  ==================================================================================
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

from mmlong.errors import ConfigError
from mmlong.models.decoding import language_model
from mmlong.models.native.base import NativeVLMAdapter, NativeVLMConfig
from mmlong.models.native.deepstack import DeepStackHooks
from mmlong.models.native.qwen2_vl import VISION_END, VISION_START, mrope_offsets
from mmlong.models.positions import as_position_ids, mrope_positions
from mmlong.models.prompt_inputs import PromptInputs, placeholder_segments, splice_embeddings
from mmlong.models.prompts import MLVU_ANSWER_PREFIX, multiple_choice_text
from mmlong.qa import Query
from mmlong.types import Frames, VisualTokens

VIDEO_PAD = "<|video_pad|>"


def qwen3_vl_chat(video: str, question: str, system: str = "", answer_prefix: str = "") -> str:
    """Qwen3-VL's chat template for one user turn (video first) and the assistant's start."""
    head = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    return f"{head}<|im_start|>user\n{video}{question}<|im_end|>\n<|im_start|>assistant\n{answer_prefix}"


def timed_blocks(times: Sequence[float]) -> str:
    """One ``<t seconds>`` line and one placeholder block per temporal patch, as the processor expands a video.

    >>> timed_blocks([0.25, 1.5])
    '<0.2 seconds><|vision_start|><|video_pad|><|vision_end|><1.5 seconds><|vision_start|><|video_pad|><|vision_end|>'
    """
    return "".join(f"<{t:.1f} seconds>{VISION_START}{VIDEO_PAD}{VISION_END}" for t in times)


def patch_times(frame_times: torch.Tensor, step: int) -> torch.Tensor:
    """Time of each temporal patch ``[ceil(T / step)]``: the mean of its first and last frame's time, the last
    patch padded with the last frame (the processor's ``_calculate_timestamps``).

    >>> patch_times(torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]), 2).tolist()
    [0.5, 2.5, 4.0]
    """
    count = frame_times.shape[0]
    first = torch.arange(0, count, step)
    last = (first + step - 1).clamp_max(count - 1)
    return (frame_times[first].double() + frame_times[last].double()) / 2


class Qwen3VLAdapter(NativeVLMAdapter):
    """``qwen3-vl``: Qwen3-VL (2B/4B/8B/32B Instruct, dense) from a local directory or hub id."""

    name = "qwen3-vl"
    model_type = "qwen3_vl"
    #: the family adds DeepStack features inside its first layers (Qwen3.5 does not)
    deepstack = True

    @dataclass
    class Config(NativeVLMConfig):
        path: str = "Qwen/Qwen3-VL-2B-Instruct"
        system_prompt: str = ""

    def model_class(self) -> type:
        from transformers import Qwen3VLForConditionalGeneration

        return Qwen3VLForConditionalGeneration

    def vision_module(self) -> torch.nn.Module:
        return self.load().model.model.visual

    @property
    def temporal_patch_size(self) -> int:
        return int(self.load().processor.video_processor.temporal_patch_size)

    def vision_outputs(self, pixels: torch.Tensor, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The tower's merged features ``[n, D]`` and DeepStack features ``[n, K, D]`` (None without)."""
        out = self.model.model.get_video_features(pixels, grid)
        levels = [level[0] for level in (getattr(out, "deepstack_features", None) or [])]
        return out.pooler_output[0], (torch.stack(levels, dim=1) if levels else None)

    @torch.inference_mode()
    def encode_frames(self, frames: Frames) -> VisualTokens:
        """Frames ``[T, H, W, 3]`` -> tokens ``[T/2 * H/32 * W/32, D_llm]`` on grid ``(T/2, H/32, W/32)``."""
        self.load()
        video_processor = self.processor.video_processor
        step = self.temporal_patch_size
        merge = int(video_processor.merge_size)
        chunk = max(step, int(self.config.frames_per_batch) // step * step)
        times = patch_times(frames.timestamps, step)
        parts = []
        for start in range(0, len(frames), chunk):
            data = frames.data[start:start + chunk]
            batch = video_processor(videos=[data], do_sample_frames=False, return_tensors="pt",
                                    size=self.chunk_size(data.shape[0], len(frames)))
            grid = batch["video_grid_thw"]
            features, stacked = self.vision_outputs(batch["pixel_values_videos"].to(self.device), grid.to(self.device))
            t, h, w = (int(x) for x in grid[0])
            first = start + step * torch.arange(t)
            part = VisualTokens.from_grid(features.reshape(t, h // merge, w // merge, -1).float().cpu(),
                                          times[first // step])
            positions = part.positions.clone()
            positions[:, 0] = first[part.frame_ids].float()
            part = part.replace(frame_ids=first[part.frame_ids], positions=positions,
                                layer_features=None if stacked is None else stacked.float().cpu())
            parts.append(part)
        tokens = VisualTokens.concat(parts)
        meta = {"encoder": "native", "family": self.name, "temporal_patch_size": step, "merge_size": merge,
                "duration": float(frames.meta.duration)}
        return tokens.replace(frame_times=frames.timestamps.to(torch.float64).clone(), meta=meta)

    def chunk_size(self, count: int, total: int) -> dict[str, int]:
        """The processor's pixel limits for a chunk of ``count`` of ``total`` frames. Its limits hold for the whole
        clip (``t x H x W`` pixels), so each chunk gets its share and is resized as the whole clip would be."""
        size = self.processor.video_processor.size
        share = max(1, round(count / 2)) / max(1, round(total / 2))
        return {"shortest_edge": max(1, int(size["shortest_edge"] * share)),
                "longest_edge": max(1, int(size["longest_edge"] * share))}

    def patch_spans(self, tokens: VisualTokens) -> list[tuple[float, torch.Tensor]]:
        """``(time, rows)`` of every temporal patch that still has tokens, in time order (rows: int64 into
        ``tokens``, in their order)."""
        step = self.temporal_patch_size
        times = patch_times(tokens.frame_times, step) if tokens.frame_times is not None else None
        spans = []
        for frame_id in tokens.frames().tolist():
            rows = (tokens.frame_ids == frame_id).nonzero().flatten()
            stated = tokens.timestamps[rows].min()
            if times is not None and 0 <= frame_id // step < times.shape[0]:
                stated = times[frame_id // step]
            spans.append((float(stated), rows))
        return sorted(spans, key=lambda span: span[0])

    def prompt_text(self, tokens: VisualTokens, query: Query, subtitles: str = "") -> str:
        """The chat prompt with one placeholder block per remaining temporal patch."""
        return self._chat_text([time for time, _ in self.patch_spans(tokens)], query, subtitles)

    def _chat_text(self, times: Sequence[float], query: Query, subtitles: str = "") -> str:
        prefix = MLVU_ANSWER_PREFIX if query.is_multiple_choice else ""
        return qwen3_vl_chat(timed_blocks(times), multiple_choice_text(query, subtitles), self.config.system_prompt,
                             prefix)

    def build_prompt(self, tokens: VisualTokens, query: Query, subtitles: str = "") -> PromptInputs:
        self.load()
        spans = self.patch_spans(tokens)
        text = self._chat_text([time for time, _ in spans], query, subtitles)
        ids = self.text_ids(text)
        pieces = placeholder_segments(ids, self.tokenizer.convert_tokens_to_ids(VIDEO_PAD),
                                      [tokens.features[rows] for _, rows in spans])
        inputs_embeds, visual_mask = splice_embeddings(self.model.get_input_embeddings(), pieces)
        segments: list[Any] = [pieces[0].shape[0]]
        for (_, rows), after in zip(spans, pieces[2::2]):
            offsets, extent = mrope_offsets(tokens.select(rows), 1)
            offsets[:, 0] = 0.0  # each block is one temporal patch: time is stated in the text before it
            segments += [(offsets, extent), after.shape[0]]
        positions = mrope_positions(segments, delta=float(tokens.position_step))
        position_ids = as_position_ids(positions, self.device).unsqueeze(1)  # [3, 1, L]
        order = torch.cat([rows for _, rows in spans]) if spans else torch.zeros(0, dtype=torch.long)
        return PromptInputs(inputs_embeds, position_ids, visual_mask, text=text, visual_order=order)

    def layer_features(self, tokens: VisualTokens | None, prompt: PromptInputs) -> torch.Tensor | None:
        """DeepStack features ``[K, N_visual, D]`` in the prompt's visual order, or None for a family without."""
        levels = len(getattr(self.model.config.vision_config, "deepstack_visual_indexes", None) or [])
        if not self.deepstack or not levels:
            return None
        if tokens is None or tokens.layer_features is None:
            steps = [step.name for step in tokens.provenance] if tokens is not None else []
            culprit = f" after {', '.join(steps)}" if steps else ""
            raise ConfigError(f"{self.name}: the visual tokens{culprit} have no DeepStack features (a compressor "
                              "replaced the tokens by new ones); Qwen3-VL needs them in its first layers")
        order = prompt.visual_order
        stacked = tokens.layer_features if order is None else tokens.layer_features[order]
        return stacked.transpose(0, 1)

    def pruning(self, prompt: PromptInputs, in_llm: Sequence[Any], tokens: VisualTokens | None = None) -> Any:
        """In-LLM steps (as the base runs them) plus the DeepStack hooks that add the visual features the model
        would add itself, to the visual rows each early layer still holds."""
        features = self.layer_features(tokens, prompt)
        if features is None:
            return super().pruning(prompt, in_llm, tokens)
        return self._with_deepstack(super().pruning(prompt, in_llm, tokens), prompt, features)

    @contextmanager
    def _with_deepstack(self, inner: Any, prompt: PromptInputs, features: torch.Tensor) -> Iterator[Any]:
        layers = language_model(self.model).layers
        with inner as pruner, DeepStackHooks(layers, prompt.visual_mask, features.to(self.device), pruner, self.name):
            yield pruner
