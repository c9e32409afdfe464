"""``mmlong ask VIDEO -q ... -q ...``: several questions in one process, the model loaded once."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from tests.media import make_test_video

    return make_test_video(tmp_path_factory.mktemp("clip") / "clip.mp4", num_frames=16, fps=4.0, size=(160, 96))


def test_several_questions_load_the_model_once(qwen_dir, clip, capsys, monkeypatch):
    import mmlong.models.native.base as native_base
    from mmlong.apps.cli import main

    loads = []
    real = native_base.load_pretrained

    def counting(*args, **kwargs):
        loads.append(args[:1])
        return real(*args, **kwargs)

    monkeypatch.setattr(native_base, "load_pretrained", counting)
    questions = ["What colour is it?", "What moves?", "Which option?"]
    argv = ["ask", clip, "--model", qwen_dir, "--sample", "uniform:4", "--no-cache", "--json",
            "--options", "red", "blue"]
    assert main([*argv, *[a for q in questions for a in ("-q", q)]]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["question"] for r in records] == questions
    assert all(r["option"] in ("red", "blue") for r in records)
    assert len(loads) == 1
    assert main([*argv, "-q", questions[0], "-q", questions[1]]) == 0  # a second run loads again: one per process
    assert len(loads) == 2


def test_a_positional_question_and_q_flags_add_up_and_none_is_refused(qwen_dir, clip, capsys):
    from mmlong.apps.cli import main

    argv = ["ask", clip, "--model", qwen_dir, "--sample", "uniform:4", "--no-cache", "--json"]
    assert main([*argv[:2], "first?", *argv[2:], "-q", "second?"]) == 0
    assert [r["question"] for r in json.loads(capsys.readouterr().out)] == ["first?", "second?"]
    assert main(argv) == 2
    assert "give a question" in capsys.readouterr().err
    # a question written after --options is taken as an option: the error says so
    assert main([*argv, "--options", "a cat", "a dog", "Which animal appears?"]) == 2
    assert "--options took 'Which animal appears?' as an option: put the question before --options" in \
        capsys.readouterr().err


def test_a_questions_file_is_answered_with_one_load_and_bad_lines_are_named(qwen_dir, clip, tmp_path, capsys,
                                                                           monkeypatch):
    """``ask VIDEO --questions FILE.jsonl`` (batch's reader): the model loads once for every good line; a bad line
    gets one stderr line naming the file, its line number and the reason, and the others are still answered."""
    import mmlong.models.native.base as native_base
    from mmlong.apps.cli import main

    loads = []
    real = native_base.load_pretrained
    monkeypatch.setattr(native_base, "load_pretrained", lambda *a, **k: loads.append(1) or real(*a, **k))
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join([
        json.dumps({"question": "Which colour?", "options": ["red", "blue"]}),
        '{"question": "broken',
        json.dumps({"id": "moves", "question": "What moves?", "video": clip}),
        json.dumps({"question": "Where?", "video": "other.mp4"}),
        json.dumps({"options": ["a", "b"]}),
        json.dumps({"question": "Which option?"}),
    ]) + "\n")
    argv = ["ask", clip, "--model", qwen_dir, "--sample", "uniform:4", "--no-cache", "--json", "--options", "up",
            "down", "--questions", str(questions), "-q", "First?"]
    assert main(argv) == 1  # some lines could not be asked
    out, err = capsys.readouterr()
    records = json.loads(out)
    assert len(loads) == 1
    assert [(r.get("id"), r.get("line"), r.get("question")) for r in records] == [
        (None, None, "First?"), (1, 1, "Which colour?"), ("line-2", 2, None), ("moves", 3, "What moves?"),
        (4, 4, None), (5, 5, None), (6, 6, "Which option?")]
    answered = [r for r in records if "error" not in r]
    assert [r["option"] for r in answered][1] in ("red", "blue")  # the line's own options
    assert all(r["option"] in ("up", "down") for n, r in enumerate(answered) if n != 1)  # --options otherwise
    lines = [line for line in err.splitlines() if line.startswith("mmlong: ")]
    assert lines == [
        f"mmlong: {questions}: line 2: not valid JSON (Unterminated string starting at at column 14)",
        f"mmlong: {questions}: line 4: names another video ('other.mp4'); ask answers about one video "
        "(mmlong batch: several)",
        f"mmlong: {questions}: line 5: missing field 'question'"], lines


def test_a_questions_file_of_only_bad_lines_or_missing_is_refused(qwen_dir, clip, tmp_path, capsys):
    from mmlong.apps.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text("[1, 2]\n")
    argv = ["ask", clip, "--model", qwen_dir, "--no-cache"]
    assert main([*argv, "--questions", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == f"mmlong: {bad}: line 1: not a JSON object"
    assert main([*argv, "--questions", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: questions file not found" in capsys.readouterr().err
