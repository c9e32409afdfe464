"""The pixels of a NIAVH video: needles (photos, rendered text, inserted clips) fitted to the haystack's frame,
and haystack footage decoded, varied and looped to any length. :mod:`mmlong.benchmarks.niavh_make` builds the items
and :mod:`mmlong.benchmarks.niavh_kinds` the question kinds from these.

Footage can also be made from a still photo: the source ``pan:IMAGE`` (an image file, or a scikit-image sample
name such as ``brick``) is a slow camera pan and zoom across it (the "Ken Burns effect"), :func:`pan_clip`:
a 4:3 window that starts on the whole image and, over ``PAN_SECONDS``, eases to 60 % of that size while its
centre drifts from the lower left to the upper right. It is used wherever a video source is (haystacks,
``--footage``, clip needles) and looped with variations like real footage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from mmlong.benchmarks.niavh_needles import PAN_PREFIX, video_path
from mmlong.errors import ConfigError


@dataclass(frozen=True)
class Needle:
    """kind: image | text | clip | speech; source: an image/video path or sample name (the word itself for text
    and speech);
    label: the answer as an option; synonyms: other answers an open reply may give."""

    kind: str
    source: str
    label: str
    synonyms: tuple[str, ...] = ()

    @property
    def references(self) -> list[str]:
        return [self.label, *self.synonyms]


def fit_frame(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Letterbox an RGB ``[H, W, 3]`` uint8 image into ``[height, width, 3]`` (aspect kept, black bars)."""
    from PIL import Image

    pil = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    scale = min(width / pil.width, height / pil.height)
    size = (max(1, round(pil.width * scale)), max(1, round(pil.height * scale)))
    canvas = Image.new("RGB", (width, height))
    canvas.paste(pil.resize(size, Image.BILINEAR), ((width - size[0]) // 2, (height - size[1]) // 2))
    return np.asarray(canvas)


#: how long one pass of a pan across a still image lasts, and how far it zooms in (the window's final share)
PAN_SECONDS = 20.0
PAN_ZOOM = 0.6
PAN_ASPECT = 4 / 3


def pan_frames(image: np.ndarray, num_frames: int, max_side: int, zoom: float = PAN_ZOOM,
               aspect: float = PAN_ASPECT) -> np.ndarray:
    """A pan and zoom across ``image [H, W, 3]``: ``[num_frames, h, w, 3]`` uint8 with ``w = max_side`` (even)
    and ``h = w / aspect`` (even).

    The first window is the largest ``aspect`` box inside the image, placed 20 % of the way across the room it
    leaves free horizontally and 70 % of the way down; the last is that box scaled by ``zoom``, placed 80 %
    across and 30 % down. Frame ``t`` shows the window between them at ``e = (1 - cos(pi t / (T - 1))) / 2``
    (eased; corners interpolated, so its centre moves steadily right and up and it stays inside the image),
    resampled bilinearly at sub-pixel positions, so the motion is smooth.
    """
    from PIL import Image

    if num_frames < 1 or not 0 < zoom <= 1:
        raise ValueError(f"a pan needs at least one frame and a zoom in (0, 1], got {num_frames}, {zoom}")
    pil = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    width = max(2, int(max_side) - int(max_side) % 2)
    height = max(2, round(width / aspect / 2) * 2)
    box_w = min(pil.width, pil.height * aspect)
    box_h = box_w / aspect
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    first = np.array([(pil.width - box_w) * 0.2, (pil.height - box_h) * 0.7, box_w, box_h])  # x0, y0, w, h
    last = np.array([(pil.width - box_w * zoom) * 0.8, (pil.height - box_h * zoom) * 0.3, box_w * zoom,
                     box_h * zoom])
    for t in range(num_frames):
        ease = (1 - np.cos(np.pi * t / max(1, num_frames - 1))) / 2
        x0, y0, w, h = (1 - ease) * first + ease * last
        frames[t] = np.asarray(pil.resize((width, height), Image.BILINEAR, box=(x0, y0, x0 + w, y0 + h)))
    return frames


def pan_clip(source: str, fps: float, max_side: int, seconds: float = PAN_SECONDS) -> np.ndarray:
    """``pan:IMAGE`` as footage: ``[round(seconds * fps), h, w, 3]`` frames of :func:`pan_frames` (``w`` =
    ``max_side``, 4:3). IMAGE is an image file or a scikit-image sample name (``brick``, ``grass``, ...)."""
    from mmlong.assets.samples import sample_images

    name = source[len(PAN_PREFIX):] if source.startswith(PAN_PREFIX) else source
    if not Path(name).expanduser().is_file() and name not in sample_images():
        raise ConfigError(f"no such image to pan across (an image file, or a sample image: "
                          f"{', '.join(sample_images())})", name)
    return pan_frames(load_image(name), max(2, round(seconds * fps)), max_side)


def decode_clip(source: str, fps: float, max_side: int, start: float = 0.0, seconds: float | None = None) -> np.ndarray:
    """Frames ``[T, H, W, 3]`` of ``source`` resampled to ``fps`` between ``start`` and ``start + seconds``
    (``pan:IMAGE``: the pan across a still, :func:`pan_clip`)."""
    from mmlong.media.video import open_video

    if source.startswith(PAN_PREFIX):
        clip = pan_clip(source, fps, max_side)
        first = round(max(0.0, start) * fps)
        return clip[first:] if seconds is None else clip[first:first + max(1, round(seconds * fps))]

    with open_video(video_path(source), max_side=max_side) as video:
        meta = video.meta
        end = meta.duration if seconds is None else min(meta.duration, start + seconds)
        times = np.arange(max(0.0, start), end, 1.0 / fps)
        indices = np.unique(np.clip(np.round(times * meta.fps), 0, meta.num_frames - 1).astype(np.int64))
        import torch

        chunks = [f.data.numpy() for f in video.stream(torch.from_numpy(indices), chunk_size=64)]
    if not chunks:
        raise ConfigError("no frames could be read", source)
    return np.concatenate(chunks)


def vary_clip(frames: np.ndarray, k: int) -> np.ndarray:
    """The k-th variation of a clip, so a looped haystack does not repeat itself exactly."""
    kind = k % 6
    if kind == 1:
        return frames[:, :, ::-1]
    if kind == 2:
        return frames[..., [2, 0, 1]]  # colours rotated
    if kind == 3:
        return np.repeat(frames, 2, axis=0)  # half speed
    if kind == 4:
        return frames[::2]  # double speed
    if kind == 5:
        return frames[::-1]
    return frames


def build_haystack(clips: Sequence[np.ndarray], num_frames: int) -> np.ndarray:
    """Loop the clips with variations until ``num_frames`` frames ``[num_frames, H, W, 3]``."""
    parts, total, k = [], 0, 0
    while total < num_frames:
        part = vary_clip(clips[k % len(clips)], k // len(clips))  # each pass over the clips varies them anew
        parts.append(part)
        total += len(part)
        k += 1
    return np.ascontiguousarray(np.concatenate(parts)[:num_frames])


def render_text(sentence: str, width: int, height: int) -> np.ndarray:
    """A frame with ``sentence`` in dark letters on a light card, wrapped to fit ``[height, width, 3]``."""
    from PIL import Image, ImageDraw, ImageFont

    card = Image.new("RGB", (width, height), (245, 240, 225))
    draw = ImageDraw.Draw(card)
    size = max(8, height // 5)
    words = sentence.split()
    while True:
        font = ImageFont.load_default(size=size)
        lines, line = [], ""
        for word in words:
            trial = f"{line} {word}".strip()
            if draw.textlength(trial, font=font) <= width * 0.92 or not line:
                line = trial
            else:
                lines.append(line)
                line = word
        lines.append(line)
        if (size * 1.2 * len(lines) <= height * 0.9 and all(draw.textlength(text, font=font) <= width * 0.95
                                                            for text in lines)) or size <= 8:
            break
        size -= 1
    y = (height - size * 1.2 * len(lines)) / 2
    for text in lines:
        draw.text(((width - draw.textlength(text, font=font)) / 2, y), text, fill=(20, 20, 20), font=font)
        y += size * 1.2
    return np.asarray(card)


def load_image(source: str) -> np.ndarray:
    path = Path(source).expanduser()
    if path.is_file():
        from PIL import Image, UnidentifiedImageError

        try:
            return np.asarray(Image.open(path).convert("RGB"))
        except (UnidentifiedImageError, OSError) as err:
            raise ConfigError(f"not a readable image ({err})", str(path)) from err
    from mmlong.assets.samples import sample_image

    image = sample_image(source)
    if isinstance(image, (str, Path)):
        return load_image(str(image))
    image = np.asarray(image)
    return np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image


def needle_frames(needle: Needle, count: int, width: int, height: int, fps: float, max_side: int) -> np.ndarray:
    """The needle as ``count`` frames ``[count, height, width, 3]``."""
    if needle.kind == "image":
        frame = fit_frame(load_image(needle.source), width, height)
        return np.repeat(frame[None], count, axis=0)
    if needle.kind == "text":
        frame = render_text(f"The secret word is {needle.source}.", width, height)
        return np.repeat(frame[None], count, axis=0)
    clip = decode_clip(needle.source, fps, max_side)
    start = max(0, (len(clip) - count) // 2)
    clip = clip[start:start + count]
    clip = np.concatenate([clip] * (-(-count // len(clip))))[:count]
    return np.stack([fit_frame(f, width, height) for f in clip])


# ---------------------------------------------------------------------------------------------- the set
