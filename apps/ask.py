"""``mmlong ask VIDEO QUESTION``: answer one question about one video."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmlong.apps.options import add_pipeline_arguments, dump_json, resolve_args

EXAMPLES = """\
examples:
  mmlong ask clip.mp4 "What animal appears?" --options "a cat" "a dog" "a guitar" "a sailboat"
  mmlong ask movie.mp4 "What happens at the end?" --sample fps:1 --compress stream-memory
  mmlong ask movie.mp4 "Where is the rocket?" --sample query:32 --json
  mmlong ask clip.mp4 "Describe the scene." --model /path/to/Qwen2-VL-2B-Instruct --compress pyramiddrop
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ask",
        help="answer a question about a video",
        description="Answer a question about a video: sample frames, encode them, compress the tokens, ask the "
                    "model. Prints the answer, the chosen option, evidence times and a per-stage table.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("video", help="path of the video file")
    parser.add_argument("question", help="the question, in quotes")
    parser.add_argument("--options", nargs="+", metavar="OPTION", default=(),
                        help="answer options for multiple choice (the model picks one)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--save", metavar="DIR",
                        help="also write answer.json and the resolved config.yaml into DIR")
    add_pipeline_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmlong.apps.render import format_seconds, stage_table
    from mmlong.fit import fit_to_memory
    from mmlong.pipeline import Pipeline

    config = fit_to_memory(resolve_args(args), [args.video])
    pipeline = Pipeline(config, progress=not args.json)
    answer = pipeline.ask(args.video, args.question, options=args.options)
    record = answer.to_dict()
    if args.save:
        out = Path(args.save)
        out.mkdir(parents=True, exist_ok=True)
        (out / "answer.json").write_text(dump_json(record) + "\n")
        config.save(out / "config.yaml")
    if args.json:
        print(dump_json(record))
        return 0
    asked = answer.details.get("question")
    if asked:
        print(f"asks:     {asked.get('summary', asked.get('kind', ''))}")
    print(f"answer:   {answer.text}")
    if answer.option is not None:
        print(f"option:   ({answer.letter}) {answer.option}")
    if answer.evidence:
        print("evidence: " + ", ".join(format_seconds(t) for t in answer.evidence))
    print()
    print(stage_table(answer.stages))
    sys.stdout.flush()
    return 0
