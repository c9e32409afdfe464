"""Small generated test media: numbered videos in any codec, size, rotation or frame timing, and bad files.

Every generated frame shows its frame number (:func:`mmlong.media.video.write.numbered_frame`), so a test can check
which frame a decoder returned with :func:`frame_numbers`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from mmlong.media.video.write import numbered_frame, read_frame_number, write_audio_only, write_video


def numbered_video_frames(num_frames: int, size: tuple[int, int], rotation: int = 0) -> Iterable[np.ndarray]:
    """Numbered frames of upright ``size`` (width, height), stored turned by ``-rotation`` so that a player
    applying the ``rotation`` metadata shows them upright (as a phone stores a portrait video)."""
    width, height = size
    for index in range(num_frames):
        frame = numbered_frame(index, width, height)
        yield np.ascontiguousarray(np.rot90(frame, k=-(rotation // 90))) if rotation % 360 else frame


def make_test_video(
    path: str | Path,
    frames: Iterable[Any] | None = None,
    num_frames: int = 20,
    fps: float = 10.0,
    size: tuple[int, int] = (64, 48),
    codec: str = "libx264",
    rotation: int = 0,
    times: Sequence[float] | None = None,
    pix_fmt: str | None = None,
    **options: Any,
) -> str:
    """Write a video (numbered frames unless ``frames`` is given); odd sizes use 4:4:4 chroma (x264 needs even
    sizes for 4:2:0)."""
    width, height = size
    if pix_fmt is None:
        pix_fmt = "yuv444p" if codec in ("libx264", "libx265") and (width % 2 or height % 2) else "yuv420p"
    if frames is None:
        count = len(times) if times is not None else num_frames
        frames = numbered_video_frames(count, size, rotation)
    return write_video(path, frames, fps, codec=codec, pix_fmt=pix_fmt, rotation=rotation, times=times, **options)


def frame_numbers(data: Any) -> list[int]:
    """The numbers drawn on upright frames ``[T, H, W, 3]`` (array or tensor)."""
    return [read_frame_number(frame) for frame in np.asarray(data)]


def truncate(source: str | Path, target: str | Path, fraction: float = 0.5) -> str:
    """Copy the first ``fraction`` of ``source``'s bytes to ``target`` (a download cut short)."""
    data = Path(source).read_bytes()
    Path(target).write_bytes(data[: int(len(data) * fraction)])
    return str(target)


def text_file_named_video(path: str | Path) -> str:
    Path(path).write_text("this is a shopping list, not a video\n" * 20)
    return str(path)


def audio_only(path: str | Path) -> str:
    return write_audio_only(path, seconds=0.5)


def lay_photos(frames: np.ndarray, shown: dict[str, Sequence[int]], seconds: int = 2) -> np.ndarray:
    """``frames [T, H, W, 3]`` (one a second) with each packaged photo of ``shown`` (a sample image name ->
    the seconds it starts at) letterboxed over ``seconds`` frames from each start; in place, returned."""
    from mmlong.assets.samples import sample_image
    from mmlong.benchmarks.niavh_media import fit_frame

    for photo, starts in shown.items():
        picture = fit_frame(sample_image(photo), frames.shape[2], frames.shape[1])
        for start in starts:
            frames[start: start + seconds] = picture
    return frames


def encode_one_a_second(encoder: Any, frames: np.ndarray, name: str) -> Any:
    """The tokens ``encoder`` gives ``frames [T, H, W, 3]`` shown one a second, with the video's meta (where the
    answerer reads the duration)."""
    import torch

    from mmlong.types import Frames, VideoMeta

    count = frames.shape[0]
    meta = VideoMeta(name, float(count), 1.0, count, frames.shape[2], frames.shape[1])
    encoded = encoder.encode(Frames(torch.from_numpy(frames), torch.arange(count),
                                    torch.arange(count, dtype=torch.float64), meta))
    return encoded.replace(meta={**encoded.meta, "video": meta.to_dict()})
