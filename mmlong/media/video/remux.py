"""Join encoded video files end to end without re-encoding (a packet copy with shifted timestamps).

Writing a long video frame by frame costs an encoder pass over every frame (an hour of 720p at 25 fps is 90,000
frames of x264). When the long video is a few short parts repeated (a haystack segment looped, one segment with
a needle in it), each distinct part is encoded once and :func:`concat_copies` copies the parts' packets into one
file in order, each part's presentation and decoding times shifted to start where the previous part ended.

The parts must share codec, frame size, pixel format and time base (they do when one writer with the same
settings produced them), and each must begin with a keyframe (every encoder starts with one), so a decoder
crossing a part boundary needs nothing from the previous part.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from mmlong.errors import ConfigError


def concat_copies(path: str | os.PathLike, parts: Sequence[str | os.PathLike]) -> tuple[int, float]:
    """Write ``path``: the video packets of ``parts`` (files, repeats allowed) one after another, copied, not
    re-encoded. Returns ``(packets written, seconds)``; a part whose stream differs from the first part's
    (codec, size, time base) or that holds no video raises :class:`~mmlong.errors.ConfigError`."""
    import av

    if not parts:
        raise ConfigError("no parts to join", str(path))
    path = str(path)
    written, offset = 0, 0
    with av.open(path, "w") as out:
        stream = None
        for part in parts:
            with av.open(str(part)) as source:
                if not source.streams.video:
                    raise ConfigError("no video stream to join", str(part))
                src = source.streams.video[0]
                if stream is None:
                    stream = out.add_stream_from_template(src)
                    first = _signature(src)
                _check_same(first, _signature(src), str(part))
                end, shift = offset, None
                step = _frame_step(src)
                for packet in source.demux(src):
                    if packet.size == 0 or packet.pts is None:  # the demuxer's flush packet
                        continue
                    if shift is None:  # the part's first packet (its keyframe) starts where the last part ended
                        shift = offset - packet.pts
                    end = max(end, packet.pts + shift + int(packet.duration or step))
                    packet.dts = (packet.dts if packet.dts is not None else packet.pts) + shift
                    packet.pts += shift
                    packet.stream = stream
                    out.mux(packet)
                    written += 1
                offset = end
        seconds = float(offset * first[-1])
    return written, seconds


def _frame_step(stream: Any) -> int:
    """One frame's duration in ``stream``'s time base (for packets that carry none); 1 when the rate is unknown."""
    rate = stream.average_rate or stream.guessed_rate
    return max(1, round(1 / (rate * stream.time_base))) if rate else 1


def _signature(stream: Any) -> tuple:
    """``(codec, width, height, pixel format, time base)`` of a video stream."""
    ctx = stream.codec_context
    return ctx.name, ctx.width, ctx.height, ctx.format.name if ctx.format else None, stream.time_base


def _check_same(first: tuple, other: tuple, where: str) -> None:
    """Refuse a part that a decoder could not read as a continuation of the first part's stream."""
    if first != other:
        raise ConfigError(f"part differs from the first ({' '.join(map(str, other))}; the first: "
                          f"{' '.join(map(str, first))})", where)
