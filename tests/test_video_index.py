"""Opening from the container index: PyAV numbers frames of a constant-rate mp4 without demuxing it, checks
every decoded frame against that numbering, and ``auto`` prefers it for long indexed videos."""

from __future__ import annotations

import numpy as np
import pytest

import mmlong.media.video.container
import mmlong.media.video.pyav_decoder
import mmlong.media.video.source
from mmlong.errors import ConfigError, CorruptVideoError
from mmlong.media.video import open_video, probe
from mmlong.media.video.container import inspect_container, sampled_entry_positions
from mmlong.media.video.write import numbered_frame
from mmlong.registry import DECODERS
from tests.media import frame_numbers, truncate

# B-frames (x264 "medium") reorder frames, so decode and presentation times differ; a keyframe every 24 frames
BFRAMES = dict(num_frames=150, fps=25, preset="medium", gop=24)
PICKS = [149, 0, 23, 24, 25, 47, 48, 71, 72, 73, 100, 101, 5, 5]


def _no_full_demux(info):
    raise AssertionError("the stream was demuxed packet by packet at open")


def test_constant_rate_mp4_opens_from_its_index_and_reads_the_right_frames(make_video, monkeypatch):
    path = make_video("bframes.mp4", **BFRAMES)
    assert inspect_container(path).indexed_constant_rate
    with open_video(path, decoder="decord") as reference:
        expected = reference.read(PICKS)
    monkeypatch.setattr(mmlong.media.video.pyav_decoder, "_index_stream", _no_full_demux)
    with open_video(path, decoder="pyav") as video:
        assert video._decoder.uses_container_index
        meta = video.meta
        frames = video.read(PICKS)
    assert (meta.num_frames, meta.fps, meta.duration, meta.variable_frame_rate) == (150, 25.0, 6.0, False)
    assert frame_numbers(frames.data) == PICKS
    assert frames.timestamps.tolist() == pytest.approx([i / 25 for i in PICKS])
    assert np.array_equal(frames.data.numpy(), expected.data.numpy())  # decord's pixels on the same indices


def test_ntsc_rate_and_demux_numbering_agree(make_video):
    path = make_video("ntsc.mp4", num_frames=90, fps=30000 / 1001, preset="medium", gop=30)
    picks = [89, 30, 29, 31, 0, 60, 61]
    with open_video(path, decoder="pyav") as indexed:
        assert indexed._decoder.uses_container_index
        a = indexed.read(picks)
    demuxing = DECODERS.create("pyav", frame_index="demux")
    demuxing.open(inspect_container(path), None)
    try:
        assert not demuxing.uses_container_index
        assert np.allclose(demuxing.frame_times(), np.arange(90) * 1001 / 30000)
        b = demuxing.read(np.array(sorted(set(picks))), deadline=float("inf"))
    finally:
        demuxing.close()
    assert frame_numbers(a.data) == picks and frame_numbers(b) == sorted(set(picks))
    assert indexed.meta.fps == pytest.approx(30000 / 1001)


def test_bad_frame_index_option_is_a_config_error(make_video):
    decoder = DECODERS.create("pyav", frame_index="fast")
    with pytest.raises(ConfigError, match="frame_index must be one of auto, demux, got 'fast'"):
        decoder.open(inspect_container(make_video(num_frames=3)), None)


def test_variable_rate_and_mkv_are_not_numbered_from_an_index(make_video):
    times = [0.0, 0.1, 0.15, 0.5, 0.55, 0.6, 1.0, 1.5, 1.6, 2.5]
    vfr = make_video("vfr.mp4", times=times)
    assert not inspect_container(vfr).indexed_constant_rate
    with open_video(vfr, decoder="pyav") as video:
        assert not video._decoder.uses_container_index
        assert list(video.meta.frame_times) == pytest.approx(times, abs=1e-3)
        assert frame_numbers(video.read([9, 3]).data) == [9, 3]
    assert not inspect_container(make_video("cfr.mkv", num_frames=30)).indexed_constant_rate  # cues: keyframes only


def test_auto_prefers_pyav_only_for_long_indexed_videos(make_video, monkeypatch):
    indexed = make_video("long.mp4", num_frames=120, fps=25)
    assert probe(indexed).decoder == "decord"  # short: under PYAV_MIN_FRAMES
    monkeypatch.setattr(mmlong.media.video.source, "PYAV_MIN_FRAMES", 100)
    with open_video(indexed) as video:
        assert video.meta.decoder == "pyav" and video._decoder.uses_container_index and not video.notes
        assert frame_numbers(video.read([119, 0, 60]).data) == [119, 0, 60]
    assert probe(make_video("long.mkv", num_frames=120, fps=25)).decoder == "decord"  # no per-frame index
    vfr_times = [i * 0.04 + (0.02 if i % 7 == 0 else 0.0) for i in range(120)]
    assert probe(make_video("vfr.mp4", times=vfr_times)).decoder == "decord"


def test_a_frame_off_the_index_grid_reindexes_from_the_stream(make_video, monkeypatch):
    # frames 5..8 are 30 ms late; checks that only sample index entries 0, 1, 10 and 20 and the first two
    # packets miss them, so only the check of each decoded frame can catch them
    times = [i * 0.1 + (0.03 if 5 <= i <= 8 else 0.0) for i in range(21)]
    path = make_video("jitter.mp4", times=times, preset="ultrafast")
    monkeypatch.setattr(mmlong.media.video.container, "INDEX_HEAD", 2)
    monkeypatch.setattr(mmlong.media.video.container, "INDEX_SAMPLES", 2)
    monkeypatch.setattr(mmlong.media.video.pyav_decoder, "FIRST_PACKETS", 2)
    assert sampled_entry_positions(21) == [0, 1, 10, 20]
    assert inspect_container(path).indexed_constant_rate
    with open_video(path, decoder="pyav") as video:
        assert video._decoder.uses_container_index and not video.meta.variable_frame_rate
        frames = video.read([7, 12])
        assert "off the container index's constant-rate grid" in video.notes[-1]
        assert not video._decoder.uses_container_index and video.meta.variable_frame_rate
    assert frame_numbers(frames.data) == [7, 12]
    assert frames.timestamps.tolist() == pytest.approx([0.73, 1.2], abs=1e-3)


def test_sampled_index_checks_are_bounded_and_still_find_truncation(make_video, tmp_path, monkeypatch):
    positions = sampled_entry_positions(90_000)
    assert len(positions) <= 64 + 1025 and positions[:2] == [0, 1] and positions[-1] == 89_999
    assert sampled_entry_positions(10) == list(range(10))
    monkeypatch.setattr(mmlong.media.video.container, "INDEX_HEAD", 2)
    monkeypatch.setattr(mmlong.media.video.container, "INDEX_SAMPLES", 4)
    rng = np.random.default_rng(0)
    noisy = [np.clip(numbered_frame(i, 64, 48).astype(int) + rng.integers(-20, 20, (48, 64, 3)), 0, 255)
             for i in range(60)]
    whole = make_video("whole.mp4", frames=noisy, fps=10, faststart=True)
    info = inspect_container(whole)
    assert info.damage is None and info.indexed_constant_rate
    cut = truncate(whole, tmp_path / "cut.mp4", 0.5)
    with pytest.raises(CorruptVideoError, match="truncated: only .* of 60 frames"):
        probe(cut)
    with open_video(cut, allow_damaged=True) as video:
        assert not video._decoder.uses_container_index  # damaged: numbered by demuxing the intact part
        last = video.meta.num_frames - 1
        assert frame_numbers(video.read([last, 2]).data) == [last, 2]
