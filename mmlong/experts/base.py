"""What every expert shares: the timestamped line it writes and the plug-in base class.

>>> line = TimedText(36.0, 38.0, "text", "The secret word is banana.", 0.98)
>>> line.render()
'00:36–00:38 [text] "The secret word is banana."'
>>> TimedText.from_dict(line.to_dict()) == line
True
>>> line.overlaps(37.5, 40.0), line.overlaps(38.5, 40.0)
(True, False)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

#: where a line comes from: on-screen text (OCR), speech (ASR), a subtitle file, a note about the video, or
#: people counted in the frames
SOURCES = ("text", "speech", "subtitle", "note", "people")


SPAN_DASH = "\u2013"


def format_time(seconds: float) -> str:
    """``mm:ss`` (whole seconds, rounded down), or ``h:mm:ss`` from one hour on.

    >>> format_time(42.9), format_time(3725)
    ('00:42', '1:02:05')
    """
    total = max(0, int(float(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def format_span(start: float, end: float) -> str:
    """``"00:42–00:43"``, or one time when both ends show the same."""
    a, b = format_time(start), format_time(end)
    return a if a == b else f"{a}{SPAN_DASH}{b}"


@dataclass(frozen=True)
class TimedText:
    """One timestamped line of text about a video.

    start/end: seconds (``end >= start``; a line seen on one frame has ``end == start``); source: one of
    :data:`SOURCES`; text: what was read or heard (a note says something about the video itself, e.g. "no audio
    track"); confidence: the expert's confidence in ``[0, 1]`` (mean recognition score for OCR, the mean token
    probability for ASR, 1.0 for subtitle files and notes).
    """

    start: float
    end: float
    source: str
    text: str
    confidence: float = 1.0

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        # stored rounded (ms, 4 digits), so a line read back from the cache equals the one computed
        object.__setattr__(self, "start", round(float(self.start), 3))
        object.__setattr__(self, "end", round(max(float(self.end), self.start), 3))
        object.__setattr__(self, "confidence", round(float(self.confidence), 4))

    @property
    def centre(self) -> float:
        return 0.5 * (self.start + self.end)

    def overlaps(self, start: float, end: float) -> bool:
        """True when this line's span meets ``[start, end]`` (closed intervals)."""
        return self.start <= end and start <= self.end

    def render(self) -> str:
        """The transcript line: ``00:36–00:38 [text] "The secret word is banana."`` (a note is not quoted)."""

        said = self.text if self.source in ("note", "people") else f'"{self.text}"'
        return f"{format_span(self.start, self.end)} [{self.source}] {said}"

    def to_dict(self) -> dict[str, Any]:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "source": self.source,
                "text": self.text, "confidence": round(float(self.confidence), 4)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TimedText":
        return cls(float(data["start"]), float(data["end"]), str(data["source"]), str(data["text"]),
                   float(data.get("confidence", 1.0)))


@dataclass(frozen=True)
class ExpertOutput:
    """What one expert run produced: its lines in time order, and what it cost (counts, CPU seconds)."""

    lines: tuple[TimedText, ...]
    stats: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"lines": [line.to_dict() for line in self.lines], "stats": dict(self.stats)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExpertOutput":
        return cls(tuple(TimedText.from_dict(d) for d in data["lines"]), dict(data.get("stats", {})))


class Expert:
    """Base class of experts. Subclasses set ``name``, ``source``, a ``Config`` dataclass and implement :meth:`run`.

    ``cache_id()`` names everything that decides the output (the expert, its config, its weights), so the
    expert cache can key on it; ``load()`` loads weights now rather than on the first run.
    """

    name: ClassVar[str] = "expert"
    source: ClassVar[str] = "note"

    @dataclass
    class Config:
        pass

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()

    def weights_id(self) -> str:
        """What identifies the weights (a file hash or package version); empty when there are none."""
        return ""

    def output_config(self) -> dict[str, Any]:
        """The config fields that change the output (all by default; not e.g. thread counts or cache folders)."""
        return dataclasses.asdict(self.config) if dataclasses.is_dataclass(self.config) else {}

    def cache_id(self) -> str:
        config = json.dumps(self.output_config(), sort_keys=True, default=str)
        return f"{self.name}|{config}|{self.weights_id()}"

    def input_id(self, video: str) -> str:
        """What besides the video's content decides this expert's output for ``video`` (e.g. the subtitle file
        found for it); the expert cache keys on it too. Empty by default: the video's bytes decide."""
        return ""

    def load(self) -> "Expert":
        return self

    def run(self, video: str) -> ExpertOutput:
        """The lines of ``video`` (a path)."""
        raise NotImplementedError
