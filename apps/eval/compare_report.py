"""``mmlong eval compare`` output: per-cell summary, ``results.md`` table, ``summary.json`` and ``pareto.png``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mmlong.benchmarks.scoring import markdown_table


def _mean(values: Sequence[float]) -> float | None:
    values = [v for v in values if v is not None]
    return round(sum(values) / len(values), 4) if values else None


def cell_summary(benchmark: Any, cell: Any, records: Sequence[Mapping[str, Any]],
                 cost: Mapping[str, Any] | None, chain: str = "") -> dict[str, Any]:
    """Accuracy, tokens, budget and time of one cell's records, and its prefill cost record."""
    mine = [r for r in records if r.get("cell") == cell.id]
    scored = [r for r in mine if not r.get("error")]
    within = [r["visual_tokens"] <= r["budget"] for r in scored  # in-LLM cells prune after the prompt: see cost
              if r.get("budget") is not None and r.get("visual_tokens") is not None and not r.get("in_llm")]
    row: dict[str, Any] = {
        "cell": cell.id, "method": cell.method or "none", "ratio": cell.ratio,
        "chain": mine[0]["chain"] if mine else chain,
        "questions": len(mine), "errors": len(mine) - len(scored),
        "accuracy": _mean([1.0 if r.get("correct") else 0.0 for r in scored]) if scored else None,
        "visual_tokens": _mean([r.get("visual_tokens") for r in scored]),
        "budget": _mean([r.get("budget") for r in scored]),
        "budget_met": (sum(within) / len(within)) if within else None,
        "answer_cpu_ms": _mean([r.get("cpu_ms") for r in scored]),
        "answer_wall_ms": _mean([r.get("wall_ms") for r in scored]),
    }
    if scored:
        row["benchmark"] = benchmark.summarize(scored)
    if cost:
        row["cost"] = dict(cost)
    return row


def _fmt(value: Any, digits: int = 1, scale: float = 1.0) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def table(rows: Sequence[Mapping[str, Any]], cost_shape: str) -> str:
    headers = ["method", "R", "chain", "accuracy %", "retained %", "visual tokens", "budget met %",
               "answer CPU ms", f"{cost_shape}: prompt / mean visual tokens", "prefill TFLOPs", "prefill CPU ms",
               "prefill ms", "KV cache MB", "peak MB"]
    body = []
    for r in rows:
        c = r.get("cost") or {}
        tokens = "-" if not c or c.get("error") else f"{c['visual_tokens']} / {c['mean_visual_tokens']:g}"
        body.append([
            r["method"], f"{r['ratio']:g}", f"`{r['chain'] or 'none'}`", _fmt(r["accuracy"], 1, 100),
            _fmt(r.get("retained"), 1, 100), _fmt(r["visual_tokens"], 0), _fmt(r["budget_met"], 0, 100),
            _fmt(r["answer_cpu_ms"], 0), tokens, _fmt(c.get("prefill_tflops"), 3), _fmt(c.get("prefill_cpu_ms"), 0),
            _fmt(c.get("prefill_ms"), 0), _fmt(c.get("kv_cache_bytes"), 1, 1 / 2**20),
            _fmt(c.get("peak_bytes"), 0, 1 / 2**20),
        ])
    return markdown_table(headers, body)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats (fewer or equal cost and higher or equal accuracy), by cost.

    >>> pareto_front([(1, 0.5), (2, 0.4), (3, 0.9), (0.5, 0.1)])
    [(0.5, 0.1), (1, 0.5), (3, 0.9)]
    """
    front, best = [], float("-inf")
    for cost, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if acc > best:
            front.append((cost, acc))
            best = acc
    return front


def draw_pareto(rows: Sequence[Mapping[str, Any]], path: Path, cost_shape: str) -> Path | None:
    """Accuracy vs visual tokens and vs prefill TFLOPs, one line per method, the Pareto front dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_of = [("visual_tokens", "visual tokens per question"), ("tflops", f"prefill TFLOPs ({cost_shape} shape)")]
    usable = [r for r in rows if r["accuracy"] is not None]
    if not usable:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    methods = list(dict.fromkeys(r["method"] for r in usable))
    palette = plt.get_cmap("tab20").colors
    look = {m: dict(color=palette[i % 20], marker="osD^vP"[(i // 20) % 6]) for i, m in enumerate(methods)}
    for ax, (key, label) in zip(axes, axes_of, strict=True):
        points = []
        for method in methods:
            xs, ys = [], []
            for r in sorted((r for r in usable if r["method"] == method), key=lambda r: r["ratio"]):
                x = r["visual_tokens"] if key == "visual_tokens" else (r.get("cost") or {}).get("prefill_tflops")
                if x is not None:
                    xs.append(x)
                    ys.append(100 * r["accuracy"])
            if not xs:
                continue
            points += list(zip(xs, ys, strict=True))
            style = dict(look[method], marker="*", markersize=13, linestyle="none") if method == "none" \
                else look[method]  # one colour per method (tab20), so a 17-method grid stays readable
            ax.plot(xs, ys, label=method, **style)
        front = pareto_front(points)
        if len(front) > 1:
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="grey", linestyle="--",
                    linewidth=1, label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy %")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))  # beside the plots, off the data
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(benchmark: Any, config: Any, cells: Sequence[Any], records: Sequence[Mapping[str, Any]],
                 costs: Mapping[str, Mapping[str, Any]], out: Path,
                 chains: Mapping[Any, str] | None = None) -> dict[str, Any]:
    """``summary.json``, ``results.md`` and ``pareto.png`` in ``out``; returns the summary (with ``table``).

    config: the :class:`~mmlong.config.resolve.ResolvedPipeline` the cells share (their chains replace its own)."""
    from mmlong.apps.options import dump_json

    chains = chains or {}
    rows = [cell_summary(benchmark, cell, records, costs.get(cell.id), chains.get(cell, "")) for cell in cells]
    base = next((r["accuracy"] for r in rows if r["cell"] == "none"), None)
    for r in rows:
        r["retained"] = (r["accuracy"] / base) if base and r["accuracy"] is not None else None
        if r["cell"] != "none" and r["questions"] == 0:
            r["note"] = f"not run: model {config.model.family!r} has no in-LLM stage (cost only)"
    first_cost = next((c for c in costs.values() if not c.get("error")), {})
    shape = first_cost.get("size", "")
    cost_setup = (f"{first_cost['frames']} frames at {first_cost['resolution']} px" if first_cost else "not measured")
    text = table(rows, shape or "cost")
    plot = draw_pareto(rows, out / "pareto.png", shape or "cost")
    not_run = [r["cell"] for r in rows if r.get("note")]
    lines = [f"# {benchmark.name}: compressors at matched visual-token budgets", "",
             f"Accuracy: model `{config.model.family}`, encoder `{config.encoder.name}`, "
             f"sample `{config.sample_spec}`; a cell's budget is R x the video's uncompressed visual tokens. "
             "Prefill cost: random-init Qwen2-VL "
             f"{shape} shape, {cost_setup} (FLOPs of the observed per-layer lengths, full attention; CPU time of "
             "the process; peak = weights + peak live tensor bytes).", "", text]
    if not_run:
        lines += ["", f"In-LLM cells without accuracy (the model cannot run them): {', '.join(not_run)}."]
    if plot:
        lines += ["", f"![pareto]({plot.name})"]
    summary = {"benchmark": benchmark.name, "config": config.to_dict(), "cells": rows, "table": text,
               "cost": {"size": shape, "setup": cost_setup}}
    config.save(out / "config.yaml")
    (out / "summary.json").write_text(dump_json(summary) + "\n")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    return summary
