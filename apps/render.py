"""Plain-text rendering of results for the terminal: the per-stage table and answers."""

from __future__ import annotations

from typing import Any, Iterable

STAGE_COLUMNS = ("stage", "in", "out", "ms", "peak MiB", "notes")


def stage_rows(stages: Iterable[Any]) -> list[tuple[str, ...]]:
    """One row of strings per stage (columns :data:`STAGE_COLUMNS`): name, tokens in/out, ms, peak RSS, extras.

    stages: :class:`~mmlong.types.Step` objects (``answer.stages``) or their dicts (a saved record's)."""
    rows = []
    for stage in (s.to_dict() if hasattr(s, "to_dict") else s for s in stages):
        extra = dict(stage.get("extra") or {})
        peak = extra.pop("peak_rss_mb", "")
        notes = ", ".join(f"{k}={v}" for k, v in extra.items() if not isinstance(v, (list, dict)))
        rows.append((
            str(stage.get("name", "")),
            str(stage.get("tokens_in", "")),
            str(stage.get("tokens_out", "")),
            f"{float(stage.get('ms', 0.0)):.1f}",
            str(peak),
            notes,
        ))
    return rows


def stage_table(stages: Iterable[Any]) -> str:
    """A fixed-width table of stages: name, in, out, ms, peak RSS (MiB) and notable extras."""
    rows = [STAGE_COLUMNS] + stage_rows(stages)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in range(1, 5)] + [row[5]]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths[:5]))
    return "\n".join(lines)


def format_seconds(seconds: float) -> str:
    """``75.5`` -> ``01:15.5``; past an hour ``1:02:03.0``."""
    seconds = max(0.0, float(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{int(hours)}:{int(minutes):02d}:{secs:04.1f}"
    return f"{int(minutes):02d}:{secs:04.1f}"


def plain_text(doc: str) -> str:
    """Docstring markup removed for a terminal (``--help``): ``x`` -> x, :class:`~a.b.C` -> C, whitespace collapsed.

    >>> plain_text("``mmlong plan VIDEO``: see :mod:`mmlong.planning.fit` and :func:`~mmlong.planning.fit.plan_run`.")
    'mmlong plan VIDEO: see mmlong.planning.fit and plan_run.'
    """
    import re

    text = re.sub(r":\w+:`~(?:[\w.]+\.)?([^`]+)`", r"\1", doc)
    text = re.sub(r":\w+:`([^`]+)`", r"\1", text)
    text = text.replace("``", "").replace("`", "")
    return " ".join(text.split())
