"""Decoding: every codec, both decoders agreeing, rotation, VFR timestamps, resize on decode, streaming memory."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from mmlong.errors import CorruptVideoError, UnsupportedCodecError, VideoTooLargeError
from mmlong.media.video import open_video, probe
from mmlong.media.video.base import DecoderFailure
from mmlong.media.video.decord_decoder import DecordDecoder
from mmlong.media.video.write import numbered_frame
from tests.media import frame_numbers, truncate

CODECS = [
    ("h264.mp4", "libx264", "h264", "decord"),
    ("hevc.mp4", "libx265", "hevc", "decord"),
    ("mpeg4.mp4", "mpeg4", "mpeg4", "decord"),
    ("vp9.webm", "libvpx-vp9", "vp9", "decord"),
    ("av1.mp4", "libsvtav1", "av1", "pyav"),  # decord cannot decode AV1: auto falls back to PyAV
]


@pytest.mark.parametrize("name,encoder,codec,auto_decoder", CODECS)
def test_each_codec_probes_and_reads_the_right_frames(make_video, name, encoder, codec, auto_decoder):
    path = make_video(name, num_frames=12, fps=12, codec=encoder)
    meta = probe(path)
    assert (meta.codec, meta.decoder, meta.num_frames, meta.width, meta.height) == (codec, auto_decoder, 12, 64, 48)
    assert meta.duration == pytest.approx(1.0) and meta.fps == pytest.approx(12.0)
    decoders = ["pyav"] if codec == "av1" else ["decord", "pyav"]
    for decoder in decoders:
        with open_video(path, decoder=decoder) as video:
            frames = video.read([11, 0, 5, 5])
        assert frame_numbers(frames.data) == [11, 0, 5, 5]
        assert frames.timestamps.tolist() == pytest.approx([11 / 12, 0.0, 5 / 12, 5 / 12])
        assert frames.data.dtype.is_floating_point is False and tuple(frames.data.shape) == (4, 48, 64, 3)


def test_odd_size_is_kept_and_resized_with_aspect(make_video):
    path = make_video("odd.mp4", num_frames=6, size=(97, 61))
    assert (probe(path).width, probe(path).height) == (97, 61)
    for decoder in ("decord", "pyav"):
        with open_video(path, decoder=decoder) as video:
            assert frame_numbers(video.read([4]).data) == [4]
        with open_video(path, decoder=decoder, max_side=64) as video:
            assert video.frame_size == (64, 40)
            frames = video.read([3, 1])
        assert tuple(frames.data.shape) == (2, 40, 64, 3) and frame_numbers(frames.data) == [3, 1]


def test_sizes_decord_cannot_resize_to_fall_back_to_pyav(make_video):
    path = make_video("odd.mp4", num_frames=6, size=(97, 61))
    with pytest.raises(UnsupportedCodecError, match="decord cannot resize this video to 48x30"):
        open_video(path, decoder="decord", max_side=48)
    with open_video(path, max_side=48) as video:  # auto
        assert video.meta.decoder == "pyav" and "could not open" in video.notes[0]
        assert frame_numbers(video.read([5]).data) == [5]


def test_decoders_give_the_same_frames_on_real_footage(sample_video_path):
    indices = [0, 17, 64, 65, 131]
    with open_video(sample_video_path, decoder="decord") as a, open_video(sample_video_path, decoder="pyav") as b:
        assert a.meta.num_frames == b.meta.num_frames == 132
        full_a, full_b = a.read(indices).data.int(), b.read(indices).data.int()
    assert (full_a - full_b).abs().float().mean() < 1.0  # same YUV->RGB conversion: within rounding
    with open_video(sample_video_path, decoder="decord", max_side=160) as a, \
            open_video(sample_video_path, decoder="pyav", max_side=160) as b:
        small_a, small_b = a.read(indices).data.int(), b.read(indices).data.int()
    assert small_a.shape == (5, 90, 160, 3)
    assert (small_a - small_b).abs().float().mean() < 4.0  # two swscale resizers: within interpolation error
    # and not trivially equal: different frames differ a lot more than the decoders do
    assert (small_a[0] - small_a[4]).abs().float().mean() > 20.0


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_video_comes_back_upright(make_video, rotation):
    path = make_video(f"rot{rotation}.mp4", num_frames=6, size=(64, 48), rotation=rotation)
    meta = probe(path)
    assert (meta.rotation, meta.width, meta.height, meta.decoder) == (rotation, 64, 48, "pyav")
    with open_video(path, max_side=32) as video:
        frames = video.read([5, 2])
    assert tuple(frames.data.shape) == (2, 24, 32, 3)
    assert frame_numbers(frames.data) == [5, 2]  # the red marker is top-left: upright


def test_variable_frame_rate_timestamps_come_from_the_stream(make_video):
    times = [0.0, 0.1, 0.15, 0.5, 0.55, 0.6, 1.0, 1.5, 1.6, 2.5]
    path = make_video("vfr.mkv", times=times)
    for decoder in ("decord", "pyav"):
        meta = probe(path, decoder=decoder)
        assert meta.variable_frame_rate and meta.num_frames == 10
        assert list(meta.frame_times) == pytest.approx(times, abs=1e-3)
        with open_video(path, decoder=decoder) as video:
            frames = video.read([9, 3, 7])
        assert frames.timestamps.tolist() == pytest.approx([2.5, 0.5, 1.5], abs=1e-3)
        assert frame_numbers(frames.data) == [9, 3, 7]
    assert not probe(make_video("cfr.mkv", num_frames=10)).variable_frame_rate


def test_8k_decodes_resized_fast_or_is_refused(make_video):
    path = make_video("8k.mp4", num_frames=2, fps=2, size=(7680, 4320), preset="ultrafast")
    start = time.perf_counter()
    with pytest.raises(VideoTooLargeError, match="7680x4320.*max_side"):
        open_video(path)
    for decoder in ("decord", "pyav"):
        with open_video(path, decoder=decoder, max_side=256) as video:
            frames = video.read([1, 0])
        assert tuple(frames.data.shape) == (2, 144, 256, 3) and frame_numbers(frames.data) == [1, 0]
    assert time.perf_counter() - start < 20


def test_short_side_sets_the_shorter_side(make_video):
    path = make_video("wide.mp4", num_frames=3, size=(128, 48))
    with open_video(path, short_side=24) as video:
        assert tuple(video.read([0]).data.shape) == (1, 24, 64, 3)
    with open_video(path, short_side=96, max_side=160) as video:  # upscale, then capped by max_side
        assert video.frame_size == (160, 60)


def test_stream_yields_bounded_chunks_in_order(make_video):
    path = make_video("stream.mp4", num_frames=30)
    indices = list(range(0, 30, 2))
    for decoder in ("decord", "pyav"):
        with open_video(path, decoder=decoder) as video:
            chunks = list(video.stream(indices, chunk_size=4))
        assert [len(c) for c in chunks] == [4, 4, 4, 3]
        assert sum((frame_numbers(c.data) for c in chunks), []) == indices
        assert sum((c.indices.tolist() for c in chunks), []) == indices


def _peak_traced_bytes(path: str, count: int, decoder: str) -> int:
    with open_video(path, decoder=decoder) as video:
        tracemalloc.start()
        try:
            for chunk in video.stream(range(count), chunk_size=8):
                del chunk
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_streaming_memory_does_not_grow_with_length(make_video, decoder):
    path = make_video("long.mp4", num_frames=240, fps=24, size=(160, 120), preset="ultrafast")
    frame_bytes = 160 * 120 * 3
    short, long = _peak_traced_bytes(path, 40, decoder), _peak_traced_bytes(path, 240, decoder)
    assert long < short * 1.5 + frame_bytes  # 6x the frames, same peak: one chunk at a time
    assert long < 240 * frame_bytes / 3  # far below holding every frame


def test_truncated_file_reads_the_intact_part_when_allowed(make_video, tmp_path):
    rng = np.random.default_rng(0)
    noisy = [np.clip(numbered_frame(i, 64, 48).astype(int) + rng.integers(-20, 20, (48, 64, 3)), 0, 255)
             for i in range(60)]  # noise makes every frame weigh about the same in the file
    whole = make_video("whole.mp4", frames=noisy, fps=10, faststart=True)
    cut = truncate(whole, tmp_path / "cut.mp4", 0.5)
    with pytest.raises(CorruptVideoError, match="truncated: only .* of 60 frames.*--allow-damaged"):
        probe(cut)
    with open_video(cut, allow_damaged=True) as video:
        assert video.meta.decoder == "pyav" and 5 < video.meta.num_frames < 60
        last = video.meta.num_frames - 1
        assert frame_numbers(video.read([0, 3, last - 5]).data) == [0, 3, last - 5]


def test_auto_switches_to_pyav_when_decord_fails_mid_read(make_video, monkeypatch):
    path = make_video("flaky.mp4", num_frames=10)

    def failing_read(self, indices, deadline):
        raise DecoderFailure("simulated decode error")

    monkeypatch.setattr(DecordDecoder, "read", failing_read)
    with open_video(path) as video:
        assert video.meta.decoder == "decord"
        frames = video.read([7, 2])
        assert video.meta.decoder == "pyav" and "switched to pyav" in video.notes[-1]
    assert frame_numbers(frames.data) == [7, 2]
    with open_video(path, decoder="decord") as video, pytest.raises(CorruptVideoError, match="simulated"):
        video.read([1])


def test_out_of_range_index_is_an_index_error(make_video):
    with open_video(make_video(num_frames=5)) as video, pytest.raises(IndexError, match="5 is out of range 0..4"):
        video.read([0, 5])
