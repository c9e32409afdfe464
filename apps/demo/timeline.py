"""The demo's evidence timeline: how relevant each sampled frame is to the question, over the video's time.

One figure shows, on a time axis in seconds:

- the relevance of every sampled frame to the question (and to the chosen option, when there is one): cosine
  scores in the encoder's joint text-image space, or the per-frame scores a query-aware selection recorded;
- the scenes found by SceneTilling (VideoLLaMB, Wang et al. 2024) as alternating shaded spans;
- the frames whose tokens reached the model, as ticks along the bottom;
- the answer's evidence times, as vertical lines.

The data is a plain :class:`TimelineData` (:func:`evidence_timeline` gathers it from a pipeline's tokens and
answer); :func:`render_timeline` draws it with matplotlib's Agg canvas (no pyplot, no global state) into a PNG of
an exact pixel size.

>>> data = TimelineData(frame_times=[0.0, 1.0, 2.0, 3.0], duration=4.0, relevance=[0.1, 0.5, 0.9, 0.2],
...                     scenes=[(0.0, 2.0), (2.0, 4.0)], model_times=[1.0, 2.0], evidence=[2.0])
>>> data.peak_time()
2.0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from mmlong.sampling.scan import scene_spans

TIMELINE_WIDTH_PX = 1000
TIMELINE_HEIGHT_PX = 320


@dataclass(frozen=True)
class TimelineData:
    """What the timeline shows. All times in seconds.

    frame_times: ``[T]`` time of every sampled frame. relevance: ``[T]`` score of each frame for the question
    (None when the encoder has no text side). option_relevance: ``[T]`` score for the chosen option, or None.
    scenes: ``(start, end)`` span of each scene. model_times: times of the frames whose tokens reached the
    model. evidence: the answer's evidence times. source: the legend of the relevance curve.
    """

    frame_times: Sequence[float]
    duration: float
    relevance: Sequence[float] | None = None
    option_relevance: Sequence[float] | None = None
    option_label: str = ""
    scenes: Sequence[tuple[float, float]] = ()
    model_times: Sequence[float] = ()
    evidence: Sequence[float] = ()
    source: str = "relevance to the question"
    notes: list[str] = field(default_factory=list)

    def peak_time(self) -> float | None:
        """Time of the frame most relevant to the question, or None without relevance."""
        if not self.relevance:
            return None
        best = max(range(len(self.relevance)), key=lambda i: self.relevance[i])
        return float(self.frame_times[best])


def recorded_scores(stages: Sequence[Any]) -> tuple[list[float], list[float], str, str] | None:
    """Per-frame scores a frame-scoring stage recorded in its ``extra`` (``frame_times`` and ``scores`` lists).

    Returns ``(frame_times, scores, stage name, scored_by)`` of the last such stage, or None. ``scored_by`` is
    ``"query"`` for relevance to the question, ``"novelty"`` when the stage had no text side to score with.

    >>> recorded_scores([{"name": "select", "extra": {"frame_times": [0.0, 1.0], "scores": [0.2, 0.7]}}])
    ([0.0, 1.0], [0.2, 0.7], 'select', 'query')
    """
    for stage in reversed([s.to_dict() if hasattr(s, "to_dict") else s for s in stages]):
        extra = stage.get("extra") or {}
        times, scores = extra.get("frame_times"), extra.get("scores")
        if isinstance(times, (list, tuple)) and isinstance(scores, (list, tuple)) and len(times) == len(scores) > 0:
            return ([float(t) for t in times], [float(s) for s in scores], str(stage.get("name", "stage")),
                    str(extra.get("scored_by", "query")))
    return None


def frame_relevance(encoder: Any, frame_features: torch.Tensor, texts: Sequence[str]) -> torch.Tensor | None:
    """Relevance ``[Q, T]`` of each text to each frame's mean feature ``[T, D]``; None without a text side."""
    if not texts or encoder is None or not encoder.has_text:
        return None
    with torch.inference_mode():
        return encoder.relevance(frame_features, list(texts)).float().cpu()


def _format_tick(seconds: float, _pos: Any = None) -> str:
    from mmlong.apps.render import format_seconds

    text = format_seconds(seconds)
    return text[:-2] if text.endswith(".0") else text


def render_timeline(
    data: TimelineData,
    path: str | Path,
    width_px: int = TIMELINE_WIDTH_PX,
    height_px: int = TIMELINE_HEIGHT_PX,
    title: str = "",
) -> Path:
    """Draw ``data`` into a PNG of exactly ``width_px`` x ``height_px`` pixels at ``path``; returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    dpi = 100
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.07, 0.2, 0.9, 0.68))
    end = max(float(data.duration), max(data.frame_times, default=0.0), 1e-3)

    for k, (start, stop) in enumerate(data.scenes):
        ax.axvspan(start, stop, color="#4c72b0" if k % 2 == 0 else "#dd8452", alpha=0.12, lw=0,
                   label="SceneTilling scenes" if k == 0 else None)

    lows, highs = [0.0], [1.0]
    if data.relevance is not None and len(data.relevance):
        ax.plot(data.frame_times, data.relevance, "-o", color="#1f5f99", ms=3, lw=1.5,
                label=data.source)
        lows, highs = [min(data.relevance)], [max(data.relevance)]
    if data.option_relevance is not None and len(data.option_relevance):
        ax.plot(data.frame_times, data.option_relevance, "--", color="#2a9d55", lw=1.2,
                label=f"relevance to {data.option_label or 'the chosen option'}")
        lows.append(min(data.option_relevance))
        highs.append(max(data.option_relevance))
    low, high = min(lows), max(highs)
    pad = (high - low) * 0.15 or 0.5
    ax.set_ylim(low - pad, high + pad)

    if data.model_times:
        ax.plot(list(data.model_times), [low - pad * 0.55] * len(data.model_times), "|", color="#222222", ms=12,
                mew=1.5, label="frames the model saw")
    for k, t in enumerate(data.evidence):
        ax.axvline(float(t), color="#c0392b", lw=1.6, ls=":", label="evidence" if k == 0 else None)

    ax.set_xlim(0.0, end)
    ax.xaxis.set_major_formatter(FuncFormatter(_format_tick))
    ax.set_xlabel("time in the video")
    ax.set_ylabel("relevance" if data.relevance is not None else "")
    if data.relevance is None:
        ax.set_yticks([])
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title or "Where the video matches the question", fontsize=11, loc="left")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=5, fontsize=8, frameon=False)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, format="png")
    return out


def evidence_timeline(encoder: Any, encoded: Any, final: Any, answer: Any, query: Any) -> TimelineData:
    """The :class:`TimelineData` of one answer.

    encoded: every sampled frame's tokens (before compression); final: the tokens the model saw. Relevance is
    what a query-aware stage recorded when it did, else the encoder's text-frame relevance on frame means.
    """
    from mmlong.compressors.scenetiling import segment_boundaries

    _, frame_times, features = encoded.frame_means()
    times = [float(t) for t in frame_times]
    duration = float((encoded.meta.get("video") or {}).get("duration") or (times[-1] if times else 0.0))
    notes: list[str] = []
    relevance = option_relevance = None
    source = "relevance to the question"
    texts = [query.question] + ([answer.option] if answer.option is not None else [])
    scores = frame_relevance(encoder, features, texts)
    if scores is not None:
        relevance = scores[0].tolist()
        if answer.option is not None:
            option_relevance = scores[1].tolist()
    recorded = recorded_scores(answer.stages)
    if recorded is not None and len(recorded[0]) == len(times):
        _, recorded_values, stage_name, scored_by = recorded
        if scored_by == "query":
            relevance, source = recorded_values, f"relevance to the question (scored by {stage_name})"
        elif relevance is None:
            relevance, source = recorded_values, f"{scored_by} (scored by {stage_name})"
    if relevance is None:
        notes.append("the encoder has no text side: no relevance curve")
    scenes = scene_spans(times, segment_boundaries(features), duration) if len(times) > 2 else []
    model_times = model_frame_times(final)
    return TimelineData(
        frame_times=times,
        duration=duration,
        relevance=relevance,
        option_relevance=option_relevance,
        option_label=f"({answer.letter}) {answer.option}" if answer.option is not None else "",
        scenes=scenes,
        model_times=model_times,
        evidence=[float(t) for t in answer.evidence],
        source=source,
        notes=notes,
    )


def model_frame_times(final: Any) -> list[float]:
    """Times of the frames whose tokens reached the model, sorted."""
    if final.frame_times is not None:
        ids = final.frames().clamp(0, final.frame_times.shape[0] - 1)
        return sorted(float(t) for t in final.frame_times[ids])
    _, times, _ = final.frame_means()
    return sorted(float(t) for t in times)
