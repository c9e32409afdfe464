"""The scoring ablation of a NIAVH run: LM only, evidence only and fused, from the same answers.

The Socratic answerer records every option's scores (``option_scores``: ``evidence``, ``pmi``, ``likelihood``,
``fused``; see :mod:`mmlong.models.socratic.answerer`), so one run answers all modes exactly: each mode's choice is the
option with its highest score (the first on a tie, as the answerer does).

>>> record = {"kind": "mc", "needle_type": "image", "answer": "B",
...           "option_scores": {"evidence": [0.1, 0.4], "pmi": [2.0, -1.0], "fused": [-5.0, -0.1]}}
>>> ablation([record])["image"]
{'lm': 0.0, 'evidence': 1.0, 'fused': 1.0}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: mode -> the option score it ranks by
MODES = {"lm": "pmi", "evidence": "evidence", "fused": "fused", "likelihood": "likelihood"}


def _choice(scores: Sequence[float]) -> str:
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    return chr(ord("A") + best)


def ablation(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """``{needle type: {mode: accuracy}}`` over the multiple-choice records that carry option scores."""
    table: dict[str, dict[str, list[int]]] = {}
    for record in records:
        scores = record.get("option_scores") or {}
        if record.get("kind") != "mc" or not scores:
            continue
        row = table.setdefault(str(record.get("needle_type")), {})
        for mode, key in MODES.items():
            if key in scores:
                row.setdefault(mode, []).append(int(_choice(scores[key]) == record["answer"]))
    return {kind: {mode: sum(v) / len(v) for mode, v in row.items()} for kind, row in table.items()}


def ablation_markdown(table: Mapping[str, Mapping[str, float]]) -> str:
    """One row per needle type, one column per mode (percent)."""
    if not table:
        return ""
    modes = [m for m in MODES if any(m in row for row in table.values())]
    lines = ["| needle | " + " | ".join(modes) + " |", "|---" * (len(modes) + 1) + "|"]
    for kind, row in table.items():
        lines.append(f"| {kind} | " + " | ".join(f"{100 * row[m]:.0f} %" if m in row else "-" for m in modes) + " |")
    return "### scoring ablation (multiple choice, same answers)\n\n" + "\n".join(lines)
