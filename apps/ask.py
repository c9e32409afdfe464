"""``mmlong ask VIDEO QUESTION`` (or ``-q Q1 -q Q2 ...``, or ``--questions FILE.jsonl``): answer questions about
one video, the model loaded once.

Several questions share one process: the model loads once, and questions that do not change which frames are
chosen share one decoding and encoding (:meth:`mmlong.pipeline.Pipeline.run`). A questions file is read by
batch's reader (:func:`mmlong.apps.batch.read_questions`): a bad line is named on stderr and the others are
answered.
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
  mmlong ask clip.mp4 --questions questions.jsonl --json

questions file (--questions): JSONL, one question per line, batch's format without "video" (and "id" optional):
  {"question": "What animal appears?", "options": ["a cat", "a dog"]}
  {"id": "sky", "question": "What colour is the sky?"}
exit status: 0 all answered, 1 some lines of the questions file could not be asked (named on stderr), 2 usage.
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
    parser.add_argument("--questions", dest="questions_file", metavar="FILE.jsonl",
                        help="more questions about VIDEO, one JSON object per line (batch's format; see below): "
                             "all answered with the model loaded once")
    parser.add_argument("--options", nargs="+", metavar="OPTION", default=(),
                        help="answer options for multiple choice (the model picks one; for every question that "
                             "has none of its own)")
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
    for question in questions:  # before any model or video work
        check_query(question, args.options)
    queries = [(None, Query(q, tuple(args.options))) for q in questions]
    bad_lines = _read_questions_file(args, queries)
    if not queries and not bad_lines:
        swallowed = f" (--options took {args.options[-1]!r} as an option: put the question before --options)" \
            if args.options and args.options[-1].rstrip().endswith("?") else ""
        raise ConfigError("give a question: mmlong ask VIDEO \"QUESTION\", -q \"QUESTION\" (repeatable) or "
                          f"--questions FILE.jsonl{swallowed}")
    if not queries:
        return 2  # every line of the file was bad (each named on stderr)
    save = None
    if args.save is not None:  # checked before any work, so a run never ends in an unwritable folder
        save = check_output_folder(args.save, "--save")
        for name in ("answer.json", "config.yaml"):
            check_output_file(save / name, what=f"--save {name}")
    config = fit_to_memory(resolve_args(args), [args.video])
    pipeline = Pipeline(config, progress=not args.json)
    answers = pipeline.run(args.video, [query for _, query in queries]).answers
    records = [{**answer.to_dict(), "config": config.to_dict()} for answer in answers]
    many = len(queries) > 1 or args.questions_file is not None
    if many:
        records = [{**({} if entry is None else {"id": entry.id, "line": entry.line}), "question": query.question,
                    **r} for (entry, query), r in zip(queries, records)]
        records += [{"id": bad.id, "line": bad.line, "error": bad.error} for bad in bad_lines]
        records.sort(key=lambda record: record.get("line", 0))  # -q questions first, then the file's lines in order
    payload = records if many else records[0]
    if args.json:
        print(dump_json(payload))
    else:
        for number, ((_, query), answer) in enumerate(zip(queries, answers)):
            if many:
                print(("\n" if number else "") + f"question: {query.question}")
            _print_answer(answer)
    sys.stdout.flush()
    if save is not None:  # after the answer is shown: a disk that fails now loses nothing the run computed
        save.mkdir(parents=True, exist_ok=True)
        (save / "answer.json").write_text(dump_json(payload) + "\n")
        config.save(save / "config.yaml")
    return 1 if bad_lines else 0


def _read_questions_file(args: argparse.Namespace, queries: list) -> list:
    """Add the questions of ``--questions FILE`` to ``queries`` (``(BatchItem, Query)`` pairs); returns the file's
    bad lines, each already named on stderr in one line (``FILE: line N: reason``)."""
    from pathlib import Path

    from mmlong.apps.batch import BadLine, read_questions
    from mmlong.qa import Query

    if args.questions_file is None:
        return []
    video = str(Path(args.video).expanduser().resolve())
    entries = read_questions(args.questions_file, video=video)
    for entry in entries:
        if isinstance(entry, BadLine):
            print(f"mmlong: {args.questions_file}: {entry.error}", file=sys.stderr)
        else:
            queries.append((entry, Query(entry.question, entry.options or tuple(args.options))))
    return [entry for entry in entries if isinstance(entry, BadLine)]
