"""``bench needle-video --segment-seconds``: a long video from a few encoded segments joined by packet copy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmlong.apps.bench.hour_segments import segment_plan
from mmlong.apps.cli import main
from mmlong.errors import ConfigError


def test_segment_plan_cycles_variants_and_gives_inserts_their_own_segment():
    inserts = [(25, 5, None), (70, 5, None)]
    assert segment_plan(95, 20, 2, inserts) == [(0, 20, ()), (1, 20, (0,)), (0, 20, ()), (1, 20, (1,)), (0, 15, ())]
    with pytest.raises(ConfigError, match="crosses the end"):
        segment_plan(95, 20, 2, [(38, 5, None)])


def test_segmented_video_is_playable_with_the_needle_at_its_time(tmp_path):
    pytest.importorskip("skvideo")
    from mmlong.benchmarks.niavh_media import fit_frame, load_image
    from mmlong.media.video import open_video

    out = tmp_path / "joined.mp4"
    # 50 s at 4 fps from 10 s segments: two haystack variants, the cat at 33-35 s in its own segment, 2 s tail
    assert main(["bench", "needle-video", str(out), "--minutes", str(52 / 60), "--haystack", "bigbuckbunny,bikes",
                 "--size", "64x48", "--fps", "4", "--needle", "chelsea", "--needle-at", "33",
                 "--segment-seconds", "10"]) == 0
    record = json.loads(out.with_name("joined.mp4.json").read_text())
    assert (record["start"], record["end"]) == (33.0, 35.0)
    with open_video(out) as video:
        assert (video.meta.num_frames, video.meta.width, video.meta.height) == (208, 64, 48)
        assert abs(video.meta.duration - 52.0) < 0.3
        frames = video.read(list(range(208))).data.numpy().astype(np.float32)
        times = video.read([0, 132, 207]).timestamps.tolist()
    assert times == pytest.approx([0.0, 33.0, 51.75], abs=0.01)
    cat = fit_frame(load_image("chelsea"), 64, 48).astype(np.float32)
    off = np.abs(frames - cat).mean(axis=(1, 2, 3))
    shown = np.flatnonzero(off < 8.0)
    assert shown.tolist() == list(range(132, 140)), off[128:144]  # frames 33.0 .. 34.75 s, nothing else
    # segment 2 is segment 0 again (the same packets), segment 1 the other variant
    assert np.abs(frames[80:120] - frames[0:40]).max() == 0
    assert np.abs(frames[40:80] - frames[0:40]).mean() > 5.0
    # the 2 s tail (segment 5, encoded on its own) starts like the other segments of its variant (1, 3)
    assert np.abs(frames[200:208] - frames[40:48]).mean() < 1.0 < np.abs(frames[200:208] - frames[0:8]).mean()


def test_concat_refuses_parts_of_different_sizes(tmp_path):
    from mmlong.media.video.remux import concat_copies
    from mmlong.media.video.write import write_video

    small = write_video(tmp_path / "a.mp4", [np.zeros((16, 16, 3), np.uint8)] * 3, 5)
    big = write_video(tmp_path / "b.mp4", [np.zeros((32, 16, 3), np.uint8)] * 3, 5)
    assert concat_copies(tmp_path / "ok.mp4", [small, small]) == (6, pytest.approx(1.2))
    with pytest.raises(ConfigError, match="differs from the first"):
        concat_copies(tmp_path / "bad.mp4", [small, big])


def test_baseline_code_runs_the_checkouts_own_environment(tmp_path):
    from mmlong.apps.bench.hour_floor import baseline_code

    checkout = tmp_path / "old"
    (checkout / "mmlong").mkdir(parents=True)
    (checkout / "mmlong" / "__init__.py").write_text("")
    python = checkout / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    # the checkout's interpreter: reports the arguments it was given as the bench's JSON
    python.write_text('#!/bin/sh\nprintf \'{"runs": [{"wall_s": 1.5, "args": "%s"}]}\' "$*"\n')
    python.chmod(0o755)
    report = baseline_code(str(checkout), str(tmp_path / "v.mp4"), ["--no-floor"])
    assert report["wall_s"] == 1.5 and report["code"] == str(checkout.resolve())
    assert report["args"] == f"-m mmlong bench hour {tmp_path / 'v.mp4'} --json --no-floor"


def test_peak_rss_of_a_child_is_its_own_not_its_parents():
    import subprocess
    import sys

    from mmlong.pipeline import peak_rss_mb

    held = np.ones(1200 * 2**20 // 8)  # ~1.2 GB touched in this (parent) process
    assert peak_rss_mb() > 1200
    code = "import resource; from mmlong.pipeline import peak_rss_mb; " \
           "print(peak_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    own, inherited = (float(v) for v in done.stdout.split())
    del held
    assert own < 1000 < 1200 < inherited  # ru_maxrss still shows the parent's peak after exec; VmHWM does not
