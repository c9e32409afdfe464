"""Video-MME, LongVideoBench and the MLVU test split: official layouts (real footage, .srt / JSON subtitles),
official scoring checked against hand-computed values, and a run where the subtitle setting changes the answer."""

from __future__ import annotations

import json
import shutil

import pytest

from mmlong.benchmarks.longvideobench import LongVideoBenchBenchmark, subtitle_cues
from mmlong.benchmarks.mlvu import MLVUBenchmark
from mmlong.benchmarks.videomme import VideoMMEBenchmark
from mmlong.experts.subtitle_file import read_subtitles
from mmlong.qa import Answer
from mmlong.registry import BENCHMARKS

SRT = "1\n00:00:01,000 --> 00:00:03,000\nThe code word is orange.\n"


def answered(letter: str | None, count: int = 4, text: str | None = None) -> Answer:
    index = None if letter is None else ord(letter) - ord("A")
    return Answer(text=text if text is not None else (f"({letter})" if letter else "I am not sure"),
                  option_index=index, details={"frame_times": [1.0, 2.0], "timed_text_seen": []})


@pytest.fixture
def videomme_release(tmp_path):
    from mmlong.assets.samples import sample_video

    (tmp_path / "data").mkdir()
    (tmp_path / "subtitle").mkdir()
    shutil.copy(sample_video("carphone_pristine"), tmp_path / "data" / "vidA.mp4")
    shutil.copy(sample_video("bikes"), tmp_path / "data" / "vidB.mp4")
    (tmp_path / "subtitle" / "vidA.srt").write_text(SRT)
    release = [
        {"video_id": "001", "videoID": "vidA", "duration": "short", "domain": "Life", "sub_category": "Vlog",
         "questions": [
             {"question_id": "001-1", "task_type": "OCR Problems", "question": "What is the code word?",
              "options": ["A. orange", "B. violet", "C. green", "D. grey"], "answer": "A"},
             {"question_id": "001-2", "task_type": "Object Recognition", "question": "Who is in the video?",
              "options": ["A. a man", "B. a dog", "C. a cat", "D. nobody"], "answer": "A"}]},
        {"video_id": "002", "videoID": "vidB", "duration": "medium", "domain": "Sports", "sub_category": "Cycling",
         "questions": [
             {"question_id": "002-1", "task_type": "Action Recognition", "question": "What are people riding?",
              "options": ["A. horses", "B. bikes", "C. boats", "D. cars"], "answer": "B"}]},
        {"video_id": "003", "videoID": "vidMissing", "duration": "long", "domain": "Film", "sub_category": "Drama",
         "questions": [{"question_id": "003-1", "task_type": "Counting Problem", "question": "How many?",
                        "options": ["A. 1", "B. 2", "C. 3", "D. 4"], "answer": "C"}]},
    ]
    (tmp_path / "videomme.json").write_text(json.dumps(release))
    return tmp_path


def test_videomme_reads_the_official_layout(videomme_release):
    bench = VideoMMEBenchmark(VideoMMEBenchmark.Config(data=str(videomme_release)))
    items = bench.items()
    assert [i.id for i in items] == ["001-1", "001-2", "002-1", "003-1"]
    first = items[0]
    assert first.query.options == ("orange", "violet", "green", "grey") and first.answer == "A"
    assert first.video.endswith("data/vidA.mp4") and first.meta["duration"] == "short"
    assert "based on the video. Respond with only the letter" in first.query.instruction
    assert items[3].video is None and "vidMissing" in items[3].missing
    with_subs = VideoMMEBenchmark(VideoMMEBenchmark.Config(data=str(videomme_release), subtitles=True))
    assert "based on the video and the subtitles" in with_subs.items()[0].query.instruction
    assert with_subs.subtitle_folder() == videomme_release / "subtitle"
    assert BENCHMARKS.resolve("videomme") is VideoMMEBenchmark


def test_videomme_reads_the_lmms_eval_rows(tmp_path, videomme_release):
    rows = [{"video_id": "001", "videoID": "vidA", "duration": "short", "domain": "Life", "sub_category": "Vlog",
             "question_id": "001-1", "task_type": "OCR Problems", "question": "What is the code word?",
             "options": ["A. orange", "B. violet", "C. green", "D. grey"], "answer": "B"}]
    path = videomme_release / "test.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    items = VideoMMEBenchmark(VideoMMEBenchmark.Config(data=str(path))).items()
    assert len(items) == 1 and items[0].video.endswith("vidA.mp4") and items[0].answer == "B"


def test_videomme_scores_per_duration_official_and_lmms_eval(videomme_release):
    bench = VideoMMEBenchmark(VideoMMEBenchmark.Config(data=str(videomme_release)))
    items = bench.items()
    records = [bench.record(items[0], answered("A")),          # short: right
               bench.record(items[1], answered(None)),         # short: nothing readable -> out of the official count
               bench.record(items[2], answered(None, text="The answer is B.")),  # medium: letter read from text
               bench.error_record(items[3], items[3].missing)]  # long: video missing -> not scored
    assert records[1]["option"] is None and records[1]["correct"] is False
    summary = bench.summarize(records)
    assert summary["per_duration"]["short"] == {"correct": 1, "total": 1, "accuracy": 1.0}
    assert summary["per_duration"]["medium"] == {"correct": 1, "total": 1, "accuracy": 1.0}
    assert summary["overall"] == 1.0 and summary["lmms_eval"]["overall"] == pytest.approx(2 / 3)
    assert summary["lmms_eval"]["per_duration"]["short"]["accuracy"] == 0.5
    assert summary["errors"]["count"] == 1 and "long" not in summary["per_duration"]
    assert summary["per_task"]["OCR Problems"]["accuracy"] == 1.0
    assert "| short | 100.0 | 1/1 | 50.0 |" in bench.report(summary)


@pytest.fixture
def lvb_release(tmp_path):
    from mmlong.assets.samples import sample_video

    (tmp_path / "videos").mkdir()
    (tmp_path / "subtitles").mkdir()
    shutil.copy(sample_video("carphone_pristine"), tmp_path / "videos" / "c1.mp4")
    (tmp_path / "subtitles" / "c1_en.json").write_text(json.dumps([
        {"start": "00:10:01.000", "end": "00:10:03.500", "line": "The code word is violet."},
        {"start": "00:09:00.000", "end": "00:09:01.000", "line": "before the clip"}]))
    records = [
        {"id": "q1", "video_path": "c1.mp4", "subtitle_path": "c1_en.json", "duration_group": 15, "duration": 4.0,
         "question": "What is the code word?", "candidates": ["orange", "violet", "green"], "correct_choice": 1,
         "starting_timestamp_for_subtitles": 600.0, "question_category": "TOS"},
        {"id": "q2", "video_path": "c1.mp4", "subtitle_path": "c1_en.json", "duration_group": 15, "duration": 4.0,
         "question": "Who is speaking?", "candidates": ["a man", "a woman"], "correct_choice": 0,
         "starting_timestamp_for_subtitles": 600.0, "question_category": "S2E"},
        {"id": "q3", "video_path": "gone.mp4", "subtitle_path": "gone_en.json", "duration_group": 600,
         "duration": 500.0, "question": "What happens?", "candidates": ["a", "b"], "correct_choice": 1,
         "starting_timestamp_for_subtitles": 0.0, "question_category": "E2O"},
    ]
    (tmp_path / "lvb_val.json").write_text(json.dumps(records))
    return tmp_path


def test_longvideobench_subtitles_move_to_the_videos_clock(lvb_release, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    bench = LongVideoBenchBenchmark(LongVideoBenchBenchmark.Config(data=str(lvb_release), subtitles=True))
    items = bench.items()
    assert [i.answer for i in items] == ["B", "A", "B"] and items[2].video is None
    assert items[0].query.instruction == "Answer with the option's letter from the given choices directly."
    cues = read_subtitles(bench.subtitle_folder() / "c1.srt")
    assert [(c.start, c.end, c.text) for c in cues] == [(1.0, 3.5, "The code word is violet.")]
    assert [c.text for c in subtitle_cues([{"timestamp": [5.0, None], "text": "end"}], 0.0, 9.0)] == ["end"]


def test_longvideobench_scores_per_group_and_category(lvb_release):
    bench = LongVideoBenchBenchmark(LongVideoBenchBenchmark.Config(data=str(lvb_release)))
    items = bench.items()
    records = [bench.record(items[0], answered("B")), bench.record(items[1], answered(None, text="B")),
               bench.error_record(items[2], items[2].missing)]
    summary = bench.summarize(records)
    assert summary["per_duration_group"] == {15: {"correct": 1, "total": 2, "accuracy": 0.5}}
    assert summary["per_category"]["TOS"]["accuracy"] == 1.0 and summary["per_category"]["S2E"]["accuracy"] == 0.0
    assert summary["overall"] == 0.5 and summary["errors"]["count"] == 1


def test_mlvu_test_split_writes_the_submission(tmp_path):
    from mmlong.assets.samples import sample_video

    (tmp_path / "video").mkdir()
    shutil.copy(sample_video("bikes"), tmp_path / "video" / "sport.mp4")
    records = [
        {"video": "sport.mp4", "duration": 10, "question": "Which sport?", "candidates": ["cycling", "golf"],
         "question_type": "sportsQA", "question_id": "test_1"},
        {"video": "sport.mp4", "duration": 10, "question": "What is made?", "candidates": ["a cake", "a bike"],
         "question_type": "tutorialQA", "question_id": "test_2"},
        {"video": "sport.mp4", "duration": 10, "question": "Where is the needle?", "candidates": ["x", "y"],
         "question_type": "needleQA", "question_id": "test_3"},
    ]
    (tmp_path / "test_mcq.json").write_text(json.dumps(records))
    bench = MLVUBenchmark(MLVUBenchmark.Config(data=str(tmp_path / "test_mcq.json"), split="test"))
    items = bench.items()
    assert [i.meta["question_type"] for i in items] == ["sportsQA", "tutorialQA", "needle"]
    assert all(i.answer is None for i in items)
    out = [bench.record(items[0], answered("A", 2)), bench.record(items[1], answered(None, 2, "no idea")),
           bench.error_record(items[2], "video failed")]
    summary = bench.summarize(out)
    path = bench.figures(summary, tmp_path)[0]
    assert json.loads(path.read_text()) == [
        {"question_id": "test_1", "question_type": "sportsQA", "option": "A"},
        {"question_id": "test_2", "question_type": "tutorialQA", "option": ""},
        {"question_id": "test_3", "question_type": "needleQA", "option": ""}]
    assert summary["answered"] == 2 and summary["unreadable"] == 1
    with pytest.raises(Exception, match="unknown MLVU task"):
        MLVUBenchmark(MLVUBenchmark.Config(data=str(tmp_path / "test_mcq.json"), tasks=("sportsQA",))).items()


@pytest.mark.slow
def test_subtitles_change_the_answer_through_the_real_pipeline(videomme_release, tmp_path, capsys):
    """The offline model cannot see the code word; with the dataset's subtitles at the sampled frames it reads it.

    Without subtitles it picks "violet" (B) for this clip, so the subtitle names another option, "orange" (A)."""
    from mmlong.apps.cli import main

    annotation = videomme_release / "videomme.json"
    release = json.loads(annotation.read_text())
    release[0]["questions"] = release[0]["questions"][:1]
    annotation.write_text(json.dumps(release[:1]))
    runs = {}
    for setting in ("without", "with"):
        out = tmp_path / setting
        flags = ["--with-subtitles"] if setting == "with" else []
        status = main(["eval", "videomme", "--data", str(videomme_release), "--out", str(out), "--sample",
                       "uniform:4", "--cache-dir", str(tmp_path / "cache"), *flags])
        assert status == 0, capsys.readouterr().err
        runs[setting] = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    without, with_subs = runs["without"][0], runs["with"][0]
    assert with_subs["option"] == "A" and with_subs["correct"] is True
    assert without["option"] != "A" and without["correct"] is False
    assert with_subs["subtitles_seen"] and "orange" in with_subs["subtitles_seen"][0]["text"]
    assert without["subtitles_seen"] == [] and len(with_subs["frame_times"]) == 4
    summary = json.loads((tmp_path / "with" / "summary.json").read_text())
    assert summary["per_duration"]["short"]["accuracy"] == 1.0 and summary["subtitles"] is True


def test_a_subtitle_folder_gives_each_video_its_own_file_or_a_note(tmp_path):
    from mmlong.errors import ConfigError
    from mmlong.experts.runner import build_experts

    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "clipA.srt").write_text(SRT)
    (expert,) = build_experts("", str(tmp_path / "subs"))
    assert expert.config.folder == str(tmp_path / "subs") and expert.config.fallback == "none"
    assert [line.text for line in expert.run(str(tmp_path / "clipA.mp4")).lines] == ["The code word is orange."]
    (note,) = expert.run(str(tmp_path / "clipB.mp4")).lines
    assert note.source == "note" and "no subtitle file" in note.text
    (with_asr,) = build_experts("", str(tmp_path / "subs") + "+asr")
    assert with_asr.config.fallback == "asr"
    with pytest.raises(ConfigError, match="already one of the experts"):
        build_experts("asr", str(tmp_path / "subs") + "+asr")
    with pytest.raises(ConfigError, match="subtitle file not found"):
        build_experts("", str(tmp_path / "nothing.srt") + "+asr")
