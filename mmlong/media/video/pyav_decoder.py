"""The PyAV decoder: decodes every codec this FFmpeg build has (AV1 included), rotation-aware via the caller.

Opening costs the same for an hour-long video as for a short one when the container has a per-frame index at
a constant rate (mp4/mov, see :func:`mmlong.media.video.container.inspect_container`): frame ``i`` is then the one at
``first_pts + i * step``, and keyframes are looked up in the index. Every decoded frame is checked against that
grid; one that is off it raises ``DecoderFailure(stale_index=True)`` and the caller reopens with
``frame_index="demux"``. Otherwise (variable frame rate, mkv/webm, damaged files, ``frame_index="demux"``) open
demuxes the stream once (no decoding) to learn every frame's presentation time and the keyframes.

A read seeks to the keyframe before a wanted frame only when decoding forward from where it stands would be
slower, converts to RGB at the output size in one swscale step through one reused scaler (so an 8K stream
never materialises 8K RGB frames, and no scaler is set up per frame), and is bounded: a deadline per read and
a cap on consecutive undecodable packets. Small frames decode on one thread: for them thread start-up and
hand-over cost more than the decoding, most of all right after each seek.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from mmlong.errors import ConfigError
from mmlong.media.video.base import ContainerInfo, Decoder, DecoderFailure

#: Frames up to this many pixels (640x480) decode single-threaded when ``threads`` is 0.
SINGLE_THREAD_MAX_PIXELS = 640 * 480
#: Packets demuxed at open to find the first presentation time when numbering frames from the index
#: (more than any codec's reordering depth).
FIRST_PACKETS = 32
FRAME_INDEX_CHOICES = ("auto", "demux")


class PyAVDecoder(Decoder):
    """Decode with PyAV (FFmpeg's libavcodec)."""

    name = "pyav"

    @dataclass
    class Config:
        """threads: decoder threads (0 = one for frames up to 640x480, else FFmpeg picks); max_failures:
        consecutive bad packets before giving up; interpolation: swscale filter for resizing (BICUBIC, BILINEAR,
        AREA, ...); frame_index: "auto" numbers frames from a constant-rate container index when there is
        one, "demux" always reads every packet's timestamp at open."""

        threads: int = 0
        max_failures: int = 32
        interpolation: str = "BICUBIC"
        frame_index: str = "auto"

    def open(self, info: ContainerInfo, size: tuple[int, int] | None) -> None:
        from av.video.reformatter import VideoReformatter

        from mmlong.media.video.container import open_container

        if self.config.frame_index not in FRAME_INDEX_CHOICES:
            raise ConfigError(f"pyav frame_index must be one of {', '.join(FRAME_INDEX_CHOICES)}, "
                              f"got {self.config.frame_index!r}", info.path)
        self._info = info
        self._size = size
        self._container = open_container(info.path)
        self._stream = self._container.streams.video[0]
        self._grid: tuple[int, int, int] | None = None  # (first pts, step, first index timestamp)
        if self.config.frame_index == "auto" and info.indexed_constant_rate:
            self._grid = _grid_from_index(self._container, self._stream)
        if self._grid is not None:
            first_pts, step, _ = self._grid
            count = len(self._stream.index_entries)
            self._pts = first_pts + step * np.arange(count, dtype=np.int64)
            self._keyframes: list[int] = []
            self._time_base = self._stream.time_base
        else:
            self._pts, self._keyframes, self._time_base = _index_stream(info)
        threads = int(self.config.threads)
        width, height = info.width, info.height
        if threads == 0 and width * height <= SINGLE_THREAD_MAX_PIXELS:
            threads = 1
        if threads != 1:
            self._stream.thread_type = "AUTO"
        self._stream.codec_context.thread_count = threads
        self._reformatter = VideoReformatter()
        self._frames: Iterator[Any] | None = None
        self._position = -1
        self._deadline = float("inf")

    @property
    def uses_container_index(self) -> bool:
        """True when frames are numbered from the container's index (no full demux at open)."""
        return self._grid is not None

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
            rgb = self._reformatter.reformat(frame, width=width, height=height, format="rgb24",
                                             interpolation=self.config.interpolation)
            out[k] = rgb.to_ndarray()
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
        if self._grid is not None:  # the index's own (decode) time of that keyframe
            stamp = self._grid[2] + frame_index * self._grid[1]
        else:
            stamp = int(self._pts[frame_index])
        self._container.seek(stamp, stream=self._stream, backward=True, any_frame=False)
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
        if self._grid is not None:
            return self._grid_index_of(int(frame.pts))
        position = int(np.searchsorted(self._pts, frame.pts))
        nearer_before = position > 0 and frame.pts - self._pts[position - 1] < self._pts[position] - frame.pts
        if position >= len(self._pts) or nearer_before:
            position -= 1
        return max(position, 0)

    def _grid_index_of(self, pts: int) -> int:
        first_pts, step, _ = self._grid  # type: ignore[misc]
        position, offset = divmod(pts - first_pts, step)
        if offset > step // 2:
            position, offset = position + 1, offset - step
        if abs(offset) * 4 > step or not 0 <= position < len(self._pts):
            self._frames = None
            raise DecoderFailure(f"a frame at pts {pts} is off the container index's constant-rate grid "
                                 f"(first {first_pts}, step {step}, {len(self._pts)} frames)", stale_index=True)
        return int(position)

    def _keyframe_at_or_before(self, index: int) -> int:
        if self._grid is not None:
            # the index entry of the last keyframe decoded at or before frame ``index``'s time; with a
            # constant step, entry k is the k-th frame in decode order, which a keyframe shares with
            # presentation order (an open GOP's leading frames only make this earlier, never later)
            _, step, first_stamp = self._grid
            entry = self._stream.index_entries.search_timestamp(first_stamp + index * step, backward=True)
            return min(max(int(entry), 0), index)
        k = bisect.bisect_right(self._keyframes, index) - 1
        return self._keyframes[k] if k >= 0 else 0


def _grid_from_index(container: Any, stream: Any) -> tuple[int, int, int] | None:
    """(first pts, step, first index timestamp) for a stream whose index is on a constant-rate grid, or None
    when its first packets' presentation times are not on it (then the caller demuxes everything).

    The index holds decode times; reordered (B-frame) streams present frames later by a fixed delay, so the
    first presentation time is the smallest pts among the first ``FIRST_PACKETS`` packets.
    """
    import av

    entries = stream.index_entries
    first_stamp, step = entries[0].timestamp, entries[1].timestamp - entries[0].timestamp
    stamps: list[int] = []
    try:
        for packet in container.demux(stream):
            if packet.pts is not None and packet.size:
                stamps.append(int(packet.pts))
            if len(stamps) >= min(FIRST_PACKETS, len(entries)):
                break
    except av.error.FFmpegError:
        return None
    if not stamps:
        return None
    first_pts = min(stamps)
    if any((stamp - first_pts) % step for stamp in stamps):
        return None
    return first_pts, step, first_stamp


def _index_stream(info: ContainerInfo) -> tuple[np.ndarray, list[int], Any]:
    """Demux (no decoding) the whole stream: sorted pts int64 ``[N]``, keyframe frame indices, time base."""
    import av

    from mmlong.media.video.container import open_container

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
