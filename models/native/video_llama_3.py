"""VideoLLaMA3 on an unmodified transformers model (Zhang et al. 2025, "VideoLLaMA 3: Frontier Multimodal
Foundation Models for Image and Video Understanding", arXiv:2501.13106), a video-native family.

Video path, as the installed processor and ``VideoLlama3Model.get_video_features`` do it: every frame is resized
(any aspect, multiples of 28 px within the processor's pixel limits), encoded by the SigLIP-based tower with 2-D
RoPE, its patches merged 2x2 (video ``merge_size``) and projected: ``(H/28)(W/28)`` tokens a frame. The processor's
differential frame pruning (the paper's DiffFP: a patch whose pixels barely differ from the same patch of the
previous frame is dropped; ``video_compression_mask``) is the family's own pre-LLM compression and is on by
default, as in the family's documented usage; :meth:`VideoLlama3Adapter.encode_frames` keeps the tokens it
keeps (``token_compression: false`` keeps all) on grid ``(T, H/28, W/28)`` with positions ``(frame, row,
column)``, and later compressors work on those.

Prompt (the processor's video expansion inside the chat template)::

    <|im_start|>user\\nTime 0.6s:TOKENS OF FRAME 0,Time 2.0s:TOKENS OF FRAME 1\\nQUESTION<|im_end|>\\n
    <|im_start|>assistant\\n

=====================  ==================================================================================
visual tokens enter    one ``Time t.ts:`` entry per sampled frame that still has tokens, comma-separated
                       (a frame whose tokens were all dropped, by DiffFP or a compressor, loses its entry)
positions              1-D RoPE, one step per token; V2PE scales the visual steps (zero-shot)
a compressor may not   nothing family-specific: any number of tokens per frame, in any order within a frame
=====================  ==================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mmlong.models.native.base import NativeVLMAdapter, NativeVLMConfig
from mmlong.models.positions import as_position_ids, positions_1d
from mmlong.models.prompt_inputs import PromptInputs, frame_time, placeholder_segments, splice_embeddings
from mmlong.models.prompts import MLVU_ANSWER_PREFIX, chatml_turn, multiple_choice_text
from mmlong.qa import Query
from mmlong.types import Frames, VisualTokens

VIDEO_PAD = "<|video_pad|>"


def time_entries(times: list[float]) -> str:
    """The processor's expansion of a video: ``Time t.ts:`` and one placeholder per frame, comma-separated.

    >>> time_entries([0.5, 2.0])
    'Time 0.5s:<|video_pad|>,Time 2.0s:<|video_pad|>'
    """
    return ",".join(f"Time {t:.1f}s:{VIDEO_PAD}" for t in times)


class VideoLlama3Adapter(NativeVLMAdapter):
    """``videollama3``: VideoLLaMA3 (2B/7B, the ``-Image``/video ``-HF`` checkpoints) from a directory or hub id.

    ``token_compression``: apply the processor's differential frame pruning (the family's default)."""

    name = "videollama3"
    model_type = "video_llama_3"

    @dataclass
    class Config(NativeVLMConfig):
        path: str = "lkhl/VideoLLaMA3-2B-HF"
        system_prompt: str = ""
        token_compression: bool = True

    def model_class(self) -> type:
        from transformers import VideoLlama3ForConditionalGeneration

        return VideoLlama3ForConditionalGeneration

    def vision_module(self) -> torch.nn.Module:
        return self.load().model.model.vision_model

    @torch.inference_mode()
    def encode_frames(self, frames: Frames) -> VisualTokens:
        """Frames ``[T, H, W, 3]`` -> the tokens DiffFP keeps of ``[T * H/28 * W/28, D_llm]``, grid
        ``(T, H/28, W/28)``. One processor call for the whole clip: DiffFP compares each frame with the previous."""
        from transformers.video_utils import VideoMetadata

        self.load()
        metadata = VideoMetadata(total_num_frames=len(frames), fps=1.0, frames_indices=np.arange(len(frames)))
        batch = self.processor.video_processor(videos=[frames.data], video_metadata=[metadata],
                                               use_token_compression=bool(self.config.token_compression),
                                               return_tensors="pt")
        grid, merge = batch["video_grid_thw"], batch["video_merge_sizes"]
        out = self.model.model.get_video_features(batch["pixel_values_videos"].to(self.device), grid.to(self.device),
                                                  merge.to(self.device))
        t, h, w = (int(x) for x in grid[0])
        step = int(merge[0])
        features = out.pooler_output[0].reshape(t, h // step, w // step, -1).float().cpu()
        tokens = VisualTokens.from_grid(features, frames.timestamps)
        kept = batch.get("video_compression_mask")
        if kept is not None and self.config.token_compression:
            tokens = tokens.select(kept.bool().cpu())
        meta = {"encoder": "native", "family": self.name, "duration": float(frames.meta.duration),
                "difffp_kept": tokens.num_tokens, "difffp_of": t * (h // step) * (w // step)}
        return tokens.replace(meta=meta)

    def frame_spans(self, tokens: VisualTokens) -> tuple[list[float], list[torch.Tensor]]:
        """Times and token features ``[n_f, D]`` of every frame that still has tokens, in time order."""
        frame_ids = tokens.frames().tolist()
        times = [frame_time(tokens, f) for f in frame_ids]
        order = sorted(range(len(frame_ids)), key=times.__getitem__)
        return [times[i] for i in order], [tokens.features[tokens.frame_ids == frame_ids[i]] for i in order]

    def prompt_text(self, tokens: VisualTokens, query: Query, subtitles: str = "") -> str:
        return self._chat_text(self.frame_spans(tokens)[0], query, subtitles)

    def _chat_text(self, times: list[float], query: Query, subtitles: str = "") -> str:
        prefix = MLVU_ANSWER_PREFIX if query.is_multiple_choice else ""
        return chatml_turn(time_entries(times), multiple_choice_text(query, subtitles),
                                  self.config.system_prompt, prefix)

    def build_prompt(self, tokens: VisualTokens, query: Query, subtitles: str = "") -> PromptInputs:
        self.load()
        times, spans = self.frame_spans(tokens)
        text = self._chat_text(times, query, subtitles)
        segments = placeholder_segments(self.text_ids(text), self.tokenizer.convert_tokens_to_ids(VIDEO_PAD), spans)
        inputs_embeds, visual_mask = splice_embeddings(self.model.get_input_embeddings(), segments)
        positions = positions_1d(visual_mask, delta=float(tokens.position_step))
        position_ids = as_position_ids(positions, self.device).unsqueeze(0)  # [1, L]
        return PromptInputs(inputs_embeds, position_ids, visual_mask, text=text)
