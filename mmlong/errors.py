"""Errors a user can act on. Each carries the file (when there is one) and a one-line reason.

The CLI prints ``mmlong: error: <file>: <reason>`` and exits 2 for any :class:`MmlongError`; no traceback.
"""

from __future__ import annotations


class MmlongError(Exception):
    """Base of every error mmlong raises on purpose; ``str()`` is one line naming the file and the reason."""

    def __init__(self, reason: str, path: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


class ConfigError(MmlongError):
    """A preset, YAML file, flag or spec string that cannot be used."""


class ModelLoadError(MmlongError):
    """Weights or a checkpoint that cannot be loaded (missing, needs remote code, pickle refused...)."""


class VideoError(MmlongError):
    """A video that cannot be read."""


class VideoNotFoundError(VideoError):
    pass


class EmptyVideoError(VideoError):
    pass


class NotAVideoError(VideoError):
    pass


class NoVideoStreamError(VideoError):
    """The file is a valid container with no video stream (e.g. audio only)."""


class CorruptVideoError(VideoError):
    """Truncated or damaged: decoding failed part-way, or the stream could not be read in the time allowed."""


class UnsupportedCodecError(VideoError):
    pass


class VideoTooLargeError(VideoError):
    """Over a configured limit (duration, resolution)."""
