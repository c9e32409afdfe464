"""Video-MME multiple-choice evaluation: read the release, ask with the official instruction, score per duration.

Video-MME: The First-Ever Comprehensive Evaluation Benchmark of Multi-modal LLMs in Video Analysis (Fu et al.,
2024, arXiv:2405.21075). Two layouts are read:

- the release as downloaded from Hugging Face (``lmms-lab/Video-MME``): ``videomme/test-00000-of-00001.parquet``
  (one row per question: ``video_id``, ``duration``, ``domain``, ``sub_category``, ``url``, ``videoID``,
  ``question_id``, ``task_type``, ``question``, ``options`` (``"A. ..."``), ``answer``) with the videos in
  ``data/<videoID>.mp4`` and the subtitles in ``subtitle/<videoID>.srt`` beside the ``videomme/`` folder (the same
  rows as ``.json``/``.jsonl`` are read too);
- the 2024 JSON layout of the README: a list of videos ``{"video_id", "duration_category", "video_category",
  "video_sub_category"`` (``"video_subcategory"`` in the evaluation template), ``"url", "questions":
  [{"question_id", "task_type", "question", "choices", "answer"}]}``; a video is found by its ``videoID``, the
  YouTube id of its ``url``, or its ``video_id``.

The prompt is the official one (:func:`mmlong.models.prompts.benchmark_text`), with the subtitles of the sampled
frames only when they are on (``--with-subtitles``). Replies are read as ``eval_your_results.py`` reads them
(:func:`mmlong.benchmarks.reply_reading.videomme_letter`); the headline accuracy (overall, per duration, domain,
sub-category and task type) leaves unreadable replies out of the denominator as that script does, and the
lmms-eval figure (unreadable counted wrong) is reported beside it, labelled.

>>> split_option("B. a red car")
('B', 'a red car')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmlong.benchmarks.reply_reading import videomme_letter
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
from mmlong.errors import ConfigError
from mmlong.qa import Answer, Query

DURATIONS: tuple[str, ...] = ("short", "medium", "long")
INSTRUCTION = ("Select the best answer to the following multiple-choice question based on the video. Respond with "
               "only the letter (A, B, C, or D) of the correct option.")
INSTRUCTION_WITH_SUBTITLES = ("Select the best answer to the following multiple-choice question based on the "
                              "video and the subtitles. Respond with only the letter (A, B, C, or D) of the "
                              "correct option.")
_OPTION = re.compile(r"^\s*\(?([A-Z])[.)]\s*(.*?)\s*$")
VIDEO_ENDINGS = (".mp4", ".MP4", ".mkv", ".webm", ".avi", ".mov")
#: the item fields every record keeps
RECORD_FIELDS = ("duration", "domain", "sub_category", "task_type", "video_name", "subtitles")


def seen_record(answer: Answer) -> dict[str, Any]:
    """The frames (times) and subtitle lines the model saw, from the answer's details."""
    return {"frame_times": answer.details.get("frame_times", []),
            "subtitles_seen": answer.details.get("timed_text_seen", [])}


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


#: the folders a release keeps its annotation files in, below the folder given with --data
ANNOTATION_FOLDERS = ("videomme",)


def release_folder(data: str) -> Path:
    """The release's folder: ``data`` itself, or the folder of ``data`` when it names one annotation file, or
    the folder above that when the file sits in an annotation subfolder (``videomme/test-...parquet``)."""
    path = Path(data).expanduser()
    if not path.is_file():
        return path
    folder = path.parent
    return folder.parent if folder.name in ANNOTATION_FOLDERS else folder


def annotation_files(data: Path, what: str) -> list[Path]:
    """``data`` itself when it is a file, else the ``.json``/``.jsonl``/``.parquet`` files in it (or, when it has
    none, in its ``videomme/`` subfolder, as the Hugging Face release ships them)."""
    if not data.exists():
        raise ConfigError(f"{what} data not found; pass --data DIR or an annotation file", str(data))
    if data.is_file():
        return [data]
    for folder in (data, *(data / name for name in ANNOTATION_FOLDERS)):
        files = sorted(p for p in folder.iterdir() if p.suffix in (".json", ".jsonl", ".parquet")) \
            if folder.is_dir() else []
        if files:
            return files
    raise ConfigError(f"no {what} annotations here (.json, .jsonl or .parquet)", str(data))


_YOUTUBE_ID = re.compile(r"(?:v=|youtu\.be/|/shorts/)([\w-]{6,})")


def official_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """One question row with the Hugging Face field names, from either layout (the 2024 JSON's
    ``duration_category``, ``video_category``, ``video_sub_category``/``video_subcategory``, ``choices`` and
    ``url`` are mapped onto ``duration``, ``domain``, ``sub_category``, ``options`` and ``videoID``)."""
    out = dict(row)
    for old, new in (("duration_category", "duration"), ("video_category", "domain"),
                     ("video_sub_category", "sub_category"), ("video_subcategory", "sub_category"),
                     ("choices", "options")):
        if old in row and new not in row:
            out[new] = row[old]
    if not out.get("videoID") and out.get("url"):
        match = _YOUTUBE_ID.search(str(out["url"]))
        if match:
            out["videoID"] = match.group(1)
    return out


class VideoMMEBenchmark(Benchmark):
    """Video-MME as :class:`~mmlong.benchmarks.scoring.EvalItem` s, plus the official scoring."""

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
                if isinstance(record.get("questions"), list):  # the 2024 JSON: one record per video
                    video = {k: v for k, v in record.items() if k != "questions"}
                    rows.extend(official_row({**video, **q}) for q in record["questions"] if isinstance(q, dict))
                else:  # the Hugging Face release: one row per question
                    rows.append(official_row(record))
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
            stems = [str(row[k]) for k in ("videoID", "video_id") if row.get(k)]
            stem = stems[0] if stems else f"row{index}"
            found = next((v for v in (find_video(name, roots) for name in stems) if v is not None), None)
            meta = {"duration": duration, "domain": row.get("domain"), "sub_category": row.get("sub_category"),
                    "task_type": row.get("task_type"), "video_id": str(row.get("video_id")), "video_name": stem,
                    "subtitles": self.config.subtitles}
            items.append(EvalItem(
                id=str(row.get("question_id") or f"{stem}-{index}"),
                video=str(found) if found else None,
                query=Query(str(row["question"]), tuple(options), instruction=instruction, benchmark="videomme",
                            timed_text=self.config.subtitles),
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
        """The chosen letter against the correct one: the model's own choice, else the letter the official script
        reads from the reply; unreadable is ``option: None`` (left out of the official score, wrong in lmms-eval's).
        ``response`` is the reply to give the official script: the chosen letter, or the text."""
        letter = answer.letter or videomme_letter(answer.text)
        return {"id": item.id, **{k: item.meta[k] for k in RECORD_FIELDS},
                "question": item.query.question, "option": letter, "answer": item.answer,
                "correct": letter is not None and letter == item.answer, "text": answer.text,
                "response": answer.letter or answer.text, **seen_record(answer)}

    def error_record(self, item: EvalItem, reason: str) -> dict[str, Any]:
        return {"id": item.id, **{k: item.meta[k] for k in RECORD_FIELDS},
                "option": None, "answer": item.answer, "correct": False, "error": reason}

    def summarize(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return summarize_videomme(records, self.config.subtitles)

    def report(self, summary: Mapping[str, Any]) -> str:
        return videomme_markdown(summary)


def summarize_videomme(records: Sequence[Mapping[str, Any]], subtitles: bool) -> dict[str, Any]:
    """The official numbers (``eval_your_results.py``: unreadable replies not in the denominators) overall, per
    duration, domain, sub-category and task type, and lmms-eval's (unreadable counted wrong) beside them.
    Records with an ``error`` are counted apart in both."""
    answered = [r for r in records if r.get("option")]
    per_duration = accuracy_table(answered, "duration")
    ordered = {d: per_duration[d] for d in DURATIONS if d in per_duration}
    lmms = accuracy_table(records, "duration")
    lmms_ordered = {d: lmms[d] for d in DURATIONS if d in lmms}
    return {"subtitles": subtitles, "overall": micro_average(ordered), "per_duration": ordered,
            "per_domain": accuracy_table(answered, "domain"),
            "per_sub_category": accuracy_table(answered, "sub_category"),
            "per_task": accuracy_table(answered, "task_type"),
            "unreadable": sum(1 for r in records if not r.get("error") and not r.get("option")),
            "lmms_eval": {"overall": micro_average(lmms_ordered), "per_duration": lmms_ordered},
            "errors": error_summary(records)}


def _rows(table: Mapping[Any, Mapping[str, Any]]) -> list[list[Any]]:
    return [[k, percent(v["accuracy"]), f"{v['correct']}/{v['total']}"] for k, v in table.items()]


def videomme_markdown(summary: Mapping[str, Any]) -> str:
    setting = "with subtitles" if summary["subtitles"] else "without subtitles"
    lmms = summary["lmms_eval"]
    rows = [[d, percent(v["accuracy"]), f"{v['correct']}/{v['total']}", percent(lmms["per_duration"][d]["accuracy"])]
            for d, v in summary["per_duration"].items()]
    rows.append(["**overall**", f"**{percent(summary['overall'])}**",
                 f"{sum(v['correct'] for v in summary['per_duration'].values())}/"
                 f"{sum(v['total'] for v in summary['per_duration'].values())}", percent(lmms["overall"])])
    head = ["duration", "accuracy (official)", "correct/answered", "lmms-eval (unreadable = wrong)"]
    parts = [f"Video-MME, {setting}; {summary['unreadable']} unreadable repl(ies), left out of the official "
             "denominator as eval_your_results.py does", markdown_table(head, rows)]
    for title, key in (("domain", "per_domain"), ("sub-category", "per_sub_category"), ("task type", "per_task")):
        if summary.get(key):
            parts.append(markdown_table([title, "accuracy (official)", "correct/answered"], _rows(summary[key])))
    return "\n\n".join(parts)
