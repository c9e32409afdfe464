"""The question a pipeline is asked and the answer it returns: :class:`Query` and :class:`Answer`.

An :class:`Answer` carries its provenance as the :class:`~mmlong.types.Step` of every stage that led to it.

>>> Answer("a cat", option="a cat", option_index=1).letter
'B'
>>> Query("What is shown?", ["a cat", "a dog"]).is_multiple_choice
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from mmlong.types import Step


@dataclass(frozen=True)
class Query:
    """A question about a video; ``options`` for multiple choice; ``text_embedding`` when a stage computed it;
    ``instruction``: a benchmark's own multiple-choice instruction (Video-MME's, LongVideoBench's) in place of the
    default MLVU one; ``benchmark``: whose official prompt layout and subtitle rule the question follows (``""``:
    MLVU's template, ``"videomme"``, ``"longvideobench"``; :func:`mmlong.models.prompts.benchmark_text`);
    ``timed_text``: False when no expert or subtitle line may reach the model (a benchmark's setting without
    subtitles), whatever experts the pipeline runs."""

    question: str
    options: tuple[str, ...] = ()
    text_embedding: torch.Tensor | None = None
    instruction: str = ""
    benchmark: str = ""
    timed_text: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))

    @property
    def is_multiple_choice(self) -> bool:
        return len(self.options) > 0


@dataclass
class Answer:
    """What a pipeline returns: the text, the chosen option, evidence times and its provenance.

    stages: one :class:`Step` per stage that led to it (sample, cache, decode, encode, each compressor, experts,
    load on the first answer, model), the same objects as ``Result.steps``; ``to_dict`` writes them as dicts.
    The configuration is not repeated per answer: it is the pipeline's (``Pipeline.config``), saved once beside
    results.
    """

    text: str
    option: str | None = None
    option_index: int | None = None
    evidence: list[float] = field(default_factory=list)
    stages: tuple[Step, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def letter(self) -> str | None:
        return None if self.option_index is None else chr(ord("A") + self.option_index)

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "option": self.option,
            "option_index": self.option_index,
            "letter": self.letter,
            "evidence": [round(float(t), 3) for t in self.evidence],
            "stages": [s.to_dict() for s in self.stages],
            **({"details": self.details} if self.details else {}),
        }
