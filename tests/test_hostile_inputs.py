"""Hostile inputs bounded at the door: YAML alias bombs, huge subtitle files, questions with thousands of options
or a megabyte of text, JSON nested 100,000 deep. Each is one line (exit 2) or, in a batch, an error record naming
its line and id while the run goes on; none hangs or allocates without bound."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmlong.apps.batch import BadLine, BatchItem, error_record, read_questions
from mmlong.errors import ConfigError
from mmlong.limits import MAX_OPTIONS, MAX_QUESTION_CHARS, check_query
from tests.test_input_validation import assert_one_error_line, run_cli


def alias_bomb(levels: int) -> str:
    """A "billion laughs" YAML document: 9**levels strings from a few hundred bytes."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, levels):
        lines.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.fixture
def clip(make_video):
    return make_video("clip.mp4", num_frames=20, fps=10, size=(64, 48))


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, clip):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(9))  # 9**9 strings; walking it node by node took minutes
    assert bomb.stat().st_size < 600
    proc = subprocess.run([sys.executable, "-m", "mmlong", "ask", clip, "What is shown?", "--config",
                           str(bomb)], capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "alias" in lines[0] and str(bomb) in lines[0]


def test_shared_yaml_nodes_within_budget_still_load(tmp_path):
    from mmlong.yaml_file import read_yaml_mapping

    doc = tmp_path / "ok.yaml"
    doc.write_text("base: &base {sample: 'uniform:8'}\nagain: *base\n")
    assert read_yaml_mapping(doc) == {"base": {"sample": "uniform:8"}, "again": {"sample": "uniform:8"}}
    cycle = tmp_path / "cycle.yaml"
    cycle.write_text("a: &a [1, *a]\n")  # a list holding itself
    with pytest.raises(ConfigError, match="not a pipeline config"):
        read_yaml_mapping(cycle)


@pytest.mark.parametrize("levels", [3, 5, 7])
def test_alias_bombs_of_any_size_are_refused(tmp_path, levels):
    from mmlong.yaml_file import MAX_YAML_NODES, read_yaml_mapping

    doc = tmp_path / "bomb.yaml"
    doc.write_text(alias_bomb(levels))
    if 9 ** levels <= MAX_YAML_NODES:
        assert len(read_yaml_mapping(doc)) == levels
    else:
        with pytest.raises(ConfigError, match="alias bomb"):
            read_yaml_mapping(doc)


# ---------------------------------------------------------------------------------------------- subtitles


def srt(cues: int) -> str:
    return "".join(f"{n + 1}\n00:00:{n % 60:02d},000 --> 00:00:{n % 60:02d},500\nline {n}\n\n" for n in range(cues))


def test_a_subtitle_file_with_too_many_cues_is_refused_when_read(tmp_path):
    from mmlong.experts.subtitle_file import MAX_SUBTITLE_CUES, read_subtitles

    ok = tmp_path / "ok.srt"
    ok.write_text(srt(50))
    assert len(read_subtitles(ok)) == 50
    many = tmp_path / "many.srt"
    many.write_text(srt(MAX_SUBTITLE_CUES + 1))
    with pytest.raises(ConfigError, match="more than 10,000 cues") as err:
        read_subtitles(many)
    assert err.value.path == str(many)


def test_a_huge_subtitle_file_is_refused_without_reading_it_all(tmp_path, capsys, clip):
    from mmlong.experts.subtitle_file import MAX_SUBTITLE_BYTES

    big = tmp_path / "big.srt"
    with open(big, "wb") as f:
        f.write(srt(3).encode())
        f.truncate(MAX_SUBTITLE_BYTES + 10)  # sparse: no disk used
    status, _, err = run_cli(capsys, "ask", clip, "What is said?", "--subtitles", str(big))
    assert_one_error_line(status, err, str(big), "larger than 4 MiB")


# ---------------------------------------------------------------------------------------------- questions


def write_questions(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_bad_batch_items_become_error_records_naming_line_and_id(tmp_path):
    options = [f"option {n}" for n in range(2000)]
    questions = write_questions(tmp_path / "q.jsonl", [
        {"id": "ok", "video": "v.mp4", "question": "What is shown?", "options": ["a", "b"]},
        {"id": "many", "video": "v.mp4", "question": "Which?", "options": options},
        {"id": "27", "video": "v.mp4", "question": "Which?", "options": options[:27]},
        {"id": "long", "video": "v.mp4", "question": "x" * 1_000_000},
        "[" * 100_000 + "]" * 100_000,
        '{"id": "deep", "video": "v.mp4", "question": "q", "extra": ' + "[" * 100 + "]" * 100 + "}",
        {"id": "blank", "video": "v.mp4", "question": "Which?", "options": ["", ""]},
        {"id": "last", "video": "v.mp4", "question": "And this?"},
    ])
    entries = read_questions(questions)
    assert [type(e).__name__ for e in entries] == ["BatchItem", *["BadLine"] * 6, "BatchItem"]
    bad = {e.line: e for e in entries if isinstance(e, BadLine)}
    assert "line 2 (id 'many'): 2000 options" in bad[2].error
    assert "line 3 (id '27'): 27 options" in bad[3].error
    assert "line 4 (id 'long'): the question has 1,000,000 characters" in bad[4].error
    assert bad[5].error == "line 5: nested deeper than 64 levels" and bad[5].id == "line-5"
    assert bad[6].error == "line 6: nested deeper than 64 levels"
    assert "line 7 (id 'blank'): option 1 is empty" in bad[7].error
    record = error_record(bad[3], bad[3].error)
    assert record["id"] == "27" and record["line"] == 3  # the record names both


def test_pipeline_refuses_a_bad_question_before_any_model_work(tmp_path, clip):
    from mmlong.config.request import resolve_config
    from mmlong.pipeline import Pipeline
    from mmlong.qa import Query

    pipeline = Pipeline(resolve_config(preset="offline", sample="uniform:4", cache_dir=str(tmp_path)))
    with pytest.raises(ConfigError, match="27 options"):
        pipeline.run(clip, [Query("Which?", tuple(f"o{n}" for n in range(27)))])
    assert pipeline._model is None  # the model was never built


@pytest.mark.parametrize("argv, needle", [
    (["", ], "the question is empty"),
    (["   "], "the question is empty"),
    (["x" * 1_000_000], "1,000,000 characters"),
    (["Which?", "--options", "", ""], "option 1 is empty"),
    (["Which?", "--options", *[f"o{n}" for n in range(27)]], "27 options"),
    (["Which?", "--options", "a", "y" * 5000], "option 2 has 5,000 characters"),
])
def test_ask_refuses_questions_no_model_should_be_asked(capsys, clip, argv, needle):
    status, out, err = run_cli(capsys, "ask", clip, *argv)
    assert_one_error_line(status, err, needle)
    assert out == ""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(question=st.text(max_size=40) | st.integers(MAX_QUESTION_CHARS - 2, MAX_QUESTION_CHARS + 2).map("q".__mul__),
       options=st.lists(st.text(max_size=8), max_size=MAX_OPTIONS + 3))
def test_any_question_is_accepted_or_refused_in_one_line(question, options):
    try:
        check_query(question, options)
    except ConfigError as err:
        assert "\n" not in str(err)
        return
    assert question.strip() and len(question) <= MAX_QUESTION_CHARS
    assert len(options) <= MAX_OPTIONS and all(o.strip() for o in options)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(depth=st.integers(1, 200_000), kind=st.sampled_from(["[]", "{}"]))
def test_any_nesting_of_a_questions_line_is_an_error_record_or_an_item(tmp_path, depth, kind):
    nested = ("[" * depth + "]" * depth) if kind == "[]" else ('{"k": ' * depth + "1" + "}" * depth)
    questions = tmp_path / f"q{depth}{kind}.jsonl"
    questions.write_text('{"id": "a", "video": "v.mp4", "question": "q", "extra": ' + nested + "}\n")
    (entry,) = read_questions(questions)
    if depth + 1 <= 64:
        assert isinstance(entry, BatchItem)
    else:
        assert isinstance(entry, BadLine) and entry.error == "line 1: nested deeper than 64 levels"
