"""``mmlong batch QUESTIONS.jsonl``: answer many questions about many videos; resumable, crash-safe, sharded.

Each input line is ``{"id", "video", "question", "options"?, "answer"?, ...}``. Each id ends as exactly one
output record: every field of the input line, kept as written, plus the prediction in fields of its own
(:data:`PREDICTION_FIELDS`: ``prediction``, ``predicted_option``, ...), or plus ``error`` when the item failed (a
bad video, a bad line); the run goes on. When the line has a gold ``answer`` for a multiple-choice question (a
letter ``"B"``, ``"(B)"``, a 0-based index, or the option's text), the record gets ``correct`` and the summary
the accuracy over the scored questions. Questions about
one video share its decoded and encoded frames (one :meth:`~mmlong.pipeline.Pipeline.run` per video). The result log,
resume, sharding and merging are the one job runner's (:func:`mmlong.jobs.runner.run_job`); rank detection is in
:mod:`mmlong.jobs.distributed`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from mmlong.apps.options import add_pipeline_arguments, dump_json, resolve_args
from mmlong.errors import ConfigError
from mmlong.limits import check_query, loads_json

EXAMPLES = """\
input (JSONL, one question per line; video paths relative to the file's folder or --video-root):
  {"id": "q1", "video": "clips/cat.mp4", "question": "What animal appears?", "options": ["a cat", "a dog"]}
  {"id": "q2", "video": "cat.mp4", "question": "Which?", "options": ["a cat", "a dog"], "answer": "A", "src": 7}

examples:
  mmlong batch questions.jsonl --out answers.jsonl --sample uniform:16
  mmlong batch questions.jsonl --out answers.jsonl            # run again: resumes, skips answered ids
  mmlong batch questions.jsonl --out answers.jsonl --overwrite
  torchrun --nproc-per-node 4 -m mmlong batch questions.jsonl --out answers.jsonl --device cuda
  accelerate launch --multi_gpu --num_processes 4 -m mmlong batch questions.jsonl --out answers.jsonl --device cuda

several machines (the output folder on a filesystem every machine sees; run on each, node-rank 0..N-1):
  torchrun --nnodes 2 --node-rank 0 --nproc-per-node 8 --master-addr HOST0 --master-port 29500 \\
      -m mmlong batch questions.jsonl --out /shared/answers.jsonl --device cuda

output: one record per id, in input order, in --out: every input field as written, plus prediction,
predicted_option, predicted_index, predicted_letter, evidence, stages (and correct, when the line has a gold
"answer": a letter, a 0-based index or the option text; the summary then gives the accuracy); beside it
OUT.config.yaml (the resolved pipeline) and OUT.summary.json. Each rank writes OUT.rank{r}-of-{N} as it goes;
rank 0 merges the parts at the end.
Resume: the default when OUT exists; ids with an answer are skipped, error records are retried unless
--no-retry-errors. A killed run loses at most the item in progress.
exit status: 0 all answered, 1 some items failed (one process; under torchrun / accelerate every rank that
finished its share exits 0 and the summary lists what failed), 2 usage or config error.
"""


@dataclass(frozen=True)
class BatchItem:
    """One question of the input. ``video`` as written in the file; ``path`` resolved against the root."""

    id: str | int
    video: str
    path: str
    question: str
    options: tuple[str, ...] = ()
    line: int = 0
    #: every field of the input line, as written (kept in the output record)
    fields: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class BadLine:
    """An input line that cannot be asked: its record is an error."""

    id: str | int
    line: int
    error: str
    fields: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass
class BatchSummary:
    """What a batch run did; ``to_dict`` is what ``OUT.summary.json`` holds."""

    input: str
    output: str
    items: int = 0
    answered: int = 0
    failed: int = 0
    done_before: int = 0
    computed: int = 0
    seconds: float = 0.0
    visual_tokens: int = 0
    world_size: int = 1
    failures: list[dict[str, Any]] = field(default_factory=list)
    scored: int = 0
    correct: int = 0

    def to_dict(self) -> dict[str, Any]:
        rate = self.computed / self.seconds if self.seconds > 0 else 0.0
        return {
            "input": self.input, "output": self.output, "items": self.items, "answered": self.answered,
            "failed": self.failed, "done_before": self.done_before, "computed": self.computed,
            "seconds": round(self.seconds, 3), "items_per_second": round(rate, 4),
            "visual_tokens": self.visual_tokens, "world_size": self.world_size, "failures": self.failures,
            "scored": self.scored, "correct": self.correct,
            "accuracy": round(self.correct / self.scored, 4) if self.scored else None,
        }

    def text(self) -> str:
        from mmlong.apps.render import format_seconds

        rate = self.computed / self.seconds if self.seconds > 0 else 0.0
        return (f"batch: {self.items} questions: {self.answered} answered, {self.failed} failed; "
                f"{self.computed} computed in {format_seconds(self.seconds)} ({rate:.2f}/s), "
                f"{self.done_before} done before; {self.visual_tokens} visual tokens; {self.world_size} rank(s)"
                + (f"; accuracy {100 * self.correct / self.scored:.1f} % ({self.correct}/{self.scored} with a gold "
                   "answer)" if self.scored else ""))


# ---------------------------------------------------------------------------------------------- input

#: the fields batch writes into a record (an input line may not use them: they would hide its own data)
PREDICTION_FIELDS = ("prediction", "predicted_option", "predicted_index", "predicted_letter", "evidence", "stages",
                     "details", "correct", "error")


def _check_line(number: int, value: Any, root: Path, video: str | None = None) -> BatchItem | BadLine:
    if not isinstance(value, dict):
        return BadLine(f"line-{number}", number, f"line {number}: not a JSON object")
    if video is not None and "video" in value and (root / str(value["video"])).resolve() != Path(video).resolve():
        return BadLine(value.get("id", number), number, f"line {number}: names another video ({value['video']!r}); "
                                                        "ask answers about one video (mmlong batch: several)")
    entry = _check_fields(number, {"id": number, "video": video, **value} if video is not None else value, root)
    return dataclasses.replace(entry, fields=dict(value))


def _check_fields(number: int, value: dict[str, Any], root: Path) -> BatchItem | BadLine:
    item_id = value.get("id")
    readable_id = isinstance(item_id, (str, int)) and not isinstance(item_id, bool) and str(item_id) != ""
    record_id = item_id if readable_id else f"line-{number}"
    if "id" not in value:
        return BadLine(record_id, number, f"line {number}: missing field 'id'")
    if not readable_id:
        return BadLine(record_id, number, f"line {number}: 'id' must be a non-empty string or an integer")
    for name in ("video", "question"):
        if not isinstance(value.get(name), str) or not value[name].strip():
            return BadLine(record_id, number, f"line {number}: missing field {name!r}")
    options = value.get("options") or []
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        return BadLine(record_id, number, f"line {number}: 'options' must be a list of strings")
    try:  # option count, question and option lengths: before any work on the item
        check_query(value["question"], options, what=f"line {number} (id {record_id!r})")
    except ConfigError as err:
        return BadLine(record_id, number, str(err))
    taken = [name for name in PREDICTION_FIELDS if name in value]
    if taken:
        return BadLine(record_id, number, f"line {number}: field {taken[0]!r} is where batch writes its output; "
                                          "rename it in the input")
    video = value["video"]
    path = Path(video).expanduser()
    if not path.is_absolute():
        path = root / path
    return BatchItem(record_id, video, str(path), value["question"], tuple(options), number)


def read_questions(path: str | Path, video_root: str | Path | None = None,
                   video: str | None = None) -> list[BatchItem | BadLine]:
    """Parse a questions JSONL file. Bad lines become :class:`BadLine` (the run goes on); a missing or empty
    file, or an id used twice, raises :class:`~mmlong.errors.ConfigError` (nothing can be run safely).
    ``video``: the one video every line is about (``mmlong ask --questions``); a line may then leave out
    ``video`` and ``id`` (its line number)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("questions file not found", str(p))
    root = Path(video_root).expanduser() if video_root else p.resolve().parent
    entries: list[BatchItem | BadLine] = []
    first_line: dict[str, int] = {}
    with open(p, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                entry = _check_line(number, loads_json(raw.decode("utf-8").rstrip("\r\n"), f"line {number}"),
                                    root, video)
            except UnicodeDecodeError:
                entry = BadLine(f"line-{number}", number, f"line {number}: not valid UTF-8")
            except json.JSONDecodeError as err:
                entry = BadLine(f"line-{number}", number,
                                f"line {number}: not valid JSON ({err.msg} at column {err.colno})")
            except ValueError as err:  # nested too deeply
                entry = BadLine(f"line-{number}", number, str(err))
            key = str(entry.id)
            if key in first_line:
                raise ConfigError(f"line {number}: id {entry.id!r} is used again (first on line {first_line[key]}); "
                                  "give every question its own id", str(p))
            first_line[key] = number
            entries.append(entry)
    if not entries:
        raise ConfigError("no questions in the file; write one JSON object per line", str(p))
    return entries


# ---------------------------------------------------------------------------------------------- records


def gold_index(gold: Any, options: Sequence[str]) -> int | None:
    """The option a gold ``answer`` names: a letter (``"B"``, ``"(B)"``, ``"B."``), a 0-based index, or the option's
    text (case and surrounding space ignored); None when it names none (the question is not scored).

    >>> opts = ["a cat", "a dog", "a bird"]
    >>> gold_index("B", opts), gold_index("(c)", opts), gold_index(0, opts), gold_index(" A Dog ", opts)
    (1, 2, 0, 1)
    >>> gold_index("D", opts), gold_index("a fish", opts), gold_index(True, opts)
    (None, None, None)
    """
    if not options or isinstance(gold, bool):
        return None
    if isinstance(gold, int):
        return gold if 0 <= gold < len(options) else None
    if not isinstance(gold, str):
        return None
    match = re.fullmatch(r"\s*\(?([A-Za-z])[).:]?\s*", gold)
    if match and len(options) <= 26:
        index = ord(match.group(1).upper()) - ord("A")
        return index if index < len(options) else None
    texts = [o.strip().lower() for o in options]
    return texts.index(gold.strip().lower()) if gold.strip().lower() in texts else None


def answer_record(item: BatchItem, answer: Any) -> dict[str, Any]:
    """The output record of an answered item: the input line's fields as written, then the prediction in fields of
    its own, and ``correct`` when the line has a gold ``answer`` to a multiple-choice question (the resolved
    config lives once in OUT.config.yaml)."""
    body = answer.to_dict()
    record: dict[str, Any] = {**(item.fields or {"id": item.id, "video": item.video, "question": item.question}),
                              "prediction": body["answer"], "predicted_option": body["option"],
                              "predicted_index": body["option_index"], "predicted_letter": body["letter"],
                              "evidence": body["evidence"], "stages": body["stages"]}
    if "details" in body:
        record["details"] = body["details"]
    gold = gold_index((item.fields or {}).get("answer"), item.options)
    if gold is not None:
        record["correct"] = body["option_index"] == gold
    return record


def error_record(entry: BatchItem | BadLine, error: str) -> dict[str, Any]:
    if entry.fields:  # the input's own fields kept; a bad line's record also names its line
        return {**entry.fields, "id": entry.id, **({"line": entry.line} if isinstance(entry, BadLine) else {}),
                "error": error}
    if isinstance(entry, BadLine):
        return {"id": entry.id, "line": entry.line, "error": error}
    return {"id": entry.id, "video": entry.video, "question": entry.question, "error": error}


def model_tokens(record: dict[str, Any]) -> int:
    """Visual tokens the model saw for one answered record (its ``model`` stage's input)."""
    from mmlong.result import Stage, stage_value

    return stage_value(record.get("stages", ()), Stage.MODEL, "tokens_in") or 0


def group_key(entry: BatchItem | BadLine) -> str:
    """Questions about one video form one group (shared encoding, one rank); a bad line is its own group."""
    return entry.path if isinstance(entry, BatchItem) else f"\0line-{entry.line}"


# ---------------------------------------------------------------------------------------------- running


def _answer_group(pipeline: Any, group: list[BatchItem | BadLine]) -> list[dict[str, Any]]:
    """The records of one group: one video's questions (answers, or the video's error for each), or a bad line."""
    from mmlong.jobs.runner import run_video
    from mmlong.qa import Query

    if isinstance(group[0], BadLine):
        return [error_record(e, e.error) for e in group]
    result = run_video(pipeline, group[0].path, [Query(e.question, e.options) for e in group])
    if isinstance(result, str):
        return [error_record(e, result) for e in group]
    return [answer_record(e, a) for e, a in zip(group, result.answers)]


def run_batch(entries: Sequence[BatchItem | BadLine], pipeline: Any, output: str | Path, *, dist: Any = None,
              retry_errors: bool = True, overwrite: bool = False, progress: bool = True,
              input_name: str = "", build_first: bool = False) -> BatchSummary | None:
    """Answer ``entries`` with ``pipeline`` into ``output``; returns the summary on rank 0 (None elsewhere).

    The job is :func:`mmlong.jobs.runner.run_job`: each record is on disk before the next video starts, ids with a
    final record are skipped, and the resolved pipeline is saved as ``OUT.config.yaml`` (a resumed run must
    match it, checked before anything loads). ``build_first``: build the model and encoder once that check
    passed, so a pipeline that cannot run fails once, with exit status 2, before any record.
    """
    from mmlong.jobs.runner import run_job, sidecar

    def build() -> None:
        _ = pipeline.model, pipeline.encoder

    out = Path(output)
    outcome = run_job(entries, lambda group: _answer_group(pipeline, group), out, group_of=group_key, dist=dist,
                      retry_errors=retry_errors, overwrite=overwrite, progress=progress, desc="batch",
                      config=pipeline.config, config_path=sidecar(out, ".config.yaml"),
                      before_work=build if build_first else None)
    if outcome is None:
        return None
    failed = outcome.failed
    return BatchSummary(
        input=input_name, output=str(out), items=len(entries), answered=outcome.answered, failed=len(failed),
        done_before=outcome.done_before, computed=outcome.computed, seconds=outcome.seconds,
        visual_tokens=sum(model_tokens(r) for r in outcome.records if "error" not in r),
        world_size=outcome.world_size, failures=[{"id": r["id"], "error": r["error"]} for r in failed[:50]],
        scored=sum("correct" in r for r in outcome.records if "error" not in r),
        correct=sum(r.get("correct") is True for r in outcome.records if "error" not in r),
    )


# ---------------------------------------------------------------------------------------------- command


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch",
        help="answer a JSONL file of questions (resumable, crash-safe, multi-GPU)",
        description="Answer every question of a JSONL file. Each answer is written and synced as soon as it "
                    "exists, so a killed run resumes where it stopped; questions about one video share its "
                    "encoding; under torchrun or accelerate launch the videos are split across processes.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("questions", help="JSONL file, one {\"id\", \"video\", \"question\", \"options\"?} per line")
    parser.add_argument("-o", "--out", metavar="FILE",
                        help="output JSONL (default: QUESTIONS.answers.jsonl beside the input)")
    parser.add_argument("--video-root", metavar="DIR",
                        help="folder that relative video paths start from (default: the questions file's folder)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", dest="overwrite", action="store_false", default=False,
                      help="keep answers already in the output and do the rest (the default)")
    mode.add_argument("--overwrite", dest="overwrite", action="store_true",
                      help="delete the output (and its parts) and start again")
    parser.add_argument("--no-retry-errors", dest="retry_errors", action="store_false", default=True,
                        help="on resume, keep error records instead of trying those items again")
    parser.add_argument("--summary-json", metavar="FILE",
                        help="where to write the run summary (default: OUT.summary.json beside the output)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=True,
                        help="no progress bar")
    parser.add_argument("--dist-timeout", type=float, metavar="SECONDS",
                        help="how long a finished rank waits for the others (default: 7 days)")
    add_pipeline_arguments(parser)
    parser.set_defaults(func=run)


def default_output(questions: Path) -> Path:
    from mmlong.jobs.runner import sidecar

    return sidecar(questions, ".answers.jsonl")


def run(args: argparse.Namespace) -> int:
    from mmlong.jobs.distributed import DEFAULT_TIMEOUT_S, init_distributed
    from mmlong.jobs.log import check_result_log
    from mmlong.jobs.runner import sidecar
    from mmlong.pipeline import Pipeline
    from mmlong.planning.fit import fit_to_memory
    from mmlong.validate import check_not_input, check_output_file

    questions = Path(args.questions)
    # every output path is checked before any work: a folder, a device, /proc, an unwritable folder, the input
    output = check_output_file(args.out if args.out is not None else default_output(questions), what="--out")
    summary_path = check_output_file(args.summary_json if args.summary_json is not None
                                     else sidecar(output, ".summary.json"), what="--summary-json")
    check_not_input(output, [questions], "--out")
    check_not_input(summary_path, [questions, output], "--summary-json")
    check_result_log(output)  # an existing file that is not a result log is refused before anything runs
    config = resolve_args(args)  # a bad flag fails before the questions are read
    entries = read_questions(questions, args.video_root)
    config = fit_to_memory(config, [e.path for e in entries if isinstance(e, BatchItem)])
    dist = init_distributed(config.runtime.device, timeout_s=args.dist_timeout or DEFAULT_TIMEOUT_S)
    try:
        pipeline = Pipeline(config.with_device(dist.device_for(config.runtime.device)),
                            status=args.progress and dist.is_main)  # a line per long phase above the bar
        summary = run_batch(entries, pipeline, output, dist=dist, retry_errors=args.retry_errors,
                            overwrite=args.overwrite, progress=args.progress, input_name=str(questions),
                            build_first=True)  # the resume check first, then the models: each once
        status = None
        if summary is not None:
            summary_path.write_text(dump_json(summary.to_dict()) + "\n")
            print(summary.text(), file=sys.stderr)
            print(f"results: {output}  config: {sidecar(output, '.config.yaml')}  summary: {summary_path}",
                  file=sys.stderr)
            status = dist.exit_status(summary.failed)
            if summary.failed and dist.is_distributed:
                print(f"batch: {summary.failed} item(s) failed (error records in {output}, listed in "
                      f"{summary_path}); every rank finished its share, so the exit status is 0", file=sys.stderr)
        status = int(dist.broadcast(status))
        dist.barrier()  # no rank tears the group down while the broadcast's send is in flight (SIGABRT otherwise)
        return status
    finally:
        dist.close()
