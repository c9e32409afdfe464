"""Building one prompt for the language model: visual features spliced between text ids (:class:`PromptInputs`).

Also the times a family's prompt text states (the video's duration, a sampled frame's time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from mmlong.types import VisualTokens


def splice_embeddings(
    embed: torch.nn.Module, segments: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate text and visual segments into one sequence of embeddings.

    segments: int64 ``[n_i]`` token ids (embedded with ``embed``) or float ``[n_i, D]`` visual features (used as
    they are). Returns ``inputs_embeds [1, L, D]`` and ``visual_mask`` bool ``[L]`` (True at visual rows).
    """
    weight = embed.weight
    parts, masks = [], []
    for seg in segments:
        if seg.dtype in (torch.int32, torch.int64):
            parts.append(embed(seg.to(weight.device)))
            masks.append(torch.zeros(seg.shape[0], dtype=torch.bool))
        else:
            parts.append(seg.to(device=weight.device, dtype=weight.dtype))
            masks.append(torch.ones(seg.shape[0], dtype=torch.bool))
    return torch.cat(parts).unsqueeze(0), torch.cat(masks)


def placeholder_segments(ids: torch.Tensor, placeholder_id: int, spans: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Segments for :func:`splice_embeddings` from a prompt tokenized with one placeholder per visual span.

    ids: int64 ``[L]`` with exactly ``len(spans)`` occurrences of ``placeholder_id``; spans: float ``[n_i, D]``.
    Tokenizing the whole prompt once (placeholders are special tokens, so they split the text) gives the same
    text ids as the family's processor, which expands each placeholder to ``n_i`` copies.

    >>> segs = placeholder_segments(torch.tensor([5, 9, 6, 9]), 9, [torch.zeros(2, 4), torch.ones(1, 4)])
    >>> [tuple(s.shape) for s in segs]
    [(1,), (2, 4), (1,), (1, 4), (0,)]
    """
    where = (ids == placeholder_id).nonzero().flatten().tolist()
    if len(where) != len(spans):
        raise ValueError(f"prompt has {len(where)} visual placeholder(s) for {len(spans)} span(s)")
    segments, start = [], 0
    for row, span in zip(where, spans):
        segments += [ids[start:row], span]
        start = row + 1
    segments.append(ids[start:])
    return segments


def video_duration(tokens: VisualTokens) -> float:
    """The video's duration in seconds: the decoder's (``meta["video"]``), the encoder's (``meta["duration"]``),
    else the last sampled frame's time."""
    video = tokens.meta.get("video") or {}
    for value in (video.get("duration"), tokens.meta.get("duration")):
        if value:
            return float(value)
    times = tokens.frame_times if tokens.frame_times is not None else tokens.timestamps
    return float(times.max()) if times.numel() else 0.0


def frame_time(tokens: VisualTokens, frame_id: int) -> float:
    """Time in seconds of sampled frame ``frame_id``: ``frame_times`` when kept, else its earliest token's time."""
    if tokens.frame_times is not None and 0 <= frame_id < tokens.frame_times.shape[0]:
        return float(tokens.frame_times[frame_id])
    return float(tokens.timestamps[tokens.frame_ids == frame_id].min())


@dataclass
class PromptInputs:
    """One prompt ready for the language model.

    inputs_embeds ``[1, L, D]``; position_ids ``[1, L]`` (1-D RoPE) or ``[3, 1, L]`` (M-RoPE), long or float
    (V2PE); visual_mask bool ``[L]`` (True at visual rows); text: the prompt with one marker per visual span;
    visual_order: int64 ``[N_visual]`` or None: the token row of each visual row when the prompt reorders the
    tokens (spans in time order), so per-token side inputs (DeepStack features) follow the same order.
    """

    inputs_embeds: torch.Tensor
    position_ids: torch.Tensor
    visual_mask: torch.Tensor
    text: str = ""
    visual_order: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return int(self.inputs_embeds.shape[1])
