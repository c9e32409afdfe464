"""``mmlong batch``: input parsing, partial failure, and kill-and-resume with the real offline pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmlong.apps.batch import (
    BadLine,
    BatchItem,
    check_resume_config,
    default_output,
    read_questions,
    sidecar,
)
from mmlong.config import resolve_config, save_yaml
from mmlong.errors import ConfigError


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
    save_yaml(saved, sidecar(out, ".config.yaml"))
    check_resume_config(resolve_config(preset="offline", sample="uniform:8"), out)  # no output yet: fine
    out.write_text('{"id": "a", "answer": "x"}\n')
    check_resume_config(resolve_config(preset="offline", sample="uniform:4", device="cuda", cache=False), out)
    with pytest.raises(ConfigError, match=r"answers.jsonl: was written with another pipeline "
                                          r"\(sample: 'uniform:4' -> 'uniform:8'\)"):
        check_resume_config(resolve_config(preset="offline", sample="uniform:8"), out)
