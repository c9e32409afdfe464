"""Video-MME multiple-choice evaluation: read the release, ask with the official instruction, score per duration.

Video-MME: The First-Ever Comprehensive Evaluation Benchmark of Multi-modal LLMs in Video Analysis (Fu et al.,
2024, arXiv:2405.21075). Two layouts are read:

- the official release: a JSON list of videos ``{"video_id", "duration" (short | medium | long), "domain",
  "sub_category", "videoID"?, "questions": [{"question_id", "task_type", "question", "options": ["A. ...", ...],
  "answer": "A"}]}``, videos under ``data/`` or ``videos/`` as ``<videoID or video_id>.mp4``, subtitles under
  ``subtitle/`` as ``<videoID>.srt``;
- the lmms-eval copy (``lmms-lab/Video-MME``): one flat row per question (the same fields, ``videoID`` names the
  file) in ``.parquet``, ``.json`` or ``.jsonl``.

The prompt is the official one ("Select the best answer ... based on the video [and the subtitles]. Respond with
only the letter (A, B, C, or D) of the correct option."), with the subtitles at the sampled frames only when
they are on (``--subtitles DIR``, set by ``--with-subtitles``). The score is the accuracy overall, per duration
(short, medium, long) and per task type; an answer whose letter cannot be read is wrong, never dropped.

>>> split_option("B. a red car")
('B', 'a red car')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmlong.apps.scoring import (
    Benchmark,
    EvalItem,
    accuracy_table,
    error_summary,
    markdown_table,
    micro_average,
    percent,
    read_annotation_records,
)
from mmlong.errors import ConfigError
from mmlong.types import Answer, Query

DURATIONS: tuple[str, ...] = ("short", "medium", "long")
INSTRUCTION = ("Select the best answer to the following multiple-choice question based on the video. Respond with "
               "only the letter (A, B, C, or D) of the correct option.")
INSTRUCTION_WITH_SUBTITLES = ("Select the best answer to the following multiple-choice question based on the "
                              "video and the subtitles. Respond with only the letter (A, B, C, or D) of the "
                              "correct option.")
_OPTION = re.compile(r"^\s*\(?([A-Z])[.)]\s*(.*?)\s*$")
VIDEO_ENDINGS = (".mp4", ".mkv", ".webm", ".avi", ".mov")


def seen_record(answer: Answer) -> dict[str, Any]:
    """The frames (times) and subtitle lines the model saw, from the answer's details."""
    return {"frame_times": answer.details.get("frame_times", []),
            "subtitles_seen": answer.details.get("timed_text_seen", [])}


_ANSWER_PREFIXES = ("the best answer is", "the correct answer is", "the answer is", "the answer",
                    "the best option is", "the correct option is", "best answer:", "best option:", "answer:")


def reply_letter(text: str, count: int) -> str | None:
    """The option letter in a free-text reply, read as the official Video-MME evaluation does: answer phrases
    ("The best answer is", ...) are dropped, then the first of the first ``count`` capital letters names the
    option; ``None`` (counted as wrong) when there is none. One deliberate difference: the letter must stand
    alone (``\\b``), so the "A" of "All" is not read as option A.

    >>> reply_letter("The best answer is (C).", 4), reply_letter("B. violet", 4), reply_letter("I cannot tell", 4)
    ('C', 'B', None)
    """
    letters = "".join(chr(ord("A") + i) for i in range(count))
    reply = str(text).strip()
    lowered = reply.lower()
    for prefix in _ANSWER_PREFIXES:
        if lowered.startswith(prefix):
            reply = reply[len(prefix):]
            break
    match = re.search(rf"\b([{letters}])\b", reply)
    return match.group(1) if match else None


def split_option(text: str) -> tuple[str | None, str]:
    """``"B. a red car"`` -> ``("B", "a red car")``; text without a letter -> ``(None, text)``."""
    match = _OPTION.match(str(text))
    return (match.group(1), match.group(2)) if match else (None, str(text).strip())


def find_video(stem: str, roots: Sequence[Path]) -> Path | None:
    """The first ``root/<stem><ending>`` that exists."""
    for root in roots:
        for ending in VIDEO_ENDINGS:
            candidate = root / f"{stem}{ending}"
            if candidate.is_file():
                return candidate
    return None


def release_folder(data: str) -> Path:
    """The release's folder: ``data`` itself, or the folder of ``data`` when it names one annotation file."""
    path = Path(data).expanduser()
    return path.parent if path.is_file() else path


def annotation_files(data: Path, what: str) -> list[Path]:
    """``data`` itself when it is a file, else the ``.json``/``.jsonl``/``.parquet`` files in it."""
    if not data.exists():
        raise ConfigError(f"{what} data not found; pass --data DIR or an annotation file", str(data))
    if data.is_file():
        return [data]
    files = sorted(p for p in data.iterdir() if p.suffix in (".json", ".jsonl", ".parquet"))
    if not files:
        raise ConfigError(f"no {what} annotations here (.json, .jsonl or .parquet)", str(data))
    return files


class VideoMMEBenchmark(Benchmark):
    """Video-MME as :class:`~mmlong.apps.scoring.EvalItem` s, plus the official scoring."""

    @dataclass
    class Config:
        """data: the release folder or one annotation file; video_root: where the videos are (default ``data/``,
        ``videos/`` or the folder itself); durations: which of short/medium/long (default all); subtitles: ask
        with the subtitles (the pipeline reads them from ``subtitle_root``); limit: at most this many questions
        per duration."""

        data: str = ""
        video_root: str | None = None
        subtitle_root: str | None = None
        durations: tuple[str, ...] = ()
        subtitles: bool = False
        limit: int | None = None

    name = "videomme"

    def __init__(self, config: "VideoMMEBenchmark.Config | None" = None) -> None:
        self.config = config if config is not None else self.Config()
        unknown = set(self.config.durations) - set(DURATIONS)
        if unknown:
            raise ConfigError(f"unknown Video-MME duration(s) {sorted(unknown)}; durations: {', '.join(DURATIONS)}")

    def base(self) -> Path:
        return release_folder(self.config.data)

    def subtitle_folder(self) -> Path:
        """Where the ``<videoID>.srt`` files are (``--subtitles`` of the pipeline when subtitles are on)."""
        if self.config.subtitle_root:
            return Path(self.config.subtitle_root).expanduser()
        for name in ("subtitle", "subtitles"):
            if (self.base() / name).is_dir():
                return self.base() / name
        raise ConfigError("no subtitle folder (subtitle/) in the release; pass --subtitle-root DIR", str(self.base()))

    # ------------------------------------------------------------------ reading
    def _rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for path in annotation_files(Path(self.config.data).expanduser(), "Video-MME"):
            for record in read_annotation_records(path):
                if isinstance(record.get("questions"), list):  # official: one record per video
                    video = {k: v for k, v in record.items() if k != "questions"}
                    rows.extend({**video, **q} for q in record["questions"] if isinstance(q, dict))
                else:  # lmms-eval: one row per question
                    rows.append(record)
        return rows

    def items(self) -> list[EvalItem]:
        wanted = set(self.config.durations) or set(DURATIONS)
        base = self.base()
        roots = [Path(self.config.video_root).expanduser()] if self.config.video_root else []
        roots += [base / "data", base / "videos", base / "video", base]
        instruction = INSTRUCTION_WITH_SUBTITLES if self.config.subtitles else INSTRUCTION
        items: list[EvalItem] = []
        counts: dict[str, int] = {}
        for index, row in enumerate(self._rows()):
            duration = str(row.get("duration", "")).strip().lower()
            if duration not in wanted:
                continue
            if self.config.limit is not None and counts.get(duration, 0) >= self.config.limit:
                continue
            letters, options = zip(*(split_option(o) for o in row.get("options") or [])) if row.get("options") \
                else ((), ())
            if not options:
                continue
            counts[duration] = counts.get(duration, 0) + 1
            stem = str(row.get("videoID") or row.get("video_id"))
            found = find_video(stem, roots)
            meta = {"duration": duration, "domain": row.get("domain"), "sub_category": row.get("sub_category"),
                    "task_type": row.get("task_type"), "video_id": str(row.get("video_id")), "video_name": stem,
                    "subtitles": self.config.subtitles}
            items.append(EvalItem(
                id=str(row.get("question_id") or f"{stem}-{index}"),
                video=str(found) if found else None,
                query=Query(str(row["question"]), tuple(options), instruction=instruction),
                answer=str(row.get("answer", "")).strip()[:1].upper() or None,
                meta=meta,
                missing=None if found else f"video {stem} not found under {', '.join(str(r) for r in roots[:2])} "
                "(use --video-root)",
            ))
        if not items:
            raise ConfigError(f"no Video-MME questions of duration {sorted(wanted)}", self.config.data)
        return items

    # ------------------------------------------------------------------ scoring
    def record(self, item: EvalItem, answer: Answer) -> dict[str, Any]:
        """The chosen letter against the correct one; an unreadable reply is ``option: None`` and wrong."""
        letter = getattr(answer, "letter", None) or reply_letter(answer.text, len(item.query.options))
        return {"id": item.id, **{k: item.meta[k] for k in ("duration", "task_type", "video_name", "subtitles")},
                "question": item.query.question, "option": letter, "answer": item.answer,
                "correct": letter is not None and letter == item.answer, "text": answer.text,
                **seen_record(answer)}

    def error_record(self, item: EvalItem, reason: str) -> dict[str, Any]:
        return {"id": item.id, **{k: item.meta[k] for k in ("duration", "task_type", "video_name", "subtitles")},
                "option": None, "answer": item.answer, "correct": False, "error": reason}

    def summarize(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return summarize_videomme(records, self.config.subtitles)

    def report(self, summary: Mapping[str, Any]) -> str:
        return videomme_markdown(summary)


def summarize_videomme(records: Sequence[Mapping[str, Any]], subtitles: bool) -> dict[str, Any]:
    """Accuracy overall, per duration and per task type (records with an ``error`` are counted apart)."""
    per_duration = accuracy_table(records, "duration")
    ordered = {d: per_duration[d] for d in DURATIONS if d in per_duration}
    return {"subtitles": subtitles, "overall": micro_average(ordered), "per_duration": ordered,
            "per_task": accuracy_table(records, "task_type"), "errors": error_summary(records)}


def videomme_markdown(summary: Mapping[str, Any]) -> str:
    setting = "with subtitles" if summary["subtitles"] else "without subtitles"
    rows = [[d, percent(v["accuracy"]), f"{v['correct']}/{v['total']}"] for d, v in summary["per_duration"].items()]
    rows.append(["overall", percent(summary["overall"]),
                 f"{sum(v['correct'] for v in summary['per_duration'].values())}/"
                 f"{sum(v['total'] for v in summary['per_duration'].values())}"])
    return f"Video-MME, {setting}\n\n" + markdown_table(["duration", "accuracy", "correct"], rows)
