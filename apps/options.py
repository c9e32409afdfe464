"""Pipeline flags shared by every command that runs a pipeline (ask, batch, eval, bench, demo).

The flags are :class:`~mmlong.config.request.PipelineConfig` fields, as a preset or YAML file gives them:
defaults < ``--preset`` < ``--config FILE`` < explicit flags. A flag left unset never overrides.
:func:`resolve_args` hands them to :func:`mmlong.config.resolve.resolve`, the one place that decides what runs.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Mapping, Sequence

from mmlong.config.budget import memory_budget_argument, token_budget_argument
from mmlong.config.request import preset_names
from mmlong.validate import number_argument


def add_pipeline_arguments(parser: argparse.ArgumentParser, default_preset: str = "offline") -> None:
    group = parser.add_argument_group("pipeline (defaults < --preset < --config < flags)")
    group.add_argument("--preset", choices=preset_names(),
                       help=f"a named whole pipeline (default: the --config file's preset, else {default_preset})")
    parser.set_defaults(default_preset=default_preset)
    group.add_argument("--config", metavar="FILE",
                       help="a pipeline YAML file: PipelineConfig fields, or a config.yaml saved beside a result")
    group.add_argument("--sample", metavar="SPEC",
                       help="frame sampler: coverage:N (the offline default) | uniform:N | fps:F[,max_frames=M] | "
                            "window:START-END+uniform:N | query:N | scene:N (mmlong list samplers)")
    group.add_argument("--decoder", choices=["auto", "decord", "pyav"], help="video decoder (default: auto)")
    group.add_argument("--max-side", type=number_argument(int, 1), metavar="PX",
                       help="resize frames on decode so the longer side <= PX")
    group.add_argument("--encoder", metavar="NAME",
                       help="visual encoder (efficientnet-lite0, open_clip, hf-vision, native)")
    group.add_argument("--compress", metavar="CHAIN",
                       help="compressor chain, e.g. scenetile,tome:0.5,pool:2 (in-LLM: fastv:2,0.5, pyramiddrop)")
    group.add_argument("--budget", type=token_budget_argument, metavar="TOKENS",
                       help="visual tokens the compressor chain should meet, a whole number (2048)")
    group.add_argument("--memory-budget", type=memory_budget_argument, metavar="SIZE",
                       help="the peak memory the run may use (12GB, 512MiB): a run that cannot fit is refused "
                            "before anything loads (see mmlong plan)")
    group.add_argument("--model", metavar="NAME_OR_PATH",
                       help="a registered model (socratic, qwen2-vl, qwen3-vl, qwen3.5, internvl, videollama3, ...: "
                            "mmlong list models), a local checkpoint directory (family read from its config.json) or "
                            "an org/name hub id")
    group.add_argument("--model-option", dest="model_options", action="append", type=model_option_argument,
                       metavar="KEY=VALUE",
                       help="a model option, repeatable (scoring=letter, open_answer=generate, max_new_tokens=32); "
                            "checked like model_options in a YAML file (mmlong list models names the models). The "
                            "canonical spelling; --gen_kwargs and --model_args are aliases")
    group.add_argument("--gen_kwargs", "--gen-kwargs", dest="model_options", action="extend",
                       type=key_values_argument("--gen_kwargs", greedy=True), metavar="K=V,...",
                       help="alias of --model-option for lmms-eval / transformers users: max_new_tokens=64,"
                            "temperature=0 (decoding is greedy: temperature=0, do_sample=false, num_beams=1 are "
                            "accepted, other values refused)")
    group.add_argument("--model_args", "--model-args", dest="model_options", action="extend",
                       type=key_values_argument("--model_args"), metavar="K=V,...",
                       help="alias of --model-option in lmms-eval's spelling: scoring=letter,max_new_tokens=32")
    group.add_argument("--model-family", metavar="NAME",
                       help="which adapter runs --model DIR or a hub id whose name does not tell (qwen2-vl, ...)")
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
    parser.add_argument("--verbose", action="store_true",
                        help="also show the libraries' own progress bars (transformers' \"Loading weights\")")


def model_option_argument(text: str, flag: str = "--model-option") -> tuple[str, str]:
    """argparse ``type=`` for ``--model-option KEY=VALUE``: ``(key, value)``; the value stays text and is
    converted by the model's Config like a YAML value (:func:`mmlong.registry.Registry.make_config`).

    >>> model_option_argument("max_new_tokens=32"), model_option_argument("scoring = letter")
    (('max_new_tokens', '32'), ('scoring', 'letter'))
    """
    key, sep, value = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"{flag} {text!r}: write KEY=VALUE (e.g. scoring=letter)")
    return key, value.strip()


#: generation settings lmms-eval / transformers users pass that every model here already follows: greedy decoding
GREEDY_SETTINGS = {"temperature": ("0", "0.0"), "do_sample": ("false", "0"), "num_beams": ("1",)}


def key_values_argument(flag: str, greedy: bool = False) -> Any:
    """argparse ``type=`` for ``--gen_kwargs K=V,K=V`` / ``--model_args ...`` (lmms-eval's spelling): the pairs
    of :func:`model_option_argument`, split at each comma that starts a new ``KEY=``, so a value keeps its commas.
    With ``greedy``, a :data:`GREEDY_SETTINGS` key is dropped when its value asks for greedy decoding and refused
    otherwise (no model here samples).

    >>> key_values_argument("--gen_kwargs", greedy=True)("max_new_tokens=64,temperature=0,do_sample=False")
    [('max_new_tokens', '64')]
    """
    import re

    def parse(text: str) -> list[tuple[str, str]]:
        pairs = []
        for part in re.split(r",(?=\s*[A-Za-z_][\w-]*\s*=)", text):
            key, value = model_option_argument(part, flag)
            if greedy and key in GREEDY_SETTINGS:
                if value.lower() not in GREEDY_SETTINGS[key]:
                    raise argparse.ArgumentTypeError(
                        f"{flag} {key}={value}: decoding is greedy here; only {key}={GREEDY_SETTINGS[key][0]} "
                        "is accepted")
                continue
            pairs.append((key, value))
        return pairs

    parse.__name__ = flag  # argparse names the flag's type in its messages
    return parse


#: the flags of add_pipeline_arguments that are PipelineConfig fields (preset and config are the layers)
PIPELINE_FLAGS = ("sample", "decoder", "max_side", "encoder", "compress", "budget", "memory_budget", "model",
                  "model_options", "model_family", "experts", "subtitles", "device", "dtype", "cache", "cache_dir",
                  "trust_remote_code", "allow_pickle")


def resolve_args(args: argparse.Namespace, **extra: Any) -> Any:
    """The :class:`~mmlong.config.resolve.ResolvedPipeline` of the pipeline flags on ``args`` (plus ``extra``
    PipelineConfig fields, e.g. ``max_duration``); unset flags change nothing."""
    from mmlong.config.resolve import resolve

    flags = {name: getattr(args, name, None) for name in PIPELINE_FLAGS}
    if flags["model_options"] is not None:  # [(key, value), ...] from repeated --model-option
        flags["model_options"] = dict(flags["model_options"])
    flags.update(extra)
    resolved = resolve(preset=getattr(args, "preset", None), yaml=getattr(args, "config", None), flags=flags,
                       default_preset=getattr(args, "default_preset", None))
    check_runtime(resolved)
    return resolved


def check_runtime(resolved: Any) -> None:
    """What this machine must give the run, checked at the door: the device exists, and the cache folders
    (``--cache-dir`` and ``$MMLONG_CACHE_DIR``, where models are converted too) are writable folders."""
    import os

    from mmlong.cache import CACHE_ENV
    from mmlong.validate import check_cache_dir, check_device

    check_device(resolved.runtime.device)
    if os.environ.get(CACHE_ENV):
        check_cache_dir(os.environ[CACHE_ENV], f"${CACHE_ENV}")
    if resolved.runtime.cache and resolved.runtime.cache_dir:
        check_cache_dir(resolved.runtime.cache_dir, "--cache-dir")


def resolve_settings(preset: str | None, config: str | None, settings: Mapping[str, Any],
                     ignore: Sequence[str] = ()) -> Any:
    """The :class:`~mmlong.config.resolve.ResolvedPipeline` of ``key=value`` settings (the lmms-eval bridge's model
    arguments: PipelineConfig fields, values possibly strings), leaving out the keys in ``ignore``."""
    from mmlong.config.resolve import resolve

    flags = {k: v for k, v in settings.items() if k not in ignore}
    return resolve(preset=preset, yaml=config, flags=flags)


def dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, default=str)
