"""``mmlong batch``: input parsing, partial failure, and kill-and-resume with the real offline pipeline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmlong.apps.batch import BadLine, BatchItem, default_output, read_questions
from mmlong.config.request import resolve_config, save_yaml
from mmlong.config.resolve import resolve
from mmlong.errors import ConfigError
from mmlong.jobs.runner import check_resume, sidecar


def write_lines(path: Path, lines: list) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


# ---------------------------------------------------------------------------------------------- input


def test_read_questions_keeps_good_items_and_turns_bad_lines_into_errors(tmp_path):
    questions = write_lines(tmp_path / "q.jsonl", [
        {"id": "a", "video": "clips/cat.mp4", "question": "What animal?", "options": ["cat", "dog"]},
        {"id": 2, "video": "/abs/v.mp4", "question": "Where?"},
        "",
        '{"id": "broken", "video": ',
        {"id": "noq", "video": "v.mp4"},
        {"video": "v.mp4", "question": "no id"},
        {"id": "opts", "video": "v.mp4", "question": "q", "options": "cat"},
        ["not", "an", "object"],
        {"id": True, "video": "v.mp4", "question": "q"},
    ])
    entries = read_questions(questions)
    assert entries[0] == BatchItem("a", "clips/cat.mp4", str(tmp_path / "clips/cat.mp4"), "What animal?",
                                   ("cat", "dog"), 1)
    assert entries[1] == BatchItem(2, "/abs/v.mp4", "/abs/v.mp4", "Where?", (), 2)
    bad = [(e.id, e.error) for e in entries[2:]]
    assert all(isinstance(e, BadLine) for e in entries[2:])
    assert bad == [
        ("line-4", "line 4: not valid JSON (Expecting value at column 27)"),
        ("noq", "line 5: missing field 'question'"),
        ("line-6", "line 6: missing field 'id'"),
        ("opts", "line 7: 'options' must be a list of strings"),
        ("line-8", "line 8: not a JSON object"),
        ("line-9", "line 9: 'id' must be a non-empty string or an integer"),
    ]


def test_an_answer_record_keeps_every_input_field_and_scores_a_gold_answer(tmp_path):
    from mmlong.apps.batch import answer_record, error_record
    from mmlong.qa import Answer
    from mmlong.types import Step

    line = {"id": "a", "video": "v.mp4", "question": "Which?", "options": ["cat", "dog", "owl"], "answer": "B",
            "source": "set-3", "meta": {"duration": 12}}
    (item,) = read_questions(write_lines(tmp_path / "q.jsonl", [line]))
    record = answer_record(item, Answer("(B) dog", "dog", 1, [3.5], (Step("model", {}, 4, 4, 1.0),), {"x": 1}))
    assert {k: record[k] for k in line} == line  # the gold "answer" is not overwritten by the prediction
    assert (record["prediction"], record["predicted_option"], record["predicted_index"], record["predicted_letter"],
            record["correct"]) == ("(B) dog", "dog", 1, "B", True)
    assert "config" not in record
    assert answer_record(item, Answer("(C) owl", "owl", 2))["correct"] is False
    assert error_record(item, "v.mp4: broken")["source"] == "set-3"


def test_an_input_field_that_batch_writes_is_refused(tmp_path):
    entries = read_questions(write_lines(tmp_path / "q.jsonl", [
        {"id": "a", "video": "v.mp4", "question": "q", "prediction": "mine"}]))
    assert isinstance(entries[0], BadLine) and "field 'prediction' is where batch writes its output" in entries[0].error


def test_video_root_overrides_the_questions_folder(tmp_path):
    questions = write_lines(tmp_path / "q.jsonl", [{"id": "a", "video": "v.mp4", "question": "q"}])
    (entry,) = read_questions(questions, video_root=tmp_path / "media")
    assert entry.path == str(tmp_path / "media" / "v.mp4") and entry.video == "v.mp4"


def test_unusable_input_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="missing.jsonl: questions file not found"):
        read_questions(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigError, match="no questions in the file"):
        read_questions(write_lines(tmp_path / "empty.jsonl", ["", "  "]))
    dup = write_lines(tmp_path / "dup.jsonl", [
        {"id": "a", "video": "v.mp4", "question": "q"}, {"id": "b", "video": "v.mp4", "question": "q"},
        {"id": "a", "video": "w.mp4", "question": "q"},
    ])
    with pytest.raises(ConfigError, match=r"dup.jsonl: line 3: id 'a' is used again \(first on line 1\)"):
        read_questions(dup)


def test_side_files_sit_beside_the_output(tmp_path):
    assert sidecar(tmp_path / "answers.jsonl", ".config.yaml") == tmp_path / "answers.config.yaml"
    assert sidecar(tmp_path / "answers", ".summary.json") == tmp_path / "answers.summary.json"
    assert default_output(tmp_path / "questions.jsonl") == tmp_path / "questions.answers.jsonl"


def test_resume_with_settings_that_change_answers_is_refused(tmp_path):
    out = tmp_path / "answers.jsonl"
    saved = resolve_config(preset="offline", sample="uniform:4")
    config_file = sidecar(out, ".config.yaml")
    save_yaml(saved, config_file)
    check_resume(resolve_config(preset="offline", sample="uniform:8"), config_file, out)  # no output yet: fine
    out.write_text('{"id": "a", "answer": "x"}\n')
    check_resume(resolve_config(preset="offline", sample="uniform:4", device="cuda", cache=False), config_file, out)
    with pytest.raises(ConfigError, match=r"answers.jsonl: was written with another pipeline "
                                          r"\(sampler.options.num_frames: 4 -> 8\)"):
        check_resume(resolve_config(preset="offline", sample="uniform:8"), config_file, out)
    # the saved file is the resolved tree now; a compressor option deep in it counts, a device does not
    resolve(preset="offline", flags={"compress": "tome:0.5"}).save(config_file)
    check_resume(resolve(preset="offline", flags={"compress": "tome:0.5", "device": "cuda"}), config_file, out)
    with pytest.raises(ConfigError, match=r"compressors.0.options.ratio: 0.5 -> 0.25"):
        check_resume(resolve(preset="offline", flags={"compress": "tome:0.25"}), config_file, out)


def test_usage_and_config_errors_exit_2_with_one_line(tmp_path, capsys):
    from mmlong.apps.cli import main

    assert main(["batch", str(tmp_path / "nothing.jsonl")]) == 2
    assert capsys.readouterr().err.strip() == f"mmlong: error: {tmp_path / 'nothing.jsonl'}: questions file not found"
    questions = write_lines(tmp_path / "q.jsonl", [{"id": "a", "video": "v.mp4", "question": "q"}])
    out = tmp_path / "q.answers.jsonl"
    out.write_text('{"id": "a", "error": "v.mp4: no such file"}\n')
    save_yaml(resolve_config(preset="offline", sample="uniform:4"), tmp_path / "q.answers.config.yaml")
    assert main(["batch", str(questions), "--sample", "uniform:8"]) == 2  # default --out beside the input
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mmlong: error: {out}: was written with another pipeline") and "\n" not in err
    assert out.read_text() == '{"id": "a", "error": "v.mp4: no such file"}\n'  # nothing lost


# ---------------------------------------------------------------------------------------------- end to end
#
# The real offline pipeline (EfficientNet-Lite0 + Gemma 3 270M) with cheap settings: four frames per video.


PIPELINE_FLAGS = ["--sample", "uniform:4", "--max-side", "96"]
GOOD_IDS = ["r1", "g1", "r2", "g2"]


def write_clip(path: Path, color: tuple[int, int, int], seed: int) -> Path:
    """A 2-second 128x96 clip of one colour with noise."""
    import numpy as np

    from tests.media import make_test_video

    rng = np.random.default_rng(seed)
    base = np.array(color, dtype=np.int16)
    frames = [np.clip(base + rng.integers(-30, 30, (96, 128, 3)), 0, 255).astype(np.uint8) for _ in range(48)]
    return Path(make_test_video(path, frames=frames, fps=24))


def write_questions(folder: Path) -> Path:
    """Two real clips, a corrupt file, and a questions file mixing good items with every kind of bad one."""
    write_clip(folder / "red.mp4", (200, 40, 40), seed=1)
    write_clip(folder / "green.mp4", (40, 190, 60), seed=2)
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 12)
    colors = ["red", "green"]
    return write_lines(folder / "questions.jsonl", [
        '{"id": "broken", "video": "red.mp4", "question": ',
        {"id": "r1", "video": "red.mp4", "question": "What colour fills the screen?", "options": colors,
         "answer": "A", "source": {"row": 7}},
        {"id": "g1", "video": "green.mp4", "question": "What colour fills the screen?", "options": colors,
         "answer": "red"},
        {"id": "gone", "video": "missing.mp4", "question": "What happens?", "options": ["a", "b"]},
        {"id": "r2", "video": "red.mp4", "question": "What is shown?", "options": ["a tomato", "a sailboat"]},
        {"id": "bad", "video": "corrupt.mp4", "question": "What happens?"},
        {"id": "noq", "video": "red.mp4"},
        {"id": "g2", "video": "green.mp4", "question": "What is shown?", "options": ["a lawn", "a fire truck"]},
    ])


def offline_pipeline(cache_dir: Path):
    """The real offline pipeline with cheap settings (the same as PIPELINE_FLAGS)."""
    from mmlong.pipeline import Pipeline

    return Pipeline(resolve_config(preset="offline", sample="uniform:4", max_side=96, cache_dir=str(cache_dir)))


def comparable(record: dict) -> dict:
    """A record without what depends on timing, on the feature cache's state or on which answer of a run came
    first (the model load and the experts' once-per-video steps are attached to that one)."""
    out = dict(record)
    out["stages"] = [(s["name"], s["tokens_in"], s["tokens_out"]) for s in record.get("stages", ())
                     if s["name"] not in ("cache", "decode", "encode", "load") and not s["name"].startswith("expert:")]
    if "details" in out:
        out["details"] = {k: v for k, v in out["details"].items() if k != "video"}
    return out


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch")
    write_questions(folder)
    return folder


@pytest.fixture(scope="module")
def reference(batch_dir, tmp_path_factory):
    """An uninterrupted in-process run: (summary, records)."""
    from mmlong.apps.batch import run_batch

    out = batch_dir / "reference.jsonl"
    pipeline = offline_pipeline(tmp_path_factory.mktemp("features"))
    summary = run_batch(read_questions(batch_dir / "questions.jsonl"), pipeline, out, progress=False)
    return summary, [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.slow
def test_batch_answers_good_items_and_records_every_bad_one(batch_dir, reference):
    summary, records = reference
    assert [r["id"] for r in records] == ["line-1", "r1", "g1", "gone", "r2", "bad", "noq", "g2"]
    by_id = {r["id"]: r for r in records}
    questions = {e.id: e for e in read_questions(batch_dir / "questions.jsonl") if isinstance(e, BatchItem)}
    for item_id in GOOD_IDS:
        record = by_id[item_id]
        assert "error" not in record
        assert record["predicted_option"] == questions[item_id].options[record["predicted_index"]]
        assert record["predicted_letter"] == "ABC"[record["predicted_index"]]
        assert record["prediction"].startswith(f"({record['predicted_letter']}) ")
        assert {k: record[k] for k in questions[item_id].fields} == questions[item_id].fields  # input kept
        assert record["stages"][-1]["name"] == "model" and record["stages"][-1]["tokens_in"] == 4 * 49
        assert all(0.0 <= t <= 2.0 for t in record["evidence"])
        assert "config" not in record
    assert by_id["line-1"] == {"id": "line-1", "line": 1,  # no readable id: named after its line
                               "error": "line 1: not valid JSON (Expecting value at column 50)"}
    assert by_id["noq"]["error"] == "line 7: missing field 'question'"
    assert by_id["gone"]["error"].startswith(f"{batch_dir / 'missing.mp4'}: ")
    assert by_id["bad"]["error"].startswith(f"{batch_dir / 'corrupt.mp4'}: ")
    assert "\n" not in by_id["bad"]["error"]
    assert (summary.items, summary.answered, summary.failed, summary.computed) == (8, 4, 4, 8)
    assert summary.visual_tokens == 4 * 4 * 49
    assert by_id["r1"]["source"] == {"row": 7} and by_id["r1"]["answer"] == "A"  # input fields survive as written
    for item_id, gold in (("r1", 0), ("g1", 0)):  # gold: a letter, or the option's text
        assert by_id[item_id]["correct"] == (by_id[item_id]["predicted_index"] == gold)
    assert "correct" not in by_id["r2"]  # no gold answer: not scored
    assert (summary.scored, summary.correct) == (2, by_id["r1"]["correct"] + by_id["g1"]["correct"])
    assert summary.to_dict()["accuracy"] == round(summary.correct / 2, 4)
    saved = (batch_dir / "reference.config.yaml").read_text()
    tree = resolve(yaml=batch_dir / "reference.config.yaml")  # the resolved tree, read back
    assert (tree.sampler.config.num_frames, tree.decoder.max_side, tree.model.family) == (4, 96, "socratic")
    assert "num_frames: 4" in saved and "max_side: 96" in saved


def run_cli(batch_dir: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    cmd = [sys.executable, "-m", "mmlong", "batch", str(batch_dir / "questions.jsonl"), "--out", str(out),
           "--cache-dir", str(batch_dir / "cli-features"), *PIPELINE_FLAGS, *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_after_lines(proc: subprocess.Popen, out: Path, lines: int, timeout: float = 300) -> int:
    """SIGKILL ``proc`` as soon as ``out`` holds ``lines`` complete lines; returns how many it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= lines:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    return out.read_bytes().count(b"\n")


@pytest.mark.slow
def test_killed_runs_resume_to_every_id_exactly_once(batch_dir, reference):
    _, expected = reference
    out = batch_dir / "killed.jsonl"
    # killed right after its first record (the malformed first line needs no model)
    first = kill_after_lines(run_cli(batch_dir, out), out, 1)
    assert first >= 1
    with open(out, "ab") as f:  # and as if killed in the middle of writing the next one
        f.write(b'{"id": "r1", "answer": "(A) re')
    # resumed (error records are retried, so the log is rewritten without them), and killed again once an
    # answer from the model is on disk
    kill_after_lines(run_cli(batch_dir, out), out, first + 1)
    text = out.read_bytes()
    assert text.endswith(b"\n") and b'"answer": "(A) re' + b"\n" not in text  # the torn line was repaired
    answered_before = [r["id"] for r in map(json.loads, text.splitlines()) if "error" not in r]
    assert answered_before  # killed after the model had answered something
    # resumed to the end: partial failure
    proc = run_cli(batch_dir, out, "--summary-json", str(batch_dir / "killed-summary.json"))
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr[-3000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == [r["id"] for r in expected]  # each id once, in input order
    assert [comparable(r) for r in records] == [comparable(r) for r in expected]
    summary = json.loads((batch_dir / "killed-summary.json").read_text())
    assert (summary["answered"], summary["failed"]) == (4, 4)
    assert summary["done_before"] == len(answered_before)  # answers kept, error records tried again
    assert summary["computed"] == 8 - len(answered_before)
    assert "batch: 8 questions: 4 answered, 4 failed" in stderr
    assert not list(batch_dir.glob("killed.jsonl.*"))  # no parts, no lock left behind
