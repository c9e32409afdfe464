"""Pipeline flags shared by every command that runs a pipeline (ask, batch, eval, bench, demo).

The flags resolve to the same :class:`~mmlong.config.PipelineConfig` dataclass a preset or YAML file gives:
defaults < ``--preset`` < ``--config FILE`` < explicit flags. A flag left unset never overrides.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mmlong.budget import Budget, budget_argument
from mmlong.config import PipelineConfig, preset_names, resolve_config


def add_pipeline_arguments(parser: argparse.ArgumentParser, default_preset: str = "offline") -> None:
    group = parser.add_argument_group("pipeline (defaults < --preset < --config < flags)")
    group.add_argument("--preset", default=default_preset, choices=preset_names(),
                       help=f"a named whole pipeline (default: {default_preset})")
    group.add_argument("--config", metavar="FILE", help="a pipeline YAML file (PipelineConfig fields)")
    group.add_argument("--sample", metavar="SPEC",
                       help="frame sampler: uniform:N | fps:F[,max_frames=M] | window:START-END+uniform:N | "
                            "query:N | scene:N")
    group.add_argument("--decoder", choices=["auto", "decord", "pyav"], help="video decoder (default: auto)")
    group.add_argument("--max-side", type=int, metavar="PX", help="resize frames on decode so the longer side <= PX")
    group.add_argument("--encoder", metavar="NAME",
                       help="visual encoder (efficientnet-lite0, open_clip, hf-vision, native)")
    group.add_argument("--compress", metavar="CHAIN",
                       help="compressor chain, e.g. scenetile,tome:0.5,pool:2 (in-LLM: fastv:2,0.5, pyramiddrop)")
    group.add_argument("--budget", type=budget_argument, metavar="TOKENS|SIZE",
                       help="visual tokens the chain should meet (2048), or the peak memory the run may use (12GB, "
                            "512MiB): a run that cannot fit is refused before anything loads (see `mmlong plan`)")
    group.add_argument("--model", metavar="NAME_OR_PATH",
                       help="registered model name (socratic, qwen2-vl, ...) or a local checkpoint directory")
    group.add_argument("--experts", metavar="LIST",
                       help="experts that write timestamped text lines for the model: ocr (on-screen text), asr "
                            "(speech), comma-separated, or none (default: ocr,asr for the offline preset)")
    group.add_argument("--subtitles", metavar="asr|FILE|none",
                       help="subtitles for the model: asr (speech recognition), an .srt/.vtt file, or none")
    group.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: cpu)")
    group.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], help="compute dtype (default: float32)")
    group.add_argument("--no-cache", dest="cache", action="store_false", default=None,
                       help="do not read or write the feature cache")
    group.add_argument("--cache-dir", metavar="DIR", help="feature cache directory (default: the user cache dir)")
    group.add_argument("--trust-remote-code", action="store_true", default=None,
                       help="allow a checkpoint's own Python code to run (off by default; only for models you trust)")
    group.add_argument("--allow-pickle", action="store_true", default=None,
                       help="allow loading pickle (.bin/.pt) weights; safetensors only by default")


def looks_like_path(value: str) -> bool:
    return value.startswith((".", "/", "~")) or Path(value).expanduser().exists() or value.count("/") >= 1


def config_from_args(args: argparse.Namespace, **extra: Any) -> PipelineConfig:
    """Resolve the pipeline flags on ``args`` (plus ``extra`` overrides) to a PipelineConfig."""
    model = getattr(args, "model", None)
    model_path = None
    if model and looks_like_path(model):
        model_path, model = str(Path(model).expanduser()), None
    overrides = dict(
        sample=args.sample,
        decoder=args.decoder,
        max_side=args.max_side,
        encoder=args.encoder,
        compress=args.compress,
        budget=token_budget(args),
        model=model,
        model_path=model_path,
        experts=getattr(args, "experts", None),
        subtitles=getattr(args, "subtitles", None),
        device=args.device,
        dtype=args.dtype,
        cache=args.cache,
        cache_dir=args.cache_dir,
        trust_remote_code=args.trust_remote_code,
        allow_pickle=args.allow_pickle,
    )
    overrides.update(extra)
    cfg = resolve_config(preset=args.preset, config_file=args.config, **overrides)
    if model_path and args.encoder is None and cfg.encoder != "native":
        # a native VLM checkpoint sees through its own vision tower unless told otherwise
        from dataclasses import replace

        # ... and reads the frames itself: the offline preset's OCR/ASR lines only when asked for (--experts)
        experts = cfg.experts if getattr(args, "experts", None) else ""
        cfg = replace(cfg, encoder="native", model="auto" if cfg.model == "socratic" else cfg.model, experts=experts)
    return cfg


def token_budget(args: argparse.Namespace) -> int | None:
    """The ``--budget`` given as a token count, else None."""
    budget = getattr(args, "budget", None)
    return budget.tokens if isinstance(budget, Budget) else budget


def memory_budget(args: argparse.Namespace) -> int | None:
    """The ``--budget`` given as a memory size, in bytes, else None."""
    budget = getattr(args, "budget", None)
    return budget.bytes if isinstance(budget, Budget) else None


def fit_memory_budget(args: argparse.Namespace, config: PipelineConfig, videos: Any) -> PipelineConfig:
    """Refuse (ConfigError, one line) a run over ``--budget SIZE``, or give its chain the token budget that fits."""
    budget = memory_budget(args)
    if budget is None:
        return config
    from mmlong.fit import check_fits

    return check_fits(config, [str(v) for v in videos], budget)


def dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, default=str)
