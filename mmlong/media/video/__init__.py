"""Video I/O: open files and read frames (:mod:`~mmlong.media.video.source`), the decoders behind it, and writing test
videos.

- :mod:`mmlong.media.video.source`: :func:`probe`, :func:`open_video`, :class:`VideoSource` (decoder choice, fallback,
  resizing, chunked reads);
- :mod:`mmlong.media.video.base`: the :class:`~mmlong.media.video.base.Decoder` interface, container facts, size
helpers;
- :mod:`mmlong.media.video.decord_decoder`, :mod:`mmlong.media.video.pyav_decoder`: the two decoder plug-ins;
- :mod:`mmlong.media.video.container`: checking and inspecting a container before decoding (PyAV);
- :mod:`mmlong.media.video.write`: writing videos and numbered frames (tests, NIAVH haystacks, ``bench decode``).

Importing this package imports neither decord nor PyAV; they load when a video is opened.
"""

from mmlong.media.video.source import DEFAULT_MAX_PIXELS, DecordDecoder, PyAVDecoder, VideoSource, open_video, probe

__all__ = ["probe", "open_video", "VideoSource", "DecordDecoder", "PyAVDecoder", "DEFAULT_MAX_PIXELS"]
