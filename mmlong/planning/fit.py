"""Does a run fit its memory budget? The planner applied to a :class:`~mmlong.config.resolve.ResolvedPipeline` and a
video.

:func:`plan_run` turns a resolved pipeline and a video's metadata into the planner's
:class:`~mmlong.planning.estimate.FramePlan`
and :class:`~mmlong.planning.estimate.Estimate`: the sampler's frame count (from the metadata alone), the decoded size
(``max_side``), the pre-LLM chain's token count (the chain run on placeholder features of the right grid,
which costs milliseconds), and the in-LLM schedule. :func:`check_fits` refuses a run over a memory budget with
one line saying what would fit; a chain that meets a token budget (``pool:auto``, ``tome:auto``, ``select``,
``stream-memory``) is instead given the largest token budget that fits (:func:`fitting_token_budget`).
Native Qwen2-VL, Qwen3-VL, Qwen3.5, InternVL and VideoLLaMA3 shapes are planned; other models are refused a
memory budget (:func:`shape_for`).
:func:`fit_to_memory` applies the tree's own ``runtime.memory_budget`` (``--memory-budget 12GB``); the variants
:func:`suggestions` tries are the same tree with one node changed (:func:`with_dtype`, :func:`with_pool`, ...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mmlong.config.budget import format_bytes
from mmlong.errors import ConfigError
from mmlong.planning.estimate import MAX_PIXELS, MIN_PIXELS, Estimate, FramePlan, estimate, frame_plan, layer_drops
from mmlong.planning.shapes import ModelShape, load_shape


@dataclass
class RunPlan:
    """A config's plan for one video: the frames, the estimate, and how the chain's token count was found."""

    video: str
    shape: ModelShape
    plan: FramePlan
    estimate: Estimate
    chain_note: str


def shape_for(config: Any) -> tuple[ModelShape, dict[str, int]] | None:
    """The model shape of a resolved pipeline's native model (its checkpoint folder, hub id or default weights) of
    a planned family, or None for a model the planner does not model."""
    from mmlong.planning.families import FAMILIES

    if config.model.family != "qwen2-vl" and config.model.family not in FAMILIES.values():
        return None
    return load_shape(str(config.model.config.path))


def with_dtype(config: Any, dtype: str) -> Any:
    """The same tree computing in ``dtype``: the runtime and a model Config that followed the runtime's dtype."""
    model_config = config.model.config
    if getattr(model_config, "dtype", None) == config.runtime.dtype:
        model_config = dataclasses.replace(model_config, dtype=dtype)
    return dataclasses.replace(config, runtime=dataclasses.replace(config.runtime, dtype=dtype),
                               model=dataclasses.replace(config.model, config=model_config))


def with_pool(config: Any, factor: int) -> Any:
    """The same tree with a ``pool:factor`` step after its chain (ConfigError when pool cannot follow it)."""
    from mmlong.config.resolve import compressor_plugins

    return dataclasses.replace(config, compressors=config.compressors + compressor_plugins(f"pool:{factor}"))


def with_max_side(config: Any, side: int) -> Any:
    """The same tree decoding frames to ``side`` pixels on the longer side."""
    return dataclasses.replace(config, decoder=dataclasses.replace(config.decoder, max_side=side))


def _chain(config: Any) -> Any:
    from mmlong.compressors.base import Chain

    return Chain([c.build() for c in config.compressors])


def sampled_frames(sampler: Any, meta: Any) -> int:
    """How many frames the sampler (a :class:`~mmlong.config.resolve.Plugin`) picks from a video with ``meta``, from the
    metadata alone."""
    built = sampler.build()
    if not built.needs_encoder:
        return len(built.sample(meta).indices)
    frames = getattr(built.config, "frames", None)
    if frames is None:
        raise ConfigError(f"--sample {sampler.describe()!r}: the planner cannot tell how many frames this sampler "
                          "picks")
    return min(int(frames), int(meta.num_frames))


def _reason(err: Exception) -> str:
    """An error's first line, for a plan's note (its type when it has no text)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def chain_tokens(chain: Any, grid: tuple[int, int, int], budget: int | None) -> tuple[int | None, str]:
    """Tokens left by the pre-LLM steps of ``chain`` (a :class:`~mmlong.compressors.base.Chain`) on a
    ``(T, H, W)`` grid: run on placeholder features.

    Returns ``(tokens, note)``; tokens is None when the chain needs what placeholders lack (a query, the video).
    """
    import torch

    from mmlong.compressors.base import CompressContext
    from mmlong.types import VisualTokens

    if not chain.pre_llm:
        return None, ""
    t, h, w = grid
    gen = torch.Generator().manual_seed(0)
    tokens = VisualTokens.from_grid(torch.randn(t, h, w, 8, generator=gen), torch.arange(t, dtype=torch.float64))
    try:
        out = chain(tokens, CompressContext(budget=budget))
    except Exception as err:  # e.g. a query-aware step without a query
        if budget is not None:
            return budget, f"chain not simulated ({_reason(err)}); planned at the token budget"
        return None, f"chain not simulated ({_reason(err)}); planned uncompressed"
    return out.num_tokens, "chain simulated on placeholder features"


def plan_run(config: Any, meta: Any, shape: ModelShape, pixels: dict[str, int] | None = None, *,
             frames: int | None = None, total_pixels: int | None = None, throughput: float | None = None,
             budget_tokens: int | None = None) -> RunPlan:
    """The plan of running ``config`` (a :class:`~mmlong.config.resolve.ResolvedPipeline`) on the video of ``meta``
    (``frames`` overrides the sampler's count)."""
    from mmlong.media.video.base import output_size

    pixels = pixels or {}
    count = frames if frames is not None else sampled_frames(config.sampler, meta)
    width, height = output_size(int(meta.width), int(meta.height), 0, config.decoder.max_side)
    budget = budget_tokens if budget_tokens is not None else config.budget
    from mmlong.planning.families import FAMILY_PIXELS

    pixels = {**FAMILY_PIXELS.get(shape.family, {}), **pixels}
    limits = dict(min_pixels=pixels.get("min_pixels", MIN_PIXELS), max_pixels=pixels.get("max_pixels", MAX_PIXELS),
                  total_pixels=total_pixels or pixels.get("total_pixels"),
                  clip_pixels=bool(pixels.get("clip_pixels")), frame_side=int(pixels.get("frame_side", 0)))
    raw = frame_plan(shape, count, height, width, **limits)
    chain = _chain(config)
    temporal = raw.temporal_patches
    side = shape.vision.patch * shape.vision.merge if shape.vision else 28
    kept, note = chain_tokens(chain, (temporal, raw.height // side, raw.width // side), budget)
    drops = layer_drops(chain.in_llm, shape.layers) if chain.in_llm else None
    chunk = int(getattr(config.model.config, "frames_per_batch", 16))
    plan = frame_plan(shape, count, height, width, **limits, compressed_tokens=kept, drops=drops,
                      chunk_frames=chunk, chain=config.compress_spec)
    return RunPlan(str(meta.path), shape, plan, estimate(shape, plan, _dtype(config), throughput=throughput), note)


def _dtype(config: Any) -> str:
    """The dtype the model computes in."""
    return str(getattr(config.model.config, "dtype", None) or config.runtime.dtype)


def fitting_token_budget(config: Any, meta: Any, shape: ModelShape, pixels: dict[str, int],
                         budget_bytes: int) -> int | None:
    """The largest visual-token budget whose run fits ``budget_bytes`` (None when not even 1 token fits)."""
    base = plan_run(config, meta, shape, pixels)
    lo, hi, best = 1, base.plan.visual_tokens, None
    while lo <= hi:
        mid = (lo + hi) // 2
        plan = dataclasses.replace(base.plan, compressed_tokens=mid,
                                   layer_lengths=tuple(mid + base.plan.text_tokens for _ in range(shape.layers)))
        if estimate(shape, plan, _dtype(config)).peak <= budget_bytes:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best


def suggestions(config: Any, meta: Any, shape: ModelShape, pixels: dict[str, int], budget_bytes: int) -> list[str]:
    """Flags that would make the run fit: fewer frames, a spatial pool after the chain, a smaller max side,
    half-precision weights."""
    found = []
    if _dtype(config) == "float32":
        half = with_dtype(config, "bfloat16")
        if plan_run(half, meta, shape, pixels).estimate.peak <= budget_bytes:
            found.append("--dtype bfloat16")
    frames = plan_run(config, meta, shape, pixels).plan.frames
    lo, hi, best = 1, frames - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        if plan_run(config, meta, shape, pixels, frames=mid).estimate.peak <= budget_bytes:
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    if best:
        found.append(f"--sample uniform:{best}")
    for factor in (2, 3, 4, 6, 8):
        try:
            pooled = with_pool(config, factor)
            fits = plan_run(pooled, meta, shape, pixels).estimate.peak <= budget_bytes
        except ConfigError:  # pool cannot follow an in-LLM step
            break
        if fits:
            found.append(f"--compress {pooled.compress_spec}")
            break
    for side in (336, 224, 168, 112):
        if config.decoder.max_side and side >= config.decoder.max_side:
            continue
        smaller = with_max_side(config, side)
        if plan_run(smaller, meta, shape, pixels).estimate.peak <= budget_bytes:
            found.append(f"--max-side {side}")
            break
    return found


def uses_token_budget(config: Any) -> bool:
    """True when some pre-LLM step of the chain reads ``ctx.budget`` (an ``auto`` factor or an unset count)."""
    for step in _chain(config).pre_llm:
        values = step.config_dict()
        if "auto" in values.values():
            return True
        if any(values.get(k, 0) is None for k in ("budget", "frames", "tokens")):
            return True
    return False


def check_fits(config: Any, videos: Sequence[str], budget_bytes: int, decoder_probe: Any = None) -> Any:
    """``config`` unchanged, or with the token budget that fits, or ConfigError: one line with what would fit.

    Plans every video (metadata only) and keeps the worst. A model the planner does not model is refused: a
    memory budget that cannot be kept is not silently ignored.
    """
    from mmlong.errors import MmlongError
    from mmlong.media.video import probe

    found = shape_for(config)
    if found is None:
        raise ConfigError(f"--memory-budget {format_bytes(budget_bytes)}: memory is planned for Qwen2-VL, Qwen3-VL, "
                          f"Qwen3.5, InternVL and VideoLLaMA3 models only and model {config.model.family!r} is not "
                          "one, so the budget could not be kept; leave out the memory budget or give a token budget "
                          "(--budget 2048)")
    if not videos:
        return config
    shape, pixels = found
    metas = []
    for video in dict.fromkeys(videos):
        try:
            metas.append((decoder_probe or probe)(video, decoder=config.decoder.name))
        except MmlongError:  # a bad video fails on its own later; the others are still checked
            continue
    if not metas:
        return config
    worst = max((plan_run(config, m, shape, pixels) for m in metas), key=lambda r: r.estimate.peak)
    if worst.estimate.peak <= budget_bytes:
        return config
    meta = next(m for m in metas if str(m.path) == worst.video)
    if config.budget is None and uses_token_budget(config):
        tokens = fitting_token_budget(config, meta, shape, pixels, budget_bytes)
        if tokens:
            fitted = dataclasses.replace(config, budget=tokens)
            if all(plan_run(fitted, m, shape, pixels).estimate.peak <= budget_bytes for m in metas):
                return fitted
    fixes = suggestions(config, meta, shape, pixels, budget_bytes)
    would = "; would fit: " + " or ".join(fixes) if fixes else "; nothing smaller fits: raise the budget"
    raise ConfigError(f"needs ~{format_bytes(worst.estimate.peak)}, budget {format_bytes(budget_bytes)}{would}",
                      worst.video)


def fit_to_memory(config: Any, videos: Sequence[Any]) -> Any:
    """:func:`check_fits` against the tree's ``runtime.memory_budget`` (``config`` unchanged when it has none)."""
    budget = config.runtime.memory_budget
    if budget is None:
        return config
    return check_fits(config, [str(v) for v in videos], budget)
