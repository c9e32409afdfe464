"""Subtitles and on-screen text for every model: lines placed at the sampled frames' times in native VLM prompts
(Qwen2-VL, LLaVA-OneVision, SmolVLM2 on tiny random-init models), and beside the ImageNet lines in the Socratic
transcript."""

from __future__ import annotations

import pytest
import torch

from mmlong.experts.base import TimedText
from mmlong.models.socratic.transcript import build_transcript
from mmlong.models.subtitles import HEADER, subtitle_context, subtitles_by_frame
from mmlong.qa import Query
from mmlong.types import VisualTokens
from tests.vlm_fixtures import build_llava_onevision, build_qwen2_vl, build_smolvlm, frames_of, random_video

LINES = [
    TimedText(0.2, 0.9, "speech", "Welcome aboard."),
    TimedText(2.6, 3.4, "text", "EXIT"),
    TimedText(3.0, 3.0, "note", "no audio track"),
    TimedText(9.0, 12.0, "subtitle", "Goodbye."),
]


def test_each_line_goes_once_to_the_frame_nearest_its_span():
    groups = subtitles_by_frame(LINES, [0.0, 2.0, 4.0])  # stretches: (-inf, 1), [1, 3), [3, inf)
    assert [[line.text for line in g] for g in groups] == [["Welcome aboard."], ["EXIT"], ["Goodbye."]]
    shuffled = subtitles_by_frame(LINES, [4.0, 0.0, 2.0])  # frames given out of order keep their own groups
    assert [[line.text for line in g] for g in shuffled] == [["Goodbye."], ["Welcome aboard."], ["EXIT"]]
    assert subtitle_context(LINES, [0.0, 2.0, 4.0]).splitlines() == [
        HEADER, "frame 00:00: [speech] Welcome aboard.", "frame 00:02: [text] EXIT", "frame 00:04: [subtitle] Goodbye."]
    assert subtitle_context([LINES[2]], [0.0]) == ""  # notes are not subtitles
    assert subtitle_context([], [0.0]) == ""


@pytest.fixture(scope="module", params=["qwen2-vl", "llava-onevision", "smolvlm2"])
def adapter_and_tokens(request):
    from mmlong.registry import MODELS

    build = {"qwen2-vl": build_qwen2_vl, "llava-onevision": build_llava_onevision, "smolvlm2": build_smolvlm}
    model, processor = build[request.param](num_layers=2)
    adapter = MODELS.resolve(request.param)(MODELS.make_config(request.param, max_new_tokens=3)).load(model, processor)
    tokens = adapter.native_encoder().encode(frames_of(random_video(4, height=96, width=128), fps=1.0))
    return adapter, tokens


def test_native_prompts_carry_the_subtitles_of_the_sampled_frames(adapter_and_tokens):
    adapter, tokens = adapter_and_tokens
    query = Query("what is said?", ("hello", "goodbye"))
    block = subtitle_context(LINES, [0.0, 1.0, 2.0, 3.0])
    plain, subtitled = adapter.build_prompt(tokens, query), adapter.build_prompt(tokens, query, block)
    assert block in subtitled.text and "Goodbye." in subtitled.text and HEADER not in plain.text
    assert subtitled.text.index(block) < subtitled.text.index("what is said?")
    assert int(subtitled.visual_mask.sum()) == int(plain.visual_mask.sum()) == tokens.num_tokens
    added = len(adapter.tokenizer.encode(block, add_special_tokens=False))
    assert added <= subtitled.length - plain.length <= added + 3  # the block and a separator, nothing else
    with_lines = adapter.answer(tokens, query, timed_text=LINES)
    without = adapter.answer(tokens, query)
    assert with_lines.details["prompt_tokens"] == subtitled.length
    assert without.details["prompt_tokens"] == plain.length


class OneHotHead:
    """A real classifier over 2-d features: feature k -> class k (softmax of 4 x the features)."""

    has_text = False
    class_names = ("Egyptian cat", "seashore")

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(features * 4.0, dim=-1)


def test_socratic_transcript_interleaves_expert_lines_by_time():
    from mmlong.models.socratic.answerer import SocraticModel, transcript_context

    grid = torch.zeros(4, 1, 1, 2)
    grid[:2, ..., 1] = 1.0
    grid[2:, ..., 0] = 1.0
    tokens = VisualTokens.from_grid(grid, timestamps=torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64))
    model = SocraticModel(SocraticModel.Config(max_text_lines=2))
    transcript = model.transcript(tokens, OneHotHead(), LINES)
    assert transcript.text().splitlines() == [
        "00:00\u201300:01: seashore 0.98",
        '00:00 [speech] "Welcome aboard."',
        "00:02\u201300:03: Egyptian cat 0.98",
        "00:03 [note] no audio track",
        '00:09\u201300:12 [subtitle] "Goodbye."',
    ]  # max_text_lines=2 of the 3 lines that are not notes: evenly spread (first and last); notes always kept
    assert "[text] lines are words written on screen" in transcript_context(transcript)
    assert len(transcript) == 2 and transcript.features().shape == (2, 2)  # relevance still sees visual lines
    bare = build_transcript(tokens, OneHotHead().classify, OneHotHead.class_names)
    assert "[text]" not in transcript_context(bare) and "written on screen" not in transcript_context(bare)


def test_cli_subtitles_file_reaches_a_native_model(tmp_path, capsys):
    from tests.media import make_test_video
    from tests.vlm_fixtures import cli_ask, save_checkpoint

    model, processor = build_smolvlm(num_layers=2)
    path = save_checkpoint(model, processor, tmp_path / "smol")
    video = make_test_video(tmp_path / "clip.mp4", num_frames=30, fps=10, size=(96, 64))
    srt = tmp_path / "clip.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:02,000\nThe password is pineapple.\n")
    flags = ("--sample", "uniform:3", "--config", str(tmp_path / "p.yaml"))
    (tmp_path / "p.yaml").write_text("model_options:\n  max_new_tokens: 2\n")
    code, plain, _ = cli_ask(capsys, video, "what is the password?", path, *flags)
    assert code == 0 and not [s for s in plain["stages"] if s["name"].startswith("expert:")]  # off for native
    code, subtitled, _ = cli_ask(capsys, video, "what is the password?", path, *flags, "--subtitles", str(srt))
    assert code == 0 and [s["name"] for s in subtitled["stages"] if s["name"].startswith("expert:")] == [
        "expert:subtitles"]
    block = subtitle_context([TimedText(1.0, 2.0, "subtitle", "The password is pineapple.")], [0.0, 1.5, 3.0])
    added = len(processor.tokenizer.encode(block, add_special_tokens=False))
    assert added <= subtitled["details"]["prompt_tokens"] - plain["details"]["prompt_tokens"] <= added + 3
    bad = tmp_path / "bad.srt"
    bad.write_text("nothing here\n")
    code, _, err = cli_ask(capsys, video, "q", path, *flags, "--subtitles", str(bad))
    assert code == 2 and err.count("\n") == 1 and "bad.srt: not a subtitle file: no subtitle cues" in err
