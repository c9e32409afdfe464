"""NIAVH needles beyond pictures: spoken sentences mixed into the audio track, and several needles in one video.

- **Speech needles**: a sentence ("The password is pineapple.") spoken by espeak-ng (:func:`mmlong.media.audio.speak`)
  is mixed into the haystack's audio track at the needle time; the frames are plain haystack, so only the sound
  tells. The track under it is the haystack footage's own audio, looped and turned down (silence when the
  footage has none), so the needle is a voice over a real background.
- **Multi-needle items** hold 2-3 needles of different kinds (an image, a rendered sentence, a spoken sentence)
  in one video: one at the cell's depth, which the multiple-choice and open questions ask about, the others
  spread over the rest of the video; a third question asks for their order.

>>> spread_depths(50.0, 3)
[50.0, 16.7, 83.3]
>>> order_options(["a cat", "banana"], 4, __import__("numpy").random.default_rng(0))[1]
0
"""

from __future__ import annotations

from itertools import permutations
from pathlib import Path
from typing import Sequence

import numpy as np

SPEECH_RATE = 16000
#: background level of the haystack's own audio under a spoken needle
BACKGROUND_GAIN = 0.25
MULTI_KINDS = ("image", "text", "speech")
ORDER_QUESTION = "In which order do these come up in the video?"


def speech_sentence(word: str) -> str:
    return f"The password is {word}."


#: a footage source ``pan:IMAGE`` is a slow pan and zoom across a still (:func:`mmlong.benchmarks.niavh_media.pan_clip`)
PAN_PREFIX = "pan:"


def video_path(source: str) -> str:
    """A haystack source: a video file as given, else the name of a bundled sample clip (downloaded once)."""
    if Path(source).expanduser().is_file():
        return str(Path(source).expanduser())
    from mmlong.assets.samples import sample_video

    return str(sample_video(source))


def haystack_audio(sources: Sequence[str], seconds: float, gain: float = BACKGROUND_GAIN) -> np.ndarray:
    """float32 ``[seconds * 16000]``: the sources' audio tracks one after another, looped, at ``gain``; zeros
    when none of them has audio."""
    from mmlong.media.audio import read_audio

    count = int(round(seconds * SPEECH_RATE))
    tracks = [t.samples for t in (read_audio(video_path(s), SPEECH_RATE) for s in sources
                                  if not s.startswith(PAN_PREFIX)) if t is not None]  # a pan is silent
    tracks = [t for t in tracks if len(t)]
    if not tracks:
        return np.zeros(count, dtype=np.float32)
    loop = np.concatenate(tracks)
    return (np.resize(loop, count) * np.float32(gain)).astype(np.float32)


def spread_depths(target: float, count: int) -> list[float]:
    """``count`` depths (percent): ``target`` first, then the others at the centres of ``count`` equal stretches
    of [0, 100], leaving out the stretch nearest the target."""
    others = [100.0 * (k + 0.5) / count for k in range(count)]
    # drop the evenly spread slot nearest the target, keep the rest
    nearest = min(range(count), key=lambda k: abs(others[k] - target))
    return [float(target), *(round(d, 1) for k, d in enumerate(others) if k != nearest)]


def order_text(labels: Sequence[str], joiner: str = ", then ") -> str:
    return joiner.join(labels)


def order_options(labels: Sequence[str], num_options: int, rng: np.random.Generator,
                  joiner: str = ", then ") -> tuple[list[str], int]:
    """Options naming orders of ``labels`` (the true order is ``labels`` as given), each joined by ``joiner``, and
    the true option's index."""
    orders = [list(p) for p in permutations(labels)]
    wrong = [orders[i] for i in rng.permutation(len(orders)) if orders[i] != list(labels)]
    chosen = [list(labels), *wrong[: max(0, num_options - 1)]]
    shuffled = [chosen[i] for i in rng.permutation(len(chosen))]
    return [order_text(o, joiner) for o in shuffled], shuffled.index(list(labels))
