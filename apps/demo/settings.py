"""What the demo page and the demo app share: the settings panel's values, one question's result in the page's
terms, and the one-line error the page shows (so the page and the app import this, not each other)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def budget_from_field(value: Any) -> int | None:
    """The token budget typed in the settings panel: a whole number of tokens; empty or <= 0 means none."""
    from mmlong.errors import ConfigError

    text = "" if value is None else str(value).strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number != int(number):
        raise ConfigError(f"the token budget must be a whole number of tokens (e.g. 2048), got {text[:40]!r}")
    return int(number) if number > 0 else None


def readable_error(err: Exception) -> str:
    """One line naming the file (by its name only, not the server's upload path) and the reason."""
    from mmlong.errors import MmlongError

    if isinstance(err, MmlongError):
        return f"{Path(err.path).name}: {err.reason}" if err.path else err.reason
    return str(err).splitlines()[0] if str(err) else type(err).__name__


@dataclass(frozen=True)
class DemoSettings:
    """The settings panel. ``None`` (an empty field) keeps what the command line / preset says."""

    preset: str | None = None
    sample: str | None = None
    compress: str | None = None
    budget: int | None = None
    model: str | None = None

    @staticmethod
    def from_fields(preset: Any, sample: Any, compress: Any, budget: Any, model: Any) -> "DemoSettings":
        def text(value: Any) -> str | None:
            value = "" if value is None else str(value).strip()
            return value or None

        return DemoSettings(text(preset), text(sample), text(compress), budget_from_field(budget), text(model))


@dataclass
class DemoResult:
    """What one question produces, in the page's terms (plus the Answer and TimelineData behind them)."""

    status: str
    ok: bool
    answer_text: str = ""
    option: str = ""
    evidence: str = ""
    question_kind: str = ""
    timeline_png: str | None = None
    keyframes_png: str | None = None
    stage_rows: list[list[str]] = field(default_factory=list)
    answer: Any = None
    timeline: Any = None

    @staticmethod
    def failure(message: str) -> "DemoResult":
        return DemoResult(status=f"**Could not answer.** {message}", ok=False)
