"""MLVU multiple-choice evaluation: read the annotations, ask, score per task, M-Avg.

MLVU: A Comprehensive Benchmark for Multi-Task Long Video Understanding (Zhou et al., 2024,
arXiv:2406.04264). Two annotation layouts are read:

- the official dev release: ``json/<n>_<task>.json`` (``1_plotQA.json`` ... ``7_topic_reasoning.json``), each a
  list of ``{"video", "duration", "question", "candidates", "answer" (the answer string), "question_type"}``,
  videos under ``video/<n>_<task>/`` (``video/<task>/`` and a flat ``video/`` are accepted too);
- the lmms-eval variant (``sy1998/MLVU_dev``): records ``{"video_name", "question"`` (options embedded as
  ``(A) ...`` lines), ``"answer"`` (a letter), ``"task_type"}`` in a ``.json``, ``.jsonl`` or ``.parquet`` file.

The official evaluation lists the options as ``(A) ...`` lines and lets the model continue ``Best option: (``;
the chosen letter is compared with the correct one. The score per task is its accuracy; **M-Avg** is the mean of
the seven task accuracies (macro), as the MLVU authors define it. The micro average (all questions pooled) is
reported beside it and labelled as such.

>>> parse_embedded_options("How many?\\n(A) 2\\n(B) 3")
('How many?', ('2', '3'))
>>> parse_embedded_options("Which color?\\nA. red\\nB. blue\\nAnswer with the letter.")
('Which color?', ('red', 'blue'))
>>> canonical_task("findNeedle"), canonical_task("3_ego"), canonical_task("AR")
('needle', 'ego', 'anomaly_reco')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from mmlong.benchmarks.scoring import (
    Benchmark,
    EvalItem,
    accuracy_table,
    error_summary,
    letter_from_reply,
    macro_average,
    markdown_table,
    micro_average,
    percent,
    read_annotation_records,
)
from mmlong.errors import ConfigError
from mmlong.qa import Answer, Query

#: the seven multiple-choice tasks of MLVU dev, in the official file order
TASKS: tuple[str, ...] = ("plotQA", "needle", "ego", "count", "order", "anomaly_reco", "topic_reasoning")
#: the nine multiple-choice tasks of the MLVU test split (answers released 2025-03-18)
TEST_TASKS: tuple[str, ...] = TASKS + ("sportsQA", "tutorialQA")
_ALIASES = {"findneedle": "needle", "needleqa": "needle", "plotqa": "plotQA", "anomaly_recognition": "anomaly_reco",
            "topic": "topic_reasoning", "sportsqa": "sportsQA", "tutorialqa": "tutorialQA",
            # the abbreviations of the test split and of lmms-eval's task_type field
            "tr": "topic_reasoning", "ar": "anomaly_reco", "nqa": "needle", "er": "ego", "pqa": "plotQA",
            "ao": "order", "ac": "count", "sqa": "sportsQA", "tqa": "tutorialQA"}
_OPTION_LINE = re.compile(r"^\s*(?:\(([A-Z])\)|([A-Z])[.):])\s*(.*?)\s*$")
_NUMBERED = re.compile(r"^\d+_")


def canonical_task(name: str) -> str:
    """The task's canonical name: ``"2_needle"``, ``"findNeedle"`` and ``"needle"`` are all ``"needle"``."""
    bare = _NUMBERED.sub("", str(name).strip())
    for task in TEST_TASKS:
        if bare.lower() == task.lower():
            return task
    return _ALIASES.get(bare.lower(), bare)


def parse_embedded_options(question: str) -> tuple[str, tuple[str, ...]]:
    """Split a question with embedded options (``(A) ...`` or ``A. ...`` lines, from A on) into text and options.

    Lines after the options (an instruction such as "Answer with the option's letter") are dropped.
    """
    lines = question.splitlines()
    stem: list[str] = []
    options: list[str] = []
    for line in lines:
        match = _OPTION_LINE.match(line)
        if match and (match.group(1) or match.group(2)) == chr(ord("A") + len(options)):
            options.append(match.group(3))
        elif not options and line.strip().lower() not in ("options:", "option:"):
            stem.append(line)
    text = "\n".join(stem).strip()
    if text.lower().startswith("question:"):
        text = text[len("question:"):].strip()
    return text, tuple(options)


def _letter(index: int) -> str:
    return chr(ord("A") + index)


def gold_letter(options: Sequence[str], answer: Any, allow_letter: bool = False) -> str | None:
    """The correct letter of an official MLVU record, as the official ``qa_template`` reads it: the answer is a
    candidate's text and, when that text appears more than once, the **last** copy's letter counts (its loop
    overwrites the index; 6 of the 2,175 dev questions have a duplicated option). With ``allow_letter`` (answers
    of the test split given as letters) a single letter (``"B"``, ``"(B)"``) is taken as it is; ``None`` when the
    answer names no option (the official template then writes ``(@)``, which no reply matches).

    >>> gold_letter(["a cat", "a dog", "a cat"], "a cat"), gold_letter(["x", "y"], "(B)", True)
    ('C', 'B')
    >>> gold_letter(["x", "y"], "B") is None
    True
    """
    if answer is None:
        return None
    text = str(answer)
    for index in range(len(options) - 1, -1, -1):
        if str(options[index]) == text:
            return _letter(index)
    bare = text.strip().strip("()").strip()
    if allow_letter and len(bare) == 1 and 0 <= ord(bare.upper()) - ord("A") < len(options):
        return bare.upper()
    return None


class MLVUBenchmark(Benchmark):
    """The MLVU dev multiple-choice tasks as :class:`~mmlong.benchmarks.scoring.EvalItem` s, plus their scoring."""

    @dataclass
    class Config:
        """data: the MLVU directory (holding ``json/`` or ``MLVU/json/``) or one annotation file; tasks: which
        tasks (default all seven, or all nine of the test split); limit: at most this many questions per task;
        video_root: where the videos are when not under ``data``; split: ``dev`` or ``test`` (the official
        ``MLVU_Test/leaderboard/test_question.json`` layout; the run writes ``submission.json`` and, where the
        released answers are known, scores it too); answers: a file of the released test answers
        (``{"question_id", "answer"}`` records, the answer a letter or a candidate's text) when they are not in
        the question records or in another ``leaderboard/`` file."""

        data: str = ""
        tasks: tuple[str, ...] = ()
        limit: int | None = None
        video_root: str | None = None
        split: str = "dev"
        answers: str | None = None

        def __post_init__(self) -> None:
            if self.split not in ("dev", "test"):
                raise ValueError(f"MLVU split must be dev or test, got {self.split!r}")

    name = "mlvu"
    group_key = "question_type"

    # ------------------------------------------------------------------ reading
    def _annotation_files(self) -> tuple[Path, list[Path]]:
        data = Path(self.config.data).expanduser()
        if not data.exists():
            raise ConfigError("MLVU data not found; pass --data DIR (the folder holding json/ and video/)", str(data))
        if data.is_file():
            return data.parent, [data]
        folders = (data / "json", data / "MLVU" / "json", data / "leaderboard", data / "MLVU_Test" / "leaderboard")
        for json_dir in folders:
            if json_dir.is_dir():
                return json_dir.parent, sorted(json_dir.glob("*.json"))
        files = sorted(p for p in data.iterdir() if p.suffix in (".json", ".jsonl", ".parquet"))
        if not files:
            raise ConfigError("no MLVU annotations here: expected json/<n>_<task>.json or .json/.jsonl/.parquet "
                              "files in the lmms-eval layout", str(data))
        return data, files

    def _video_candidates(self, base: Path, file_stem: str, task: str, name: str) -> list[Path]:
        roots = [Path(self.config.video_root).expanduser()] if self.config.video_root else []
        roots += [base / "video", base]
        subdirs = [file_stem, task, ""] if file_stem else [task, ""]
        return [root / sub / name for root in roots for sub in subdirs]

    def items(self) -> list[EvalItem]:
        """Every multiple-choice question of the selected tasks, in file order (``limit`` per task)."""
        tasks = TEST_TASKS if self.config.split == "test" else TASKS
        wanted = {canonical_task(t) for t in self.config.tasks} if self.config.tasks else set(tasks)
        unknown = wanted - set(tasks)
        if unknown:
            raise ConfigError(f"unknown MLVU task(s) {sorted(unknown)} for the {self.config.split} split; "
                              f"tasks: {', '.join(tasks)}")
        base, files = self._annotation_files()
        loaded = [(path, read_annotation_records(path)) for path in files]
        answers = released_answers([r for _, records in loaded for r in records])
        if self.config.answers:
            answers.update(released_answers(read_annotation_records(Path(self.config.answers).expanduser())))
        items: list[EvalItem] = []
        counts: dict[str, int] = {}
        for path, records in loaded:
            stem = path.stem if _NUMBERED.match(path.stem) else ""
            for index, record in enumerate(records):
                if "candidates" in record and "answer" not in record and str(record.get("question_id")) in answers:
                    record = {**record, "answer": answers[str(record["question_id"])]}
                item = self._item(record, index, path, base, stem)
                if item is None or item.meta["question_type"] not in wanted:
                    continue
                task = item.meta["question_type"]
                if self.config.limit is not None and counts.get(task, 0) >= self.config.limit:
                    continue
                counts[task] = counts.get(task, 0) + 1
                items.append(item)
        if not items:
            raise ConfigError(f"no multiple-choice questions for tasks {sorted(wanted)}", str(self.config.data))
        return items

    def _item(self, record: Mapping[str, Any], index: int, path: Path, base: Path, stem: str) -> EvalItem | None:
        if "video_name" in record:  # lmms-eval layout: options inside the question, answer is a letter
            task = canonical_task(record.get("task_type") or record.get("question_type") or stem or path.stem)
            question, options = parse_embedded_options(str(record["question"]))
            if record.get("candidates"):
                options = tuple(str(c) for c in record["candidates"])
            answer = str(record.get("answer", "")).strip().strip("()")[:1].upper() or None
            video_name = str(record["video_name"])
        elif "candidates" in record:  # official layout: answer is the text of one candidate
            task = canonical_task(record.get("question_type") or stem or path.stem)
            question = str(record["question"])
            options = tuple(str(c) for c in record["candidates"])
            answer = gold_letter(options, record.get("answer"), allow_letter=self.config.split == "test")
            video_name = str(record["video"])
        else:  # generation tasks (sub-scene captioning, summary) have no candidates
            return None
        if not options:
            return None
        item_id = str(record.get("question_id") or f"{task}_{index:04d}")
        found = next((p for p in self._video_candidates(base, stem, task, video_name) if p.is_file()), None)
        meta = {"question_type": task, "question_type_raw": str(record.get("question_type") or task),
                "video_name": video_name, "duration": record.get("duration"),
                "options": list(options), "source": str(path)}
        return EvalItem(
            id=item_id,
            video=str(found) if found else None,
            query=Query(question, options),
            answer=answer,
            meta=meta,
            missing=None if found else f"video {video_name} not found under {base / 'video'}"
            + (f" or {self.config.video_root}" if self.config.video_root else "") + " (use --video-root)",
        )

    # ------------------------------------------------------------------ scoring
    def record(self, item: EvalItem, answer: Answer) -> dict[str, Any]:
        """The per-item result: the letter the model chose against the correct one."""
        letter = answer.letter or letter_from_reply(answer.text, len(item.query.options))
        return {
            "id": item.id,
            "question_type": item.meta["question_type"],
            "question_type_raw": item.meta.get("question_type_raw"),
            "video": item.meta["video_name"],
            "question": item.query.question,
            "option": letter,
            "answer": item.answer,
            "correct": letter is not None and letter == item.answer,
            "text": answer.text,
        }

    def error_record(self, item: EvalItem, reason: str) -> dict[str, Any]:
        return {"id": item.id, "question_type": item.meta["question_type"],
                "question_type_raw": item.meta.get("question_type_raw"), "video": item.meta["video_name"],
                "option": None, "answer": item.answer, "correct": False, "error": reason}

    def summarize(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Per-task accuracies (fractions), M-Avg (macro), the micro average, counts and errors; for the test
        split (no answers) the per-task counts of answered questions and the submission."""
        if self.config.split == "test":
            summary = summarize_test(records)
            scored = [r for r in records if not r.get("error")]
            if scored and all(r.get("answer") for r in scored):  # the released answers: scored as dev is
                summary["scores"] = summarize_tasks(records)
            return summary
        return summarize_tasks(records)

    def report(self, summary: Mapping[str, Any]) -> str:
        if self.config.split == "test":
            line = (f"MLVU test: {summary['answered']} questions answered ({summary['unreadable']} with no readable "
                    f"option), {summary['errors']['count']} errors; `submission.json` written.")
            return line + ("\n\n" + tasks_markdown(summary["scores"]) if "scores" in summary else "")
        return tasks_markdown(summary)

    def figures(self, summary: Mapping[str, Any], out_dir: Path) -> list[Path]:
        """The test split's submission file (the run's 'figure'); nothing for dev."""
        if self.config.split != "test":
            return []
        from mmlong.cache import atomic_write

        path = Path(out_dir) / "submission.json"
        atomic_write(path, (json.dumps(summary["submission"], indent=1) + "\n").encode())
        return [path]


def released_answers(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``{question_id: answer}`` of answer-only records (a ``question_id`` and an ``answer``, no candidates)."""
    return {str(r["question_id"]): r["answer"] for r in records
            if "question_id" in r and "answer" in r and "candidates" not in r}


def submission_entries(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The MLVU test submission: ``{"question_id", "question_type", "option"}`` per question, ``option`` the chosen
    letter (``""`` when none could be read or the video failed: still listed, so it is counted as wrong)."""
    return [{"question_id": r["id"], "question_type": r.get("question_type_raw") or r["question_type"],
             "option": r.get("option") or ""} for r in records]


def summarize_test(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    records = list(records)
    entries = submission_entries(records)
    return {"split": "test", "answered": sum(1 for r in records if not r.get("error")),
            "unreadable": sum(1 for r in records if not r.get("error") and not r.get("option")),
            "per_task": {t: sum(1 for r in records if r["question_type"] == t) for t in TEST_TASKS
                         if any(r["question_type"] == t for r in records)},
            "errors": error_summary(records), "submission": entries}


def summarize_tasks(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """MLVU's numbers from per-item records (``question_type``, ``correct``, optional ``error``)."""
    records = list(records)
    table = accuracy_table(records, "question_type")
    order = [t for t in TEST_TASKS if t in table] + [t for t in table if t not in TEST_TASKS]
    return {
        "m_avg": macro_average(table),
        "micro_avg": micro_average(table),
        "per_task": {t: table[t]["accuracy"] for t in order},
        "counts": {t: {"correct": table[t]["correct"], "total": table[t]["total"]} for t in order},
        "scored": sum(table[t]["total"] for t in order),
        "errors": error_summary(records),
    }


def tasks_markdown(summary: Mapping[str, Any]) -> str:
    """The per-task table with M-Avg and the micro average (percent)."""
    rows = [[task, percent(acc), f"{summary['counts'][task]['correct']}/{summary['counts'][task]['total']}"]
            for task, acc in summary["per_task"].items()]
    rows.append(["**M-Avg** (mean of task accuracies)", f"**{percent(summary['m_avg'])}**", ""])
    rows.append(["micro average (all questions pooled)", percent(summary["micro_avg"]), f"{summary['scored']}"])
    table = markdown_table(["task", "accuracy (%)", "correct/total"], rows)
    errors = summary["errors"]["count"]
    return table + (f"\n\n{errors} question(s) not scored (errors; see results.jsonl)." if errors else "")
