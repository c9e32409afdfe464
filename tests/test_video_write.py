"""write_video: codecs, VFR times, rotation metadata and bad arguments; the numbered test pattern; sample media."""

from __future__ import annotations

import av
import numpy as np
import pytest

from mmlong.assets.samples import sample_image, sample_images, sample_video, sample_videos
from mmlong.errors import ConfigError, MmlongError
from mmlong.media.video.write import numbered_frame, read_frame_number, write_video


@pytest.mark.parametrize("index", [0, 1, 2, 1234, 32767])
@pytest.mark.parametrize("size", [(64, 48), (97, 61), (8, 8)])
def test_numbered_frame_round_trips(index, size):
    assert read_frame_number(numbered_frame(index, *size)) == index


def test_upside_down_frame_is_rejected():
    with pytest.raises(ValueError, match="not the red marker"):
        read_frame_number(numbered_frame(5, 64, 48)[::-1])


def test_write_video_times_rotation_and_quality(tmp_path):
    frames = [numbered_frame(i, 64, 48) for i in range(4)]
    vfr = write_video(tmp_path / "v.mkv", frames, 10, times=[0.0, 0.25, 0.3, 1.5])
    with av.open(vfr) as c:
        decoded = list(c.decode(video=0))
    assert [float(f.time) for f in decoded] == pytest.approx([0.0, 0.25, 0.3, 1.5])
    rotated = write_video(tmp_path / "r.mp4", frames, 10, rotation=270, crf=10, gop=2, preset="ultrafast")
    with av.open(rotated) as c:
        first = next(c.decode(video=0))
    assert first.rotation in (270, -90) and (first.width, first.height) == (64, 48)


def test_write_video_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="encoder 'no-such-codec' is not in this FFmpeg build"):
        write_video(tmp_path / "x.mp4", [numbered_frame(0, 64, 48)], 10, codec="no-such-codec")
    with pytest.raises(ConfigError, match="frame 1 is 32x32, the first was 64x48"):
        write_video(tmp_path / "y.mp4", [numbered_frame(0, 64, 48), numbered_frame(1, 32, 32)], 10)
    with pytest.raises(ConfigError, match="no frames"):
        write_video(tmp_path / "z.mp4", [], 10)


def test_sample_media_is_real_and_offline():
    pytest.importorskip("skimage")
    videos = sample_videos()
    assert {"bigbuckbunny", "bikes", "carphone_pristine"} <= set(videos)
    assert sample_video() == videos["bigbuckbunny"]
    with pytest.raises(MmlongError, match="did you mean 'bikes'"):
        sample_video("bike")
    for name in sample_images():
        image = sample_image(name)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
    assert sample_image("chelsea").shape == (300, 451, 3)
    assert np.array_equal(sample_image("cat"), sample_image("chelsea"))
