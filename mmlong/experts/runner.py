"""Build the experts a pipeline config names and run them on a video through the expert cache.

``experts`` is a chain spec like a compressor chain (``"ocr,asr:language=en"``; ``""`` or ``"none"`` for
none). ``subtitles`` adds one more source of lines: ``"asr"`` (the speech expert, if not already listed), a
subtitle file path (``.srt`` / ``.vtt``), or ``"none"``.

>>> [e.name for e in build_experts("ocr,asr", "none")]
['ocr', 'asr']
>>> [e.name for e in build_experts("", "asr")]
['asr']
>>> build_experts("ocrr", "none")
Traceback (most recent call last):
...
mmlong.errors.ConfigError: --experts 'ocrr': unknown expert 'ocrr'; did you mean 'ocr'? available: asr, ocr, subtitles
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

from mmlong.errors import ConfigError
from mmlong.experts.base import Expert, TimedText
from mmlong.types import Step

NO_SUBTITLES = ("", "none")


def build_experts(experts: str, subtitles: str = "none") -> list[Expert]:
    """The experts of an ``experts`` chain spec plus the ``subtitles`` source, in order, each once."""
    from mmlong.registry import EXPERTS, RegistryError
    from mmlong.spec import SpecError, parse_chain

    try:
        built = [EXPERTS.from_spec(spec) for spec in parse_chain(experts or "")]
    except (RegistryError, SpecError) as err:
        raise ConfigError(f"--experts {experts!r}: {err}") from err
    names = [e.name for e in built]
    if len(set(names)) != len(names):
        raise ConfigError(f"--experts {experts!r}: an expert is listed twice")
    choice = (subtitles or "none").strip()
    if choice.lower() in NO_SUBTITLES:
        return built
    if choice.lower() == "asr":
        return built if "asr" in names else [*built, EXPERTS.create("asr")]
    folder, fallback = choice, "none"
    if choice.endswith("+asr"):
        folder, fallback = choice[: -len("+asr")], "asr"
    path = Path(folder).expanduser()
    if path.is_dir():  # a folder of per-video files (<video stem>.srt), as benchmarks ship them
        if fallback == "asr" and "asr" in names:
            raise ConfigError(f"--subtitles {choice!r}: asr is already one of the experts; drop '+asr'")
        return [*built, EXPERTS.create("subtitles", folder=str(path), fallback=fallback)]
    if not path.is_file() or fallback == "asr":
        raise ConfigError("subtitle file not found; pass --subtitles asr, none, an existing .srt/.vtt file or a "
                          "folder of <video name>.srt files (DIR, or DIR+asr to transcribe videos without one)",
                          str(path))
    from mmlong.experts.subtitle_file import read_subtitles

    read_subtitles(path)  # a bad file fails here, before any model loads
    return [*built, EXPERTS.create("subtitles", path=str(path))]


def run_experts(experts: Sequence[Expert], video: str, cache: Any = None,
                feed: Any = None) -> tuple[list[TimedText], list[Step]]:
    """Every expert's lines for ``video`` (merged in time order) and one :class:`Step` per expert.

    feed: a :class:`~mmlong.frame_feed.FrameFeed` of frames another stage decodes (a sampler's scan): the first
    expert that reads frames (``reads_frames``) runs on it, before the others, instead of decoding the video
    again; an unused feed (the producer decoded nothing) leaves it to decode on its own.
    A step is named ``expert:<name>``; its ``extra`` says whether the cache hit, how many lines came out, and
    the expert's own counts (frames OCR'd, audio seconds, CPU seconds of the run that made the entry).
    """
    lines: list[TimedText] = []
    steps: list[Step] = []
    reader = next((e for e in experts if getattr(e, "reads_frames", False)), None) if feed is not None else None
    order = ([reader] if reader is not None else []) + [e for e in experts if e is not reader]
    try:
        for expert in order:
            start = time.perf_counter()
            ident = expert.cache_id() + (f"|input:{expert.input_id(video)}" if expert.input_id(video) else "")
            key = cache.key(video, ident) if cache is not None else None
            output = cache.get(key) if key is not None else None
            hit = output is not None
            if output is None:
                shared = expert is reader and feed.used
                # experts load their weights on first need
                output = expert.run(video, frames=feed) if shared else expert.run(video)
                if key is not None:
                    cache.put(key, output)
            if expert is reader:
                feed.abandon()
            ms = (time.perf_counter() - start) * 1000.0
            lines.extend(output.lines)
            steps.append(Step(f"expert:{expert.name}", dataclasses.asdict(expert.config), 0, len(output.lines), ms,
                              {"hit": hit, **dict(output.stats)}))
    finally:
        if feed is not None:
            feed.abandon()
    steps = sorted(steps, key=lambda step: [e.name for e in experts].index(step.name.split(":", 1)[1]))
    lines.sort(key=lambda line: (line.start, line.end))
    return lines, steps
