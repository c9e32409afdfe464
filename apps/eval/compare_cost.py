"""Prefill cost of each ``mmlong eval compare`` cell on a random-init Qwen2-VL of a real shape.

The model, the visual tokens on the Qwen2-VL grid (``frames`` at ``resolution`` px) and the prefill are those of
``mmlong bench prefill`` (:mod:`mmlong.apps.bench.prefill`): the cell's pre-LLM steps run on the tokens with its
token budget (the ratio of the uncompressed count), its in-LLM steps hook the decoder. Per cell: visual tokens
in the prompt and averaged over layers, FLOPs of the observed per-layer lengths
(:func:`mmlong.planning.estimate.llm_layer_flops`,
full attention, the convention ``torch.utils.flop_counter`` counts), prefill wall and CPU time, KV-cache bytes,
and peak memory (weights plus the peak of live tensor bytes during the prefill,
:class:`mmlong.apps.bench.plan.LiveTensorPeak`; the CUDA allocator's peak on a GPU). One record per cell in
``cost.jsonl``, so a resumed run measures only the cells still missing. Weights are random: cost, not answers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _peak_prefill(model: Any, tokens: Any, in_llm: Sequence[Any]) -> tuple[dict[str, Any], int]:
    """One prefill and its peak bytes above what was alive before (tensor accounting on CPU)."""
    import torch

    from mmlong.apps.bench.plan import LiveTensorPeak
    from mmlong.apps.bench.prefill import prefill

    device = next(model.parameters()).device
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        result = prefill(model, tokens, list(in_llm), seed=0)
        return result, int(torch.cuda.max_memory_allocated() - base)
    with LiveTensorPeak() as tracker:
        result = prefill(model, tokens, list(in_llm), seed=0)
    return result, tracker.peak


def measure_cell(model: Any, shape: Any, tokens: Any, chain_spec: str, ratio: float) -> dict[str, Any]:
    """Cost of one cell: its chain on ``tokens`` at budget ``ratio x`` their count, then the prefill."""
    import torch

    from mmlong.compressors.base import Chain, CompressContext
    from mmlong.planning.estimate import llm_layer_flops

    dtype = next(model.parameters()).dtype
    budget = None if not chain_spec else max(1, round(ratio * tokens.num_tokens))
    chain = Chain.from_spec(chain_spec.replace("{budget}", str(budget)))
    start = time.process_time()
    compressed = chain(tokens, CompressContext(budget=budget))
    pre_llm_cpu_ms = (time.process_time() - start) * 1000.0
    compressed = compressed.replace(features=compressed.features.to(dtype))
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    with torch.inference_mode():
        result, peak = _peak_prefill(model, compressed, chain.in_llm)
    lengths = result["lengths"]
    q_dim = shape.heads * shape.dim_head
    flops = sum(llm_layer_flops(n, shape.hidden, q_dim, shape.kv_dim, shape.ffn) for n in lengths)
    text = result["prompt_tokens"] - result["visual_tokens"]
    return {
        "budget": budget, "visual_tokens": result["visual_tokens"],
        "mean_visual_tokens": round(sum(lengths) / len(lengths) - text, 1),
        "prefill_flops": int(flops), "prefill_tflops": round(flops / 1e12, 6), "prefill_ms": round(result["ms"], 1),
        "prefill_cpu_ms": round(result["cpu_ms"], 1), "pre_llm_cpu_ms": round(pre_llm_cpu_ms, 1),
        "kv_cache_bytes": int(round(result["kv_cache_mb"] * 2**20)), "peak_bytes": int(weights + peak),
    }


def measure_costs(cells: Sequence[Any], chains: Mapping[Any, str], path: Path, *, size: str = "0.5b",
                  frames: int = 32, resolution: int = 448, dtype: str = "float32", device: str = "cpu",
                  overwrite: bool = False, progress: bool = True) -> dict[str, dict[str, Any]]:
    """``{cell id: cost record}`` for every cell, measuring only those not yet in ``path`` (a result log)."""
    from mmlong.jobs.log import ResultLog
    from mmlong.jobs.runner import describe_error
    from mmlong.progress import StatusLine, progress_bar

    with ResultLog(path, overwrite=overwrite) as log:
        todo = [c for c in cells if c.id not in log]
        if todo:
            import torch

            from mmlong.apps.bench.prefill import build_model, prefill, visual_tokens
            from mmlong.planning.shapes import named_shape

            shape = named_shape(size)
            with StatusLine(f"prefill cost: building a random-init Qwen2-VL {size} and {frames} frames of tokens",
                            enabled=progress):
                model = build_model(size, device, dtype, seed=0)
                tokens = visual_tokens(frames, resolution, shape.hidden, seed=0)
                with torch.inference_mode():  # first-call allocations are not part of any cell
                    warm = visual_tokens(2, 56, shape.hidden, seed=0)
                    prefill(model, warm.replace(features=warm.features.to(next(model.parameters()).dtype)), [], 0)
            bar = progress_bar(total=len(todo), desc=f"prefill cost ({size})", unit="cell", enabled=progress)
            for cell in todo:
                base = {"id": cell.id, "size": size, "frames": frames, "resolution": resolution,
                        "chain": chains[cell]}
                try:
                    log.append({**base, **measure_cell(model, shape, tokens, chains[cell], cell.ratio)})
                except Exception as err:  # one chain that cannot run on random features must not stop the grid
                    log.append({**base, "error": describe_error(err)})
                bar.update(1)
            bar.close()
        return {key: dict(record) for key, record in log.records.items()}
