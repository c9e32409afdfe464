"""``mmlong ask VIDEO -q ... -q ...``: several questions in one process, the model loaded once."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    from tests.vlm_fixtures import build_qwen2_vl, save_checkpoint

    model, processor = build_qwen2_vl()
    return save_checkpoint(model, processor, tmp_path_factory.mktemp("qwen"))


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
