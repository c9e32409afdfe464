"""``mmlong bench prefill``: language-model prefill with and without compressors, side by side in one run.

Builds a random-init Qwen2-VL-shaped model of a realistic size (``--size 0.5b``: the Qwen2-0.5B language model,
hidden 896, 24 layers, 14 heads, 2 KV heads, MLP 4864), random visual features of the count a real video gives
(``--frames 64`` at 448x448: 32 temporal patches x 16 x 16 merged tokens = 8192), and times the prefill of the
same prompt twice: unchanged, and through ``--compress`` (pre-LLM steps such as ``pool:2,tome:0.5`` run on the
visual tokens first; in-LLM steps such as ``pyramiddrop`` or ``fastv:2,0.5`` hook the decoder). Prompt
positions, splicing and pruning go through the same code as the Qwen2-VL adapter. Reports milliseconds, an
estimate of FLOPs from the per-layer sequence lengths, process CPU time (robust to other load on a shared
machine), the KV cache the prefill leaves and the speedup ratio.
The vision tower is not timed (its cost does not depend on the compressors). Weights are random: the point is
cost, not answers.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from mmlong.apps.render import plain_text

# SIZES: name -> (hidden, layers, heads, kv_heads, intermediate), the shapes mmlong.planning.shapes models; VOCAB is
# small: the prefill reads the last row's logits only, so vocabulary size barely moves its cost
from mmlong.planning.shapes import LLM_SIZES as SIZES
from mmlong.planning.shapes import SHAPE_VOCAB as VOCAB
from mmlong.validate import number_argument

TEXT_BEFORE, TEXT_AFTER = 20, 40

EXAMPLES = """\
examples:
  mmlong bench prefill --arch qwen2-vl --size 0.5b --frames 64 --compress pyramiddrop
  mmlong bench prefill --size 0.5b --frames 64 --compress pool:2,tome:0.5 --json
  mmlong bench prefill --size tiny --frames 16 --compress fastv:2,0.5
  mmlong bench prefill --arch qwen3-vl --size 2b --frames 16 --compress pyramiddrop
  mmlong bench prefill --arch internvl --size 1b --frames 8 --compress pool:2,tome:0.5
  mmlong bench prefill --arch qwen3.5 --size 0.8b --frames 16 --compress fastv
  mmlong bench prefill --arch videollama3 --size 2b --frames 8 --compress pyramiddrop
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prefill",
        help="time the LLM prefill with and without compressors (random-init model of a real shape)",
        description=plain_text(__doc__.split("\n\n")[0]),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--arch", default="qwen2-vl", choices=["qwen2-vl", "qwen3-vl", "qwen3.5", "internvl",
                                                                "videollama3"],
                        help="model family shape (qwen3-vl: Qwen3-VL-2B/4B/8B, qwen3.5: Qwen3.5-0.8B/2B, internvl: "
                             "InternVL3.5-1B/2B/8B, videollama3: VideoLLaMA3-2B/7B)")
    parser.add_argument("--size", default=None, help="language model size: qwen2-vl " + "/".join(sorted(SIZES))
                        + " (default 0.5b); qwen3-vl 2b/4b/8b/tiny (default 2b); qwen3.5 0.8b/2b/tiny (default "
                          "0.8b); internvl 1b/2b/8b/tiny (default 1b); videollama3 2b/7b/tiny (default 2b)")
    parser.add_argument("--frames", type=number_argument(int, 1), default=64, help="sampled frames (default 64)")
    parser.add_argument("--resolution", type=number_argument(int, 1), default=448,
                        help="frame side in pixels (default 448)")
    parser.add_argument("--compress", required=True, metavar="CHAIN",
                        help="compressor chain to compare with no compression, e.g. pyramiddrop or pool:2,tome:0.5")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--threads", type=number_argument(int, 1), help="CPU threads for torch (default: all cores)")
    parser.add_argument("--repeat", type=number_argument(int, 1), default=1,
                        help="timed prefills per setting; the best is kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def build_model(size: str, device: str, dtype: str, seed: int) -> Any:
    """A random-init Qwen2VLForConditionalGeneration with the given LLM shape and its small vision tower
    (:func:`mmlong.planning.shapes.named_shape`: 1 block of width 32 for the 0.5b/1.5b/tiny shapes)."""
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    from mmlong.models.loading import resolve_dtype
    from mmlong.planning.shapes import named_shape

    hidden, layers, heads, kv_heads, ffn = SIZES[size]
    vision = named_shape(size).vision
    head_dim = hidden // heads
    section = [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]
    section[0] += head_dim // 2 - sum(section)
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=32768,
                         rope_parameters=dict(rope_type="default", rope_theta=1e6, mrope_section=section),
                         bos_token_id=VOCAB - 5, eos_token_id=VOCAB - 5, pad_token_id=VOCAB - 5),
        vision_config=dict(depth=vision.depth, embed_dim=vision.embed, hidden_size=hidden, num_heads=vision.heads,
                           mlp_ratio=vision.mlp // vision.embed),
        image_token_id=VOCAB - 1, video_token_id=VOCAB - 2, vision_start_token_id=VOCAB - 3,
        vision_end_token_id=VOCAB - 4, tie_word_embeddings=True,
    )
    config.text_config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    return model.to(device=device, dtype=resolve_dtype(dtype))


def visual_tokens(frames: int, resolution: int, hidden: int, seed: int) -> Any:
    """Random features on the Qwen2-VL grid of ``frames`` frames at ``resolution`` (positions in frame units)."""
    import torch

    from mmlong.types import VisualTokens

    t, side = max(1, frames // 2), max(1, resolution // 28)
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(t, side, side, hidden, generator=gen) * 0.02
    tokens = VisualTokens.from_grid(features, torch.arange(t, dtype=torch.float64) * 2.0)
    positions = tokens.positions.clone()
    positions[:, 0] *= 2
    return tokens.replace(positions=positions, frame_ids=tokens.frame_ids * 2)


def layer_flops(lengths: list[int], hidden: int, kv_dim: int, ffn: int, q_dim: int | None = None) -> float:
    """Prefill FLOPs: projections and MLP (2 per multiply-add) plus causal attention (QK^T and AV); ``q_dim``:
    heads x head_dim when it is not ``hidden`` (Qwen3)."""
    from mmlong.planning.estimate import llm_layer_flops

    return float(sum(llm_layer_flops(n, hidden, q_dim or hidden, kv_dim, ffn, causal=True) for n in lengths))


def hybrid_flops(shape: Any, lengths: list[int]) -> float:
    """Prefill FLOPs of a Qwen3.5 shape: its linear-attention layers (:func:`mmlong.planning.estimate.
    linear_layer_flops`) and gated causal attention in the others."""
    from mmlong.planning.estimate import linear_layer_flops, llm_layer_flops

    return float(sum(linear_layer_flops(shape, n) if i in shape.linear_layers else
                     llm_layer_flops(n, shape.hidden, shape.q_dim, shape.kv_dim, shape.ffn, causal=True)
                     + 2.0 * n * shape.hidden * shape.q_dim for i, n in enumerate(lengths)))


def prefill(model: Any, tokens: Any, in_llm: list[Any], seed: int, arch: Any = None) -> dict[str, Any]:
    """One prefill of ``tokens`` between two text runs; returns ms, per-layer lengths and KV cache MB.

    ``arch``: a :class:`~mmlong.apps.bench.prefill_arch.Arch` for the newer families (their block layout,
    positions and DeepStack); None for Qwen2-VL's single span."""
    import torch

    from mmlong.models.decoding import decoder_layers, greedy_decode, language_model
    from mmlong.models.native.qwen2_vl import mrope_offsets
    from mmlong.models.positions import as_position_ids, mrope_positions
    from mmlong.models.prompt_inputs import splice_embeddings

    device = next(model.parameters()).device
    if arch is not None:
        from mmlong.apps.bench.prefill_arch import arch_prompt

        embeds, visual_mask, position_ids, side = arch_prompt(arch, model, tokens, TEXT_BEFORE, TEXT_AFTER, seed)
    else:
        gen = torch.Generator().manual_seed(seed)
        before = torch.randint(0, VOCAB - 8, (TEXT_BEFORE,), generator=gen)
        after = torch.randint(0, VOCAB - 8, (TEXT_AFTER,), generator=gen)
        embeds, visual_mask = splice_embeddings(model.get_input_embeddings(), [before, tokens.features, after])
        offsets, extent = mrope_offsets(tokens, 2)
        positions = mrope_positions([TEXT_BEFORE, (offsets, extent), TEXT_AFTER], delta=float(tokens.position_step))
        position_ids = as_position_ids(positions, device).unsqueeze(1)
        side = None
    layers = decoder_layers(model)
    lengths = [embeds.shape[1]] * len(layers)
    captured: dict[str, Any] = {}
    handle = layers[-1].register_forward_hook(
        lambda m, a, kw, out: captured.update(cache=kw.get("cache") or kw.get("past_key_values")), with_kwargs=True)
    cpu_start = time.process_time()
    try:
        own = [step for step in in_llm if hasattr(step, "hooks")]  # DyCoke's KV pruning, FrameFusion
        if own:
            with own[0].hooks(layers, visual_mask, tokens) as hooks, _side(side, layers, hooks):
                result = greedy_decode(model, embeds, position_ids, max_new_tokens=0)
            lengths = list(getattr(hooks, "observed", None) or lengths)  # DyCoke prunes only while decoding
        elif in_llm:
            from mmlong.compressors.llm_pruning import InLLMPruning

            lm = language_model(model)
            with InLLMPruning(layers, in_llm, visual_mask, rotary=lm.rotary_emb, position_ids=position_ids) as pruning:
                with _side(side, layers, pruning):
                    result = greedy_decode(model, embeds, position_ids, max_new_tokens=0)
            lengths = pruning.observed
        else:
            with _side(side, layers, None):
                result = greedy_decode(model, embeds, position_ids, max_new_tokens=0)
    finally:
        handle.remove()
    cpu_ms = (time.process_time() - cpu_start) * 1000.0
    cache = captured.get("cache")
    kv_bytes = 0
    if cache is not None:
        for layer in getattr(cache, "layers", []):
            for name in ("keys", "values"):
                value = getattr(layer, name, None)
                if isinstance(value, torch.Tensor):
                    kv_bytes += value.numel() * value.element_size()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"ms": result.prefill_ms, "cpu_ms": cpu_ms, "lengths": lengths, "prompt_tokens": int(embeds.shape[1]),
            "visual_tokens": int(visual_mask.sum()), "kv_cache_mb": kv_bytes / 2**20}


def _side(side: Any, layers: Any, pruner: Any) -> Any:
    from contextlib import nullcontext

    return nullcontext() if side is None else side(layers, pruner)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from mmlong.compressors.base import Chain, CompressContext

    if args.threads:
        torch.set_num_threads(args.threads)
    else:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    chain = Chain.from_spec(args.compress)
    arch = None
    if args.arch != "qwen2-vl":
        from mmlong.apps.bench.prefill_arch import ARCHS, arch_tokens

        arch = ARCHS[args.arch]
        shape = arch.shape(args.size)
        hidden, heads, kv_heads, ffn, head_dim = shape.hidden, shape.heads, shape.kv_heads, shape.ffn, shape.dim_head
        model = arch.build(shape, args.device, args.dtype, args.seed)
        tokens = arch_tokens(arch, args.frames, args.resolution, hidden, args.seed)
    else:
        hidden, _, heads, kv_heads, ffn = SIZES[args.size]
        head_dim = hidden // heads
        model = build_model(args.size, args.device, args.dtype, args.seed)
        tokens = visual_tokens(args.frames, args.resolution, hidden, args.seed)
    # tokens stay float32 on the CPU (the VisualTokens rule); splicing casts them to the model's dtype
    start = time.perf_counter()
    compressed = chain(tokens, CompressContext())
    compress_ms = (time.perf_counter() - start) * 1000.0

    warm = arch_tokens(arch, 2, 64, hidden, args.seed) if arch else visual_tokens(2, 56, hidden, args.seed)
    with torch.inference_mode():
        prefill(model, warm, [], args.seed, arch)  # first-call allocations are not part of either timing
        runs = {"baseline": [], "compressed": []}
        for _ in range(max(1, args.repeat)):
            runs["baseline"].append(prefill(model, tokens, [], args.seed, arch))
            runs["compressed"].append(prefill(model, compressed, chain.in_llm, args.seed, arch))
    base = min(runs["baseline"], key=lambda r: r["ms"])
    comp = min(runs["compressed"], key=lambda r: r["ms"])
    kv_dim = head_dim * kv_heads
    if arch is not None and arch.name == "qwen3.5":  # hybrid: Gated DeltaNet layers cost their own FLOPs
        base_flops, comp_flops = (hybrid_flops(shape, run["lengths"]) for run in (base, comp))
    else:
        base_flops = layer_flops(base["lengths"], hidden, kv_dim, ffn, heads * head_dim)
        comp_flops = layer_flops(comp["lengths"], hidden, kv_dim, ffn, heads * head_dim)
    return {
        "arch": args.arch, "size": args.size, "frames": args.frames, "resolution": args.resolution,
        "compress": args.compress, "device": str(args.device), "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "baseline_ms": round(base["ms"], 1),
        "compressed_ms": round(comp["ms"], 1),
        "pre_llm_ms": round(compress_ms, 1),
        "baseline_cpu_ms": round(base["cpu_ms"], 1),
        "compressed_cpu_ms": round(comp["cpu_ms"], 1),
        "cpu_time_speedup": round(base["cpu_ms"] / comp["cpu_ms"], 2),
        "speedup": round(base["ms"] / comp["ms"], 2),
        "speedup_with_pre_llm": round(base["ms"] / (comp["ms"] + compress_ms), 2),
        "baseline_tokens": base["prompt_tokens"],
        "compressed_tokens": round(sum(comp["lengths"]) / len(comp["lengths"])),
        "compressed_prompt_tokens": comp["prompt_tokens"],
        "baseline_visual_tokens": base["visual_tokens"],
        "compressed_visual_tokens": comp["visual_tokens"],
        "layer_lengths": comp["lengths"],
        "baseline_tflops": round(base_flops / 1e12, 3),
        "compressed_tflops": round(comp_flops / 1e12, 3),
        "flops_ratio": round(base_flops / comp_flops, 2),
        "baseline_kv_cache_mb": round(base["kv_cache_mb"], 3),
        "compressed_kv_cache_mb": round(comp["kv_cache_mb"], 3),
        "peak_memory_mb": round(peak_memory_mb(args.device), 1),
    }


def peak_memory_mb(device: str) -> float:
    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    from mmlong.pipeline import peak_rss_mb

    return peak_rss_mb()


def check_size(args: argparse.Namespace) -> str | None:
    """Fill in the family's default ``--size``; the one-line reason when the family has no such size."""
    from mmlong.apps.bench.prefill_arch import SHAPE_NAMES

    sizes = SIZES if args.arch == "qwen2-vl" else (*SHAPE_NAMES[args.arch], "tiny")
    if args.size is None:
        args.size = "0.5b" if args.arch == "qwen2-vl" else SHAPE_NAMES[args.arch][0]
    if args.size not in sizes:
        return f"--size {args.size!r}: {args.arch} sizes are {', '.join(sorted(sizes))}"
    return None


def run(args: argparse.Namespace) -> int:
    import sys

    problem = check_size(args)
    if problem:
        print(f"mmlong bench prefill: {problem}", file=sys.stderr)
        return 2
    result = measure(args)
    if args.json:
        print(json.dumps(result))
        return 0
    rows = [
        ("", "no compression", args.compress),
        ("prefill ms", f"{result['baseline_ms']:.1f}", f"{result['compressed_ms']:.1f}"),
        ("prefill CPU time ms (all threads)", f"{result['baseline_cpu_ms']:.1f}", f"{result['compressed_cpu_ms']:.1f}"),
        ("tokens in the LLM (mean per layer)", str(result["baseline_tokens"]), str(result["compressed_tokens"])),
        ("visual tokens in the prompt", str(result["baseline_visual_tokens"]),
         str(result["compressed_visual_tokens"])),
        ("est. prefill TFLOPs", f"{result['baseline_tflops']:.3f}", f"{result['compressed_tflops']:.3f}"),
        ("KV cache MB", f"{result['baseline_kv_cache_mb']:.1f}", f"{result['compressed_kv_cache_mb']:.1f}"),
    ]
    width = max(len(r[0]) for r in rows)
    family = {"qwen2-vl": "Qwen2-VL", "qwen3-vl": "Qwen3-VL", "qwen3.5": "Qwen3.5", "internvl": "InternVL3.5",
              "videollama3": "VideoLLaMA3"}[args.arch]
    print(f"{family}-shaped {args.size} LLM, {args.frames} frames at {args.resolution}px, {args.device} "
          f"{args.dtype}, {result['threads']} threads")
    for name, a, b in rows:
        print(f"  {name:<{width}}  {a:>16}  {b:>16}")
    print(f"  speedup {result['speedup']:.2f}x (with the pre-LLM steps' own {result['pre_llm_ms']:.0f} ms: "
          f"{result['speedup_with_pre_llm']:.2f}x); FLOPs ratio {result['flops_ratio']:.2f}x; "
          f"process peak memory {result['peak_memory_mb']:.0f} MB")
    return 0
