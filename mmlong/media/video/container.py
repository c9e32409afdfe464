"""Read what a container says about its video stream (PyAV), and turn every way a file can be bad into a
:class:`~mmlong.errors.VideoError` with a one-line reason and a fix.

Runs before any decoder opens, so a missing, empty, non-video, audio-only, image, truncated or undecodable
file fails here, quickly, with the same message whichever decoder was asked for. Work is bounded: at most
``MAX_PROBE_PACKETS`` packets are read to decode the first frame, and at most ``INDEX_HEAD + INDEX_SAMPLES + 1``
index entries are looked at in an intact file, so an hour-long video inspects as fast as a short one.
"""

from __future__ import annotations

import os
import time
from typing import Any

from mmlong.errors import (
    CorruptVideoError,
    EmptyVideoError,
    NotAVideoError,
    NoVideoStreamError,
    UnsupportedCodecError,
    VideoError,
    VideoNotFoundError,
)
from mmlong.media.video.base import ContainerInfo

MAX_PROBE_PACKETS = 400
PROBE_DEADLINE_S = 20.0
#: Index entries checked at the start of the stream and spread evenly over it (see ``sampled_entry_positions``).
INDEX_HEAD = 64
INDEX_SAMPLES = 1024

# (offset, bytes) that mark a video container; a file that starts like one but does not open is damaged.
_CONTAINER_MAGIC = (
    (4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"free"), (4, b"wide"), (4, b"skip"),
    (0, b"\x1a\x45\xdf\xa3"), (0, b"RIFF"), (0, b"FLV"), (0, b"OggS"), (0, b"\x00\x00\x01\xba"),
)
_MP4_FORMATS = ("mov", "mp4")


def check_file(path: str) -> int:
    """Raise for a path that is not a readable, non-empty regular file; return its size in bytes."""
    if not os.path.exists(path):
        raise VideoNotFoundError("no such file; check the path", path)
    if os.path.isdir(path):
        raise NotAVideoError("is a directory, not a video file", path)
    if not os.path.isfile(path):
        raise NotAVideoError("not a regular file (pipes and devices cannot be seeked); save it to a file first", path)
    if not os.access(path, os.R_OK):
        raise VideoError("permission denied; check the file's permissions", path)
    size = os.path.getsize(path)
    if size == 0:
        raise EmptyVideoError("the file is empty (0 bytes)", path)
    return size


def _looks_like_container(path: str) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(16)
    return any(head[offset:offset + len(magic)] == magic for offset, magic in _CONTAINER_MAGIC)


def open_container(path: str) -> Any:
    """``av.open`` with its failures classified (corrupt container vs not a video at all)."""
    import av

    try:
        return av.open(path, metadata_errors="ignore")
    except av.error.FFmpegError as err:
        reason = getattr(err, "strerror", None) or str(err)
        if _looks_like_container(path):
            raise CorruptVideoError(f"damaged or truncated video: FFmpeg cannot read the container ({reason}); "
                                    "re-download or re-encode it", path) from err
        raise NotAVideoError(f"not a video file: FFmpeg does not recognise its format ({reason})", path) from err


def inspect_container(path: str) -> ContainerInfo:
    """Facts about the first video stream of ``path``; raises a :class:`VideoError` subclass for bad input."""
    path = os.fspath(path)
    file_size = check_file(path)
    container = open_container(path)
    try:
        return _inspect(container, path, file_size)
    finally:
        container.close()


def _inspect(container: Any, path: str, file_size: int) -> ContainerInfo:
    fmt = container.format.name or ""
    if fmt == "image2" or fmt.endswith("_pipe"):
        raise NotAVideoError(f"is a still image ({fmt.removesuffix('_pipe')}), not a video", path)
    if not container.streams.video:
        audio = len(container.streams.audio)
        what = f"{audio} audio stream(s)" if audio else "no audio either"
        raise NoVideoStreamError(f"has no video stream ({what}); mmlong needs a file with a video track", path)
    stream = container.streams.video[0]
    try:
        codec = stream.codec_context.codec
        codec_name = getattr(codec, "canonical_name", None) or codec.name
    except Exception as err:  # PyAV raises several types when no decoder exists for the stream
        raise UnsupportedCodecError(f"no decoder for this video codec in FFmpeg ({err})", path) from err
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    duration = 0.0
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000
    damage, readable, constant_rate = _index_facts(container, stream, fmt, file_size)
    try:
        rotation = _first_frame_rotation(container, stream, path, codec_name)
    except CorruptVideoError as err:
        if damage:
            raise CorruptVideoError(f"{damage}, and none of them decodes; re-download or re-encode it", path) from err
        raise
    return ContainerInfo(
        path=path,
        codec=codec_name,
        width=int(stream.codec_context.width),
        height=int(stream.codec_context.height),
        fps=float(rate) if rate else 0.0,
        declared_frames=int(stream.frames or 0),
        duration=duration,
        rotation=rotation,
        has_audio=bool(container.streams.audio),
        stream_index=int(stream.index),
        container_format=fmt,
        damage=damage,
        readable_frames=readable,
        indexed_constant_rate=constant_rate,
    )


def _first_frame_rotation(container: Any, stream: Any, path: str, codec_name: str) -> int:
    """Decode the first frame (bounded) to learn its display rotation and prove the stream decodes."""
    import av

    deadline = time.monotonic() + PROBE_DEADLINE_S
    packets = failures = 0
    last_error: Exception | None = None
    try:
        for packet in container.demux(stream):
            packets += 1
            if packets > MAX_PROBE_PACKETS or time.monotonic() > deadline:
                break
            try:
                frames = packet.decode()
            except (av.error.DecoderNotFoundError, av.error.PatchWelcomeError) as err:
                raise UnsupportedCodecError(f"FFmpeg cannot decode {codec_name} video ({err})", path) from err
            except av.error.FFmpegError as err:
                failures += 1
                last_error = err
                continue
            for frame in frames:
                return int(round(getattr(frame, "rotation", 0) / 90.0)) * 90 % 360
    except av.error.FFmpegError as err:
        last_error = err
    if packets == 0:
        raise EmptyVideoError("the video stream has no frames", path)
    detail = f" ({last_error})" if last_error else ""
    raise CorruptVideoError(f"no frame could be decoded from the first {packets} packets{detail}; "
                            "the file is damaged or truncated", path)


def sampled_entry_positions(total: int) -> list[int]:
    """Positions of the index entries checked instead of all of them: the first ``INDEX_HEAD`` and
    ``INDEX_SAMPLES + 1`` evenly spaced ones (first and last included), sorted. Every entry when there are few."""
    if total <= INDEX_HEAD + INDEX_SAMPLES + 1:
        return list(range(total))
    spaced = {k * (total - 1) // INDEX_SAMPLES for k in range(INDEX_SAMPLES + 1)}
    return sorted(spaced | set(range(INDEX_HEAD)))


def _index_facts(container: Any, stream: Any, fmt: str, file_size: int) -> tuple[str | None, int | None, bool]:
    """For mp4/mov, whose index lists every sample (byte range, decode time): (damage, readable frames,
    constant-rate index).

    Cost does not grow with length: sample byte positions increase through a well-formed file, so checking
    a bounded sample of entries (the last included) settles truncation, and the full count runs only when
    something is past the end of the file or out of order. The index counts as constant-rate when it has
    one entry per declared frame, none marked discarded (edit lists), and every sampled decode time lies on
    the grid ``first + k * step``; :mod:`mmlong.media.video.pyav_decoder` still checks each decoded frame against it.
    """
    if not any(name in fmt for name in _MP4_FORMATS):
        return None, None, False
    entries = getattr(stream, "index_entries", None)  # PyAV >= 16; older PyAV (15.x) has no index API
    if entries is None:
        return None, None, False
    total = len(entries)
    if total == 0:
        return None, None, False
    sampled = [(k, entries[k]) for k in sampled_entry_positions(total)]
    positions = [e.pos for _, e in sampled]
    in_order = all(a <= b for a, b in zip(positions, positions[1:]))
    if not in_order or any(e.pos + e.size > file_size for _, e in sampled):
        readable = sum(1 for e in entries if e.pos + e.size <= file_size)
        if readable < total:
            return f"truncated: only {readable} of {total} frames are in the file", readable, False
    return None, None, _on_constant_grid(sampled, total, int(stream.frames or 0))


def _on_constant_grid(sampled: list[tuple[int, Any]], total: int, declared: int) -> bool:
    if total < 2 or total != declared:
        return False
    first = sampled[0][1].timestamp
    step = sampled[1][1].timestamp - first  # sampled starts with entries 0 and 1
    if step <= 0:
        return False
    return all(e.timestamp == first + k * step and not e.is_discard for k, e in sampled)
