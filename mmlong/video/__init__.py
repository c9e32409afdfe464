"""Video I/O: open files and read frames (:mod:`~mmlong.video.source`), the decoders behind it, and writing test videos.

- :mod:`mmlong.video.source`: :func:`probe`, :func:`open_video`, :class:`VideoSource` (decoder choice, fallback,
  resizing, chunked reads);
- :mod:`mmlong.video.base`: the :class:`~mmlong.video.base.Decoder` interface, container facts, size helpers;
- :mod:`mmlong.video.decord_decoder`, :mod:`mmlong.video.pyav_decoder`: the two decoder plug-ins;
- :mod:`mmlong.video.container`: checking and inspecting a container before decoding (PyAV);
- :mod:`mmlong.video.write`: writing videos and numbered frames (tests, NIAVH haystacks, ``bench decode``).

Importing this package imports neither decord nor PyAV; they load when a video is opened.
"""

from mmlong.video.source import DEFAULT_MAX_PIXELS, DecordDecoder, PyAVDecoder, VideoSource, open_video, probe

__all__ = ["probe", "open_video", "VideoSource", "DecordDecoder", "PyAVDecoder", "DEFAULT_MAX_PIXELS"]
