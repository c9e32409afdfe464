"""Needle-in-a-Video-Haystack: run a set built by :mod:`mmlong.benchmarks.niavh_make`, score it offline, draw the
heatmap.

The protocol is VideoLLaMB's NIAVH (Wang et al., 2024, arXiv:2409.01071), after Kamradt's Needle-in-a-Haystack:
accuracy per (needle depth, haystack length) cell, drawn as a depth x length heatmap with the numbers in the
cells. Each needle has two questions: multiple choice (scored by the chosen option letter) and open (scored by a
normalised match of the reply against the reference answer and its synonyms; see
:func:`mmlong.benchmarks.scoring.open_answer_match`). A multi-needle item adds a third, ``order``: multiple choice
between orders of its needles. No network judge is used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmlong.benchmarks.scoring import (
    Benchmark,
    EvalItem,
    accuracy_table,
    error_summary,
    letter_from_reply,
    markdown_table,
    open_answer_match,
    percent,
)
from mmlong.errors import ConfigError
from mmlong.qa import Answer, Query

KINDS = ("mc", "open", "order")
TITLES = {"mc": "multiple choice", "open": "open answer (normalised match)", "order": "needle order (multiple choice)"}


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The ``manifest.json`` of a set made by ``mmlong eval niavh make``."""
    path = Path(folder).expanduser() / "manifest.json"
    if not path.is_file():
        raise ConfigError("no manifest.json here; build a set first with `mmlong eval niavh make DIR`",
                          str(path.parent))
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"not valid JSON ({err})", str(path)) from err
    if manifest.get("benchmark") != "niavh" or not isinstance(manifest.get("items"), list):
        raise ConfigError("not a NIAVH manifest (no benchmark: niavh / items)", str(path))
    return manifest


class NIAVHBenchmark(Benchmark):
    """A NIAVH set as :class:`~mmlong.benchmarks.scoring.EvalItem` s (two questions per needle video) and its
    scoring."""

    @dataclass
    class Config:
        """data: the folder holding ``manifest.json`` and ``videos/``; kinds: which questions (mc, open, order:
        only multi-needle items have an order question)."""

        data: str = ""
        kinds: tuple[str, ...] = KINDS

    name = "niavh"
    group_key = "needle_type"

    def __init__(self, config: "NIAVHBenchmark.Config | None" = None) -> None:
        super().__init__(config)
        self.manifest = read_manifest(self.config.data)

    def items(self) -> list[EvalItem]:
        folder = Path(self.config.data).expanduser()
        unknown = set(self.config.kinds) - set(KINDS)
        if unknown:
            raise ConfigError(f"unknown question kind(s) {sorted(unknown)}; kinds: {', '.join(KINDS)}")
        items = []
        for entry in self.manifest["items"]:
            video = folder / entry["video"]
            meta = {k: entry[k] for k in ("needle_type", "needle", "depth", "length", "start", "end")}
            meta["asked_type"] = entry.get("asked_type", entry["needle_type"])
            if "gold" in entry:
                meta["needles"] = [[n["start"], n["end"]] for n in entry.get("needles", ())]
            missing = None if video.is_file() else f"video {entry['video']} is missing; rebuild the set"
            if "mc" in self.config.kinds:
                items.append(EvalItem(f"{entry['id']}:mc", str(video), Query(entry["question"], entry["options"]),
                                      entry["answer"], {**meta, "kind": "mc", "answer_text": entry["answer_text"]},
                                      missing))
            if "open" in self.config.kinds:
                gold = {"gold": entry["gold"]} if "gold" in entry else {}
                items.append(EvalItem(f"{entry['id']}:open", str(video), Query(entry["open_question"]), None,
                                      {**meta, "kind": "open", "references": entry["references"], **gold}, missing))
            if "order" in self.config.kinds and entry.get("order_question"):
                items.append(EvalItem(f"{entry['id']}:order", str(video),
                                      Query(entry["order_question"], entry["order_options"]), entry["order_answer"],
                                      {**meta, "kind": "order", "answer_text": ""}, missing))
        return items

    def record(self, item: EvalItem, answer: Answer) -> dict[str, Any]:
        """Multiple choice: the option letter must be the needle's. Open: the reply must state a reference."""
        base = {"id": item.id, **{k: item.meta[k] for k in ("kind", "needle_type", "needle", "depth", "length")},
                "asked_type": item.meta.get("asked_type", item.meta["needle_type"])}
        if item.meta["kind"] in ("mc", "order"):
            letter = answer.letter or letter_from_reply(answer.text, len(item.query.options))
            return {**base, "option": letter, "answer": item.answer, "correct": letter == item.answer,
                    "text": answer.text, **_evidence(item, answer),
                    "option_scores": answer.details.get("option_scores", {})}
        if "gold" in item.meta:  # a question kind: the reply must state the gold count, time, order or name
            from mmlong.benchmarks.niavh_gold import check_open

            return {**base, "question": item.query.question, "text": answer.text, "gold": item.meta["gold"],
                    "correct": check_open(item.meta["gold"], answer.text), **_evidence(item, answer)}
        matched = open_answer_match(answer.text, item.meta["references"])
        return {**base, "text": answer.text, "references": item.meta["references"], "matched": matched,
                "correct": matched is not None}

    def error_record(self, item: EvalItem, reason: str) -> dict[str, Any]:
        base = {k: item.meta[k] for k in ("kind", "needle_type", "needle", "depth", "length")}
        return {"id": item.id, **base, "correct": False, "error": reason}

    def summarize(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        from mmlong.benchmarks.niavh_ablation import ablation

        return {**summarize_grid(records, self.manifest["depths"], self.manifest["lengths"]),
                "ablation": ablation(records)}

    def report(self, summary: Mapping[str, Any]) -> str:
        from mmlong.benchmarks.niavh_ablation import ablation_markdown

        return "\n\n".join(p for p in (kinds_markdown(summary), grid_markdown(summary),
                                         ablation_markdown(summary.get("ablation", {}))) if p)

    def figures(self, summary: Mapping[str, Any], out_dir: Path) -> list[Path]:
        return [draw_heatmap(summary, out_dir / "heatmap.png")]


def _evidence(item: EvalItem, answer: Answer) -> dict[str, Any]:
    """The answer's evidence times, the needle's (or needles') times, and the question kind the model decided
    on, when it says."""
    out: dict[str, Any] = {"evidence": [round(float(t), 2) for t in answer.evidence],
                           "needle_time": [item.meta["start"], item.meta["end"]]}
    if item.meta.get("needles"):
        out["needle_times"] = item.meta["needles"]
    decided = answer.details.get("question")
    if isinstance(decided, Mapping) and decided.get("kind"):
        out["decided_kind"] = decided["kind"]
    return out


def _cell_key(depth: float, length: float) -> str:
    return f"{depth:g}%@{length:g}s"


def summarize_grid(records: Sequence[Mapping[str, Any]], depths: Sequence[float],
                   lengths: Sequence[float]) -> dict[str, Any]:
    """Accuracy per question kind: overall, per needle type, and per (depth, length) cell (fractions)."""
    summary: dict[str, Any] = {"depths": list(depths), "lengths": list(lengths), "errors": error_summary(records)}
    for kind in KINDS:
        mine = [r for r in records if r.get("kind") == kind]
        if not mine:
            continue
        overall = accuracy_table([{**r, "all": "all"} for r in mine], "all").get("all")
        cells = accuracy_table(mine, ("depth", "length"))
        summary[kind] = {
            "accuracy": overall["accuracy"] if overall else 0.0,
            "correct": overall["correct"] if overall else 0,
            "total": overall["total"] if overall else 0,
            "per_type": {t: row["accuracy"] for t, row in accuracy_table(mine, "needle_type").items()},
            "per_type_counts": {t: [row["correct"], row["total"]]
                                for t, row in accuracy_table(mine, "needle_type").items()},
            # what was asked about (a multi-needle item asks about one of its kinds)
            "per_asked_type": {t: row["accuracy"] for t, row in accuracy_table(
                [{**r, "asked_type": r.get("asked_type", r.get("needle_type"))} for r in mine], "asked_type").items()},
            "grid": {_cell_key(d, n): row["accuracy"] for (d, n), row in cells.items()},
            "grid_counts": {_cell_key(d, n): [row["correct"], row["total"]] for (d, n), row in cells.items()},
        }
    return summary


def kinds_markdown(summary: Mapping[str, Any]) -> str:
    """One row per item type (needle kind or question kind), one column per question format: accuracy (percent)
    and right/total."""
    formats = [k for k in ("mc", "open") if k in summary]
    types = list(dict.fromkeys(t for k in formats for t in summary[k].get("per_type_counts", {})))
    if not types:
        return ""
    rows = []
    for name in types:
        row = [name]
        for k in formats:
            right, total = summary[k]["per_type_counts"].get(name, (0, 0))
            row.append(f"{percent(right / total)} % ({right}/{total})" if total else "-")
        rows.append(row)
    return "### per kind\n\n" + markdown_table(["kind", *(TITLES[k].split(" (")[0] for k in formats)], rows)


def grid_markdown(summary: Mapping[str, Any]) -> str:
    """Per kind: the overall and per-type accuracy, then the depth x length grid (percent)."""
    parts = []
    for kind, title in TITLES.items():
        if kind not in summary:
            continue
        block = summary[kind]
        types = ", ".join(f"{t} {percent(a)}" for t, a in block["per_type"].items())
        parts.append(f"### {title}: {percent(block['accuracy'])} % ({block['correct']}/{block['total']}; {types})")
        rows = []
        for depth in summary["depths"]:
            cells = [block["grid"].get(_cell_key(depth, length)) for length in summary["lengths"]]
            rows.append([f"{depth:g} %"] + ["-" if c is None else percent(c) for c in cells])
        parts.append(markdown_table(["depth \\ length"] + [f"{n:g} s" for n in summary["lengths"]], rows))
    errors = summary["errors"]["count"]
    if errors:
        parts.append(f"{errors} question(s) not scored (errors; see results.jsonl).")
    return "\n\n".join(parts)


def draw_heatmap(summary: Mapping[str, Any], path: str | Path) -> Path:
    """Depth (rows) x haystack length (columns), colour = accuracy, numbers in the cells; one panel per kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    kinds = [k for k in KINDS if k in summary]
    depths, lengths = summary["depths"], summary["lengths"]
    fig, axes = plt.subplots(1, max(1, len(kinds)), figsize=(1.6 + 1.3 * len(lengths) * max(1, len(kinds)),
                                                              1.2 + 0.55 * len(depths)), squeeze=False)
    for n, (ax, kind) in enumerate(zip(axes[0], kinds)):
        grid = np.full((len(depths), len(lengths)), np.nan)
        for i, depth in enumerate(depths):
            for j, length in enumerate(lengths):
                value = summary[kind]["grid"].get(_cell_key(depth, length))
                grid[i, j] = np.nan if value is None else value
        image = ax.imshow(grid, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
        for i in range(len(depths)):
            for j in range(len(lengths)):
                text = "-" if np.isnan(grid[i, j]) else f"{100 * grid[i, j]:.0f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=9)
        ax.set_xticks(range(len(lengths)), [f"{n:g}s" for n in lengths])
        ax.set_yticks(range(len(depths)), [f"{d:g}%" for d in depths])
        ax.set_xlabel("haystack length")
        if n == 0:
            ax.set_ylabel("needle depth")
        ax.set_title(f"{TITLES[kind].split(' (')[0]}: {100 * summary[kind]['accuracy']:.0f}%")
    if kinds:
        fig.colorbar(image, ax=axes[0].tolist(), label="accuracy")
    out = Path(path)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out
