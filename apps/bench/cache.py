"""``mmlong bench cache``: a second question about the same video, with and without the feature cache.

Loads the model once (not timed), then asks the same question twice through one pipeline backed by a fresh
cache directory: the first ask decodes and encodes and writes the cache, the second reads it. Both asks include
the model's answer, so the ratio is what a user sees; the token path alone (sample + cache + decode + encode)
is reported too.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any, Sequence

EXAMPLES = """\
examples:
  mmlong bench cache movie.mp4
  mmlong bench cache movie.mp4 --sample fps:1 --question "What animal appears?" --options "a cat" "a dog" --json
"""



def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from mmlong.apps.options import add_pipeline_arguments

    parser = subparsers.add_parser(
        "cache", help="first vs second question on one video: what the feature cache saves",
        description="Ask the same question twice through one pipeline with a fresh feature cache and report "
                    "both times (model load excluded) and their ratio.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", metavar="VIDEO", help="video file")
    parser.add_argument("--question", default="What happens in the video?", help="the question asked twice")
    parser.add_argument("--options", nargs="+", metavar="OPTION", default=(), help="answer options, if any")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_pipeline_arguments(parser)
    parser.set_defaults(func=run)


def _token_path_ms(stages: Sequence[Any]) -> float:
    from mmlong.result import Stage

    return sum(float(s.ms) for s in stages if s.name in Stage.token_path())


def measure(pipeline: Any, video: str, question: str, options: tuple[str, ...] = ()) -> dict[str, Any]:
    """Time two asks of the same question (the model is loaded before timing)."""
    from mmlong.result import Stage, stage_value

    pipeline.load_model()  # load outside the timing
    times, answers = [], []
    for _ in range(2):
        start = time.perf_counter()
        answers.append(pipeline.ask(video, question, options))
        times.append((time.perf_counter() - start) * 1000.0)
    first, second = answers
    hits = [next((s.extra.get("hit") for s in a.stages if s.name == Stage.CACHE), None) for a in answers]
    return {
        "video": video,
        "first_ms": round(times[0], 1),
        "second_ms": round(times[1], 1),
        "speedup": round(times[0] / times[1], 2),
        "first_token_path_ms": round(_token_path_ms(first.stages), 1),
        "second_token_path_ms": round(_token_path_ms(second.stages), 1),
        "token_path_speedup": round(_token_path_ms(first.stages) / max(_token_path_ms(second.stages), 1e-6), 1),
        "cache_hits": hits,
        "same_answer": first.text == second.text,
        "frames": stage_value(first.stages, Stage.SAMPLE),
    }


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from mmlong.apps.options import dump_json, resolve_args
    from mmlong.errors import ConfigError
    from mmlong.pipeline import Pipeline

    config = resolve_args(args)
    if not config.runtime.cache:
        raise ConfigError("bench cache measures the feature cache; drop --no-cache")
    with tempfile.TemporaryDirectory(prefix="mmlong-bench-cache-") as cache_dir:
        runtime = replace(config.runtime, cache_dir=args.cache_dir or cache_dir)
        pipeline = Pipeline(replace(config, runtime=runtime))
        report = measure(pipeline, args.video, args.question, tuple(args.options))
    if report["cache_hits"] != [False, True]:
        raise ConfigError(f"expected a miss then a hit, got {report['cache_hits']}", args.video)
    if args.json:
        print(dump_json(report))
        return 0
    print(f"video:            {report['video']} ({report['frames']} frames)")
    print(f"first ask:        {report['first_ms']:.0f} ms  "
          f"(token path {report['first_token_path_ms']:.0f} ms, cache miss)")
    print(f"second ask:       {report['second_ms']:.0f} ms  "
          f"(token path {report['second_token_path_ms']:.0f} ms, cache hit)")
    print(f"speedup:          {report['speedup']:.1f}x whole ask, {report['token_path_speedup']:.0f}x token path")
    print(f"same answer:      {report['same_answer']}")
    return 0
