"""The lmms-eval bridge and the web demo take a checkpoint of each newer family (Qwen3-VL, Qwen3.5, InternVL3.5,
VideoLLaMA3) as ``--model DIR``, as they take the others: tiny random-init checkpoints saved to tmp_path, a real
answer on a generated clip."""

from __future__ import annotations

import pytest

from tests import vlm_families
from tests.media import make_test_video
from tests.test_lmms_queries import VIDEOMME_DOC, lmms_videomme_subtitle_prompt
from tests.vlm_fixtures import save_checkpoint

BUILDERS = {"qwen3-vl": vlm_families.build_qwen3_vl, "qwen3.5": vlm_families.build_qwen3_5,
            "internvl": vlm_families.build_internvl, "videollama3": vlm_families.build_video_llama_3}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return str(make_test_video(tmp_path_factory.mktemp("clip") / "v.mp4", num_frames=20, fps=10, size=(64, 64)))


@pytest.fixture
def bridge(monkeypatch, request):
    """The bridge module imported against stand-ins for lmms-eval's two base classes (not installed here)."""
    from tests.lmms_stand_ins import import_bridge

    return import_bridge(monkeypatch, request)


class Instance:
    def __init__(self, request_type, arguments, idx=0):
        self.request_type, self.args, self.idx, self.metadata = request_type, arguments, idx, None


@pytest.mark.parametrize("family", list(BUILDERS))
def test_the_bridge_answers_with_a_family_checkpoint(family, bridge, clip, tmp_path):
    checkpoint = save_checkpoint(*BUILDERS[family](), tmp_path / family)
    lm = bridge.MmlongLMM(model=str(checkpoint), sample="uniform:4", cache=False, experts="none")
    assert lm.pipeline_config.model.family == family
    doc = {**VIDEOMME_DOC, "video": clip}
    lm.task_dict = {"videomme_w_subtitle": {"test": [doc]}}
    prompt = lmms_videomme_subtitle_prompt(doc, "A: Hello everyone.")
    visual = lambda d: [d["video"]]  # noqa: E731
    (reply,) = lm.generate_until([Instance("generate_until", (prompt, {"until": ["\n"]}, visual, 0,
                                                               "videomme_w_subtitle", "test"))])
    assert reply in ("A", "B", "C", "D")


@pytest.mark.parametrize("family", list(BUILDERS))
def test_the_demo_answers_with_a_family_checkpoint(family, clip, tmp_path):
    from mmlong.apps.cli import build_parser
    from mmlong.apps.demo.command import DemoApp, DemoSettings

    checkpoint = save_checkpoint(*BUILDERS[family](), tmp_path / family)
    args = build_parser().parse_args(["demo", "--model", str(checkpoint), "--sample", "uniform:4", "--no-cache",
                                      "--experts", "none", "--max-side", "64"])
    app = DemoApp(args, tmp_path / "app")
    result = app.ask(clip, "What moves in the video?", "a square\na circle")
    assert result.ok, result.status
    assert result.answer.option in ("a square", "a circle")
    assert [row[0] for row in result.stage_rows][-1] == "model"
    assert app.slot.get(DemoSettings()).config.model.family == family  # the pipeline that answered, reused
