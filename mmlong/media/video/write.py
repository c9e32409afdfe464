"""Write videos with PyAV, and a numbered test pattern whose frame number can be read back after decoding.

``write_video`` is a real encoder front end (the NIAVH haystack generator and ``mmlong bench make-video`` use
it): any FFmpeg encoder in this PyAV build (``libx264``, ``libx265``, ``mpeg4``, ``libvpx-vp9``, ``libsvtav1``,
...), pixel format, quality (crf / bitrate / preset), keyframe interval, rotation metadata (a display matrix)
and variable frame rate through explicit presentation times.

>>> import numpy as np
>>> frame = numbered_frame(1234, 64, 48)
>>> frame.shape, frame.dtype, read_frame_number(frame)
((48, 64, 3), dtype('uint8'), 1234)
"""

from __future__ import annotations

import fractions
import os
from typing import Any, Iterable, Sequence

import numpy as np

from mmlong.errors import ConfigError

#: The numbered pattern is a 4 x 4 grid: the top-left cell is a red orientation marker, the other 15 cells
#: are the bits of the frame number (most significant first), light for 1 and dark for 0.
PATTERN_GRID = 4
PATTERN_BITS = PATTERN_GRID * PATTERN_GRID - 1
_MARKER = (220, 30, 30)
_ON, _OFF = 235, 20


def numbered_frame(index: int, width: int, height: int) -> np.ndarray:
    """A uint8 ``[height, width, 3]`` RGB frame showing ``index % 2**15`` as 15 light/dark cells.

    The cells are large (a quarter of each side), so the number survives lossy codecs, resizing and rotation
    (the red top-left marker tells which corner is up).
    """
    rows = (np.arange(height) * PATTERN_GRID) // height
    cols = (np.arange(width) * PATTERN_GRID) // width
    cell = rows[:, None] * PATTERN_GRID + cols[None, :]  # [H, W] cell id 0..15
    value = int(index) % (1 << PATTERN_BITS)
    bits = np.array([(value >> (PATTERN_BITS - 1 - b)) & 1 for b in range(PATTERN_BITS)], dtype=np.uint8)
    level = np.where(bits == 1, _ON, _OFF).astype(np.uint8)
    gray = np.concatenate([np.zeros(1, np.uint8), level])[cell]
    frame = np.repeat(gray[:, :, None], 3, axis=2)
    frame[cell == 0] = _MARKER
    return frame


def read_frame_number(image: np.ndarray) -> int:
    """Read back the number drawn by :func:`numbered_frame` from an upright uint8 ``[H, W, 3]`` image.

    Raises ``ValueError`` when the top-left cell is not the red marker (the image is not upright or not a
    numbered frame).
    """
    image = np.asarray(image)
    height, width = image.shape[:2]
    means = []
    for cell in range(PATTERN_GRID * PATTERN_GRID):
        r, c = divmod(cell, PATTERN_GRID)
        y0, y1 = (r * height) // PATTERN_GRID, ((r + 1) * height) // PATTERN_GRID
        x0, x1 = (c * width) // PATTERN_GRID, ((c + 1) * width) // PATTERN_GRID
        # the centre half of the cell, away from edges blurred by the codec or the resize
        ys = slice(y0 + (y1 - y0) // 4, y1 - (y1 - y0) // 4 or y1)
        xs = slice(x0 + (x1 - x0) // 4, x1 - (x1 - x0) // 4 or x1)
        means.append(image[ys, xs].reshape(-1, 3).mean(axis=0))
    red, green, _ = means[0]
    if not (red > 128 and green < 100):
        raise ValueError("the top-left cell is not the red marker: not an upright numbered frame")
    value = 0
    for mean in means[1:]:
        value = (value << 1) | int(mean.mean() > 128)
    return value


def numbered_frames(count: int, width: int, height: int) -> Iterable[np.ndarray]:
    """Frames ``0 .. count-1`` of the numbered pattern (a generator: memory stays one frame)."""
    for index in range(count):
        yield numbered_frame(index, width, height)


def _rate(fps: float | fractions.Fraction) -> fractions.Fraction:
    rate = fractions.Fraction(fps).limit_denominator(1001) if not isinstance(fps, fractions.Fraction) else fps
    if rate <= 0:
        raise ConfigError(f"fps must be positive, got {fps}")
    return rate


def write_video(
    path: str | os.PathLike,
    frames: Iterable[Any],
    fps: float | fractions.Fraction,
    codec: str = "libx264",
    *,
    pix_fmt: str = "yuv420p",
    crf: int | None = None,
    bitrate: int | None = None,
    preset: str | None = None,
    gop: int | None = None,
    rotation: int = 0,
    times: Sequence[float] | None = None,
    faststart: bool = False,
    options: dict[str, str] | None = None,
    audio: tuple[Any, int] | None = None,
) -> str:
    """Encode ``frames`` (uint8 ``[H, W, 3]`` RGB arrays or tensors, all one size) into ``path``; returns it.

    codec: an FFmpeg encoder name; the container follows the file extension. crf / bitrate / preset / gop set
    quality, speed and keyframe interval (None keeps the encoder's default). rotation: degrees counter-clockwise
    written as display-matrix metadata (what :attr:`av.VideoFrame.rotation` reads back), so players and
    :func:`mmlong.media.video.open_video` show the frames turned by it. times: one presentation time in seconds per
    frame, increasing (variable frame rate); ``fps`` is then only the nominal rate. faststart: put the mp4 index
    first (streamable; also what makes a truncated file partly readable). audio: ``(samples, sample_rate)``,
    float32 mono samples in ``[-1, 1]``, written as an AAC track beside the video.
    """
    import av

    path = str(path)
    rate = _rate(fps)
    try:
        av.codec.Codec(codec, "w")
    except Exception as err:
        raise ConfigError(f"encoder {codec!r} is not in this FFmpeg build ({err}); try libx264, mpeg4 or libvpx-vp9",
                          path) from err
    container_options = {"movflags": "faststart"} if faststart else {}
    time_base = fractions.Fraction(1, 1000) if times is not None else 1 / rate
    written = 0
    audio_stream = None
    with av.open(path, "w", options=container_options) as container:
        stream = None
        for frame_array in frames:
            array = np.ascontiguousarray(np.asarray(frame_array, dtype=np.uint8))
            if array.ndim != 3 or array.shape[2] != 3:
                raise ConfigError(f"frame {written} must be [H, W, 3] uint8, got shape {array.shape}", path)
            if stream is None:
                stream = _add_stream(container, codec, rate, array.shape[1], array.shape[0], pix_fmt,
                                     crf, bitrate, preset, gop, rotation, time_base, options)
                audio_stream = container.add_stream("aac", rate=int(audio[1]), layout="mono") if audio else None
            elif (array.shape[1], array.shape[0]) != (stream.width, stream.height):
                raise ConfigError(f"frame {written} is {array.shape[1]}x{array.shape[0]}, the first was "
                                  f"{stream.width}x{stream.height}", path)
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            if times is not None:
                if written >= len(times):
                    raise ConfigError(f"more frames than times ({len(times)})", path)
                frame.pts = int(round(float(times[written]) / time_base))
            else:
                frame.pts = written
            frame.time_base = time_base
            container.mux(stream.encode(frame))
            written += 1
        if stream is None:
            raise ConfigError("no frames to write", path)
        container.mux(stream.encode(None))
        if audio_stream is not None:
            _write_audio(container, audio_stream, np.asarray(audio[0], dtype=np.float32).reshape(-1), int(audio[1]))
    return path


def _write_audio(container: Any, stream: Any, samples: np.ndarray, sample_rate: int, block: int = 1 << 15) -> None:
    """Encode mono float32 ``samples`` into the audio ``stream`` in blocks, then flush it."""
    import av

    for start in range(0, len(samples), block):
        part = np.ascontiguousarray(np.clip(samples[start:start + block], -1.0, 1.0))[None, :]
        frame = av.AudioFrame.from_ndarray(part, format="flt", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _add_stream(container: Any, codec: str, rate: fractions.Fraction, width: int, height: int, pix_fmt: str,
                crf: int | None, bitrate: int | None, preset: str | None, gop: int | None, rotation: int,
                time_base: fractions.Fraction, options: dict[str, str] | None) -> Any:
    stream = container.add_stream(codec, rate=rate)
    stream.width, stream.height = width, height
    stream.pix_fmt = pix_fmt
    stream.time_base = time_base
    stream.codec_context.time_base = time_base
    opts = dict(options or {})
    if crf is not None:
        opts["crf"] = str(crf)
    if preset is not None:
        opts["preset"] = preset
    if gop is not None:
        stream.codec_context.gop_size = int(gop)
    if bitrate is not None:
        stream.bit_rate = int(bitrate)
    stream.options = opts
    if rotation % 360:
        stream.set_display_rotation(int(rotation) % 360)
    return stream


def write_audio_only(path: str | os.PathLike, seconds: float = 1.0, sample_rate: int = 16000,
                     codec: str = "aac", frequency: float = 440.0) -> str:
    """A container with one audio stream (a sine tone) and no video stream; returns ``path``."""
    import av

    path = str(path)
    t = np.arange(int(seconds * sample_rate), dtype=np.float32) / sample_rate
    samples = (0.3 * np.sin(2 * np.pi * frequency * t))[None, :].astype(np.float32)
    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=sample_rate)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def parse_size(text: str) -> tuple[int, int]:
    """``"160x90"`` -> ``(160, 90)`` (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise ConfigError(f"size must be WIDTHxHEIGHT like 160x90, got {text!r}") from err
    if width <= 0 or height <= 0:
        raise ConfigError(f"size must be positive, got {text!r}")
    return width, height

