"""``mmlong ask VIDEO QUESTION`` (or ``-q Q1 -q Q2 ...``): answer questions about one video, the model loaded once.

Several questions share one process: the model loads once, and questions that do not change which frames are
chosen share one decoding and encoding (:meth:`mmlong.pipeline.Pipeline.run`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mmlong.apps.options import add_pipeline_arguments, dump_json, resolve_args

EXAMPLES = """\
examples:
  mmlong ask clip.mp4 "What animal appears?" --options "a cat" "a dog" "a guitar" "a sailboat"
  mmlong ask movie.mp4 "What happens at the end?" --sample fps:1 --compress stream-memory
  mmlong ask movie.mp4 "Where is the rocket?" --sample query:32 --json
  mmlong ask clip.mp4 "Describe the scene." --model /path/to/Qwen2-VL-2B-Instruct --compress pyramiddrop
  mmlong ask clip.mp4 -q "What animal appears?" -q "What colour is the sky?" -q "What happens at the end?"
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
    parser.add_argument("question", nargs="?", help="the question, in quotes (or give -q once per question)")
    parser.add_argument("-q", "--question", dest="questions", action="append", metavar="QUESTION", default=[],
                        help="a question, repeatable: every question is answered with the model loaded once")
    parser.add_argument("--options", nargs="+", metavar="OPTION", default=(),
                        help="answer options for multiple choice (the model picks one; for every question)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object instead of text (a list of them for several questions)")
    parser.add_argument("--save", metavar="DIR",
                        help="also write answer.json and the resolved config.yaml into DIR")
    add_pipeline_arguments(parser)
    parser.set_defaults(func=run)


def _print_answer(answer: Any) -> None:
    from mmlong.apps.render import format_seconds, stage_table

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


def run(args: argparse.Namespace) -> int:
    from mmlong.errors import ConfigError
    from mmlong.limits import check_query
    from mmlong.pipeline import Pipeline
    from mmlong.planning.fit import fit_to_memory
    from mmlong.qa import Query
    from mmlong.validate import check_output_file, check_output_folder

    questions = ([args.question] if args.question is not None else []) + list(args.questions)
    if not questions:
        raise ConfigError("give a question: mmlong ask VIDEO \"QUESTION\" or -q \"QUESTION\" (repeatable)")
    for question in questions:  # before any model or video work
        check_query(question, args.options)
    save = None
    if args.save is not None:  # checked before any work, so a run never ends in an unwritable folder
        save = check_output_folder(args.save, "--save")
        for name in ("answer.json", "config.yaml"):
            check_output_file(save / name, what=f"--save {name}")
    config = fit_to_memory(resolve_args(args), [args.video])
    pipeline = Pipeline(config, progress=not args.json)
    answers = pipeline.run(args.video, [Query(q, tuple(args.options)) for q in questions]).answers
    records = [{**answer.to_dict(), "config": config.to_dict()} for answer in answers]
    if len(questions) > 1:
        records = [{"question": q, **r} for q, r in zip(questions, records)]
    payload = records[0] if len(records) == 1 else records
    if args.json:
        print(dump_json(payload))
    else:
        for number, (question, answer) in enumerate(zip(questions, answers)):
            if len(questions) > 1:
                print(("\n" if number else "") + f"question: {question}")
            _print_answer(answer)
    sys.stdout.flush()
    if save is not None:  # after the answer is shown: a disk that fails now loses nothing the run computed
        save.mkdir(parents=True, exist_ok=True)
        (save / "answer.json").write_text(dump_json(payload) + "\n")
        config.save(save / "config.yaml")
    return 0
