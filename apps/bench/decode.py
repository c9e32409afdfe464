"""``mmlong bench decode`` and ``mmlong bench make-video``.

``decode`` times sampling N frames through mmlong (``open_video`` + the uniform sampler's indices + ``read``)
against raw ``decord.VideoReader(path).get_batch(indices)`` on the same indices, in one run: medians of
``--repeat`` interleaved rounds (wall and CPU time; mmlong's open, which numbers the frames, also on its own),
the ratio, whether the frames are identical, and peak RSS.
Given several videos it also reports how the cost grows with length (longest / shortest).
``make-video`` writes the long low-resolution numbered test video those numbers are measured on.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from mmlong.validate import number_argument

DECODE_EXAMPLES = """\
examples:
  mmlong bench make-video long60.mp4 --minutes 60 --size 160x90
  mmlong bench make-video long5.mp4 --minutes 5 --size 160x90
  mmlong bench decode long60.mp4 --frames 64 --repeat 5
  mmlong bench decode long5.mp4 long60.mp4 --frames 64 --json
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    decode = subparsers.add_parser(
        "decode", help="mmlong's sampled decode vs raw decord on the same indices",
        description="Time sampling --frames frames (uniform) through mmlong against raw decord get_batch on the "
                    "same indices; print both, the ratio (mmlong / raw) and peak RSS. With several videos, also "
                    "the cost of the longest relative to the shortest.",
        epilog=DECODE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    decode.add_argument("videos", nargs="+", metavar="VIDEO", help="video file(s)")
    decode.add_argument("--frames", type=number_argument(int, 1), default=64, help="frames to sample (default: 64)")
    decode.add_argument("--repeat", type=number_argument(int, 1), default=3,
                        help="interleaved rounds; medians are reported (default: 3)")
    decode.add_argument("--decoder", choices=["auto", "decord", "pyav"], default="auto",
                        help="mmlong's decoder (default: auto)")
    decode.add_argument("--json", action="store_true", help="print one JSON object")
    decode.set_defaults(func=run_decode)

    make = subparsers.add_parser(
        "make-video", help="write a long low-resolution numbered test video",
        description="Write a video whose every frame shows its number as 15 light/dark cells (see "
                    "mmlong.media.video.write.numbered_frame), fast: low resolution, x264 ultrafast.",
        epilog=DECODE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    make.add_argument("out", metavar="OUT", help="output video path (.mp4, .mkv, .webm)")
    make.add_argument("--minutes", type=number_argument(float, 0, above=True), default=60.0,
                      help="length in minutes (default: 60)")
    make.add_argument("--size", default="160x90", help="WIDTHxHEIGHT (default: 160x90)")
    make.add_argument("--fps", type=number_argument(float, 0, 1000, above=True), default=25.0,
                      help="frame rate (default: 25)")
    make.add_argument("--codec", default="libx264", help="FFmpeg encoder (default: libx264)")
    make.add_argument("--preset", default="ultrafast", help="encoder preset (default: ultrafast)")
    make.add_argument("--crf", type=int, default=30, help="quality, lower is better (default: 30)")
    make.add_argument("--text", action="append", default=[], metavar="SECONDS=SENTENCE",
                      help="show SENTENCE as a text card from SECONDS on (repeatable; for `mmlong bench experts`)")
    make.add_argument("--speech", action="append", default=[], metavar="SECONDS=SENTENCE",
                      help="speak SENTENCE (espeak-ng) at SECONDS in an audio track (repeatable)")
    make.add_argument("--moment-seconds", type=number_argument(float, 0, above=True), default=3.0,
                      help="how long each --text card is shown (default: 3)")
    make.set_defaults(func=run_make_video)


def _mmlong_read(path: str, frames: int, decoder: str) -> tuple[Any, str, float]:
    """(frames, decoder used, wall ms to open) of sampling ``frames`` uniformly through mmlong."""
    from mmlong.media.video import open_video
    from mmlong.sampling.basic import UniformSampler

    start = time.perf_counter()
    with open_video(path, decoder=decoder) as video:
        open_ms = (time.perf_counter() - start) * 1000.0
        indices = UniformSampler(UniformSampler.Config(frames)).sample(video.meta).indices
        data = video.read(indices).data
        return data, video.meta.decoder, open_ms


def _raw_decord_read(path: str, indices: Any) -> Any:
    import decord

    return decord.VideoReader(path).get_batch(indices.tolist()).asnumpy()


def _timed(fn: Any, *args: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, (time.perf_counter() - wall) * 1000.0, (time.process_time() - cpu) * 1000.0


def bench_one(path: str, frames: int, repeat: int, decoder: str) -> dict[str, Any]:
    """Medians over ``repeat`` rounds of mmlong vs raw decord on one video (the order alternates per round)."""
    import numpy as np

    from mmlong.errors import ConfigError
    from mmlong.media.video import probe
    from mmlong.sampling.basic import UniformSampler

    meta = probe(path, decoder=decoder)
    indices = UniformSampler(UniformSampler.Config(frames)).sample(meta).indices
    Path(path).read_bytes()  # both sides start from a warm page cache
    ours_wall, ours_cpu, ours_open, raw_wall, raw_cpu = [], [], [], [], []
    identical, max_diff = True, 0
    for round_index in range(max(1, repeat)):
        sides = ["mmlong", "raw"] if round_index % 2 == 0 else ["raw", "mmlong"]
        results: dict[str, Any] = {}
        for side in sides:
            if side == "mmlong":
                (data, used, open_ms), wall, cpu = _timed(_mmlong_read, path, frames, decoder)
                ours_wall.append(wall), ours_cpu.append(cpu), ours_open.append(open_ms)
                results["mmlong"] = data.numpy()
            else:
                try:
                    raw, wall, cpu = _timed(_raw_decord_read, path, indices)
                except Exception as err:  # decord's own errors: AV1, rotation, ...
                    raise ConfigError(f"raw decord cannot read this file ({str(err).splitlines()[-1]}); "
                                      "bench decode needs a file decord can read", path) from err
                raw_wall.append(wall), raw_cpu.append(cpu)
                results["raw"] = raw
        identical = identical and bool(np.array_equal(results["mmlong"], results["raw"]))
        max_diff = max(max_diff, int(np.abs(results["mmlong"].astype(np.int16) - results["raw"]).max()))
    from mmlong.pipeline import peak_rss_mb

    mmlong_ms, raw_ms = statistics.median(ours_wall), statistics.median(raw_wall)
    mmlong_cpu, raw_cpu_ms = statistics.median(ours_cpu), statistics.median(raw_cpu)
    return {
        "video": path, "duration_s": round(meta.duration, 3), "num_frames": meta.num_frames,
        "size": f"{meta.width}x{meta.height}", "frames": min(frames, meta.num_frames), "repeat": max(1, repeat),
        "mmlong_ms": round(mmlong_ms, 1), "raw_ms": round(raw_ms, 1), "ratio": round(mmlong_ms / raw_ms, 3),
        "mmlong_cpu_ms": round(mmlong_cpu, 1), "raw_cpu_ms": round(raw_cpu_ms, 1),
        "mmlong_open_ms": round(statistics.median(ours_open), 1),
        "cpu_ratio": round(mmlong_cpu / raw_cpu_ms, 3) if raw_cpu_ms > 0 else None,
        "decoder": used, "identical_frames": identical, "max_abs_diff": max_diff,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def run_decode(args: argparse.Namespace) -> int:
    from mmlong.apps.options import dump_json
    from mmlong.errors import ConfigError

    if args.frames < 1 or args.repeat < 1:
        raise ConfigError("--frames and --repeat must be >= 1")
    runs = [bench_one(v, args.frames, args.repeat, args.decoder) for v in args.videos]
    record: dict[str, Any] = dict(runs[0]) if len(runs) == 1 else {"runs": runs}
    if len(runs) > 1:
        short, long = min(runs, key=lambda r: r["duration_s"]), max(runs, key=lambda r: r["duration_s"])
        record["length_scaling"] = {
            "shortest": short["video"], "longest": long["video"],
            "duration_ratio": round(long["duration_s"] / short["duration_s"], 2),
            "mmlong_ms_ratio": round(long["mmlong_ms"] / short["mmlong_ms"], 3),
            "mmlong_cpu_ratio": round(long["mmlong_cpu_ms"] / short["mmlong_cpu_ms"], 3),
        }
    if args.json:
        print(dump_json(record))
        return 0
    for r in runs:
        print(f"{r['video']}: {r['duration_s']:.0f} s, {r['num_frames']} frames {r['size']}; "
              f"{r['frames']} frames sampled, median of {r['repeat']}")
        print(f"  mmlong  {r['mmlong_ms']:9.1f} ms wall {r['mmlong_cpu_ms']:9.1f} ms cpu  ({r['decoder']}; "
              f"open {r['mmlong_open_ms']:.1f} ms wall)")
        print(f"  decord  {r['raw_ms']:9.1f} ms wall {r['raw_cpu_ms']:9.1f} ms cpu")
        print(f"  ratio   {r['ratio']:9.3f} wall {r['cpu_ratio']:13.3f} cpu   identical frames: "
              f"{r['identical_frames']} (max diff {r['max_abs_diff']})   peak RSS {r['peak_rss_mb']} MiB")
    if "length_scaling" in record:
        s = record["length_scaling"]
        print(f"length scaling: {s['longest']} is {s['duration_ratio']}x longer than {s['shortest']} and costs "
              f"{s['mmlong_ms_ratio']}x wall, {s['mmlong_cpu_ratio']}x cpu")
    return 0


def run_make_video(args: argparse.Namespace) -> int:
    from mmlong.errors import ConfigError
    from mmlong.media.video.write import numbered_frames, parse_size, write_video

    width, height = parse_size(args.size)
    if args.minutes <= 0 or args.fps <= 0:
        raise ConfigError("--minutes and --fps must be positive")
    count = int(round(args.minutes * 60 * args.fps))
    start = time.perf_counter()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    frames = numbered_frames(count, width, height)
    audio = None
    if args.text or args.speech:
        from mmlong.apps.bench.experts import parse_moment, speech_track, with_text_moments

        frames = with_text_moments(frames, [parse_moment(t) for t in args.text], args.fps, args.moment_seconds,
                                   width, height)
        if args.speech:
            audio = (speech_track([parse_moment(t) for t in args.speech], args.minutes * 60), 16000)
    write_video(args.out, frames, args.fps, codec=args.codec, preset=args.preset, crf=args.crf, audio=audio)
    seconds = time.perf_counter() - start
    print(f"wrote {args.out}: {count} frames, {width}x{height} at {args.fps:g} fps "
          f"({args.minutes:g} min) in {seconds:.1f} s")
    return 0
