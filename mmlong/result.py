"""What one run of a pipeline gives back (:class:`Result`), the names of its stages (:class:`Stage`) and the
peak memory each stage records (:func:`peak_rss_mb`).

:meth:`mmlong.pipeline.Pipeline.run` answers several questions about one video and returns one
:class:`Result`: per question its :class:`~mmlong.types.Answer`, the encoder's tokens (``encoded``), the
tokens the model saw after compression (``seen``) and the provenance (``steps``, each answer's ``stages``).
Apps read these instead of running stages again.

Stage names are one enum. A compressor's step is named by the compressor (``tome``, ``pool``, ...); the
pipeline's own steps are :class:`Stage` members, which compare equal to their strings:

>>> Stage.DECODE == "decode", Stage("model") is Stage.MODEL, str(Stage.ENCODE), {"encode": 1}[Stage.ENCODE]
(True, True, 'encode', 1)
>>> [s.value for s in Stage.token_path()]
['sample', 'cache', 'decode', 'encode']
"""

from __future__ import annotations

import contextlib
import resource
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Sequence

from mmlong.qa import Answer
from mmlong.types import Step, VisualTokens


class Stage(StrEnum):
    """The pipeline's own stages, in the order they run (compressors run between ENCODE and LOAD)."""

    SAMPLE = "sample"  # choose frame indices
    CACHE = "cache"    # look the encoded tokens up in the feature cache
    DECODE = "decode"  # read the chosen frames
    ENCODE = "encode"  # frames -> visual tokens
    LOAD = "load"      # load the model's weights (the first answer only)
    MODEL = "model"    # the model answers from the visual tokens

    __hash__ = str.__hash__  # so that a Stage and its string are one key of a dict or set

    @classmethod
    def token_path(cls) -> tuple["Stage", ...]:
        """The stages before compression: how a video's frames become tokens."""
        return (cls.SAMPLE, cls.CACHE, cls.DECODE, cls.ENCODE)


def stage_value(steps: Sequence[Any], stage: str, field: str = "tokens_out") -> int | None:
    """``field`` of the first step named ``stage`` (Step objects or their dicts), or None.

    >>> stage_value([{"name": "sample", "tokens_out": 8}], Stage.SAMPLE)
    8
    """
    for step in steps:
        name = step.get("name") if isinstance(step, dict) else step.name
        if name == stage:
            value = step.get(field, 0) if isinstance(step, dict) else getattr(step, field)
            return int(value)
    return None


@dataclass
class Result:
    """One video's answers and what led to each, aligned with the queries asked.

    answers[i]: the :class:`~mmlong.types.Answer` to query ``i``. encoded[i]: the encoder's tokens for it,
    every sampled frame before compression (the same object for questions that share one encoding; ``None``
    when a streaming memory consumed the chunks and the whole set was never held). seen[i]: the tokens the
    model saw, after the pre-LLM chain. steps[i]: its provenance, one :class:`~mmlong.types.Step` per stage
    (sample, cache, decode, encode, each compressor, load on the first answer, model): ``answers[i].stages``,
    the one provenance form.
    """

    answers: list[Answer]
    encoded: list[VisualTokens | None]
    seen: list[VisualTokens]

    @property
    def steps(self) -> list[tuple[Step, ...]]:
        """Each answer's provenance (``answers[i].stages``)."""
        return [tuple(a.stages) for a in self.answers]

    def __len__(self) -> int:
        return len(self.answers)

    @property
    def answer(self) -> Answer:
        """The answer when one question was asked."""
        if len(self.answers) != 1:
            raise ValueError(f"this result holds {len(self.answers)} answers; index result.answers")
        return self.answers[0]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux's VmHWM: ru_maxrss keeps a parent's across exec)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        status = Path("/proc/self/status").read_text().splitlines()
        return int(next(ln for ln in status if ln.startswith("VmHWM:")).split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
