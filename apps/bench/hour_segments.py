"""``bench needle-video --segment-seconds S``: a long needle video from a few encoded segments, copied, not encoded.

Encoding every frame of an hour of 720p at 25 fps (90,000 frames of x264) takes tens of minutes on a small
machine. Here the hour is cut into segments of ``S`` seconds; segment ``k`` shows the haystack footage of
variant ``k % variants`` (variant ``v`` = frames ``[v N, (v + 1) N)`` of the looped haystack, ``N = S * fps``)
with any needle or text card that starts inside segment ``k`` drawn in. Each distinct segment (a variant
without inserts, a segment with its inserts, a shorter last segment) is encoded once, and the hour is their
packets joined end to end (:func:`mmlong.media.video.remux.concat_copies`): ``variants + inserts`` segments
encoded instead of the whole hour, the needle at exactly its frame.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mmlong.errors import ConfigError

#: ``(start frame, frame count, frame [H, W, 3])``: a still shown over the footage
Insert = tuple[int, int, np.ndarray]


def needle_frames_stream(haystack: list[np.ndarray], inserts: list[Insert],
                         total: int) -> Iterator[np.ndarray]:
    """``total`` frames: the haystack clips looped in turn with variations, frames ``[start, start + count)`` of
    each ``(start, count, frame [H, W, 3])`` insert replaced by its frame; one clip in memory at a time."""
    from mmlong.benchmarks.niavh_media import vary_clip

    made, k = 0, 0
    while made < total:
        clip = vary_clip(haystack[k % len(haystack)], k // len(haystack))
        k += 1
        for frame in clip:
            if made >= total:
                return
            yield next((f for s, c, f in inserts if s <= made < s + c), frame)
            made += 1


def segment_plan(total: int, segment: int, variants: int,
                 inserts: list[Insert]) -> list[tuple[int, int, tuple[int, ...]]]:
    """Per segment of ``segment`` frames (the last one shorter when ``total`` is not a multiple):
    ``(variant, frames, indices of the inserts starting in it)``. An insert crossing its segment's end is
    refused (a one-line :class:`ConfigError`).

    >>> segment_plan(10, 4, 2, [(5, 2, None)])
    [(0, 4, ()), (1, 4, (0,)), (0, 2, ())]
    """
    if segment < 1 or variants < 1:
        raise ConfigError("--segment-seconds and --segment-variants must be positive")
    plan = []
    for k, begin in enumerate(range(0, total, segment)):
        length = min(segment, total - begin)
        inside = tuple(i for i, (start, _, _) in enumerate(inserts) if begin <= start < begin + length)
        for i in inside:
            start, count, _ = inserts[i]
            if start + count > begin + length:
                raise ConfigError(f"an insert at frame {start} ({count} frames) crosses the end of its "
                                  f"{segment}-frame segment; move it or change --segment-seconds")
        plan.append((k % variants, length, inside))
    return plan


def segment_frames(clips: list[np.ndarray], variant: int, segment: int, length: int, begin: int,
                   inserts: list[Insert]) -> Iterator[np.ndarray]:
    """The ``length`` frames of variant ``variant`` with ``inserts`` (global frame numbers, the segment
    starting at global frame ``begin``) drawn over them."""
    first = variant * segment
    local = [(first + start - begin, count, frame) for start, count, frame in inserts]
    return itertools.islice(needle_frames_stream(clips, local, first + length), first, first + length)


def write_segmented(out: str, clips: list[np.ndarray], inserts: list[Insert], total: int, fps: float,
                    segment: int, variants: int) -> int:
    """Write ``total`` frames at ``fps`` to ``out`` from segments of ``segment`` frames (see the module
    docstring); returns how many frames were encoded."""
    from mmlong.media.video.remux import concat_copies
    from mmlong.media.video.write import write_video

    plan = segment_plan(total, segment, variants, inserts)
    encoded = 0
    with tempfile.TemporaryDirectory(prefix="mmlong-segments-", dir=Path(out).parent) as tmp:
        files: dict[tuple, str] = {}
        parts = []
        for k, (variant, length, inside) in enumerate(plan):
            key = (variant, length) if not inside else ("k", k)
            if key not in files:
                files[key] = str(Path(tmp) / f"part{len(files)}.mp4")
                chosen = [inserts[i] for i in inside]
                write_video(files[key], segment_frames(clips, variant, segment, length, k * segment, chosen), fps,
                            preset="ultrafast")
                encoded += length
            parts.append(files[key])
        written, _ = concat_copies(out, parts)
    if written != total:
        raise ConfigError(f"joined {written} frames, expected {total}", out)
    return encoded
