"""The coverage scan encodes a scanned frame only when it differs from the last encoded one (scan_reuse)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmlong.sampling.basic import FpsSampler
from mmlong.sampling.coverage import repeats, scan_features, scan_thumbnails


class CountingEncoder:
    """EfficientNet-Lite0's pooled features, counting the frames it encodes."""

    def __init__(self, encoder):
        self.encoder, self.frames = encoder, 0

    def pooled_features(self, frames, size):
        self.frames += len(frames)
        return self.encoder.pooled_features(frames, size)


@pytest.fixture(scope="module")
def stills_video(tmp_path_factory):
    from skimage import data

    from mmlong.benchmarks.niavh_media import fit_frame
    from mmlong.media.video.write import write_video

    photos = {name: fit_frame(getattr(data, name)(), 128, 96) for name in ("chelsea", "coffee", "astronaut")}
    order = ["chelsea"] * 3 + ["coffee"] * 2 + ["chelsea"] + ["astronaut"] * 2  # 8 s at 1 fps, 4 shots
    path = tmp_path_factory.mktemp("reuse") / "stills.mp4"
    write_video(path, [photos[name] for name in order], 1, crf=0)  # lossless: a held photo decodes identically
    return path


def test_reused_features_equal_encoding_every_frame_and_only_changes_are_encoded(stills_video):
    from mmlong.encoders.efficientnet import EfficientNetLite0
    from mmlong.media.video import open_video

    encoder = EfficientNetLite0()
    with open_video(stills_video) as source:
        scan = FpsSampler(FpsSampler.Config(fps=1.0)).sample(source.meta)
        assert len(scan) == 8
        every = CountingEncoder(encoder)
        full = scan_features(source, every, scan, 96, batch_size=3)
        reusing = CountingEncoder(encoder)
        reused = scan_features(source, reusing, scan, 96, batch_size=3, reuse=2.0)
    assert (every.frames, reusing.frames) == (8, 4)  # chelsea, coffee, chelsea again, astronaut
    assert reused.shape == full.shape == (8, 1280)
    torch.testing.assert_close(reused, full, rtol=1e-4, atol=1e-4)  # held frames: the same features
    assert float((full[3] - full[0]).abs().max()) > 0.1  # a new shot really has other features


def test_one_different_frame_among_held_ones_is_encoded():
    thumbs = torch.zeros(6, 3, 16, 16)
    thumbs[3, :, 2, 5] = 40.0  # a small bright thing for one frame, in one cell
    thumbs[4] += 1.5  # compression flicker under the tolerance
    assert repeats(thumbs, None, 2.0)[0] == [0, 0, 0, 3, 4, 4]
    assert repeats(thumbs, None, 0.0)[0] == list(range(6))
    frames = torch.from_numpy(np.full((2, 48, 64, 3), 200, dtype=np.uint8))
    frames[1, :24] = 0  # the top half dark
    thumb = scan_thumbnails(frames)
    assert thumb.shape == (2, 3, 16, 16) and float(thumb[0].min()) == 200.0
    assert float(thumb[1, :, :7].max()) < 1.0 and float(thumb[1, :, 9:].min()) > 199.0


def test_brief_rarity_in_blocks_equals_the_whole_similarity_matrix():
    from mmlong.scoring.frames import brief_rarity

    generator = torch.Generator().manual_seed(0)
    features = torch.randn(203, 24, generator=generator)
    features[100] = features[40] + 0.01  # a twin far away: not rare
    times = torch.arange(203, dtype=torch.float64) * 0.5
    times[150:] += 7.0  # a gap, so every block sees uneven times
    # the definition, on the whole [L, L] matrix at once
    unit = torch.nn.functional.normalize(features.double(), dim=-1)
    far = (times[:, None] - times[None, :]).abs() > 2.5
    nearest = torch.where(far, unit @ unit.T, torch.full((203, 203), -2.0, dtype=torch.float64)).max(dim=1).values
    expected = torch.where(far.any(dim=1), 1.0 - nearest, torch.zeros_like(nearest))
    for block in (1, 16, 64, 256):
        torch.testing.assert_close(brief_rarity(features, times, 2.5, block=block), expected, rtol=0, atol=1e-12)
    assert float(expected[40]) < 0.01 < float(expected[41])
    lone = brief_rarity(features[:3], torch.tensor([0.0, 1.0, 2.0]), 2.5, block=2)
    assert lone.tolist() == [0.0, 0.0, 0.0]  # no moment is more than 2.5 s from another
