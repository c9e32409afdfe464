"""Samplers: exact indices and timestamps, the spec grammar, VFR, windows, and hour-long videos cheaply."""

from __future__ import annotations

import time

import pytest

from mmlong.errors import ConfigError
from mmlong.media.video import open_video
from mmlong.sampling.basic import FpsSampler, SampleContext, Sampler, UniformSampler, WindowSampler, build_sampler
from mmlong.types import VideoMeta
from tests.media import frame_numbers

META = VideoMeta("v.mp4", duration=10.0, fps=10.0, num_frames=100, width=64, height=48)
VFR = VideoMeta("vfr.mp4", duration=4.0, fps=2.5, num_frames=10, width=64, height=48, variable_frame_rate=True,
                frame_times=(0.0, 0.1, 0.2, 0.3, 0.4, 2.0, 2.5, 3.0, 3.5, 3.9))


def test_uniform_picks_segment_centres():
    s = build_sampler("uniform:4").sample(META)
    assert s.indices.tolist() == [12, 37, 62, 87]
    assert s.timestamps.tolist() == pytest.approx([1.2, 3.7, 6.2, 8.7])
    assert s.indices.dtype.__str__() == "torch.int64" and str(s.timestamps.dtype) == "torch.float64"
    assert build_sampler("uniform:3").sample(META).indices.tolist() == [16, 50, 83]
    assert build_sampler("uniform:500").sample(META).indices.tolist() == list(range(100))  # all, no repeats


def test_uniform_on_variable_frame_rate_is_uniform_in_time():
    s = build_sampler("uniform:4").sample(VFR)  # centres 0.5, 1.5, 2.5, 3.5 s
    assert s.indices.tolist() == [4, 6, 8]  # 0.5 s and 1.5 s both show frame 4 (shown 0.4-2.0 s): kept once
    assert s.timestamps.tolist() == [0.4, 2.5, 3.5]


def test_fps_takes_the_frame_on_screen_every_interval():
    s = build_sampler("fps:0.5").sample(META)
    assert s.indices.tolist() == [0, 20, 40, 60, 80]
    assert s.timestamps.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert build_sampler("fps:3").sample(META).indices.tolist()[:4] == [0, 3, 6, 10]
    assert build_sampler("fps:1").sample(VFR).timestamps.tolist() == [0.0, 0.4, 2.0, 3.0]


def test_fps_over_max_frames_falls_back_to_uniform():
    capped = build_sampler("fps:2,max_frames=4").sample(META)  # 20 frames wanted, 4 allowed
    assert capped.indices.tolist() == UniformSampler(UniformSampler.Config(4)).sample(META).indices.tolist()
    assert len(build_sampler("fps:2,max_frames=20").sample(META)) == 20


def test_window_with_inner_samplers():
    s = build_sampler("window:2-4+uniform:2").sample(META)
    assert s.indices.tolist() == [25, 35] and s.timestamps.tolist() == [2.5, 3.5]
    assert build_sampler("uniform:2+window:2-4").sample(META).indices.tolist() == [25, 35]
    assert build_sampler("window:0:02-0:04+fps:1").sample(META).indices.tolist() == [20, 30]
    assert build_sampler("window:8-+fps:1").sample(META).indices.tolist() == [80, 90]  # open end
    assert build_sampler("window:2-3.5+fps:2").sample(VFR).timestamps.tolist() == [2.0, 2.5, 3.0]


def test_bad_specs_are_config_errors_that_say_how_to_fix():
    with pytest.raises(ConfigError, match="did you mean 'uniform'"):
        build_sampler("unifrom:8")
    with pytest.raises(ConfigError, match="num_frames must be >= 1"):
        build_sampler("uniform:0")
    with pytest.raises(ConfigError, match="one window and one inner"):
        build_sampler("uniform:4+fps:1")
    with pytest.raises(ConfigError, match="ends before it starts"):
        build_sampler("window:9-3")
    with pytest.raises(ConfigError, match="holds no frame of this 10.0 s video"):
        build_sampler("window:20-30").sample(META)


def test_hour_long_videos_sample_cheaply():
    ten_hours = VideoMeta("long.mp4", duration=36000.0, fps=30.0, num_frames=1_080_000, width=160, height=90)
    start = time.perf_counter()
    uniform = build_sampler("uniform:64").sample(ten_hours)
    fps = build_sampler("fps:1").sample(ten_hours)
    window = build_sampler("window:1:00:00-2:00:00+fps:0.1").sample(ten_hours)
    assert time.perf_counter() - start < 1.0
    assert uniform.indices[:2].tolist() == [8437, 25312] and len(fps) == 36000 and fps.indices[-1] == 1_079_970
    assert window.indices.tolist()[:2] == [108000, 108300] and len(window) == 360


class _LastTwoRead(Sampler):
    """A smart sampler in the style of scene/query samplers: it reads frames through ctx.source."""

    name = "test-read"

    def sample(self, meta, ctx=None):
        from mmlong.sampling.basic import Sampled

        frames = ctx.source.read(list(range(meta.num_frames)))
        self.seen = (frames.indices.tolist(), frame_numbers(frames.data), frames.timestamps.tolist())
        return Sampled.from_indices(meta, frames.indices[-2:])


def test_window_gives_smart_samplers_a_window_relative_source(make_video):
    path = make_video("w.mp4", num_frames=30, fps=10)
    window = WindowSampler(WindowSampler.Config(span="1-2"))
    window.inner = inner = _LastTwoRead()
    with open_video(path) as video:
        s = window.sample(video.meta, SampleContext(source=video))
        frames = video.read(s.indices)
    relative, drawn, times = inner.seen
    assert relative == list(range(10)) and drawn == list(range(10, 20))  # frames 10..19 lie in 1-2 s
    assert times == pytest.approx([i / 10 for i in range(10)])
    assert s.indices.tolist() == [18, 19] and frame_numbers(frames.data) == [18, 19]
    assert s.timestamps.tolist() == pytest.approx([1.8, 1.9])


def test_registry_builds_the_same_samplers():
    from mmlong.registry import SAMPLERS

    assert isinstance(SAMPLERS.from_spec("fps:1,max_frames=64"), FpsSampler)
    assert SAMPLERS.from_spec("fps:1,max_frames=64").config.max_frames == 64
    assert build_sampler("fps:1,max_frames=None").config.max_frames is None
