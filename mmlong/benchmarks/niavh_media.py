"""The pixels of a NIAVH video: needles (photos, rendered text, inserted clips) fitted to the haystack's frame,
and haystack footage decoded, varied and looped to any length. :mod:`mmlong.benchmarks.niavh_make` builds the items
and :mod:`mmlong.benchmarks.niavh_kinds` the question kinds from these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from mmlong.benchmarks.niavh_needles import video_path
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


def decode_clip(source: str, fps: float, max_side: int, start: float = 0.0, seconds: float | None = None) -> np.ndarray:
    """Frames ``[T, H, W, 3]`` of ``source`` resampled to ``fps`` between ``start`` and ``start + seconds``."""
    from mmlong.media.video import open_video

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
