"""``mmlong bench experts VIDEO``: what the on-screen text and speech experts cost on a video, per hour of it.

Each expert runs once, without the expert cache, and reports the lines it wrote, its own counts (frames scanned,
frames the text detector ran on, frames recognised; seconds of audio) and its CPU seconds (``time.process_time``,
all threads of this process: wall time on a shared machine says little), also scaled to one hour of video.
The long test videos come from ``mmlong bench make-video`` with a few text and speech moments
(:func:`with_text_moments`, :func:`speech_track`).
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

EXAMPLES = """\
examples:
  mmlong bench make-video long60.mp4 --minutes 60 --text 600="The secret word is banana." \\
      --text 2400="Platform nine" --speech 1800="The password is pineapple."
  mmlong bench experts long60.mp4                 # ocr and asr, CPU seconds per hour of video
  mmlong bench experts long60.mp4 --experts ocr:fps=0.5 --json
"""


def parse_moment(text: str) -> tuple[float, str]:
    """``"600=The secret word"`` -> ``(600.0, "The secret word")`` (seconds, sentence)."""
    from mmlong.errors import ConfigError

    at, sep, sentence = text.partition("=")
    try:
        seconds = float(at)
    except ValueError:
        seconds = -1.0
    if not sep or seconds < 0 or not sentence.strip():
        raise ConfigError(f"a moment is SECONDS=SENTENCE, e.g. 600=\"The secret word is banana.\", got {text!r}")
    return seconds, sentence.strip()


def with_text_moments(frames: Iterable[np.ndarray], moments: Sequence[tuple[float, str]], fps: float,
                      seconds: float, width: int, height: int) -> Iterator[np.ndarray]:
    """``frames`` with a text card (:func:`~mmlong.benchmarks.niavh_media.render_text`) shown ``seconds`` long from each
    moment's time on (a generator: memory stays one frame)."""
    from mmlong.benchmarks.niavh_media import render_text

    cards = [(round(at * fps), round((at + seconds) * fps), render_text(sentence, width, height))
             for at, sentence in moments]
    for index, frame in enumerate(frames):
        yield next((card for start, end, card in cards if start <= index < end), frame)


def speech_track(moments: Sequence[tuple[float, str]], total_seconds: float, sample_rate: int = 16000) -> np.ndarray:
    """float32 mono ``[total_seconds * sample_rate]``: silence with each sentence spoken by espeak-ng at its time."""
    from mmlong.media.audio import mix_into, speak

    track = np.zeros(int(round(total_seconds * sample_rate)), dtype=np.float32)
    for at, sentence in moments:
        track = mix_into(track, speak(sentence, sample_rate), at, sample_rate)
    return track


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "experts", help="CPU cost of the on-screen text and speech experts, per hour of video",
        description="Run each expert once on VIDEO (no cache) and print its lines, counts and CPU seconds, also "
                    "per hour of video.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", metavar="VIDEO", help="a video file")
    parser.add_argument("--experts", default="ocr,asr", metavar="LIST", help="experts to run (default: ocr,asr)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def measure(video: str, experts: str) -> dict[str, Any]:
    """Per expert: lines, counts, CPU seconds (load included and apart) and CPU seconds per hour of video."""
    from mmlong.experts.runner import build_experts
    from mmlong.media.video import probe

    hours = max(probe(video).duration, 1e-9) / 3600.0
    report: dict[str, Any] = {"video": video, "hours": round(hours, 4), "experts": {}}
    for expert in build_experts(experts):
        cpu, wall = time.process_time(), time.perf_counter()
        if expert.name != "asr":
            expert.load()  # the speech expert loads only when there is audio to hear
        load_cpu = time.process_time() - cpu
        output = expert.run(video)
        total_cpu = time.process_time() - cpu
        run_cpu = total_cpu - load_cpu
        report["experts"][expert.name] = {
            "lines": [line.to_dict() for line in output.lines], "stats": dict(output.stats),
            "cpu_s": round(total_cpu, 2), "load_cpu_s": round(load_cpu, 2),
            "wall_s": round(time.perf_counter() - wall, 2),
            "cpu_s_per_hour": round(run_cpu / hours, 1),
        }
    return report


def run(args: argparse.Namespace) -> int:
    from mmlong.apps.options import dump_json
    from mmlong.experts.base import format_time

    report = measure(args.video, args.experts)
    if args.json:
        print(dump_json(report))
        return 0
    print(f"{args.video}: {report['hours'] * 60:.1f} min of video")
    for name, row in report["experts"].items():
        counts = ", ".join(f"{k} {v}" for k, v in row["stats"].items() if k != "cpu_s")
        print(f"{name}: {len(row['lines'])} lines, {row['cpu_s']} CPU s (load {row['load_cpu_s']}), "
              f"{row['cpu_s_per_hour']} CPU s per hour of video; {counts}")
        for line in row["lines"][:20]:
            print(f"  {format_time(line['start'])} [{line['source']}] {line['text']}")
    return 0
