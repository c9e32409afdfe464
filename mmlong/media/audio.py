"""Audio tracks: decode a video's audio with PyAV to mono float32 at a chosen rate, and mix clips into a track.

>>> import numpy as np
>>> track = np.zeros(16000, dtype=np.float32)
>>> mixed = mix_into(track, np.ones(800, dtype=np.float32), at_seconds=0.5, sample_rate=16000)
>>> float(mixed[8000]), float(mixed[7999]), float(mixed[8800])
(1.0, 0.0, 0.0)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmlong.errors import CorruptVideoError

#: the rate speech recognisers expect (Whisper: 16 kHz mono)
SPEECH_RATE = 16000


@dataclass(frozen=True)
class AudioTrack:
    """samples: float32 ``[S]`` mono in ``[-1, 1]``; sample_rate: Hz; source_rate / channels: what the stream had."""

    samples: np.ndarray
    sample_rate: int
    source_rate: int = 0
    channels: int = 0

    @property
    def seconds(self) -> float:
        return len(self.samples) / float(self.sample_rate) if self.sample_rate else 0.0


def has_audio(path: str | os.PathLike) -> bool:
    """True when the container at ``path`` has an audio stream."""
    from mmlong.media.video.container import open_container

    container = open_container(os.fspath(path))
    try:
        return bool(container.streams.audio)
    finally:
        container.close()


def read_audio(path: str | os.PathLike, sample_rate: int = SPEECH_RATE) -> AudioTrack | None:
    """The first audio stream of ``path`` resampled to mono float32 at ``sample_rate``; None when there is none.

    Decoding is PyAV (FFmpeg's decoders and swresample). Undecodable packets at the end of a truncated file end
    the track early; a stream that yields nothing at all raises :class:`~mmlong.errors.CorruptVideoError`.
    """
    import av

    from mmlong.media.video.container import open_container

    path = os.fspath(path)
    container = open_container(path)
    try:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        chunks: list[np.ndarray] = []
        try:
            resample_mono(container.decode(stream), sample_rate, chunks)
        except av.error.FFmpegError:
            if not chunks:
                raise CorruptVideoError("the audio track cannot be decoded", path) from None
        source_rate = int(stream.rate or 0)
        channels = int(getattr(stream, "channels", 0) or 0)
    finally:
        container.close()
    samples = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    return AudioTrack(samples, int(sample_rate), source_rate, channels)


def resample_mono(frames: Any, sample_rate: int, out: list[np.ndarray]) -> list[np.ndarray]:
    """Append decoded audio ``frames`` to ``out`` as float32 mono chunks at ``sample_rate`` (swresample).

    Chunks already appended stay there when decoding fails part-way (the caller keeps what was read).
    """
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=int(sample_rate))
    for frame in frames:
        frame.pts = None  # resample by sample count, not by (possibly jumping) timestamps
        out.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    out.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    return out


def mix_into(track: np.ndarray, clip: np.ndarray, at_seconds: float, sample_rate: int) -> np.ndarray:
    """A copy of float32 ``track [S]`` with ``clip [C]`` added from ``at_seconds`` on (cut at the track's end),
    clipped to ``[-1, 1]``."""
    out = np.array(track, dtype=np.float32, copy=True)
    start = max(0, round(at_seconds * sample_rate))
    end = min(len(out), start + len(clip))
    if end > start:
        out[start:end] += np.asarray(clip, dtype=np.float32)[: end - start]
    return np.clip(out, -1.0, 1.0)


def speak(
    sentence: str, sample_rate: int = SPEECH_RATE, voice: str = "en-us", words_per_minute: int = 150
) -> np.ndarray:
    """``sentence`` spoken by espeak-ng (Debian package ``espeak-ng``) as float32 mono ``[S]`` at ``sample_rate``.

    Raises :class:`~mmlong.errors.ConfigError` when espeak-ng is not installed (``scripts/ensure-espeak.sh``).
    """
    import io
    import shutil
    import subprocess

    import av

    from mmlong.errors import ConfigError

    binary = shutil.which("espeak-ng")
    if binary is None:
        raise ConfigError("espeak-ng is not installed; run scripts/ensure-espeak.sh (apt-get install espeak-ng)")
    done = subprocess.run([binary, "-v", voice, "-s", str(int(words_per_minute)), "--stdout", sentence],
                          capture_output=True, timeout=60, check=False)
    if done.returncode != 0 or not done.stdout:
        raise ConfigError(f"espeak-ng failed ({done.stderr.decode(errors='replace').strip() or done.returncode})")
    with av.open(io.BytesIO(done.stdout), format="wav") as container:
        chunks = resample_mono(container.decode(audio=0), sample_rate, [])
    return np.concatenate(chunks).astype(np.float32, copy=False)
