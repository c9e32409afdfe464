"""LongVideoBench multiple-choice evaluation: read the release, ask with the official instruction, score per
duration group and per question category.

LongVideoBench: A Benchmark for Long-context Interleaved Video-Language Understanding (Wu et al., 2024,
arXiv:2407.15754). The release (and the lmms-eval copy, ``longvideobench/LongVideoBench``) is a JSON list (or
parquet) of ``{"id", "video_path", "subtitle_path", "duration_group" (15 | 60 | 600 | 3600), "question",
"candidates", "correct_choice" (index), "starting_timestamp_for_subtitles", "question_category", ...}`` with the
videos in ``videos/`` and the subtitles in ``subtitles/``. A subtitle file is a JSON list of
``{"timestamp": [start, end], "text"}`` or ``{"start": "HH:MM:SS.mmm", "end", "line"}`` entries whose times count
from ``starting_timestamp_for_subtitles``; they are written once as ``<video stem>.srt`` on the video's own clock
into a cache folder, which the pipeline then reads as its subtitle folder (``--subtitles DIR``), so the model sees
the subtitles at its sampled frames.

The instruction is the official "Answer with the option's letter from the given choices directly."; replies are
read as the official evaluation reads them and an unreadable one is given a random option (seeded per question,
:func:`mmlong.benchmarks.reply_reading.random_choice`), as lmms-eval and the LongVideoBench authors do; the score is the
accuracy overall, per duration group and per question category. A release folder holds ``lvb_val.json`` and
``lvb_test_wo_gt.json``: ``split="val"`` reads the first, ``split="test"`` the second, whose questions have no
answers: they are answered and written to ``submission.json`` (``{id: reply}``, lmms-eval's submission file),
never scored as wrong.

>>> subtitle_seconds("00:01:02.500")
62.5
>>> [(c.start, c.end, c.text) for c in subtitle_cues([{"timestamp": [12.0, 14.0], "text": "hi"}], 10.0, 60.0)]
[(2.0, 4.0, 'hi')]
>>> [(c.start, c.end) for c in subtitle_cues([{"timestamp": [12.0, None], "text": "end"}], 10.0, 60.0)]
[(2.0, 50.0)]
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmlong.benchmarks.reply_reading import longvideobench_letter, random_choice
from mmlong.benchmarks.scoring import (
    Benchmark,
    EvalItem,
    accuracy_table,
    error_summary,
    markdown_table,
    micro_average,
    percent,
    read_annotation_records,
)
from mmlong.benchmarks.videomme import annotation_files, release_folder, seen_record
from mmlong.errors import ConfigError
from mmlong.experts.base import TimedText
from mmlong.qa import Answer, Query

DURATION_GROUPS: tuple[int, ...] = (15, 60, 600, 3600)
INSTRUCTION = "Answer with the option's letter from the given choices directly."


def subtitle_seconds(text: Any) -> float:
    """``"HH:MM:SS.mmm"`` (or a number) -> seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    parts = str(text).strip().split(":")
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + float(part)
    return seconds


def subtitle_cues(entries: Sequence[Mapping[str, Any]], offset: float, duration: float) -> list[TimedText]:
    """LongVideoBench subtitle entries as lines on the video's clock (``offset`` subtracted); an open end
    (``null``, or any non-float end of the ``timestamp`` form, as the official loader reads it) is ``duration``
    before the shift; lines that end before the video starts are left out."""
    cues = []
    for entry in entries:
        if "timestamp" in entry:
            start, end = entry["timestamp"]
            text = entry.get("text", "")
        else:
            start, end, text = entry.get("start"), entry.get("end"), entry.get("line", "")
        if end is None or ("timestamp" in entry and not isinstance(end, float)):  # as the official loader reads it
            end = duration
        start = subtitle_seconds(start) - offset
        end = subtitle_seconds(end) - offset
        if end < 0 or not str(text).strip():
            continue
        cues.append(TimedText(max(start, 0.0), max(end, 0.0), "subtitle", " ".join(str(text).split())))
    return cues


def write_srt(cues: Sequence[TimedText], path: Path) -> None:
    """``cues`` as a SubRip file, written whole (temporary file, then renamed)."""
    from mmlong.cache import atomic_write

    def stamp(seconds: float) -> str:
        ms = int(round(seconds * 1000))
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    blocks = [f"{i}\n{stamp(c.start)} --> {stamp(c.end)}\n{c.text}\n" for i, c in enumerate(cues, start=1)]
    atomic_write(path, "\n".join(blocks).encode())


class LongVideoBenchBenchmark(Benchmark):
    """LongVideoBench as :class:`~mmlong.benchmarks.scoring.EvalItem` s, plus the official scoring."""

    @dataclass
    class Config:
        """data: the release folder or one annotation file; video_root / subtitle_root: where videos and
        subtitle files are (default ``videos/`` and ``subtitles/`` beside it); subtitles: ask with them;
        duration_groups: which groups (default all); limit: at most this many questions per group; split: ``val``
        (scored) or ``test`` (no answers: a submission file); seed: of the random option an unreadable reply gets."""

        data: str = ""
        video_root: str | None = None
        subtitle_root: str | None = None
        subtitles: bool = False
        duration_groups: tuple[int, ...] = ()
        limit: int | None = None
        split: str = "val"
        seed: int = 0

        def __post_init__(self) -> None:
            if self.split not in ("val", "test"):
                raise ValueError(f"LongVideoBench split must be val or test, got {self.split!r}")

    name = "longvideobench"

    def __init__(self, config: "LongVideoBenchBenchmark.Config | None" = None) -> None:
        self.config = config if config is not None else self.Config()
        unknown = set(self.config.duration_groups) - set(DURATION_GROUPS)
        if unknown:
            raise ConfigError(f"unknown LongVideoBench duration group(s) {sorted(unknown)}; groups: "
                              f"{', '.join(map(str, DURATION_GROUPS))}")

    def base(self) -> Path:
        return release_folder(self.config.data)

    def subtitle_folder(self) -> Path:
        """The folder of ``<video stem>.srt`` files on the videos' clocks, written from the release's subtitles."""
        from mmlong.cache import cache_root

        key = hashlib.sha256(str(self.base().resolve()).encode()).hexdigest()[:12]
        return cache_root() / "longvideobench-subtitles" / key

    def _records(self) -> list[dict[str, Any]]:
        data = Path(self.config.data).expanduser()
        files = [p for p in annotation_files(data, "LongVideoBench") if "subtitle" not in p.stem]
        if data.is_dir():  # the release folder: lvb_val.json (validation-*.parquet) or lvb_test_wo_gt.json (test-*)
            files = [p for p in files if ("test" in p.stem) == (self.config.split == "test")]
            if not files:
                raise ConfigError(f"no LongVideoBench {self.config.split} annotations here (lvb_val.json, "
                                  "lvb_test_wo_gt.json)", str(data))
        records = [r for path in files for r in read_annotation_records(path) if "candidates" in r]
        if self.config.split == "val":  # a question without its answer is not a validation question
            records = [r for r in records if r.get("correct_choice") is not None]
        return records

    def items(self) -> list[EvalItem]:
        wanted = set(self.config.duration_groups) or set(DURATION_GROUPS)
        base = self.base()
        video_root = Path(self.config.video_root).expanduser() if self.config.video_root else base / "videos"
        subtitle_root = Path(self.config.subtitle_root).expanduser() if self.config.subtitle_root \
            else base / "subtitles"
        items: list[EvalItem] = []
        counts: dict[int, int] = {}
        for index, record in enumerate(self._records()):
            group = int(record.get("duration_group", 0))
            if group not in wanted or (self.config.limit is not None and counts.get(group, 0) >= self.config.limit):
                continue
            counts[group] = counts.get(group, 0) + 1
            options = tuple(str(c) for c in record["candidates"])
            video = video_root / str(record["video_path"])
            correct = record.get("correct_choice")
            answer = chr(ord("A") + int(correct)) if isinstance(correct, int) and 0 <= correct < len(options) \
                else None
            if self.config.subtitles and video.is_file() and record.get("subtitle_path"):
                self._prepare_subtitles(record, video, subtitle_root / str(record["subtitle_path"]))
            meta = {"duration_group": group, "question_category": record.get("question_category"),
                    "video_name": str(record["video_path"]), "subtitles": self.config.subtitles}
            items.append(EvalItem(
                id=str(record.get("id") or f"lvb-{index}"), video=str(video) if video.is_file() else None,
                query=Query(str(record["question"]), options, instruction=INSTRUCTION, benchmark="longvideobench",
                            timed_text=self.config.subtitles), answer=answer, meta=meta,
                missing=None if video.is_file() else f"video {record['video_path']} not found under {video_root} "
                "(use --video-root)"))
        if not items:
            raise ConfigError(f"no LongVideoBench questions in duration groups {sorted(wanted)}", self.config.data)
        return items

    def _prepare_subtitles(self, record: Mapping[str, Any], video: Path, source: Path) -> None:
        target = self.subtitle_folder() / f"{video.stem}.srt"
        if not source.is_file():  # the video then has no subtitles: the pipeline notes it, nothing fails
            return
        if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
            return
        try:
            entries = json.loads(source.read_text())
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read the subtitles ({err})", str(source)) from err
        offset = float(record.get("starting_timestamp_for_subtitles") or 0.0)
        cues = subtitle_cues(entries, offset, float(record.get("duration") or 0.0))
        if cues:
            write_srt(cues, target)

    # ------------------------------------------------------------------ scoring
    def record(self, item: EvalItem, answer: Answer) -> dict[str, Any]:
        """The model's own choice, else the letter the official evaluation reads from the reply, else (unreadable)
        a random option, seeded per question (``random_choice: true`` in the record)."""
        count = len(item.query.options)
        letter = answer.letter or longvideobench_letter(answer.text, count)
        drawn = letter is None
        if drawn:
            letter = random_choice(item.id, count, self.config.seed)
        return {"id": item.id, **{k: item.meta[k] for k in ("duration_group", "question_category", "video_name")},
                "subtitles": item.meta["subtitles"], "option": letter, "random_choice": drawn,
                "answer": item.answer, "correct": item.answer is not None and letter == item.answer,
                "text": answer.text, "response": answer.letter or answer.text, **seen_record(answer)}

    def error_record(self, item: EvalItem, reason: str) -> dict[str, Any]:
        return {"id": item.id, **{k: item.meta[k] for k in ("duration_group", "question_category", "video_name")},
                "subtitles": item.meta["subtitles"], "option": None, "answer": item.answer, "correct": False,
                "error": reason}

    def summarize(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if self.config.split == "test":
            return {"split": "test", "answered": sum(1 for r in records if not r.get("error")),
                    "errors": error_summary(records),
                    "submission": {str(r["id"]): r.get("response", r.get("text", "")) for r in records
                                   if not r.get("error")}}
        groups = accuracy_table(records, "duration_group")
        ordered = {g: groups[g] for g in DURATION_GROUPS if g in groups}
        return {"subtitles": self.config.subtitles, "overall": micro_average(ordered), "per_duration_group": ordered,
                "random_choices": sum(1 for r in records if r.get("random_choice") and not r.get("error")),
                "per_category": accuracy_table(records, "question_category"), "errors": error_summary(records)}

    def figures(self, summary: Mapping[str, Any], out_dir: Path) -> list[Path]:
        """The test split's ``submission.json`` (``{question id: reply}``); nothing for val."""
        if self.config.split != "test":
            return []
        from mmlong.cache import atomic_write

        path = Path(out_dir) / "submission.json"
        atomic_write(path, (json.dumps(summary["submission"], indent=1) + "\n").encode())
        return [path]

    def report(self, summary: Mapping[str, Any]) -> str:
        if self.config.split == "test":
            return (f"LongVideoBench test: {summary['answered']} questions answered, {summary['errors']['count']} "
                    "errors; `submission.json` written (the test answers are not released).")
        rows = [[f"{g} s", percent(v["accuracy"]), f"{v['correct']}/{v['total']}"]
                for g, v in summary["per_duration_group"].items()]
        rows.append(["overall", percent(summary["overall"]), ""])
        cats = [[c, percent(v["accuracy"]), f"{v['correct']}/{v['total']}"] for c, v in summary["per_category"].items()]
        note = (f"{summary.get('random_choices', 0)} unreadable repl(ies) given a random option (seeded), as the "
                "official evaluation does.\n\n")
        return (note + markdown_table(["duration group", "accuracy", "correct"], rows) + "\n\n"
                + markdown_table(["category", "accuracy", "correct"], cats))
