"""``mmlong plan VIDEO``: what a run would see and need, before anything heavy runs.

Frames, per-frame resolution and tokens (Qwen2-VL's ``min_pixels`` / ``max_pixels`` / ``total_pixels``), the
chain's token count, and the estimated peak memory (weights, visual features, vision activations, KV cache,
language-model activations, logits), prefill FLOPs and time, from the model's config alone
(:mod:`mmlong.planning.estimate`, validated by ``mmlong bench plan``). With ``--memory-budget 24GB`` it says whether
the run
fits and, if not, what would. ``--model`` means what it means in every other command (same default preset);
``--shape 2b`` plans a Qwen2-VL shape without a checkpoint, ``--shape qwen3-vl-2b`` (``qwen3.5-0.8b``,
``internvl3.5-1b``, ``videollama3-2b``, ...) a newer family's released size.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mmlong.apps.options import add_pipeline_arguments, resolve_args
from mmlong.apps.render import plain_text
from mmlong.validate import number_argument

EXAMPLES = """\
examples:
  mmlong plan video.mp4 --model ~/ckpt/Qwen2-VL-2B-Instruct --memory-budget 24GB
  mmlong plan video.mp4 --shape 2b --sample fps:1,max_frames=256 --compress pool:auto --memory-budget 12GB
  mmlong plan video.mp4 --shape 0.5b --sample uniform:64 --max-side 448 --compress fastv:2,0.5 --json
  mmlong plan video.mp4 --shape qwen3-vl-2b --sample uniform:64 --compress pyramiddrop --memory-budget 8GB
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("plan", help="frames, tokens, peak memory, FLOPs and time of a run, estimated",
                                   description=plain_text(__doc__.split("\n\n")[0]), epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", metavar="VIDEO", help="the video to plan for (only its metadata is read)")
    parser.add_argument("--min-pixels", type=number_argument(int, 1),
                        help="Qwen2-VL min_pixels per frame (default: the checkpoint's "
                                                      "or 128*28*28)")
    parser.add_argument("--max-pixels", type=number_argument(int, 1),
                        help="Qwen2-VL max_pixels per frame (default: 768*28*28)")
    parser.add_argument("--total-pixels", type=number_argument(int, 1),
                        help="Qwen2-VL total_pixels over the whole video")
    parser.add_argument("--tflops", type=number_argument(float, 0, above=True),
                        help="device throughput for the time estimate (default: measured "
                                                     "with a 0.2 s matmul on --device)")
    parser.add_argument("--shape", metavar="NAME",
                        help="plan a shape without a checkpoint (instead of --model DIR): Qwen2-VL 0.5b, 2b, 7b, "
                             "small, tiny; qwen3-vl-2b/4b/8b, qwen3.5-0.8b/2b, internvl3.5-1b/2b/8b, "
                             "videollama3-2b/7b")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_pipeline_arguments(parser)
    parser.set_defaults(func=run)


def _gb(value: float) -> str:
    return f"{value / 1e9:.2f} GB"


def plan_record(args: argparse.Namespace) -> dict[str, Any]:
    """Everything ``mmlong plan`` prints, as one mapping."""
    from mmlong.errors import ConfigError
    from mmlong.media.video import probe
    from mmlong.planning.estimate import measure_throughput
    from mmlong.planning.fit import fitting_token_budget, plan_run, shape_for, suggestions, uses_token_budget
    from mmlong.planning.shapes import named_shape, shape_names

    if args.model in shape_names():
        raise ConfigError(f"--model {args.model}: a model shape is given with --shape {args.model} (--model names "
                          "a model or checkpoint, as in every command)")
    if args.shape is not None and args.shape not in shape_names():
        raise ConfigError(f"--shape {args.shape!r}: not a planned shape; shapes: {', '.join(shape_names())}")
    named = args.shape
    if named:  # a shape name: plan for it without a checkpoint
        if args.model:
            raise ConfigError("give --shape or --model, not both")
        args = argparse.Namespace(**{**vars(args), "model": "qwen2-vl"})
    config = resolve_args(args)
    found = (named_shape(named), {}) if named else shape_for(config)
    if found is None:
        raise ConfigError(f"the planner models native Qwen2-VL, Qwen3-VL, Qwen3.5, InternVL and VideoLLaMA3 shapes; "
                          f"model {config.model.family!r} is not one (give --model DIR of such a checkpoint, or "
                          "--shape 2b|qwen3-vl-2b|qwen3.5-0.8b|internvl3.5-1b|videollama3-2b|...)")
    shape, pixels = found
    pixels = {**pixels, **{k: v for k, v in (("min_pixels", args.min_pixels), ("max_pixels", args.max_pixels)) if v}}
    meta = probe(args.video, decoder=config.decoder.name)
    throughput = args.tflops * 1e12 if args.tflops else measure_throughput(config.runtime.device)
    budget = config.runtime.memory_budget
    run = plan_run(config, meta, shape, pixels, total_pixels=args.total_pixels, throughput=throughput)
    plan, est = run.plan, run.estimate
    record: dict[str, Any] = {
        "video": str(args.video), "duration_s": round(float(meta.duration), 2), "model": shape.name,
        "sample": config.sample_spec, "frames": plan.frames, "frame_size": [plan.width, plan.height],
        "tokens_per_frame_pair": plan.tokens_per_patch, "visual_tokens": plan.visual_tokens,
        "frames_per_patch": shape.vision.temporal_patch if shape.vision else 2,
        "compress": config.compress_spec, "token_budget": config.budget, "tokens_after_chain": plan.compressed_tokens,
        "chain_note": run.chain_note, "prompt_tokens": plan.prompt_tokens,
        "mean_tokens_per_layer": round(sum(plan.layer_lengths) / len(plan.layer_lengths), 1),
        "dtype": config.runtime.dtype, "device": config.runtime.device,
        "memory_bytes": {"weights": est.weights, "visual_features": est.visual_features,
                         "vision_activations": est.vision_activations, "kv_cache": est.kv_cache,
                         "llm_activations": est.llm_activations, "logits": est.logits, "peak": est.peak},
        "prefill_tflops": round(est.flops / 1e12, 6), "vision_tflops": round(est.vision_flops / 1e12, 6),
        "throughput_tflops": round(throughput / 1e12, 3), "estimated_seconds": round(est.seconds or 0.0, 4),
    }
    if budget is not None:
        record["memory_budget_bytes"] = budget
        record["fits"] = est.peak <= budget
        if not record["fits"]:
            record["would_fit"] = suggestions(config, meta, shape, pixels, budget)
            if config.budget is None and uses_token_budget(config):
                record["fitting_token_budget"] = fitting_token_budget(config, meta, shape, pixels, budget)
    return record


def run(args: argparse.Namespace) -> int:
    record = plan_record(args)
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    mem = record["memory_bytes"]
    width, height = record["frame_size"]
    lines = [
        f"{record['video']} ({record['duration_s']:g} s) on {record['model']}, {record['dtype']} {record['device']}",
        f"  frames        {record['frames']} ({record['sample']}), each {width}x{height} px -> "
        f"{record['tokens_per_frame_pair']} tokens per "
        f"{'frame pair' if record['frames_per_patch'] == 2 else 'frame'}, {record['visual_tokens']} visual tokens",
        f"  chain         {record['compress'] or 'none'}"
        + (f" (token budget {record['token_budget']})" if record["token_budget"] else "")
        + f" -> {record['tokens_after_chain']} visual tokens; prompt {record['prompt_tokens']} tokens, "
          f"{record['mean_tokens_per_layer']:g} per layer on average"
        + (f"  [{record['chain_note']}]" if record["chain_note"] else ""),
        f"  memory        weights {_gb(mem['weights'])} + visual features {_gb(mem['visual_features'])} + "
        f"max(vision tower {_gb(mem['vision_activations'])}, prefill: KV cache {_gb(mem['kv_cache'])} + "
        f"activations {_gb(mem['llm_activations'])} + logits {_gb(mem['logits'])})",
        f"  peak memory   ~{_gb(mem['peak'])}",
        f"  compute       {record['prefill_tflops']:g} TFLOPs (vision tower {record['vision_tflops']:g}), "
        f"~{record['estimated_seconds']:g} s at {record['throughput_tflops']:g} TFLOP/s",
    ]
    if "fits" in record:
        budget = _gb(record["memory_budget_bytes"])
        if record["fits"]:
            lines.append(f"  budget        {budget}: fits")
        else:
            fixes = " or ".join(record["would_fit"]) or "nothing smaller: raise the budget"
            lines.append(f"  budget        {budget}: does NOT fit; would fit: {fixes}")
            if record.get("fitting_token_budget"):
                lines.append(f"                (the chain meets a token budget: --budget "
                             f"{record['fitting_token_budget']} fits)")
    print("\n".join(lines))
    sys.stdout.flush()
    return 0
