"""Pipeline configuration: one dataclass, filled from a preset, a YAML file and CLI flags, in that order.

Unset values (``None``) never override what came before, so ``resolve_config(preset="offline", budget=None)``
is the preset unchanged. The resolved config is saved next to every result, so any number can be reproduced.

>>> cfg = resolve_config(preset="offline", compress="tome:0.5")
>>> cfg.model, cfg.encoder, cfg.compress
('socratic', 'efficientnet-lite0', 'tome:0.5')
>>> resolve_config(preset="ofline")
Traceback (most recent call last):
...
mmlong.errors.ConfigError: unknown preset 'ofline'; did you mean 'offline'? presets: llava-onevision, offline, ...
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from mmlong.errors import ConfigError
from mmlong.validate import check_value, finite_number, read_yaml_mapping


@dataclass
class PipelineConfig:
    """Everything that decides what a pipeline computes.

    sample: a sampler spec (``uniform:32``, ``fps:1,max_frames=256``, ``window:60-120+uniform:16``, ``query:32``).
    compress: a compressor chain spec (``scenetile,tome:0.5,pool:2``; empty for none). budget: the visual token
    budget the chain should meet. model: a registered model name; model_path: a local checkpoint directory (or
    hub id where a network exists) for native VLM families. experts: an expert chain spec (``ocr,asr``; empty for
    none) whose timestamped lines (on-screen text, speech) the model reads beside the frames; subtitles: ``asr``
    (speech recognition as subtitles), a ``.srt``/``.vtt`` file, or ``none``.
    """

    decoder: str = "auto"
    sample: str = "uniform:32"
    max_side: int | None = 448
    encoder: str = "efficientnet-lite0"
    encoder_options: dict[str, Any] = field(default_factory=dict)
    compress: str = ""
    budget: int | None = None
    model: str = "socratic"
    model_path: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    experts: str = ""
    subtitles: str = "none"
    device: str = "cpu"
    dtype: str = "float32"
    cache: bool = True
    cache_dir: str | None = None
    chunk_size: int = 32
    max_duration: float | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        check_pipeline_ranges(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_DTYPES = ("float32", "float16", "bfloat16")


def check_pipeline_ranges(cfg: PipelineConfig) -> None:
    """Range checks of the pipeline settings (types are checked where values enter, in :func:`_apply`)."""
    for name in ("max_side", "budget", "chunk_size"):
        value = getattr(cfg, name)
        if value is not None and not isinstance(value, bool) and isinstance(value, int) and value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    if isinstance(cfg.max_duration, (int, float)) and not isinstance(cfg.max_duration, bool):
        finite_number("max_duration", cfg.max_duration)
        if cfg.max_duration <= 0:
            raise ConfigError(f"max_duration must be a positive number of seconds, got {cfg.max_duration}")
    if isinstance(cfg.dtype, str) and cfg.dtype not in _DTYPES:
        close = difflib.get_close_matches(cfg.dtype, _DTYPES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown dtype {cfg.dtype!r}{hint} choose from {', '.join(_DTYPES)}")


def _presets() -> dict[str, dict[str, Any]]:
    """Named whole pipelines. A function, so nobody can mutate a shared table."""
    return {
        # Real offline video QA: EfficientNet-Lite0 describes frames, Gemma 3 270M answers (Socratic models).
        # The coverage sampler scans every second at low resolution and encodes 64 frames at full resolution
        # where the question's options match, the scene changes, and uniformly: an hour in well under a minute.
        "offline": dict(
            sample="coverage:64",
            encoder="efficientnet-lite0",
            model="socratic",
            compress="",
            # on-screen text (RapidOCR) and speech (faster-whisper) join the ImageNet lines of the transcript
            experts="ocr,asr",
        ),
        "qwen2-vl": dict(sample="uniform:16", encoder="native", model="qwen2-vl"),
        "llava-onevision": dict(sample="uniform:16", encoder="native", model="llava-onevision"),
        "smolvlm2": dict(sample="uniform:16", encoder="native", model="smolvlm2"),
    }


def preset_names() -> list[str]:
    return sorted(_presets())


def _field_names() -> set[str]:
    return {f.name for f in dataclasses.fields(PipelineConfig)}


def _apply(cfg: PipelineConfig, values: Mapping[str, Any], source: str) -> PipelineConfig:
    known = _field_names()
    hints = typing.get_type_hints(PipelineConfig)
    changes = {}
    for key, value in values.items():
        if not isinstance(key, str):
            raise ConfigError(f"{source}: setting names must be words, got {key!r}")
        key = key.replace("-", "_")
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{source}: unknown setting {key!r}{hint}")
        if value is not None:
            changes[key] = check_value(f"{source}: {key}", value, hints[key])
    try:
        return dataclasses.replace(cfg, **changes)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from err


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a pipeline YAML file (a mapping of PipelineConfig fields, optionally with ``preset:``)."""
    return read_yaml_mapping(path, "a pipeline config")


def save_yaml(cfg: PipelineConfig, path: str | Path) -> None:
    import yaml

    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def resolve_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    **overrides: Any,
) -> PipelineConfig:
    """Defaults, then the preset, then the YAML file, then the overrides (``None`` values are ignored)."""
    cfg = PipelineConfig()
    file_values: dict[str, Any] = load_yaml(config_file) if config_file else {}
    file_preset = file_values.pop("preset", None)
    for value, where in ((preset, "preset"), (file_preset, f"{config_file}: preset")):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{where} must be a name ({', '.join(preset_names())}), got {value!r}")
    preset = preset or file_preset
    if preset:
        presets = _presets()
        if preset not in presets:
            close = difflib.get_close_matches(preset, presets, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown preset {preset!r}{hint} presets: {', '.join(sorted(presets))}")
        cfg = _apply(cfg, presets[preset], f"preset {preset!r}")
    if file_values:
        cfg = _apply(cfg, file_values, str(config_file))
    return _apply(cfg, overrides, "option")
