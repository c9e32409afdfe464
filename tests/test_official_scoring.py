"""Each benchmark on a fixture in its exact official layout (field names and folders as the official repositories
have them), scored by mmlong and by an independent re-implementation of the official scoring written here from
the official scripts: MLVU's ``choice_bench.py`` (``qa_template``, ``check_ans``), Video-MME's
``eval_your_results.py`` (``extract_characters_regex``, unreadable replies left out of the denominator) and the
lmms-eval 0.7.3 task utils (Video-MME: unreadable replies wrong; LongVideoBench: a random choice)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mmlong.benchmarks.mlvu import MLVUBenchmark
from mmlong.qa import Answer


# ---------------------------------------------------------------------------------------------- MLVU
def official_mlvu_gold(record: dict) -> str:
    """choice_bench.qa_template: the loop keeps the index of the last candidate equal to the answer."""
    answer_idx = -1
    for idx, c in enumerate(record["candidates"]):
        if c == record["answer"]:
            answer_idx = idx
    return f"({chr(ord('A') + answer_idx)}) {record['answer']}"


def official_mlvu_check(pred: str, gt: str) -> bool:
    """choice_bench.check_ans: the text between the gold's parentheses against the reply cut at ')'."""
    gt_option = gt[gt.index("(") + 1:gt.index(")")]
    if ")" in pred:
        pred = pred[:pred.index(")")]
    return pred == gt_option


def official_mlvu_scores(records_by_task: dict[str, list[dict]], preds: dict[str, list[str]]) -> dict[str, float]:
    per_task = {}
    for task, records in records_by_task.items():
        hits = [official_mlvu_check(p, official_mlvu_gold(r)) for r, p in zip(records, preds[task])]
        per_task[task] = sum(hits) / len(hits)
    return per_task


MLVU_DEV = {
    "1_plotQA": [  # movie101_21's shape: one option text twice; the official gold is the last copy
        {"video": "movie101_21.mp4", "duration": 480, "question": "What does the man pick up?",
         "candidates": ["a cup", "a knife", "a book", "a cup"], "answer": "a cup", "question_type": "plotQA"},
        {"video": "movie101_22.mp4", "duration": 480, "question": "Where do they go?",
         "candidates": ["home", "school", "the park", "a shop"], "answer": "the park", "question_type": "plotQA"}],
    "2_needle": [
        {"video": "needle_1.mp4", "duration": 300, "question": "What is in the clip?",
         "candidates": ["a cat", "a rocket", "a dog", "a car"], "answer": "a rocket", "question_type": "findNeedle"},
        {"video": "needle_2.mp4", "duration": 300, "question": "What colour is the sign?",
         "candidates": ["red", "blue", "green", "white"], "answer": "red", "question_type": "findNeedle"}],
}


def mlvu_fixture(root: Path) -> Path:
    """MLVU dev as released: ``MLVU/json/<n>_<task>.json`` and ``MLVU/video/<n>_<task>/<video>``."""
    base = root / "MLVU"
    (base / "json").mkdir(parents=True)
    for stem, records in MLVU_DEV.items():
        (base / "video" / stem).mkdir(parents=True)
        for record in records:
            (base / "video" / stem / record["video"]).write_bytes(b"\x00")
        (base / "json" / f"{stem}.json").write_text(json.dumps(records))
    return base


def test_mlvu_dev_scores_equal_the_official_choice_bench(tmp_path):
    base = mlvu_fixture(tmp_path)
    bench = MLVUBenchmark(MLVUBenchmark.Config(data=str(base)))
    items = bench.items()
    # the replies the model wrote after "Best option: (": the first question answers A, the first copy of "a cup"
    preds = {"plotQA": ["A) a cup", "C) the park"], "needle": ["B) a rocket", "blue"]}
    replies = [p for task in ("plotQA", "needle") for p in preds[task]]
    records = [bench.record(item, Answer(text="(" + reply)) for item, reply in zip(items, replies)]
    summary = bench.summarize(records)
    official = official_mlvu_scores({"plotQA": MLVU_DEV["1_plotQA"], "needle": MLVU_DEV["2_needle"]}, preds)
    assert summary["per_task"] == pytest.approx(official)
    assert summary["per_task"]["plotQA"] == 0.5 and items[0].answer == "D"  # the last copy of "a cup"
    assert summary["m_avg"] == pytest.approx(sum(official.values()) / len(official))
    # a model that picks option A by its index (letter models) is read the same way
    assert bench.record(items[0], Answer(text="a cup", option_index=0))["correct"] is False


def test_mlvu_test_split_reads_the_leaderboard_layout_and_scores_the_released_answers(tmp_path):
    """``MLVU_Test/leaderboard/test_question.json`` (no answers) + ``MLVU_Test/video/``; the released answers are
    a file of ``{question_id, answer}`` records; scored as dev is, and the submission is still written."""
    base = tmp_path / "MLVU_Test"
    (base / "leaderboard").mkdir(parents=True)
    (base / "video").mkdir()
    questions = [
        {"video": "sport_1.mp4", "duration": 200, "question": "Which sport?", "candidates": ["golf", "tennis", "golf"],
         "question_type": "sportsQA", "question_id": "SQA_0"},
        {"video": "ar_1.mp4", "duration": 200, "question": "What is unusual?", "candidates": ["fire", "rain"],
         "question_type": "anomaly_reco", "question_id": "AR_0"},
        {"video": "ar_1.mp4", "duration": 200, "question": "What happens?", "candidates": ["a fight", "a dance"],
         "question_type": "anomaly_reco", "question_id": "AR_1"},
        {"video": "ar_1.mp4", "duration": 200, "question": "Summarise the video.", "question_type": "summary",
         "question_id": "SUM_0"}]
    for name in ("sport_1.mp4", "ar_1.mp4"):
        (base / "video" / name).write_bytes(b"\x00")
    (base / "leaderboard" / "test_question.json").write_text(json.dumps(questions))
    answers = tmp_path / "test_answers.json"
    answers.write_text(json.dumps([{"question_id": "SQA_0", "answer": "golf"}, {"question_id": "AR_0", "answer": "B"},
                                   {"question_id": "AR_1", "answer": "a fight"}]))
    bench = MLVUBenchmark(MLVUBenchmark.Config(data=str(base), split="test", answers=str(answers)))
    items = bench.items()
    assert [(i.id, i.answer) for i in items] == [("SQA_0", "C"), ("AR_0", "B"), ("AR_1", "A")]
    assert all(i.video and Path(i.video).parent == base / "video" for i in items)
    preds = ["C) golf", "A) fire", "A) a fight"]
    summary = bench.summarize([bench.record(i, Answer(text="(" + p)) for i, p in zip(items, preds)])
    gold = {"SQA_0": official_mlvu_gold({**questions[0], "answer": "golf"}),
            "AR_0": "(B) rain", "AR_1": official_mlvu_gold({**questions[2], "answer": "a fight"})}
    hits = {q: official_mlvu_check(p, gold[q]) for q, p in zip(gold, preds)}
    assert summary["scores"]["per_task"] == {"anomaly_reco": (hits["AR_0"] + hits["AR_1"]) / 2,
                                             "sportsQA": float(hits["SQA_0"])}
    assert [e["option"] for e in summary["submission"]] == ["C", "A", "A"]
    # without the answers: the submission only
    plain = MLVUBenchmark(MLVUBenchmark.Config(data=str(base), split="test"))
    assert "scores" not in plain.summarize([plain.record(i, Answer(text="(A)")) for i in plain.items()])


# ---------------------------------------------------------------------------------------------- Video-MME
def official_videomme_extract(s: str) -> str:
    """eval_your_results.extract_characters_regex, list literals as the script writes them."""
    s = s.strip()
    answer_prefixes = ["The best answer is", "The correct answer is", "The answer is", "The answer",
                       "The best option is" "The correct option is", "Best answer:" "Best option:"]  # noqa: ISC001
    for answer_prefix in answer_prefixes:
        s = s.replace(answer_prefix, "")
    if len(s.split()) > 10 and not re.search("[ABCD]", s):
        return ""
    matches = re.search(r"[ABCD]", s)
    return "" if matches is None else matches[0]


def official_videomme_scores(results: list[dict]) -> dict[str, dict[str, float]]:
    """eval_your_results: per duration, video category, sub-category and task type over answered questions;
    lmms-eval's overall (every question in the denominator) beside it."""
    tables: dict[str, dict[str, list[int]]] = {"duration": {}, "category": {}, "sub": {}, "task": {}}
    lmms = [0, 0]
    for video in results:
        for q in video["questions"]:
            got = official_videomme_extract(q["response"])
            lmms[0] += got == q["answer"]
            lmms[1] += 1
            if got == "":
                continue
            for table, key in (("duration", video["duration_category"]), ("category", video["video_category"]),
                               ("sub", video["video_subcategory"]), ("task", q["task_type"])):
                row = tables[table].setdefault(key, [0, 0])
                row[0] += got == q["answer"]
                row[1] += 1
    out = {name: {k: c / n for k, (c, n) in rows.items()} for name, rows in tables.items()}
    answered = sum(n for _, n in tables["duration"].values())
    out["overall"] = {"official": sum(c for c, _ in tables["duration"].values()) / answered,
                      "lmms_eval": lmms[0] / lmms[1]}
    return out


VIDEOMME_ROWS = [  # the Hugging Face rows (lmms-lab/Video-MME, videomme/test-00000-of-00001.parquet)
    {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
     "url": "https://www.youtube.com/watch?v=fFjv93ACGo8", "videoID": "fFjv93ACGo8", "question_id": "001-1",
     "task_type": "Counting Problem", "question": "How many jars were found?",
     "options": ["A. 4.", "B. 9.", "C. 5.", "D. 13."], "answer": "C"},
    {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
     "url": "https://www.youtube.com/watch?v=fFjv93ACGo8", "videoID": "fFjv93ACGo8", "question_id": "001-2",
     "task_type": "Object Recognition", "question": "What is not discussed?",
     "options": ["A. Inkstone.", "B. Niche.", "C. Jade.", "D. Table."], "answer": "C"},
    {"video_id": "002", "duration": "medium", "domain": "Sports Competition", "sub_category": "Football",
     "url": "https://www.youtube.com/watch?v=Zz9x0oDkF1s", "videoID": "Zz9x0oDkF1s", "question_id": "002-1",
     "task_type": "Action Reasoning", "question": "Why did the crowd cheer?",
     "options": ["A. A goal.", "B. A foul.", "C. A save.", "D. Half time."], "answer": "C"},
    {"video_id": "002", "duration": "medium", "domain": "Sports Competition", "sub_category": "Football",
     "url": "https://www.youtube.com/watch?v=Zz9x0oDkF1s", "videoID": "Zz9x0oDkF1s", "question_id": "002-2",
     "task_type": "Counting Problem", "question": "How many goals?",
     "options": ["A. 1.", "B. 2.", "C. 3.", "D. 4."], "answer": "C"},
]
#: C right, B wrong, two unreadable replies: official 50 %, lmms-eval 25 %
VIDEOMME_REPLIES = ["The best answer is C.", "B", "I cannot tell from this video, sorry, it is far too dark to see",
                    "unknown"]


def videomme_release(root: Path) -> Path:
    """``Video-MME/videomme/test-00000-of-00001.parquet``, ``data/<videoID>.mp4``, ``subtitle/<videoID>.srt``."""
    import pandas

    base = root / "Video-MME"
    for folder in ("videomme", "data", "subtitle"):
        (base / folder).mkdir(parents=True)
    pandas.DataFrame(VIDEOMME_ROWS).to_parquet(base / "videomme" / "test-00000-of-00001.parquet")
    for row in VIDEOMME_ROWS:
        (base / "data" / f"{row['videoID']}.mp4").write_bytes(b"\x00")
    return base


def official_results(rows: list[dict], replies: list[str]) -> list[dict]:
    """The official results file (output_test_template.json's layout) of rows and replies."""
    videos: dict[str, dict] = {}
    for row, reply in zip(rows, replies):
        video = videos.setdefault(row["video_id"], {
            "video_id": row["video_id"], "duration_category": row["duration"], "video_category": row["domain"],
            "video_subcategory": row["sub_category"], "questions": []})
        video["questions"].append({"question_id": row["question_id"], "task_type": row["task_type"],
                                   "question": row["question"], "choices": row["options"], "answer": row["answer"],
                                   "response": reply})
    return list(videos.values())


@pytest.mark.parametrize("data", ["folder", "parquet"])
def test_videomme_hf_release_scores_equal_eval_your_results(tmp_path, data):
    from mmlong.benchmarks.videomme import VideoMMEBenchmark

    base = videomme_release(tmp_path)
    given = base if data == "folder" else base / "videomme" / "test-00000-of-00001.parquet"
    bench = VideoMMEBenchmark(VideoMMEBenchmark.Config(data=str(given), subtitles=True))
    items = bench.items()
    assert [i.video for i in items] == [str(base / "data" / f"{r['videoID']}.mp4") for r in VIDEOMME_ROWS]
    assert bench.subtitle_folder() == base / "subtitle"
    records = [bench.record(item, Answer(text=reply)) for item, reply in zip(items, VIDEOMME_REPLIES)]
    assert all(r["domain"] and r["sub_category"] for r in records)
    summary = bench.summarize(records)
    official = official_videomme_scores(official_results(VIDEOMME_ROWS, VIDEOMME_REPLIES))
    assert summary["overall"] == official["overall"]["official"] == 0.5
    assert summary["lmms_eval"]["overall"] == official["overall"]["lmms_eval"] == 0.25
    for ours, theirs in (("per_duration", "duration"), ("per_domain", "category"),
                         ("per_sub_category", "sub"), ("per_task", "task")):
        assert {k: v["accuracy"] for k, v in summary[ours].items()} == official[theirs]
    assert summary["unreadable"] == 2
    # a model that chose by index: its response for the official script is the letter (its text "Black." would
    # read as B there)
    chosen = bench.record(items[0], Answer(text="Black.", option_index=2))
    assert official_videomme_extract(chosen["response"]) == chosen["option"] == "C"


def test_videomme_2024_json_layout_is_read(tmp_path):
    """The README's JSON: duration_category, video_category, video_sub_category, url, questions[choices]."""
    from mmlong.benchmarks.videomme import VideoMMEBenchmark

    base = tmp_path / "Video-MME"
    (base / "data").mkdir(parents=True)
    (base / "data" / "fFjv93ACGo8.mp4").write_bytes(b"\x00")
    videos = official_results(VIDEOMME_ROWS[:2], ["", ""])
    for video in videos:
        video["video_sub_category"] = video.pop("video_subcategory")
        video["url"] = VIDEOMME_ROWS[0]["url"]
        for q in video["questions"]:
            q.pop("response")
    (base / "videomme.json").write_text(json.dumps(videos))
    bench = VideoMMEBenchmark(VideoMMEBenchmark.Config(data=str(base)))
    items = bench.items()
    assert [(i.id, i.answer, i.meta["duration"], i.meta["domain"], i.meta["sub_category"]) for i in items] == [
        ("001-1", "C", "short", "Knowledge", "Humanity & History"),
        ("001-2", "C", "short", "Knowledge", "Humanity & History")]
    assert items[0].query.options == ("4.", "9.", "5.", "13.") and items[0].video.endswith("fFjv93ACGo8.mp4")


# ---------------------------------------------------------------------------------------------- LongVideoBench
def official_lvb_parse(response: str, all_choices: list[str], draw) -> str:
    """lmms-eval longvideobench.parse_multi_choice_response, the random draw passed in."""
    s = response.strip()
    for prefix in ["The best answer is", "The correct answer is", "The answer is", "The answer",
                   "The best option is", "The correct option is", "Best answer:", "Best option:"]:
        s = s.replace(prefix, "")
    if len(s.split()) > 10 and not re.search("[ABCDE]", s):
        return draw(all_choices)
    matches = re.search(r"[ABCDE]", s)
    return draw(all_choices) if matches is None else matches[0]


LVB_VAL = [
    {"video_id": "86CxyhFV9MI", "video_path": "86CxyhFV9MI.mp4", "subtitle_path": "86CxyhFV9MI_en.json",
     "duration_group": 600, "duration": 520.0, "starting_timestamp_for_subtitles": 0.0, "view_count": 1000,
     "question_category": "TOS", "level": "L2-Relation", "id": "86CxyhFV9MI_0", "question_wo_referring_query":
     "What is worn?", "question": "What is worn after the song?", "topic_category": "NP-News-Programs",
     "candidates": ["a hat", "a scarf", "gloves", "a coat"], "correct_choice": 2},
    {"video_id": "86CxyhFV9MI", "video_path": "86CxyhFV9MI.mp4", "subtitle_path": "86CxyhFV9MI_en.json",
     "duration_group": 600, "duration": 520.0, "starting_timestamp_for_subtitles": 0.0, "view_count": 1000,
     "question_category": "S2E", "level": "L1-Perception", "id": "86CxyhFV9MI_1", "question_wo_referring_query":
     "Who speaks?", "question": "Who speaks first?", "topic_category": "NP-News-Programs",
     "candidates": ["a man", "a woman", "a child"], "correct_choice": 0},
    {"video_id": "UdN8cDsLPhg", "video_path": "UdN8cDsLPhg.mp4", "subtitle_path": "UdN8cDsLPhg_en.json",
     "duration_group": 15, "duration": 12.0, "starting_timestamp_for_subtitles": 300.0, "view_count": 5,
     "question_category": "S2E", "level": "L1-Perception", "id": "UdN8cDsLPhg_0", "question_wo_referring_query":
     "What colour?", "question": "What colour is the car?", "topic_category": "CT-Cooking",
     "candidates": ["red", "blue", "green", "white", "black"], "correct_choice": 4},
]
LVB_TEST = [{k: v for k, v in LVB_VAL[0].items() if k != "correct_choice"} | {"id": "t_0"}]
LVB_REPLIES = ["C", "The answer is: I really cannot say which person speaks first in this clip at all", "E."]


def lvb_release(root: Path) -> Path:
    """The LongVideoBench folder as downloaded: lvb_val.json, lvb_test_wo_gt.json, videos/, subtitles/."""
    base = root / "LongVideoBench"
    (base / "videos").mkdir(parents=True)
    (base / "subtitles").mkdir()
    for record in LVB_VAL:
        (base / "videos" / record["video_path"]).write_bytes(b"\x00")
    (base / "lvb_val.json").write_text(json.dumps(LVB_VAL))
    (base / "lvb_test_wo_gt.json").write_text(json.dumps(LVB_TEST))
    return base


def test_longvideobench_val_scores_equal_the_official_reading_and_test_is_not_scored(tmp_path):
    from mmlong.benchmarks.longvideobench import LongVideoBenchBenchmark
    from mmlong.benchmarks.reply_reading import random_choice

    base = lvb_release(tmp_path)
    bench = LongVideoBenchBenchmark(LongVideoBenchBenchmark.Config(data=str(base)))
    items = bench.items()
    assert [i.id for i in items] == [r["id"] for r in LVB_VAL]  # lvb_test_wo_gt.json is not read for val
    records = [bench.record(item, Answer(text=reply)) for item, reply in zip(items, LVB_REPLIES)]
    # the official reading; the unreadable reply's random draw is the one mmlong records, seeded per question
    drawn = {}
    parsed = [official_lvb_parse(reply, [chr(65 + i) for i in range(len(r["candidates"]))],
                                 lambda choices, rid=r["id"]: drawn.setdefault(rid, random_choice(rid, len(choices))))
              for r, reply in zip(LVB_VAL, LVB_REPLIES)]
    assert [r["option"] for r in records] == parsed and list(drawn) == ["86CxyhFV9MI_1"]
    assert [r["random_choice"] for r in records] == [False, True, False]
    gold = [chr(65 + r["correct_choice"]) for r in LVB_VAL]
    summary = bench.summarize(records)
    assert summary["overall"] == sum(p == g for p, g in zip(parsed, gold)) / len(gold)
    assert summary["per_category"]["TOS"]["accuracy"] == 1.0 and summary["random_choices"] == 1
    # the draw does not depend on the run: a second benchmark object gives the same letter
    again = LongVideoBenchBenchmark(LongVideoBenchBenchmark.Config(data=str(base)))
    assert again.record(again.items()[1], Answer(text=LVB_REPLIES[1]))["option"] == records[1]["option"]
    # the test split: answered and submitted, never scored as wrong
    test = LongVideoBenchBenchmark(LongVideoBenchBenchmark.Config(data=str(base), split="test"))
    (item,) = test.items()
    assert item.id == "t_0" and item.answer is None
    summary = test.summarize([test.record(item, Answer(text="B"))])
    assert summary["submission"] == {"t_0": "B"} and "overall" not in summary
    assert json.loads(test.figures(summary, tmp_path)[0].read_text()) == {"t_0": "B"}


# ---------------------------------------------------------------------------------------------- subtitles
def official_videomme_subtitles(cues: list[tuple[float, float, str]], frame_indices: list[int], fps: float):
    """lmms-eval videomme_doc_to_text_subtitle: a cue goes in when a sampled frame index falls in
    [int(start * fps), int(end * fps)); order: the set of cue indices (ascending for these small ints)."""
    frames_of_cues = [(int(s * fps), int(e * fps), text) for s, e, text in cues]
    picked = []
    for frame_idx in frame_indices:
        for idx, (first, last, _) in enumerate(frames_of_cues):
            if first <= frame_idx < last:
                picked.append(idx)
    return [frames_of_cues[i][2] for i in sorted(set(picked))]


def official_lvb_subtitles(subtitles: list[dict], frame_timestamps: list[float], offset: float, duration: float):
    """longvideobench_dataset.insert_subtitles_into_frames, keeping only the subtitle texts it interleaves."""
    kept = []
    for subtitle in subtitles:
        start, end = subtitle["timestamp"]
        if not isinstance(end, float):
            end = duration
        start -= offset
        end -= offset
        middle = (start + end) / 2
        if end - start < 1:
            end, start = middle + 0.5, middle - 0.5
        if any(start < t < end for t in frame_timestamps):
            kept.append(subtitle["text"])
    return kept


def test_subtitles_are_limited_to_the_sampled_frames_by_each_official_rule():
    from mmlong.benchmarks.longvideobench import subtitle_cues
    from mmlong.experts.base import TimedText
    from mmlong.models.subtitles import lines_for_query
    from mmlong.qa import Query

    fps = 10.0
    cues = [(2.0 * k, 2.0 * k + 1.5, f"line {k}") for k in range(20)]  # 20 lines over 40 s
    lines = [TimedText(s, e, "subtitle", text) for s, e, text in cues]
    frame_indices = [0, 100, 250, 399]
    times = [f / fps for f in frame_indices]
    vmme = Query("q", ("a", "b"), benchmark="videomme")
    got = [line.text for line in lines_for_query(lines, times, vmme, fps)]
    assert got == official_videomme_subtitles(cues, frame_indices, fps) and len(got) == 3
    assert lines_for_query(lines, times, Query("q", ("a", "b")), fps) == lines  # MLVU-style questions: every line
    assert lines_for_query(lines, times, Query("q", ("a", "b"), benchmark="videomme", timed_text=False), fps) == []
    # LongVideoBench: the JSON entries on the subtitles' clock, a short line, one open-ended, one after the clip
    offset, duration = 100.0, 30.0
    entries = [{"timestamp": [100.2, 100.6], "text": "short, near frame 0"},
               {"timestamp": [104.0, 109.0], "text": "between frames"},
               {"timestamp": [111.0, 119.0], "text": "over frame 15"},
               {"timestamp": [128.0, 140.0], "text": "runs past the end"},
               {"timestamp": [135.0, 139.0], "text": "after the clip"},
               {"timestamp": [125.5, None], "text": "open end"}]
    frame_times = [0.0, 15.0, 29.0]
    lvb = Query("q", ("a", "b"), benchmark="longvideobench")
    got = [line.text for line in lines_for_query(subtitle_cues(entries, offset, duration), frame_times, lvb)]
    assert got == official_lvb_subtitles(entries, frame_times, offset, duration)
    assert "after the clip" not in got and "between frames" not in got and "short, near frame 0" in got


def test_without_subtitles_no_text_reaches_the_model_and_records_show_the_prompt(tmp_path, capsys):
    """A Video-MME run on a tiny native model: with subtitles, the lines of the sampled frames (Video-MME's rule)
    are what the prompt held and what the record lists; without, no expert runs and nothing is heard, even when
    the flags ask for experts."""
    from mmlong.apps.cli import main
    from tests.media import make_test_video
    from tests.vlm_fixtures import build_smolvlm, save_checkpoint

    model, processor = build_smolvlm(num_layers=2)
    checkpoint = save_checkpoint(model, processor, tmp_path / "smol")
    base = tmp_path / "Video-MME"
    for folder in ("videomme", "data", "subtitle"):
        (base / folder).mkdir(parents=True)
    make_test_video(base / "data" / "vid1.mp4", num_frames=40, fps=10, size=(96, 64))  # 4 s
    cues = [(k * 200 / 1000, (k * 200 + 200) / 1000, f"said {k}") for k in range(20)]  # 20 lines, back to back
    (base / "subtitle" / "vid1.srt").write_text("\n".join(
        f"{k + 1}\n00:00:0{int(s)},{int(round(s % 1 * 1000)):03d} --> 00:00:0{int(e)},{int(round(e % 1 * 1000)):03d}\n"
        f"{text}\n" for k, (s, e, text) in enumerate(cues)))
    row = dict(VIDEOMME_ROWS[0], videoID="vid1", url="")
    import pandas

    pandas.DataFrame([row]).to_parquet(base / "videomme" / "test-00000-of-00001.parquet")
    (tmp_path / "p.yaml").write_text("model_options:\n  max_new_tokens: 2\n")
    runs = {}
    for setting in ("without", "with"):
        extra = ["--with-subtitles"] if setting == "with" else ["--experts", "ocr,asr"]
        code = main(["eval", "videomme", "--data", str(base), "--out", str(tmp_path / setting), "--model",
                     str(checkpoint), "--sample", "uniform:4", "--no-cache", "--config", str(tmp_path / "p.yaml"),
                     *extra])
        assert code == 0, capsys.readouterr().err
        (record,) = [json.loads(line) for line in (tmp_path / setting / "results.jsonl").read_text().splitlines()]
        runs[setting] = record
    without, with_subs = runs["without"], runs["with"]
    assert without["subtitles_seen"] == []
    frames = [round(t * 10) for t in with_subs["frame_times"]]
    expected = official_videomme_subtitles(cues, frames, 10.0)
    assert [line["text"] for line in with_subs["subtitles_seen"]] == expected and len(expected) == 4


# ---------------------------------------------------------------------------------------------- prompt layouts
@pytest.mark.parametrize("family", ["qwen2-vl", "smolvlm2"])
def test_native_vlms_see_the_official_prompt_layout(family):
    """Video-MME's question reaches a native VLM as the README writes it (subtitles header, the instruction, the
    question, "A. ..." options, "The best answer is:"), not inside MLVU's template; the letter is read right after."""
    from mmlong.experts.base import TimedText
    from mmlong.models.prompts import VIDEOMME_ANSWER_LINE, VIDEOMME_SUBTITLES_HEADER
    from mmlong.qa import Query
    from mmlong.registry import MODELS
    from tests.vlm_fixtures import build_qwen2_vl, build_smolvlm, frames_of, random_video

    model, processor = (build_qwen2_vl if family == "qwen2-vl" else build_smolvlm)(num_layers=2)
    adapter = MODELS.resolve(family)(MODELS.make_config(family, max_new_tokens=2)).load(model, processor)
    tokens = adapter.native_encoder().encode(frames_of(random_video(4, height=96, width=128), fps=1.0))
    instruction = ("Select the best answer to the following multiple-choice question based on the video and the "
                   "subtitles. Respond with only the letter (A, B, C, or D) of the correct option.")
    query = Query("What is said?", ("hello", "goodbye"), instruction=instruction, benchmark="videomme")
    lines = [TimedText(1.0, 1.5, "subtitle", "hello there")]
    answer = adapter.answer(tokens, query, timed_text=lines)
    official = "\n".join([VIDEOMME_SUBTITLES_HEADER, "hello there", instruction, "What is said?", "A. hello",
                          "B. goodbye", VIDEOMME_ANSWER_LINE])
    from mmlong.models.subtitles import sampled_frame_times, subtitle_context

    block = subtitle_context(lines, sampled_frame_times(tokens), plain=True)
    text = adapter.build_prompt(tokens, query, block).text
    assert official in text and "Best option" not in text and "Only give the best option" not in text
    assert answer.letter in ("A", "B") and set(answer.details["option_probs"]) == {"A", "B"}
    assert answer.details["timed_text_seen"] == [lines[0].to_dict()]
    mlvu = adapter.build_prompt(tokens, Query("What is said?", ("hello", "goodbye"))).text
    assert "(A) hello" in mlvu and mlvu.rstrip().endswith("Best option: (")


def test_the_subtitle_cache_is_keyed_by_each_videos_subtitle_file(tmp_path):
    """Two byte-identical videos, one with a subtitle file and one without: through the expert cache each gets
    its own lines (the cache once served the first video's lines to the second); editing the file changes them."""
    from mmlong.experts.cache import ExpertCache
    from mmlong.experts.runner import build_experts, run_experts

    folder = tmp_path / "subtitle"
    folder.mkdir()
    (tmp_path / "a.mp4").write_bytes(b"same bytes" * 100)
    (tmp_path / "b.mp4").write_bytes(b"same bytes" * 100)
    (folder / "a.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nonly in a\n")
    experts = build_experts("", str(folder))
    cache = ExpertCache(tmp_path / "cache")
    first, _ = run_experts(experts, str(tmp_path / "a.mp4"), cache)
    second, steps = run_experts(experts, str(tmp_path / "b.mp4"), cache)
    assert [line.text for line in first] == ["only in a"]
    assert [line.source for line in second] == ["note"] and steps[0].extra["hit"] is False
    again, steps = run_experts(experts, str(tmp_path / "a.mp4"), cache)
    assert [line.text for line in again] == ["only in a"] and steps[0].extra["hit"] is True
    (folder / "a.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nedited\n")
    edited, _ = run_experts(build_experts("", str(folder)), str(tmp_path / "a.mp4"), cache)
    assert [line.text for line in edited] == ["edited"]


# ---------------------------------------------------------------------------------------------- ASR
@pytest.mark.skipif(__import__("shutil").which("espeak-ng") is None, reason="espeak-ng missing")
def test_speech_recognition_gives_the_same_lines_on_fresh_runs(tmp_path, monkeypatch):
    """Three fresh speech experts (new model, empty cache) on the espeak-ng clip give identical lines, decoded
    greedily with no sampled fallback and CTranslate2 seeded before each run."""
    import numpy as np
    from faster_whisper import WhisperModel

    from mmlong.media.audio import SPEECH_RATE, mix_into, speak
    from mmlong.registry import EXPERTS
    from tests.media import make_test_video

    track = mix_into(np.zeros(8 * SPEECH_RATE, np.float32), speak("Open the blue door"), 3.0, SPEECH_RATE)
    video = make_test_video(tmp_path / "speech.mp4", frames=[np.full((48, 64, 3), 90, np.uint8)] * 32, fps=4,
                            audio=(track, SPEECH_RATE))
    calls = []
    original = WhisperModel.transcribe

    def spy(self, audio, **kwargs):
        calls.append(kwargs)
        return original(self, audio, **kwargs)

    monkeypatch.setattr(WhisperModel, "transcribe", spy)
    runs = [EXPERTS.create("asr").run(str(video)).lines for _ in range(3)]
    assert runs[0] == runs[1] == runs[2] and any(line.source == "speech" for line in runs[0])
    assert all(call["temperature"] == [0.0] for call in calls) and len(calls) == 3


@pytest.mark.slow
def test_socratic_records_list_the_lines_its_prompt_held_and_reads_official_layouts(tmp_path):
    """100 subtitle lines, a transcript capped at 64 expert lines: ``subtitles_seen`` is those 64, each of them in
    the transcript; ``scoring: letter`` reads the letter after Video-MME's official answer line."""
    from mmlong.assets.samples import sample_video
    from mmlong.config.resolve import resolve
    from mmlong.pipeline import Pipeline
    from mmlong.qa import Query

    srt = tmp_path / "many.srt"
    srt.write_text("\n".join(f"{k + 1}\n00:00:{k // 10:02d},{k % 10 * 100:03d} --> 00:00:{k // 10:02d},"
                             f"{k % 10 * 100 + 90:03d}\nline number {k}\n" for k in range(100)))
    video = str(sample_video("carphone_pristine"))
    pipe = Pipeline(resolve(preset="offline", flags={"subtitles": str(srt), "experts": "none", "sample": "uniform:4",
                                                     "cache": False}))
    answer = pipe.ask(video, "What is said?", ["line number 3", "nothing"])
    seen = answer.details["timed_text_seen"]
    assert len(seen) == 64 and all(line["text"] in answer.details["transcript"] for line in seen)
    letter = Pipeline(resolve(preset="offline", flags={"subtitles": str(srt), "experts": "none", "cache": False,
                                                       "sample": "uniform:4",
                                                       "model_options": {"scoring": "letter"}}))
    query = Query("What is said?", ("line number 3", "nothing"), instruction="Select the best answer.",
                  benchmark="videomme")
    (result,) = letter.ask_many(video, [query])
    assert result.letter in ("A", "B") and result.details["option_loglik_kind"] == "letter"
    assert all(v < 0 for v in result.details["option_loglik"])
