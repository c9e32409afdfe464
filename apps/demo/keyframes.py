"""The demo's keyframe strip: a few of the frames the model saw, each labelled with its time.

:func:`choose_keyframes` picks which (the frames nearest the answer's evidence first, then the ones most relevant
to the question, then evenly spread), and :func:`keyframe_strip` decodes them and draws them in one row with the
contact-sheet drawing that ``mmlong frames`` uses.

>>> choose_keyframes([0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 2.0, 3.0, 4.0], relevance=[0.1, 0.9, 0.2, 0.3, 0.8],
...                  evidence=[3.1], limit=3)
[1.0, 3.0, 4.0]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

STRIP_COLUMNS = 8
THUMBNAIL_SIDE = 200


def choose_keyframes(
    model_times: Sequence[float],
    frame_times: Sequence[float],
    relevance: Sequence[float] | None = None,
    evidence: Sequence[float] = (),
    limit: int = STRIP_COLUMNS,
) -> list[float]:
    """Times of at most ``limit`` frames among ``model_times``, in time order.

    Priority: the frame nearest each evidence time, then the highest relevance (``relevance[i]`` scores the
    frame at ``frame_times[i]``), then frames spread evenly over the rest.
    """
    candidates = sorted(set(float(t) for t in model_times))
    if len(candidates) <= limit:
        return candidates
    chosen: list[float] = []

    def take(t: float) -> None:
        if t not in chosen and len(chosen) < limit:
            chosen.append(t)

    for t in evidence:
        take(min(candidates, key=lambda c: abs(c - float(t))))
    if relevance is not None and len(relevance) == len(frame_times):
        score = {float(t): float(s) for t, s in zip(frame_times, relevance)}
        for t in sorted(candidates, key=lambda c: -score.get(c, float("-inf"))):
            if len(chosen) >= limit:
                break
            take(t)
    step = len(candidates) / max(1, limit)
    k = 0
    while len(chosen) < limit and k < len(candidates):
        take(candidates[int(k * step) % len(candidates)])
        k += 1
    for t in candidates:
        take(t)
    return sorted(chosen)


def keyframe_strip(
    video: str,
    times: Sequence[float],
    path: str | Path,
    frame_indices: Sequence[int],
    decoder: str = "auto",
    max_side: int | None = THUMBNAIL_SIDE,
) -> Path:
    """Decode ``frame_indices`` of ``video`` and save them, captioned with ``times`` (seconds), at ``path``: rows of
    at most four tiles with large captions, so they read at the demo's display size."""
    import torch

    from mmlong.apps.render import format_seconds
    from mmlong.media.contact_sheet import contact_sheet
    from mmlong.media.video import open_video

    side = THUMBNAIL_SIDE if max_side is None else min(int(max_side), THUMBNAIL_SIDE)
    with open_video(str(video), decoder=decoder, max_side=side) as source:
        frames = source.read(torch.tensor(list(frame_indices), dtype=torch.long))
    # two rows of at most four, captions a fifth of a tile high: readable where the page shows the strip
    columns = max(1, min(4, len(frame_indices)))
    font_size = max(14, frames.data.shape[1] // 5)
    sheet = contact_sheet(frames.data, [format_seconds(t) for t in times], columns=columns, font_size=font_size)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, format="PNG")
    return out


def video_frame_indices(encoded: Any, frame_times: Sequence[float], chosen_times: Sequence[float]) -> list[int]:
    """Frame numbers in the video of the sampled frames at ``chosen_times``.

    encoded: the video's tokens (their ``meta`` holds the sampled ``frame_indices`` and the video's ``fps``);
    frame_times: ``[T]`` time of every sampled frame.
    """
    indices = encoded.meta.get("frame_indices")
    fps = float((encoded.meta.get("video") or {}).get("fps") or 0.0)
    out = []
    for t in chosen_times:
        k = min(range(len(frame_times)), key=lambda i: abs(frame_times[i] - t))
        if indices is not None and k < len(indices):
            out.append(int(indices[k]))
        else:
            out.append(int(round(t * fps)))
    return out
