"""The web demo without a browser: its handler on real footage, its figures, its errors and its launch options."""

from __future__ import annotations

import argparse
import socket
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from mmlong.apps.cli import build_parser
from mmlong.apps.demo.command import (
    DemoApp,
    DemoSettings,
    build_blocks,
    is_loopback,
    launch_options,
    readable_error,
)
from mmlong.apps.demo.keyframes import choose_keyframes
from mmlong.apps.demo.timeline import (
    TIMELINE_HEIGHT_PX,
    TIMELINE_WIDTH_PX,
    TimelineData,
    recorded_scores,
    render_timeline,
    scene_spans,
)
from mmlong.errors import NotAVideoError


def demo_args(*extra: str) -> argparse.Namespace:
    return build_parser().parse_args(["demo", *extra])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------- figures
def test_timeline_png_has_the_requested_size_and_draws_the_curve(tmp_path):
    times = [float(t) for t in range(20)]
    relevance = [1.0 if 8 <= t <= 10 else 0.0 for t in range(20)]
    data = TimelineData(frame_times=times, duration=20.0, relevance=relevance, scenes=scene_spans(times, [9, 19], 20.0),
                        model_times=times[::2], evidence=[9.0])
    path = render_timeline(data, tmp_path / "out" / "timeline.png")
    image = Image.open(path)
    assert image.size == (TIMELINE_WIDTH_PX, TIMELINE_HEIGHT_PX)
    small = render_timeline(data, tmp_path / "small.png", width_px=640, height_px=240)
    assert Image.open(small).size == (640, 240)
    # the picture is not blank: the relevance line's blue occurs in it
    rgb = np.asarray(image.convert("RGB")).astype(int)
    blue = (rgb[..., 2] > 120) & (rgb[..., 0] < 60) & (rgb[..., 1] > 70) & (rgb[..., 1] < 120)
    assert blue.sum() > 200
    assert data.peak_time() == 8.0


def test_scene_spans_cover_the_video_in_order():
    times = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert scene_spans(times, [1, 3, 5], duration=3.0) == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    assert scene_spans(times, [5], duration=3.0) == [(0.0, 3.0)]
    assert scene_spans([], [0], duration=1.0) == []


def test_recorded_scores_prefers_the_last_stage_with_scores():
    stages = [
        {"name": "decode", "extra": {"peak_rss_mb": 1.0}},
        {"name": "progressive", "extra": {"frame_times": [0.0, 1.0, 2.0], "scores": [1.0, 0.2, 0.4],
                                          "scored_by": "novelty"}},
        {"name": "select", "extra": {"frame_times": [0.0, 1.0, 2.0], "scores": [0.1, 0.9, 0.3],
                                     "scored_by": "query"}},
        {"name": "tome", "extra": {}},
    ]
    assert recorded_scores(stages) == ([0.0, 1.0, 2.0], [0.1, 0.9, 0.3], "select", "query")
    assert recorded_scores(stages[:2])[2:] == ("progressive", "novelty")
    assert recorded_scores(stages[:1]) is None


def test_choose_keyframes_keeps_evidence_and_relevant_frames_in_time_order():
    times = [float(t) for t in range(30)]
    relevance = [0.0] * 30
    relevance[20] = 1.0
    relevance[25] = 0.9
    chosen = choose_keyframes(times[::2], times, relevance, evidence=[7.2], limit=4)
    assert chosen == sorted(chosen) and len(chosen) == 4
    assert 8.0 in chosen and 20.0 in chosen  # nearest model frame to the evidence; the most relevant
    assert set(chosen) <= set(times[::2])    # only frames the model saw
    assert choose_keyframes([3.0, 1.0], times, None, (), limit=8) == [1.0, 3.0]


# ---------------------------------------------------------------------- settings and errors
def test_empty_settings_keep_the_command_line_and_set_fields_override(tmp_path):
    app = DemoApp(demo_args("--compress", "tome:0.5", "--max-duration", "60"), out_dir=tmp_path)
    base = app.config_for(DemoSettings.from_fields(None, "", "  ", None, ""))
    assert base.compress_spec == "tome:0.5" and base.runtime.max_duration == 60.0
    assert base.sample_spec == "coverage:64"
    changed = app.config_for(DemoSettings.from_fields("offline", "uniform:8", "pool:2", 512, None))
    assert (changed.sample_spec, changed.compress_spec, changed.budget) == ("uniform:8", "pool:2", 512)
    assert DemoSettings.from_fields(None, None, None, 0, None).budget is None


def test_readable_error_names_the_upload_by_its_name_only():
    err = NotAVideoError("not a video file (no container format recognised)", "/tmp/gradio/abc123/notes.mp4")
    assert readable_error(err) == "notes.mp4: not a video file (no container format recognised)"


def test_missing_inputs_give_readable_messages(tmp_path):
    app = DemoApp(demo_args(), tmp_path)
    assert "Upload a video" in app.ask(None, "What?", "").status
    result = app.ask(str(tmp_path / "x.mp4"), "   ", "")
    assert not result.ok and "Type a question" in result.status


# ---------------------------------------------------------------------- launch
def test_launch_options_bind_loopback_with_limits_and_no_extra_paths():
    opts = launch_options(demo_args())
    assert opts["server_name"] == "127.0.0.1" and opts["server_port"] == 7860
    assert opts["max_file_size"] == 500 * 1024 * 1024
    assert "allowed_paths" not in opts and opts["share"] is False
    assert launch_options(demo_args("--max-upload-mb", "2"))["max_file_size"] == 2 * 1024 * 1024
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def test_launched_page_serves_no_file_outside_uploads_and_outputs(tmp_path):
    args = demo_args("--port", str(free_port()), "--concurrency", "2")
    blocks = build_blocks(DemoApp(args, tmp_path / "out"), concurrency=args.concurrency)
    blocks.launch(**{**launch_options(args), "prevent_thread_lock": True, "quiet": True})
    try:
        assert blocks.server_name == "127.0.0.1"
        assert list(blocks.allowed_paths) == []
        assert blocks.max_file_size == 500 * 1024 * 1024
        base = f"http://127.0.0.1:{args.port}"
        with urllib.request.urlopen(base + "/", timeout=20) as page:
            assert page.status == 200 and b"mmlong demo" in page.read()
        secret = tmp_path / "secret.txt"
        secret.write_text("not for the web")
        for target in (str(secret), "/etc/passwd"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{base}/gradio_api/file={target}", timeout=20)
            assert refused.value.code in (403, 404)
    finally:
        blocks.close()


# ---------------------------------------------------------------------- the handler on real footage
@pytest.fixture(scope="module")
def bunny():
    from mmlong.assets.samples import sample_video

    return sample_video("bigbuckbunny")


@pytest.fixture(scope="module")
def demo_app(tmp_path_factory):
    """One app for the module: 8 uniform frames, a query-aware selection of 3, then 2x2 pooling."""
    out = tmp_path_factory.mktemp("demo")
    args = demo_args("--sample", "uniform:8", "--compress", "select:3,pool:2", "--cache-dir", str(out / "cache"))
    return DemoApp(args, out / "app")


@pytest.mark.slow
def test_handler_answers_a_real_sample_with_evidence_figures(demo_app, bunny):
    options = ["a rabbit", "a guitar", "a sailboat", "a fire truck"]
    result = demo_app.ask(bunny, "What animal appears in the video?", "\n".join(options) + "\n\n")
    assert result.ok, result.status
    answer = result.answer
    assert answer.option in options and result.option == f"({answer.letter}) {answer.option}"
    assert result.answer_text == answer.text
    assert result.question_kind == "appear" == answer.details["question"]["kind"]
    duration = answer.details["video"]["duration"]
    assert 5.0 < duration < 5.6
    assert answer.evidence and all(0.0 <= t <= duration for t in answer.evidence)
    assert result.status.startswith("Answered in") and "3 of 8 sampled frames" in result.status

    # the stage table: the first (uncached) decoding, then what each compressor did, then the model
    names = [row[0] for row in result.stage_rows]
    assert names[:6] == ["sample", "cache", "decode", "encode", "select", "pool"] and "model" in names
    assert all(len(row) == 6 for row in result.stage_rows)
    rows = {row[0]: row for row in result.stage_rows}
    assert (int(rows["select"][1]), int(rows["select"][2])) == (8 * 49, 3 * 49)  # 3 of 8 frames kept
    assert (int(rows["pool"][1]), int(rows["pool"][2])) == (3 * 49, 3 * 16)     # 7x7 -> 4x4 per frame

    # the timeline: every sampled frame scored, the selection's recorded relevance, the 3 frames the model saw
    data = result.timeline
    assert len(data.frame_times) == 8 and len(data.relevance) == 8
    assert "select" in data.source
    assert len(data.model_times) == 3 and set(data.model_times) <= set(data.frame_times)
    assert data.scenes and data.scenes[0][0] == 0.0 and data.scenes[-1][1] >= data.frame_times[-1]
    assert Image.open(result.timeline_png).size == (TIMELINE_WIDTH_PX, TIMELINE_HEIGHT_PX)
    strip = Image.open(result.keyframes_png)
    assert strip.width > 2 * strip.height  # the 3 keyframes in one labelled row


def count_calls(obj, attr, counts, key):
    """Wrap ``obj.attr`` (on the instance) so each call adds one to ``counts[key]``."""
    original = getattr(obj, attr)

    def counted(*args, **kwargs):
        counts[key] += 1
        return original(*args, **kwargs)

    setattr(obj, attr, counted)


@pytest.mark.slow
@pytest.mark.parametrize("flags, chain", [
    (("--sample", "uniform:8", "--compress", "select:3,pool:2"), ["select", "pool"]),
    (("--sample", "query:4", "--compress", "pool:2"), ["pool"]),
])
def test_a_question_runs_each_stage_once(tmp_path, bunny, flags, chain):
    """Without the feature cache (which used to hide it) and with a query-aware sampler (which used to decode
    again for each call): one sampling, one decoding pass, one run of each compressor, one answer."""
    from collections import Counter

    app = DemoApp(demo_args(*flags, "--no-cache", "--experts", "none"), tmp_path / "app")
    pipeline = app.slot.get(DemoSettings())
    counts: Counter = Counter()
    make_sampler = pipeline._sampler

    def counted_sampler():
        sampler = make_sampler()
        count_calls(sampler, "sample", counts, "sample")
        return sampler

    pipeline._sampler = counted_sampler
    count_calls(pipeline, "_encode_chunks", counts, "decode+encode")
    count_calls(pipeline.model, "answer", counts, "model")
    for step in pipeline.chain.pre_llm:
        count_calls(step, "compress", counts, step.name)
    if "select" in chain:
        count_calls(pipeline.encoder, "encode", counts, "encoder.encode")
    result = app.ask(bunny, "What animal appears in the video?", "a rabbit\na guitar")
    assert result.ok, result.status
    expected = {"sample": 1, "decode+encode": 1, "model": 1, **{name: 1 for name in chain}}
    if "select" in chain:
        expected["encoder.encode"] = 1  # 8 frames: one chunk
    assert dict(counts) == expected
    names = [row[0] for row in result.stage_rows]
    assert names == ["sample", "decode", "encode", *chain, "load", "model"]  # the table is that one run


def test_one_pipeline_per_settings_reused_until_they_change(demo_app):
    first = demo_app.slot.get(DemoSettings())
    assert demo_app.slot.get(DemoSettings.from_fields(None, "", "", 0, "")) is first
    other = demo_app.slot.get(DemoSettings(compress="pool:2"))
    assert other is not first and other.config.compress_spec == "pool:2"
    assert demo_app.slot.get(DemoSettings()) is not first  # bounded: only the last pipeline is kept


def test_bad_uploads_give_a_one_line_reason(tmp_path, demo_app):
    from mmlong.media.video.write import write_audio_only

    text = tmp_path / "notes.mp4"
    text.write_text("these are my notes, not a video\n" * 20)
    audio = write_audio_only(tmp_path / "song.m4a", seconds=1.0)
    for path, name in ((text, "notes.mp4"), (audio, "song.m4a")):
        result = demo_app.ask(str(path), "What happens?", "")
        assert not result.ok
        assert f"{name}: " in result.status and "Traceback" not in result.status
        assert "\n" not in result.status and str(tmp_path) not in result.status


def test_videos_over_the_duration_limit_are_refused(tmp_path, bunny):
    app = DemoApp(demo_args("--max-duration", "2", "--cache-dir", str(tmp_path / "cache")), tmp_path / "app")
    result = app.ask(bunny, "What animal appears?", "a rabbit\na cat")
    assert not result.ok and "bigbuckbunny.mp4: " in result.status and "limit of 2 s" in result.status


def test_sample_clips_are_copied_into_the_demos_own_directory(tmp_path, bunny):
    from mmlong.errors import VideoNotFoundError

    app = DemoApp(demo_args(), tmp_path / "app")
    assert "bigbuckbunny" in app.sample_choices()
    copy = app.load_sample("bigbuckbunny")
    assert copy.startswith(str(tmp_path / "app")) and open(copy, "rb").read() == open(bunny, "rb").read()
    assert app.load_sample("bigbuckbunny") == copy and app.load_sample(None) is None
    with pytest.raises(VideoNotFoundError, match="unknown sample"):
        app.load_sample("../../etc/passwd")


def test_the_command_warns_off_loopback_and_cleans_up(tmp_path, monkeypatch, capsys):
    import mmlong.apps.demo.command as demo
    from mmlong.apps.cli import main

    launched = {}

    class RecordingBlocks:
        def launch(self, **options):
            launched.update(options)
            launched["out_dir"] = app_dirs[0]

    app_dirs = []

    def record_build(app, concurrency):
        app_dirs.append(app.out_dir)
        launched["concurrency"] = concurrency
        return RecordingBlocks()

    monkeypatch.setattr(demo, "build_blocks", record_build)
    assert main(["demo", "--host", "0.0.0.0", "--port", "7999", "--concurrency", "3"]) == 0
    assert "warning: binding 0.0.0.0" in capsys.readouterr().err
    assert launched["server_name"] == "0.0.0.0" and launched["server_port"] == 7999
    assert launched["concurrency"] == 3 and "allowed_paths" not in launched
    assert not launched["out_dir"].exists()  # the demo's own directory is removed when the server stops
    assert main(["demo"]) == 0
    assert "warning" not in capsys.readouterr().err and launched["server_name"] == "127.0.0.1"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        monkeypatch.undo()
        status = main(["demo", "--port", str(busy.getsockname()[1])])
    assert status == 2 and "choose another --port" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["mmlong.apps.demo.timeline", "mmlong.apps.demo.keyframes"])
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_every_sample_clip_has_an_example_question():
    from mmlong.apps.demo.page import EXAMPLE_QUESTIONS
    from mmlong.assets.samples import sample_videos

    assert set(sample_videos()) <= {clip for clip, _, _ in EXAMPLE_QUESTIONS}
    assert all(question.endswith("?") for _, question, _ in EXAMPLE_QUESTIONS)


def test_the_page_lists_the_example_questions(tmp_path):
    blocks = build_blocks(DemoApp(demo_args(), tmp_path / "out"))
    datasets = [c for c in blocks.config["components"] if c.get("type") == "dataset"]
    assert len(datasets) == 1
    rows = datasets[0]["props"]["samples"]
    assert ["bigbuckbunny", "What animal appears in the video?", "a rabbit\na dog\na guitar\na sailboat"] in rows


def test_keyframes_come_in_rows_of_four_with_captions_a_fifth_of_a_tile_high(tmp_path):
    from mmlong.apps.demo.keyframes import keyframe_strip
    from mmlong.media.contact_sheet import CAPTION_HEIGHT, GAP
    from tests.media import make_test_video

    video = make_test_video(tmp_path / "v.mp4", num_frames=16, fps=4.0, size=(320, 180))
    strip = Image.open(keyframe_strip(video, [0.25 * i for i in range(8)], tmp_path / "k.png", list(range(0, 16, 2))))
    assert strip.width == 4 * 200 + 5 * GAP  # four 200-px tiles a row, not eight
    tile_h = (strip.height - 3 * GAP) // 2 - int(max(14, 112 // 5) * 1.4)  # two rows, each frame + its caption
    assert tile_h in (112, 113) and int(max(14, 112 // 5) * 1.4) > CAPTION_HEIGHT


def test_the_ask_handler_streams_each_phase_before_the_answer(tmp_path, bunny, qwen_dir):
    """The Ask button's handler is a generator: the page shows the phase the request is in (load, scan, encoding,
    compressing, answering, drawing) as each starts, the old answer cleared, and then the answer."""
    from mmlong.apps.demo.page import ask_updates

    app = DemoApp(demo_args("--model", qwen_dir, "--sample", "uniform:4", "--compress", "pool:2", "--no-cache",
                            "--experts", "none"), tmp_path / "app")
    updates = list(ask_updates(app, bunny, "What animal appears in the video?", "a rabbit\na guitar",
                               (None, "", "", 0, "")))
    *working, last = updates
    assert last[0].startswith("Answered in") and last[2] in ("(A) a rabbit", "(B) a guitar")
    assert all(update[0].startswith("Working: ") and update[1:] == ("", "", "", "", None, None, None)
               for update in working)
    phases = [update[0].removeprefix("Working: ").rsplit(" … (", 1)[0] for update in working]
    expected = ["scanning bigbuckbunny", "encoding 4 frames", "compressing", "loading model",
                "answering question 1 of 1", "drawing the timeline"]
    assert len(phases) == len(expected) and len(set(phases)) == len(phases), phases
    assert all(phase.startswith(start) for phase, start in zip(phases, expected)), phases


def test_the_ask_handler_streams_nothing_before_a_refusal(tmp_path):
    from mmlong.apps.demo.page import ask_updates

    app = DemoApp(demo_args("--experts", "none"), tmp_path / "app")
    assert [u[0] for u in ask_updates(app, None, "What?", "", (None, "", "", 0, ""))] == [
        "**Could not answer.** Upload a video or pick a sample clip first."]
    refused = list(ask_updates(app, "clip.mp4", "What?", "", (None, "", "", 2.5, "")))
    assert len(refused) == 1 and "whole number of tokens" in refused[0][0]
