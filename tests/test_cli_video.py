"""``mmlong info`` / ``frames`` / ``bench``: outputs, and every video error as one line with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mmlong.apps.cli import main
from mmlong.media.contact_sheet import CAPTION_HEIGHT, GAP
from tests.media import audio_only, frame_numbers, text_file_named_video, truncate


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_info_text_and_json(capsys, make_video):
    path = make_video("clip.mp4", num_frames=25, fps=10, size=(97, 61))
    status, out, _ = run_cli(capsys, "info", path)
    assert status == 0
    assert "duration:  00:02.5 (2.500 s)" in out and "frames:    25 at 10.000 fps (constant frame rate)" in out
    assert "size:      97x61" in out and "codec:     h264" in out and "decoder:   decord" in out
    status, out, _ = run_cli(capsys, "info", path, "--json", "--decoder", "pyav")
    record = json.loads(out)
    assert status == 0 and record["num_frames"] == 25 and record["decoder"] == "pyav"
    assert (record["width"], record["height"], record["variable_frame_rate"]) == (97, 61, False)


def test_info_on_real_footage_rotation_and_vfr(capsys, make_video, sample_video_path):
    record = json.loads(run_cli(capsys, "info", sample_video_path, "--json")[1])
    assert record["num_frames"] == 132 and record["fps"] == 25.0 and record["has_audio"] is True
    assert (record["width"], record["height"], record["codec"]) == (1280, 720, "h264")
    rotated = json.loads(run_cli(capsys, "info", make_video("r.mp4", rotation=90, num_frames=4), "--json")[1])
    assert (rotated["rotation"], rotated["width"], rotated["height"], rotated["decoder"]) == (90, 64, 48, "pyav")
    vfr = make_video("v.mkv", times=[0, 0.1, 0.5, 0.6, 2.0])
    assert "(variable frame rate)" in run_cli(capsys, "info", vfr)[1]
    av1 = json.loads(run_cli(capsys, "info", make_video("a.mp4", codec="libsvtav1", num_frames=4), "--json")[1])
    assert (av1["codec"], av1["decoder"]) == ("av1", "pyav")


def test_frames_writes_a_labelled_contact_sheet(capsys, make_video, tmp_path):
    path = make_video("clip.mp4", num_frames=40, fps=10, size=(128, 96))
    out = tmp_path / "sheet.png"
    status, text, _ = run_cli(capsys, "frames", path, "--sample", "uniform:4", "--out", str(out),
                              "--max-side", "64", "--columns", "2")
    assert status == 0 and f"wrote {out} (4 frames of 40, 64x48 each" in text
    assert "times: 00:00.5, 00:01.5, 00:02.5, 00:03.5" in text
    sheet = np.asarray(Image.open(out).convert("RGB"))
    assert sheet.shape == (2 * (48 + CAPTION_HEIGHT) + 3 * GAP, 2 * 64 + 3 * GAP, 3)
    tiles = [sheet[GAP + r * (48 + CAPTION_HEIGHT + GAP):][:48, GAP + c * (64 + GAP):][:, :64]
             for r in range(2) for c in range(2)]
    assert frame_numbers(np.stack(tiles)) == [5, 15, 25, 35]  # uniform:4 of 40 frames, in reading order


def _bad_inputs(tmp_path, make_video, sample_video_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    eight_k = make_video("8k.mp4", num_frames=1, fps=1, size=(7680, 4320), preset="ultrafast")
    return [
        (["info", str(tmp_path / "missing.mp4")], "no such file"),
        (["info", str(empty)], "the file is empty"),
        (["info", text_file_named_video(tmp_path / "notes.mp4")], "not a video file"),
        (["info", audio_only(tmp_path / "voice.m4a")], "has no video stream (1 audio stream(s))"),
        (["info", truncate(sample_video_path, tmp_path / "half.mp4")], "damaged or truncated video"),
        (["info", make_video("a.mp4", codec="libsvtav1", num_frames=3), "--decoder", "decord"],
         "decord cannot decode av1 video; use decoder 'pyav'"),
        (["frames", eight_k, "--max-side", "8000", "--out", str(tmp_path / "s.png")], "over the 8.3 MP limit"),
        (["frames", make_video(num_frames=3), "--sample", "window:50-60"], "holds no frame"),
    ]


def test_every_bad_input_is_one_error_line_with_status_2(capsys, tmp_path, make_video, sample_video_path):
    cases = _bad_inputs(tmp_path, make_video, sample_video_path)
    for argv, reason in cases:
        status, out, err = run_cli(capsys, *argv)
        lines = err.strip().splitlines()
        assert status == 2 and out == "", argv
        assert len(lines) == 1 and lines[0].startswith("mmlong: error: ") and reason in lines[0], (argv, err)
        if "window" not in " ".join(argv):
            assert f"error: {argv[1]}: " in lines[0]  # names the file
    # 8K is handled too: resized on decode, quickly
    status, out, _ = run_cli(capsys, "frames", cases[6][0][1], "--out", str(tmp_path / "8k.png"))
    assert status == 0 and "240x135 each" in out


def test_the_installed_command_prints_no_traceback(tmp_path):
    bad = text_file_named_video(tmp_path / "notes.mp4")
    proc = subprocess.run([sys.executable, "-m", "mmlong.apps.cli", "info", bad], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"mmlong: error: {bad}: not a video file: FFmpeg does not recognise its format " \
                                  "(Invalid data found when processing input)"


def test_bench_decode_and_make_video(capsys, tmp_path):
    short, long = tmp_path / "short.mp4", tmp_path / "long.mp4"
    assert run_cli(capsys, "bench", "make-video", str(short), "--minutes", "0.1", "--size", "64x36")[0] == 0
    assert run_cli(capsys, "bench", "make-video", str(long), "--minutes", "0.4", "--size", "64x36")[0] == 0
    status, out, _ = run_cli(capsys, "bench", "decode", str(short), str(long), "--frames", "8", "--repeat", "1",
                             "--json")
    record = json.loads(out)
    assert status == 0 and [r["num_frames"] for r in record["runs"]] == [150, 600]
    for run in record["runs"]:
        assert run["identical_frames"] is True and run["ratio"] > 0 and run["mmlong_ms"] > 0 and run["raw_ms"] > 0
        assert 0 < run["mmlong_open_ms"] < run["mmlong_ms"]
    assert record["length_scaling"]["duration_ratio"] == 4.0
    status, out, _ = run_cli(capsys, "bench", "decode", str(short), "--frames", "4", "--repeat", "1")
    assert status == 0 and "ratio" in out and "identical frames: True" in out


@pytest.mark.parametrize("argv", [["info", "--help"], ["frames", "--help"], ["bench", "decode", "--help"],
                                  ["bench", "make-video", "--help"]])
def test_help_explains(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0 and "examples:" in capsys.readouterr().out
