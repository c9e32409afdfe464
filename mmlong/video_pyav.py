"""The PyAV decoder: decodes every codec this FFmpeg build has (AV1 included), rotation-aware via the caller.

At open it demuxes the stream once (no decoding) to learn every frame's presentation time and the keyframes.
A read seeks to the keyframe before a wanted frame only when decoding forward from where it stands would be
slower, converts to RGB at the output size in one swscale step (so an 8K stream never materialises 8K RGB
frames), and is bounded: a deadline per read and a cap on consecutive undecodable packets.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from mmlong.video_base import ContainerInfo, Decoder, DecoderFailure


class PyAVDecoder(Decoder):
    """Decode with PyAV (FFmpeg's libavcodec)."""

    name = "pyav"

    @dataclass
    class Config:
        """threads: decoder threads (0 = FFmpeg picks); max_failures: consecutive bad packets before giving up;
        interpolation: swscale filter for resizing (BICUBIC, BILINEAR, AREA, ...)."""

        threads: int = 0
        max_failures: int = 32
        interpolation: str = "BICUBIC"

    def open(self, info: ContainerInfo, size: tuple[int, int] | None) -> None:
        from mmlong.video_inspect import open_container

        self._info = info
        self._size = size
        self._pts, self._keyframes, self._time_base = _index_stream(info)
        self._container = open_container(info.path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._stream.codec_context.thread_count = int(self.config.threads)
        self._frames: Iterator[Any] | None = None
        self._position = -1
        self._deadline = float("inf")

    def frame_times(self) -> np.ndarray:
        if len(self._pts) == 0:
            return np.zeros(0, dtype=np.float64)
        return (self._pts - self._pts[0]).astype(np.float64) * float(self._time_base)

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()
            self._container = None

    # ------------------------------------------------------------------ reading
    def read(self, indices: np.ndarray, deadline: float) -> np.ndarray:
        self._deadline = deadline
        width, height = self._size or (self._info.width, self._info.height)
        out = np.empty((len(indices), height, width, 3), dtype=np.uint8)
        for k, target in enumerate(indices.tolist()):
            frame = self._decode_to(int(target))
            out[k] = frame.to_ndarray(width=width, height=height, format="rgb24",
                                      interpolation=self.config.interpolation)
        return out

    def _decode_to(self, target: int) -> Any:
        """The decoded frame ``target``, decoding forward or seeking first, whichever is cheaper."""
        keyframe = self._keyframe_at_or_before(target)
        if self._frames is None or target <= self._position or keyframe > self._position:
            self._seek(keyframe)
        attempts = 0
        while True:
            for frame in self._frames:
                index = self._index_of(frame)
                self._position = index
                if index == target:
                    return frame
                if index > target:
                    break
            else:
                self._frames = None
                raise DecoderFailure(f"frame {target} could not be decoded (the stream ended or is damaged "
                                     f"after frame {self._position})")
            # landed past the target: the seek went too far (pts vs dts), so start from an earlier keyframe
            attempts += 1
            if attempts > 3:
                raise DecoderFailure(f"frame {target} could not be reached by seeking")
            keyframe = self._keyframe_at_or_before(max(0, keyframe - 1)) if keyframe > 0 else 0
            self._seek(keyframe if attempts < 3 else 0)

    def _seek(self, frame_index: int) -> None:
        self._container.seek(int(self._pts[frame_index]), stream=self._stream, backward=True, any_frame=False)
        self._frames = self._decoded_frames()
        self._position = -1

    def _decoded_frames(self) -> Iterator[Any]:
        """Frames from the current position; skips up to ``max_failures`` bad packets in a row; checks the deadline."""
        import av

        failures = 0
        packets = self._container.demux(self._stream)
        while True:
            if time.monotonic() > self._deadline:
                raise DecoderFailure("decoding took longer than the read deadline; the stream is damaged or too slow")
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError:
                return  # a truncated container: nothing more can be read
            try:
                frames = packet.decode()
            except av.error.FFmpegError as err:
                failures += 1
                if failures > self.config.max_failures:
                    raise DecoderFailure(f"{failures} packets in a row could not be decoded ({err})") from err
                continue
            failures = 0
            yield from frames

    def _index_of(self, frame: Any) -> int:
        if frame.pts is None:
            return self._position + 1
        position = int(np.searchsorted(self._pts, frame.pts))
        if position >= len(self._pts) or (position > 0 and frame.pts - self._pts[position - 1] < self._pts[position] - frame.pts):
            position -= 1
        return max(position, 0)

    def _keyframe_at_or_before(self, index: int) -> int:
        k = bisect.bisect_right(self._keyframes, index) - 1
        return self._keyframes[k] if k >= 0 else 0


def _index_stream(info: ContainerInfo) -> tuple[np.ndarray, list[int], Any]:
    """Demux (no decoding) the whole stream: sorted pts int64 ``[N]``, keyframe frame indices, time base."""
    import av

    from mmlong.video_inspect import open_container

    container = open_container(info.path)
    try:
        stream = container.streams.video[0]
        pts: list[int] = []
        key_pts: list[int] = []
        try:
            for packet in container.demux(stream):
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is None or packet.size == 0:
                    continue
                pts.append(stamp)
                if packet.is_keyframe:
                    key_pts.append(stamp)
        except av.error.FFmpegError:
            pass  # truncated: keep the packets read so far
        time_base = stream.time_base
    finally:
        container.close()
    if info.readable_frames is not None:
        pts = pts[: info.readable_frames]
    order = np.unique(np.asarray(pts, dtype=np.int64))
    keyframes = sorted(set(np.searchsorted(order, np.asarray(key_pts, dtype=np.int64)).tolist()) | {0})
    keyframes = [k for k in keyframes if k < len(order)] or [0]
    return order, keyframes, time_base
