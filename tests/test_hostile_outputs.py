"""Every output path is checked before any work: ``batch --out/--summary-json``, ``ask --save``, ``eval --out``.

Each case runs the real command; the refusal comes before a model loads (the default answerer is never
built here), is one line naming the path, exit status 2, and nothing that was there before changes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.test_input_validation import assert_one_error_line, run_cli


@pytest.fixture
def questions(tmp_path, make_video):
    make_video("clip.mp4", num_frames=20, fps=10, size=(64, 48))
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"id": "a", "video": "clip.mp4", "question": "What is shown?",
                                "options": ["a cat", "a dog"]}) + "\n")
    return path


def unwritable(tmp_path: Path) -> Path:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    if os.access(folder, os.W_OK):  # running as root: permissions do not bind
        pytest.skip("this user can write any folder")
    return folder


BATCH_OUTS = {
    "folder": (lambda tmp: str(tmp), "is a folder"),
    "proc": (lambda tmp: "/proc/self/answers.jsonl", "/proc"),
    "dev-full": (lambda tmp: "/dev/full", "/dev"),
    "dev-zero": (lambda tmp: "/dev/zero", "/dev"),
    "empty": (lambda tmp: "", "must be a file name"),
    "unwritable": (lambda tmp: str(unwritable(tmp) / "a.jsonl"), "not writable"),
    "file-as-folder": (lambda tmp: str(tmp / "q.jsonl" / "a.jsonl"), "is a file, not a folder"),
}


@pytest.mark.parametrize("flag", ["--out", "--summary-json"])
@pytest.mark.parametrize("case", sorted(BATCH_OUTS))
def test_batch_outputs_are_checked_before_any_work(capsys, questions, tmp_path, flag, case):
    make, needle = BATCH_OUTS[case]
    target = make(tmp_path)
    before = questions.read_bytes()
    status, _, err = run_cli(capsys, "batch", str(questions), flag, target, "--no-progress")
    assert_one_error_line(status, err, flag, needle)
    assert questions.read_bytes() == before
    assert not (tmp_path / "q.answers.jsonl").exists()  # nothing was run


def test_a_fifo_output_is_refused_without_opening_it(capsys, questions, tmp_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    status, _, err = run_cli(capsys, "batch", str(questions), "--out", str(fifo))
    assert_one_error_line(status, err, "not a regular file")


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_out_equal_to_the_questions_file_is_refused(capsys, questions, tmp_path, overwrite):
    before = questions.read_bytes()
    for alias in (questions, tmp_path / "." / "q.jsonl"):
        status, _, err = run_cli(capsys, "batch", str(questions), "--out", str(alias), *overwrite)
        assert_one_error_line(status, err, "is the input file")
    link = tmp_path / "link.jsonl"
    link.symlink_to(questions)
    status, _, err = run_cli(capsys, "batch", str(questions), "--out", str(link), *overwrite)
    assert_one_error_line(status, err, "is the input file")
    assert questions.read_bytes() == before


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_out_naming_a_video_is_refused_untouched(capsys, questions, tmp_path, overwrite):
    video = tmp_path / "clip.mp4"
    before = video.read_bytes()
    status, _, err = run_cli(capsys, "batch", str(questions), "--out", str(video), *overwrite)
    assert_one_error_line(status, err, "not a result log", "nothing was changed")
    assert video.read_bytes() == before
    assert len(video.read_bytes()) == len(before)


def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("notes\n")
    return path


SAVE_TARGETS = {
    "file": (lambda tmp: str(a_file(tmp)), "is a file, not a folder"),
    "proc": (lambda tmp: "/proc/self/run", "/proc"),
    "unwritable": (lambda tmp: str(unwritable(tmp)), "not writable"),
    "empty": (lambda tmp: "", "must be a folder name"),
}


@pytest.mark.parametrize("case", sorted(SAVE_TARGETS))
def test_ask_save_is_checked_before_the_run(capsys, questions, tmp_path, case):
    make, needle = SAVE_TARGETS[case]
    status, out, err = run_cli(capsys, "ask", str(tmp_path / "clip.mp4"), "What is shown?", "--save", make(tmp_path))
    assert_one_error_line(status, err, "--save", needle)
    assert out == ""


@pytest.mark.parametrize("case", ["file", "proc", "unwritable"])
def test_eval_out_is_checked_before_the_run(capsys, tmp_path, case):
    data = tmp_path / "mlvu.json"
    data.write_text("[]")
    make, needle = SAVE_TARGETS[case]
    status, _, err = run_cli(capsys, "eval", "mlvu", "--data", str(data), "--out", make(tmp_path))
    assert_one_error_line(status, err, "--out", needle)


def test_eval_out_holding_the_annotation_file_is_refused(capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    data = run / "results.jsonl"
    data.write_text('{"id": "q1", "question": "Which?", "candidates": ["a", "b"], "answer": "a"}\n')
    before = data.read_bytes()
    status, _, err = run_cli(capsys, "eval", "mlvu", "--data", str(data), "--out", str(run), "--overwrite")
    assert_one_error_line(status, err, "is the input file")
    assert data.read_bytes() == before


def test_eval_out_whose_results_file_is_not_a_result_log_is_refused(capsys, tmp_path):
    data = tmp_path / "mlvu.json"
    data.write_text("[]")
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text("my notes\n")
    status, _, err = run_cli(capsys, "eval", "mlvu", "--data", str(data), "--out", str(run))
    assert_one_error_line(status, err, "not a result log")
    assert (run / "results.jsonl").read_text() == "my notes\n"
