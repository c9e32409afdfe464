"""Each benchmark on a fixture in its exact official layout (field names and folders as the official repositories
have them), scored by mmlong and by an independent re-implementation of the official scoring written here from
the official scripts: MLVU's ``choice_bench.py`` (``qa_template``, ``check_ans``), Video-MME's
``eval_your_results.py`` (``extract_characters_regex``, unreadable replies left out of the denominator) and the
lmms-eval 0.7.3 task utils (Video-MME: unreadable replies wrong; LongVideoBench: a random choice)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmlong.apps.mlvu import MLVUBenchmark
from mmlong.types import Answer


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
