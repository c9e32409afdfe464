"""``mmlong bench plan``: the planner's estimates against measured peak memory and counted FLOPs.

For each model shape (random-init Qwen2-VL of :data:`mmlong.planning.shapes.LLM_SIZES`, built by
:func:`mmlong.apps.bench.prefill.build_model`) and each frame count, it runs what the pipeline runs for a
native Qwen2-VL: the real video processor and vision tower in chunks
(:class:`~mmlong.models.native.qwen2_vl.Qwen2VLAdapter`
``encode_frames``), then the prefill (:func:`mmlong.apps.bench.prefill.prefill`), and compares:

- **memory**: the weights plus the peak of live tensor bytes while encoding and prefilling, tracked by a
  ``TorchDispatchMode`` that adds every new tensor storage an operator returns and subtracts it when the last
  tensor holding it dies (:class:`LiveTensorPeak`, the CPU analogue of ``torch.cuda.max_memory_allocated``;
  on CUDA the allocator's own peak is used). Work buffers inside one kernel are not seen.
- **FLOPs**: ``torch.utils.flop_counter.FlopCounterMode``, with torch's own SDPA formula also applied to the CPU
  flash-attention kernel, which the counter does not list.
"""

from __future__ import annotations

import argparse
import json
import weakref
from collections.abc import Sequence
from typing import Any

from mmlong.apps.bench.flops import counted_flops
from mmlong.apps.render import plain_text

__all__ = ["LiveTensorPeak", "check", "counted_flops", "measure", "run"]

EXAMPLES = """\
examples:
  mmlong bench plan --sizes tiny,small,0.5b --frames 8,16,32 --resolution 224
  mmlong bench plan --sizes tiny --frames 4,8 --json
  mmlong bench plan --sizes qwen3-vl:tiny,qwen3.5:tiny,internvl:tiny,videollama3:tiny --frames 4,8 --resolution 112
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("plan", help="the planner's memory/FLOPs estimates vs measured and counted",
                                   description=plain_text(__doc__.split("\n\n")[0]), epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="tiny,small,0.5b",
                        help="model shapes (default: tiny,small,0.5b); the newer families as FAMILY:SIZE, e.g. "
                             "qwen3-vl:tiny,qwen3.5:tiny,internvl:tiny,videollama3:tiny")
    parser.add_argument("--frames", default="8,16,32", help="frame counts, i.e. video lengths (default: 8,16,32)")
    parser.add_argument("--resolution", type=int, default=224, help="frame side in pixels (default: 224)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print one JSON object per cell")
    parser.set_defaults(func=run)


class LiveTensorPeak:
    """Peak bytes of tensor storages alive at once among those created while active (a dispatch mode).

    >>> import torch
    >>> with LiveTensorPeak() as tracker:
    ...     a = torch.ones(1000)           # 4000 bytes
    ...     b = a * 2                      # 8000 alive
    ...     del a, b
    ...     c = torch.ones(500)            # 2000
    >>> tracker.peak, tracker.current
    (8000, 2000)
    """

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self._holders: dict[int, list[int]] = {}  # storage pointer -> [tracked tensors, bytes]
        self._mode: Any = None

    def _release(self, key: int) -> None:
        entry = self._holders.get(key)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] <= 0:
            self.current -= entry[1]
            del self._holders[key]

    def _track(self, value: Any) -> None:
        import torch

        if not isinstance(value, torch.Tensor) or value.device.type == "meta":
            return
        storage = value.untyped_storage()
        key = storage.data_ptr()
        if key == 0:
            return
        entry = self._holders.get(key)
        if entry is None:
            entry = self._holders[key] = [0, storage.nbytes()]
            self.current += entry[1]
            self.peak = max(self.peak, self.current)
        entry[0] += 1
        weakref.finalize(value, self._release, key)

    def __enter__(self) -> LiveTensorPeak:
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_flatten

        tracker = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                for value in tree_flatten(out)[0]:
                    tracker._track(value)
                return out

        self._mode = _Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._mode.__exit__(*exc)


def _video(frames: int, side: int, seed: int = 0) -> Any:
    """uint8 frames ``[T, side, side, 3]`` as :class:`~mmlong.types.Frames` at 1 fps."""
    import torch

    from mmlong.types import Frames, VideoMeta

    gen = torch.Generator().manual_seed(seed)
    data = torch.randint(0, 256, (frames, side, side, 3), generator=gen, dtype=torch.uint8)
    meta = VideoMeta(path="generated.mp4", duration=float(frames), fps=1.0, num_frames=frames, width=side,
                     height=side, decoder="generated")
    return Frames(data=data, indices=torch.arange(frames), timestamps=torch.arange(frames, dtype=torch.float64),
                  meta=meta)


def adapter_for(size: str, device: str, dtype: str) -> Any:
    """A Qwen2-VL adapter holding the random-init model of ``size`` and the stock video processor."""
    from types import SimpleNamespace

    from transformers import Qwen2VLVideoProcessor

    from mmlong.apps.bench.prefill import build_model
    from mmlong.models.native.qwen2_vl import Qwen2VLAdapter

    model = build_model(size, device, dtype, seed=0)
    processor = SimpleNamespace(video_processor=Qwen2VLVideoProcessor(cap_pixels_per_frame=False))
    adapter = Qwen2VLAdapter(Qwen2VLAdapter.Config(path="random-init", device=device, dtype=dtype))
    return adapter.load(model=model, processor=processor)


def measure(adapter: Any, frames: int, side: int, dtype: str, arch: Any = None) -> dict[str, Any]:
    """Peak bytes and counted FLOPs of encoding ``frames`` frames of ``side`` px and prefilling them (``arch``: a
    newer family's prompt layout, :class:`~mmlong.apps.bench.prefill_arch.Arch`)."""
    import torch

    from mmlong.apps.bench.prefill import prefill

    model = adapter.model
    device = next(model.parameters()).device
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    weights += sum(b.numel() * b.element_size() for b in model.buffers())
    video = _video(frames, side)

    def run() -> dict[str, Any]:
        tokens = adapter.encode_frames(video)
        tokens = tokens.replace(features=tokens.features.to(next(model.parameters()).dtype))
        return {"tokens": tokens.num_tokens, **prefill(model, tokens, [], seed=0, arch=arch)}

    with torch.inference_mode():
        _, flops = counted_flops(run)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            result = run()
            peak = weights + torch.cuda.max_memory_allocated() - base
        else:
            with LiveTensorPeak() as tracker:
                result = run()
            peak = weights + tracker.peak
    return {"visual_tokens": result["tokens"], "prompt_tokens": result["prompt_tokens"], "peak_bytes": int(peak),
            "flops": int(flops), "weights_bytes": int(weights)}


def check(sizes: Sequence[str], frame_counts: Sequence[int], side: int, dtype: str = "float32",
          device: str = "cpu") -> list[dict[str, Any]]:
    """One row per (shape, frames): measured and estimated peak and FLOPs, and their ratios."""
    from mmlong.apps.bench.plan_family import compare_row
    from mmlong.apps.bench.prefill import TEXT_AFTER, TEXT_BEFORE
    from mmlong.planning.estimate import estimate, frame_plan
    from mmlong.planning.shapes import named_shape

    rows = []
    for size in sizes:
        adapter = adapter_for(size, device, dtype)
        shape = named_shape(size)
        for frames in frame_counts:
            measured = measure(adapter, frames, side, dtype)
            plan = frame_plan(shape, frames, side, side, text_tokens=TEXT_BEFORE + TEXT_AFTER,
                              chunk_frames=adapter.config.frames_per_batch)
            rows.append(compare_row(size, frames, side, measured, plan, estimate(shape, plan, dtype)))
        del adapter
    return rows


def run(args: argparse.Namespace) -> int:
    sizes = [s for s in args.sizes.split(",") if s]
    frames = [int(f) for f in args.frames.split(",") if f]
    if any(":" in s for s in sizes):
        from mmlong.apps.bench.plan_family import check_families

        rows = check_families(sizes, frames, args.resolution, args.dtype, args.device, measure=measure)
    else:
        rows = check(sizes, frames, args.resolution, args.dtype, args.device)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print("| shape | frames | visual tokens | measured peak MB | planned MB | ratio | counted GFLOPs | planned "
          "GFLOPs | ratio |\n|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['frames']} | {r['visual_tokens']} | {r['peak_bytes'] / 1e6:.1f} | "
              f"{r['estimated_peak_bytes'] / 1e6:.1f} | {r['memory_ratio']:.2f} | {r['flops'] / 1e9:.2f} | "
              f"{r['estimated_flops'] / 1e9:.2f} | {r['flops_ratio']:.2f} |")
    return 0
