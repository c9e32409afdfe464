"""Subtitles for native VLM prompts: the experts' timestamped lines placed at the sampled frames' times.

Video-MME (Fu et al., 2024, arXiv:2405.21075) and LongVideoBench (Wu et al., 2024, arXiv:2407.15754) give a
video model its subtitles as text beside the frames, by time. Here each sampled frame owns the stretch of the
timeline nearest to it (half-way to its neighbours); a line goes to the first frame whose stretch its span
overlaps, so every line appears once, next to the frame it belongs with. :func:`subtitle_context` writes them
as one block the adapters put before the question (Qwen2-VL, LLaVA-OneVision and SmolVLM2 all share it):

>>> from mmlong.experts.base import TimedText
>>> lines = [TimedText(12.0, 14.0, "speech", "The password is seventeen."), TimedText(3.0, 3.0, "text", "EXIT")]
>>> print(subtitle_context(lines, [0.0, 10.0, 20.0]))
Subtitles and on-screen text at the sampled frames:
frame 00:00: [text] EXIT
frame 00:10: [speech] The password is seventeen.
>>> subtitles_by_frame(lines, [0.0, 10.0, 20.0])[2]
[]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from mmlong.qa import Query
    from mmlong.types import VisualTokens

HEADER = "Subtitles and on-screen text at the sampled frames:"


def frame_stretches(frame_times: Sequence[float]) -> list[tuple[float, float]]:
    """``(start, end)`` of the timeline nearest each frame time (sorted times; the ends are open-ended)."""
    times = [float(t) for t in frame_times]
    out = []
    for i, t in enumerate(times):
        lo = float("-inf") if i == 0 else 0.5 * (times[i - 1] + t)
        hi = float("inf") if i == len(times) - 1 else 0.5 * (t + times[i + 1])
        out.append((lo, hi))
    return out


def subtitles_by_frame(lines: Sequence[Any], frame_times: Sequence[float]) -> list[list[Any]]:
    """For each frame (times in increasing order), the lines that go with it (time order). Notes are left out."""
    order = sorted(range(len(frame_times)), key=lambda i: float(frame_times[i]))
    stretches = frame_stretches([frame_times[i] for i in order])
    groups: list[list[Any]] = [[] for _ in frame_times]
    for line in sorted(lines, key=lambda item: (item.start, item.end)):
        if line.source == "note":
            continue
        for rank, (lo, hi) in enumerate(stretches):
            if line.start < hi and lo <= line.end:
                groups[order[rank]].append(line)
                break
    return groups


def lines_in_block(lines: Sequence[Any], frame_times: Sequence[float]) -> list[Any]:
    """The lines :func:`subtitle_context` writes, in the order it writes them."""
    if not lines or not len(frame_times):
        return []
    groups = subtitles_by_frame(lines, frame_times)
    return [line for i in sorted(range(len(frame_times)), key=lambda i: float(frame_times[i])) for line in groups[i]]


def subtitle_context(lines: Sequence[Any], frame_times: Sequence[float], plain: bool = False) -> str:
    """The block of subtitle lines grouped by sampled frame, or ``""`` when there are none; ``plain``: only the
    lines' text, one a line (the official Video-MME and LongVideoBench layouts list the subtitles so)."""
    from mmlong.experts.base import format_time

    if not lines or not len(frame_times):
        return ""
    if plain:
        return "\n".join(line.text for line in lines_in_block(lines, frame_times))
    groups = subtitles_by_frame(lines, frame_times)
    rows = []
    for i in sorted(range(len(frame_times)), key=lambda i: float(frame_times[i])):
        for line in groups[i]:
            rows.append(f"frame {format_time(frame_times[i])}: [{line.source}] {line.text}")
    return "\n".join([HEADER, *rows]) if rows else ""


def videomme_at_frames(lines: Sequence[Any], frame_times: Sequence[float], fps: float | None) -> list[Any]:
    """Video-MME's rule ("only the subtitles corresponding to the sampled frames", as lmms-eval's videomme utils
    apply it): a line is kept when a sampled frame's index ``f`` has ``int(start * fps) <= f < int(end * fps)``
    (the frame index is ``round(t * fps)`` of its time ``t``; without a frame rate, ``start <= t < end``)."""
    kept = []
    for line in lines:
        if fps:
            first, stop = int(line.start * fps), int(line.end * fps)
            hit = any(first <= round(float(t) * fps) < stop for t in frame_times)
        else:
            hit = any(line.start <= float(t) < line.end for t in frame_times)
        if hit:
            kept.append(line)
    return kept


def longvideobench_at_frames(lines: Sequence[Any], frame_times: Sequence[float]) -> list[Any]:
    """LongVideoBench's rule (``insert_subtitles_into_frames``): a line whose span is shorter than 1 s is widened
    to 1 s around its middle; it is kept when a sampled frame lies strictly inside that span, so lines after the
    clip's end (or between far-apart frames) are left out."""
    kept = []
    for line in lines:
        start, end = line.start, line.end
        if end - start < 1:
            middle = (start + end) / 2
            start, end = middle - 0.5, middle + 0.5
        if any(start < float(t) < end for t in frame_times):
            kept.append(line)
    return kept


def lines_for_query(lines: Sequence[Any], frame_times: Sequence[float], query: Any, fps: float | None = None) -> list:
    """The timed lines a question may see: none when ``query.timed_text`` is off (a benchmark's setting without
    subtitles), those of the sampled frames by the benchmark's own rule for Video-MME and LongVideoBench
    questions (notes about the video are kept), else every line."""
    if not getattr(query, "timed_text", True):
        return []
    benchmark = getattr(query, "benchmark", "")
    notes = [line for line in lines if line.source == "note"]
    said = [line for line in lines if line.source != "note"]
    if benchmark == "videomme":
        return notes + videomme_at_frames(said, frame_times, fps)
    if benchmark == "longvideobench":
        return notes + longvideobench_at_frames(said, frame_times)
    return list(lines)


def sampled_frame_times(tokens: Any) -> list[float]:
    """The sampled frames' times (s) of visual tokens: ``frame_times`` when kept, else the tokens' own times."""
    times = tokens.frame_times if tokens.frame_times is not None else tokens.timestamps.unique()
    return sorted(float(t) for t in times)


def seen_by_model(tokens: VisualTokens, lines: Sequence[Any]) -> dict[str, Any]:
    """What a record keeps of what the model saw: the sampled frames' times and the expert/subtitle lines that
    go with them (grouped to the frames as the native adapters' subtitle block does). A model that reports the
    lines its prompt held (``details["timed_text_seen"]``) is believed over this."""
    times = sampled_frame_times(tokens)
    seen = [line.to_dict() for group in subtitles_by_frame(lines, times) for line in group] if lines else []
    return {"frame_times": [round(t, 3) for t in times], "timed_text_seen": seen}


def lines_for(query: Query, tokens: VisualTokens, lines: Sequence[Any]) -> list[Any]:
    """The expert/subtitle lines ``query`` may see (:func:`lines_for_query`: none without
    subtitles, only the sampled frames' by the benchmark's rule)."""
    if not lines:
        return []
    fps = (tokens.meta.get("video") or {}).get("fps")
    return lines_for_query(lines, sampled_frame_times(tokens), query, float(fps) if fps else None)
