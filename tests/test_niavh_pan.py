"""Footage made from a still image (``pan:IMAGE``): a slow pan and zoom across it, as a NIAVH haystack and as
topic footage, and the held-out-3 wording written by ``mmlong eval niavh make``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmlong.apps.cli import main
from mmlong.benchmarks.niavh_media import PAN_SECONDS, decode_clip, pan_clip, pan_frames
from mmlong.errors import ConfigError

W, H = 400, 300  # a 4:3 image: the first window is the whole image


def _ramp(horizontal: bool) -> np.ndarray:
    """``[H, W, 3]`` uint8 whose value is the column (or row) index scaled to 0-255, so a frame's mean tells
    where it looks."""
    n = W if horizontal else H
    axis = np.arange(n) * 255.0 / (n - 1)
    values = np.broadcast_to(axis[None, :] if horizontal else axis[:, None], (H, W))
    return np.repeat(values[..., None], 3, axis=2).round().astype(np.uint8)


def test_pan_moves_and_zooms_from_the_whole_image_to_a_window_at_the_upper_right():
    raw = pan_frames(_ramp(True), 21, 160)
    assert raw.shape == (21, 120, 160, 3) and raw.dtype == np.uint8
    across, down = raw.astype(np.float64), pan_frames(_ramp(False), 21, 160).astype(np.float64)
    # a pixel's value is its column (scaled to 0-255): the window's centre drifts right ...
    centre_x = across.mean(axis=(1, 2, 3)) * (W - 1) / 255.0
    assert centre_x[0] == pytest.approx(W / 2, abs=2)  # the whole image: centre 200
    # ... to the last window: 60 % of the size (240 x 180 px), its left edge at 80 % of the room left free
    x0, w = 0.8 * (W - 0.6 * W), 0.6 * W
    assert centre_x[-1] == pytest.approx(x0 + w / 2, abs=2)  # 248
    assert np.all(np.diff(centre_x) > 0)  # steadily: every frame moves
    cols = across[-1, 60, :, 0] * (W - 1) / 255.0  # the last frame spans columns 128 ... 368
    assert cols[0] == pytest.approx(x0, abs=3) and cols[-1] == pytest.approx(x0 + w, abs=3)
    rows = down[:, :, 80, 0].mean(axis=1) * (H - 1) / 255.0  # the row index: the centre rises from 150 to 126
    assert rows[0] == pytest.approx(H / 2, abs=2) and rows[-1] == pytest.approx(0.3 * 0.4 * H + 0.3 * H, abs=2)
    assert np.all(np.diff(rows) < 0)
    assert np.ptp(down[-1, :, 80, 0]) * (H - 1) / 255.0 == pytest.approx(0.6 * H, abs=4)  # zoomed in: 180 of 300 rows


def test_pan_clip_of_a_sample_photo_has_its_length_in_frames_and_real_motion(tmp_path):
    clip = pan_clip("pan:brick", 4.0, 96)
    assert clip.shape == (round(PAN_SECONDS * 4), 72, 96, 3)
    steps = np.abs(np.diff(clip.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    assert np.all(steps > 0) and steps.max() > 3.0  # every frame differs from the one before; mid-pan clearly
    assert np.abs(clip[0].astype(int) - clip[-1].astype(int)).mean() > 10
    part = decode_clip("pan:brick", 4.0, 96, start=5.0, seconds=2.0)  # a window of it, like a video's
    assert np.array_equal(part, clip[20:28])
    from PIL import Image

    Image.fromarray(np.full((30, 40, 3), 200, np.uint8)).save(tmp_path / "still.png")  # a file works too
    assert pan_clip(f"pan:{tmp_path / 'still.png'}", 2.0, 64).shape == (40, 48, 64, 3)


def test_a_missing_image_is_one_error_naming_it(tmp_path, capsys):
    missing = tmp_path / "nowhere.png"
    with pytest.raises(ConfigError, match="no such image to pan across") as err:
        pan_clip(f"pan:{missing}", 4.0, 96)
    assert str(missing) in str(err.value)
    status = main(["eval", "niavh", "make", str(tmp_path / "set"), "--types", "count", "--lengths", "20",
                   "--haystack", f"pan:{missing}"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and str(missing) in lines[0] and "pan across" in lines[0]


def test_a_pan_haystack_has_no_audio_under_a_spoken_needle():
    from mmlong.benchmarks.niavh_needles import haystack_audio

    audio = haystack_audio(["pan:brick"], 1.5)
    assert audio.shape == (24000,) and not audio.any()


def test_make_with_pan_footage_and_the_third_held_out_wording(tmp_path, capsys):
    """``niavh make --wording held-out-3`` with still-image footage writes the new texts and a moving haystack."""
    from mmlong.media.video import open_video

    out = tmp_path / "set"
    status = main(["eval", "niavh", "make", str(out), "--types", "count,order,when,absence,topic", "--lengths", "24",
                   "--depths", "40", "--fps", "2", "--max-side", "64", "--seed", "71", "--wording", "held-out-3",
                   "--haystack", "pan:brick", "--footage", "pan:brick=a brick wall|bricks", "pan:grass=grass|lawn"])
    assert status == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["wording"] == "held-out-3" and manifest["haystacks"] == ["pan:brick"]
    assert (manifest["width"], manifest["height"]) == (64, 48)
    items = {i["needle_type"]: i for i in manifest["items"]}
    assert items["count"]["question"] == "Throughout the video, how many times does a cat show up?"
    assert items["count"]["options"] == ["exactly one time", "exactly two times", "exactly three times",
                                         "exactly four times"]
    assert items["when"]["open_question"] == "Roughly when in the video is a cat on screen?"
    assert items["order"]["question"] == "Which option gives the correct order in which these show up in the video?"
    assert all(o.count(" -> ") == 2 for o in items["order"]["options"])
    assert items["absence"]["question"] == "Which of the following is not seen anywhere in the video?"
    assert items["topic"]["question"] == "What is the video primarily about?"
    assert items["topic"]["answer_text"] == "a brick wall" and items["topic"]["footage"] == "pan:brick"
    with open_video(str(out / items["count"]["video"])) as video:
        import torch

        frames = video.read(torch.arange(4)).data.numpy().astype(np.int16)
    assert np.abs(frames[3] - frames[0]).mean() > 1.0  # the brick wall moves (the photo is shown later)


def test_make_with_gravel_and_space_footage_and_the_fourth_held_out_wording(tmp_path, capsys):
    """``niavh make --wording held-out-4`` writes the held-out-4 texts, with pans across gravel and the Hubble deep
    field as haystack and topic footage."""
    out = tmp_path / "set"
    status = main(["eval", "niavh", "make", str(out), "--types", "count,when,order,topic", "--lengths", "20",
                   "--depths", "55", "--fps", "2", "--max-side", "64", "--seed", "97", "--wording", "held-out-4",
                   "--haystack", "pan:gravel", "--footage", "pan:gravel=gravel on the ground|gravel",
                   "pan:hubble_deep_field=galaxies in deep space|galaxies"])
    assert status == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["wording"] == "held-out-4" and manifest["haystacks"] == ["pan:gravel"]
    items = {i["needle_type"]: i for i in manifest["items"]}
    assert items["count"]["question"] == "How many times is a cat visible over the course of the clip?"
    assert items["count"]["answer_text"] == ["on one occasion", "on two occasions", "on three occasions",
                                             "on four occasions"][items["count"]["gold"]["value"] - 1]
    assert items["when"]["open_question"] == "whereabouts in the clip do we see a cat?"
    assert items["when"]["answer"] == "ABCD"[items["when"]["gold"]["quarter"]]
    assert all(o.count(", followed by ") == 2 for o in items["order"]["options"])
    assert items["topic"]["answer_text"] == "gravel on the ground" and items["topic"]["footage"] == "pan:gravel"
