"""MLVU: reading both annotation layouts, per-task scoring (M-Avg vs micro), and `mmlong eval mlvu` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmlong.benchmarks.mlvu import TASKS, MLVUBenchmark, canonical_task, parse_embedded_options, summarize_tasks
from mmlong.errors import ConfigError


def test_macro_and_micro_averages_from_hand_built_records():
    # count: 1/4 right, needle: 2/2 right, ego: 0/1 right (+1 error that must not be scored)
    records = (
        [{"id": f"c{i}", "question_type": "count", "correct": i == 0} for i in range(4)]
        + [{"id": f"n{i}", "question_type": "needle", "correct": True} for i in range(2)]
        + [{"id": "e0", "question_type": "ego", "correct": False},
           {"id": "e1", "question_type": "ego", "correct": False, "error": "video missing"}]
    )
    summary = summarize_tasks(records)
    assert summary["per_task"] == {"needle": 1.0, "ego": 0.0, "count": 0.25}
    assert summary["m_avg"] == pytest.approx((0.25 + 1.0 + 0.0) / 3)  # macro: 0.4167
    assert summary["micro_avg"] == pytest.approx(3 / 7)  # pooled: 0.4286
    assert summary["counts"]["count"] == {"correct": 1, "total": 4}
    assert summary["errors"]["count"] == 1 and summary["scored"] == 7


def test_task_names_and_embedded_options():
    assert [canonical_task(n) for n in ("1_plotQA", "findNeedle", "2_needle", "anomaly_reco")] == [
        "plotQA", "needle", "needle", "anomaly_reco"]
    question, options = parse_embedded_options(
        "Question: What color is the car?\nOptions:\n(A) red\n(B) blue\n(C) green")
    assert question == "What color is the car?" and options == ("red", "blue", "green")


def _write_official(root: Path, videos: dict[str, Path]) -> None:
    (root / "json").mkdir(parents=True)
    for n, task in enumerate(TASKS, start=1):
        stem = f"{n}_{task}"
        (root / "video" / stem).mkdir(parents=True)
        records = []
        for k, (name, src) in enumerate(videos.items()):
            (root / "video" / stem / f"{name}.mp4").symlink_to(src)
            records.append({"video": f"{name}.mp4", "duration": 8, "question": f"{task} question {k}?",
                            "candidates": ["a cat", "a rocket", "a cup of coffee"], "answer": name,
                            "question_type": "findNeedle" if task == "needle" else task})
        (root / "json" / f"{stem}.json").write_text(json.dumps(records))


def test_reads_official_layout_and_resolves_videos(tmp_path):
    src = tmp_path / "src.mp4"
    src.write_bytes(b"x")
    _write_official(tmp_path / "MLVU", {"a cat": src})
    bench = MLVUBenchmark(MLVUBenchmark.Config(data=str(tmp_path / "MLVU")))
    items = bench.items()
    assert [i.meta["question_type"] for i in items] == list(TASKS)
    assert all(i.answer == "A" and i.video and Path(i.video).name == "a cat.mp4" for i in items)
    assert items[1].query.options == ("a cat", "a rocket", "a cup of coffee")
    assert Path(items[1].video).parent.name == "2_needle"
    limited = MLVUBenchmark(MLVUBenchmark.Config(data=str(tmp_path / "MLVU"), tasks=("count", "ego"))).items()
    assert [i.meta["question_type"] for i in limited] == ["ego", "count"]
    with pytest.raises(ConfigError, match="unknown MLVU task"):
        MLVUBenchmark(MLVUBenchmark.Config(data=str(tmp_path / "MLVU"), tasks=("counting",))).items()


def test_reads_lmms_layout_and_marks_missing_videos(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "v1.mp4").write_bytes(b"x")
    rows = [
        {"video_name": "v1.mp4", "question": "What appears?\n(A) a dog\n(B) a cat", "answer": "B",
         "task_type": "needle"},
        {"video_name": "gone.mp4", "question": "How many?\n(A) 1\n(B) 2", "answer": "(A)", "task_type": "count"},
    ]
    path = tmp_path / "mlvu_dev.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    items = MLVUBenchmark(MLVUBenchmark.Config(data=str(path), video_root=str(tmp_path / "videos"))).items()
    assert [(i.query.question, i.query.options, i.answer) for i in items] == [
        ("What appears?", ("a dog", "a cat"), "B"), ("How many?", ("1", "2"), "A")]
    assert items[0].missing is None and items[1].video is None
    assert "gone.mp4 not found" in items[1].missing and "--video-root" in items[1].missing


def test_bad_data_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="MLVU data not found"):
        MLVUBenchmark(MLVUBenchmark.Config(data=str(tmp_path / "nope"))).items()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not a valid annotation file"):
        MLVUBenchmark(MLVUBenchmark.Config(data=str(bad))).items()


def test_cli_reports_bad_data_in_one_line(tmp_path, capsys):
    from mmlong.apps.cli import main

    assert main(["eval", "mlvu", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert main(["eval", "niavh", "run", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"mmlong: error: {tmp_path / 'nope'}: MLVU data not found; pass --data DIR (the folder holding "
                   "json/ and video/)",
                   f"mmlong: error: {tmp_path}: no manifest.json here; build a set first with "
                   "`mmlong eval niavh make DIR`"]


def test_module_doctests():
    import doctest

    import mmlong.benchmarks.mlvu
    import mmlong.benchmarks.scoring

    for module in (mmlong.benchmarks.mlvu, mmlong.benchmarks.scoring):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------------------------------------- end to end
PHOTOS = {"a cat": "chelsea", "a rocket": "rocket", "a cup of coffee": "coffee"}


@pytest.fixture(scope="module")
def needle_videos(tmp_path_factory):
    """Short real-photo videos (4 fps, 160x120): what the video shows is the right answer."""
    import numpy as np

    from mmlong.benchmarks.niavh_media import fit_frame, load_image
    from mmlong.media.video.write import write_video

    folder = tmp_path_factory.mktemp("needles")
    videos = {}
    for label, photo in PHOTOS.items():
        frame = fit_frame(load_image(photo), 160, 120)
        videos[label] = Path(write_video(folder / f"{photo}.mp4", np.repeat(frame[None], 16, axis=0), 4.0))
    return videos


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_eval_mlvu_scores_seven_tasks_from_the_records(tmp_path, needle_videos, monkeypatch):
    from mmlong.apps.cli import main

    data = tmp_path / "MLVU"
    labels = list(needle_videos)
    (data / "json").mkdir(parents=True)
    for n, task in enumerate(TASKS, start=1):  # one question per task; the answer is what its video shows
        stem, label = f"{n}_{task}", labels[n % len(labels)]
        (data / "video" / stem).mkdir(parents=True)
        (data / "video" / stem / "clip.mp4").symlink_to(needle_videos[label])
        records = [{"video": "clip.mp4", "duration": 4, "question": "What is shown in the video?",
                    "candidates": labels, "answer": label, "question_type": task}]
        if task == "count":  # a question whose video is missing: an error record, not a crash, not scored
            records.append({"video": "gone.mp4", "duration": 8, "question": "How many?", "candidates": ["1", "2"],
                            "answer": "2", "question_type": "count"})
        (data / "json" / f"{stem}.json").write_text(json.dumps(records))
    out = tmp_path / "run"
    argv = ["eval", "mlvu", "--data", str(data), "--out", str(out), "--sample", "uniform:2",
            "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 1  # one item failed (its video is missing): partial failure, as in mmlong batch

    records = _read_jsonl(out / "results.jsonl")
    assert len(records) == 7 + 1 and len({r["id"] for r in records}) == len(records)
    answered = [r for r in records if "error" not in r]
    assert all(r["correct"] == (r["option"] == r["answer"]) and r["option"] in "ABC" for r in answered)
    assert all(r["frames"] == 2 for r in answered)
    errors = [r for r in records if "error" in r]
    assert len(errors) == 1 and "gone.mp4 not found" in errors[0]["error"]

    # per-task accuracy and M-Avg recomputed by hand from the per-item records
    per_task = {}
    for task in TASKS:
        mine = [r["correct"] for r in answered if r["question_type"] == task]
        per_task[task] = sum(mine) / len(mine)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["per_task"] == pytest.approx(per_task)
    assert summary["m_avg"] == pytest.approx(sum(per_task.values()) / 7)
    assert summary["micro_avg"] == pytest.approx(sum(r["correct"] for r in answered) / len(answered))
    assert summary["errors"]["count"] == 1
    assert summary["pipeline"]["sample"] == "uniform:2" and summary["pipeline"]["frames"]["mean"] == 2
    # the offline model sees the photos (a transcript of ImageNet classes): most answers are right
    assert summary["micro_avg"] >= 0.7
    assert "M-Avg" in (out / "results.md").read_text() and (out / "config.yaml").is_file()

    # resumable: a second run answers nothing again (no model is even loaded); the error record is retried
    before = {r["id"]: r for r in records if "error" not in r}
    from mmlong.pipeline import Pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("a resumed run asked a question that was already answered")

    monkeypatch.setattr(Pipeline, "run", refuse)
    assert main(argv) == 1
    again = _read_jsonl(out / "results.jsonl")
    assert [r["id"] for r in again] == [r["id"] for r in records]
    assert {r["id"]: r for r in again if "error" not in r} == before
    assert json.loads((out / "summary.json").read_text())["per_task"] == summary["per_task"]
