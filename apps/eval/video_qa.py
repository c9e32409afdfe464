"""``mmlong eval videomme`` and ``mmlong eval longvideobench``: the commands over the two benchmark adapters.

Both run through :func:`mmlong.apps.eval.run.run_benchmark` (resume, sharding, one record per question with the
frames and subtitles the model saw). ``--with-subtitles`` asks with the dataset's subtitles at the sampled
frames (``--subtitles-fallback asr``: the speech expert for a video that has none); without it the model gets no
subtitles and no expert text at all (no OCR, no speech), as the official "w/o subs" setting; the preset's experts
are off in both settings.
"""

from __future__ import annotations

import argparse
from typing import Any

EXAMPLES = """\
examples:
  mmlong eval videomme --data ~/data/Video-MME --out runs/vmme --sample uniform:16
  mmlong eval videomme --data ~/data/Video-MME --out runs/vmme-subs --with-subtitles --durations short
  mmlong eval longvideobench --data ~/data/LongVideoBench/lvb_val.json --out runs/lvb --with-subtitles
"""


def add_parsers(benchmarks: argparse._SubParsersAction, add_run_arguments) -> None:
    vmme = benchmarks.add_parser("videomme", help="Video-MME: accuracy per duration, without or with subtitles",
                                 epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    vmme.add_argument("--data", required=True, metavar="DIR",
                      help="the Video-MME release (annotation .json/.parquet, data/, subtitle/) or one annotation file")
    vmme.add_argument("--durations", nargs="+", choices=["short", "medium", "long"], help="default: all three")
    _common(vmme)
    add_run_arguments(vmme)
    vmme.set_defaults(func=run_videomme)

    lvb = benchmarks.add_parser("longvideobench", help="LongVideoBench: accuracy per duration group and category",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    lvb.add_argument("--data", required=True, metavar="DIR",
                     help="the LongVideoBench release (lvb_val.json, videos/, subtitles/) or its annotation file")
    lvb.add_argument("--duration-groups", nargs="+", type=int, choices=[15, 60, 600, 3600],
                     help="default: all four")
    lvb.add_argument("--split", choices=["val", "test"], default="val",
                     help="val: lvb_val.json, scored; test: lvb_test_wo_gt.json, writes submission.json (default: val)")
    _common(lvb)
    add_run_arguments(lvb)
    lvb.set_defaults(func=run_longvideobench)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video-root", metavar="DIR", help="where the videos are, when not in the release folder")
    parser.add_argument("--subtitle-root", metavar="DIR", help="where the subtitle files are")
    parser.add_argument("--with-subtitles", action="store_true",
                        help="ask with the subtitles at the sampled frames (the official 'w/ subs' setting)")
    parser.add_argument("--subtitles-fallback", choices=["none", "asr"], default="none",
                        help="for a video without a subtitle file: nothing, or speech recognition (default: none)")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N questions per duration (group)")


def _config_with_subtitles(args: argparse.Namespace, bench: Any) -> Any:
    """The resolved pipeline of the flags, with no experts (no on-screen text, no speech: the benchmark's setting
    decides what text the model gets, for every model); with ``--with-subtitles`` its subtitle source is the
    benchmark's subtitle folder (plus ASR for a video without a file, ``--subtitles-fallback asr``)."""
    from mmlong.apps.options import resolve_args
    from mmlong.errors import ConfigError

    if str(getattr(args, "subtitles", None) or "none").lower() not in ("", "none"):
        raise ConfigError("--subtitles is set by the benchmark: use --with-subtitles (and --subtitles-fallback)")
    if not args.with_subtitles:
        return resolve_args(args, experts="none", subtitles="none")
    folder = bench.subtitle_folder()
    folder.mkdir(parents=True, exist_ok=True)
    return resolve_args(args, experts="none",
                        subtitles=str(folder) + ("+asr" if args.subtitles_fallback == "asr" else ""))


def run_videomme(args: argparse.Namespace) -> int:
    from mmlong.apps.eval.run import build_benchmark, check_run_folder, print_summary, run_benchmark

    check_run_folder(args.out)
    bench = build_benchmark("videomme", data=args.data, video_root=args.video_root, subtitle_root=args.subtitle_root,
                            durations=tuple(args.durations or ()), subtitles=args.with_subtitles, limit=args.limit)
    summary = run_benchmark(bench, _config_with_subtitles(args, bench), args.out, args.overwrite, args.retry_errors)
    return print_summary(bench, summary, args.out)


def run_longvideobench(args: argparse.Namespace) -> int:
    from mmlong.apps.eval.run import build_benchmark, check_run_folder, print_summary, run_benchmark

    check_run_folder(args.out)
    bench = build_benchmark("longvideobench", data=args.data, video_root=args.video_root,
                            subtitle_root=args.subtitle_root, subtitles=args.with_subtitles,
                            duration_groups=tuple(args.duration_groups or ()), limit=args.limit, split=args.split)
    bench.items()  # writes the subtitle files on the videos' clocks before the pipeline reads the folder
    summary = run_benchmark(bench, _config_with_subtitles(args, bench), args.out, args.overwrite, args.retry_errors)
    return print_summary(bench, summary, args.out)
