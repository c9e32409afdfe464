"""The pipeline *request*: one flat dataclass, filled from a preset, a YAML file and CLI flags, in that order.

Unset values (``None``) never override what came before, so ``resolve_config(preset="offline", budget=None)``
is the preset unchanged. This is what a user writes; :func:`mmlong.config.resolve.resolve` turns it into the
:class:`~mmlong.config.resolve.ResolvedPipeline` tree (each plug-in's own Config, every default pinned) that runs and
is saved next to every result. A YAML file may hold either form: flat :class:`PipelineConfig` fields, or a
saved tree (``decoder``/``sampler``/``encoder``/``compressors``/``budget``/``model``/``runtime`` sections),
which :func:`flat_from_tree` reads back into the flat form.

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
from mmlong.validate import coerce, finite_number
from mmlong.yaml_file import read_yaml_mapping


@dataclass
class PipelineConfig:
    """Everything that decides what a pipeline computes.

    sample: a sampler spec (``uniform:32``, ``fps:1,max_frames=256``, ``window:60-120+uniform:16``, ``query:32``)
    or a mapping ``{name: uniform, num_frames: 16}``. encoder: a registered encoder name, ``native`` (the
    model's own vision tower) or a mapping ``{name: ..., <options>}``; encoder_options: more options on top.
    compress: a compressor chain spec (``scenetile,tome:0.5,pool:2``; empty for none) or a list of specs and
    ``{name: ..., <options>}`` mappings. budget: the visual token budget the chain should meet, a whole number (a
    memory size there is refused: it belongs in ``memory_budget``). memory_budget: the peak memory the run may
    use, in bytes or as a size (``"12GB"``, ``"512MiB"``; :mod:`mmlong.config.budget`), checked by
    :mod:`mmlong.planning.fit`
    before anything loads. model: a
    registered model name, a local checkpoint directory or an ``org/name`` hub id (:mod:`mmlong.config.modelref`), or a
    mapping ``{name: <that>, family: ..., <options>}``; model_family: which adapter runs a directory or hub id
    whose family cannot be read from it; model_path: the older spelling of ``model: DIR`` (``model`` then names
    the family). Unknown option names raise with a did-you-mean, checked against each plug-in's Config.
    experts: an expert chain spec (``ocr,asr``; empty for none) whose timestamped lines (on-screen text, speech)
    the model reads beside the frames; subtitles: ``asr`` (speech recognition as subtitles), a ``.srt``/``.vtt``
    file, or ``none``.
    """

    decoder: str = "auto"
    sample: str | dict[str, Any] = "uniform:32"
    max_side: int | None = 448
    encoder: str | dict[str, Any] = "efficientnet-lite0"
    encoder_options: dict[str, Any] = field(default_factory=dict)
    compress: str | list[Any] = ""
    budget: str | int | None = None  # text first: a unitless "2048" stays text for mmlong.config.budget
    model: str | dict[str, Any] = "socratic"
    model_family: str | None = None
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
    memory_budget: str | int | None = None
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
            changes[key] = coerce(f"{source}: {key}", value, hints[key])
    try:
        return dataclasses.replace(cfg, **changes)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from err


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a pipeline YAML file (a mapping of PipelineConfig fields, optionally with ``preset:``)."""
    return read_yaml_mapping(path, "a pipeline config")


def save_yaml(cfg: Any, path: str | Path) -> None:
    """Write ``cfg`` (a :class:`PipelineConfig` or a :class:`~mmlong.config.resolve.ResolvedPipeline`) as YAML."""
    import yaml

    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


#: the sections of a saved :class:`~mmlong.config.resolve.ResolvedPipeline` tree
TREE_SECTIONS = ("decoder", "sampler", "encoder", "compressors", "budget", "model", "experts", "subtitles", "runtime")
#: plug-in options the runtime section fills in (so a saved tree does not pin them twice)
RUNTIME_OPTIONS = ("device", "dtype", "trust_remote_code", "allow_pickle")


def is_tree(values: Mapping[str, Any]) -> bool:
    """True for a saved tree (it has a ``sampler``, ``compressors`` or ``runtime`` section)."""
    return any(key in values for key in ("sampler", "compressors", "runtime"))


def flat_from_tree(tree: Mapping[str, Any], source: str = "config") -> dict[str, Any]:
    """The flat :class:`PipelineConfig` values of a saved tree (the inverse of ``ResolvedPipeline.to_dict``).

    Plug-in options equal to what the runtime section would fill in (device, dtype, ...) and a model ``path``
    that the model reference gives are left out, so flags such as ``--device`` still apply on top.

    >>> flat_from_tree({"sampler": {"name": "uniform", "options": {"num_frames": 8}}, "runtime": {"device": "cpu"}})
    {'sample': {'name': 'uniform', 'num_frames': 8}, 'device': 'cpu'}
    """
    unknown = [k for k in tree if k not in TREE_SECTIONS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], TREE_SECTIONS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{source}: unknown section {unknown[0]!r}{hint} sections: {', '.join(TREE_SECTIONS)}")
    runtime = dict(tree.get("runtime") or {})

    def options(section: Mapping[str, Any], what: str) -> dict[str, Any]:
        if not isinstance(section, Mapping) or "name" not in section:
            raise ConfigError(f"{source}: {what} must be a mapping with a 'name' (and 'options')")
        opts = dict(section.get("options") or {})
        return {k: v for k, v in opts.items() if not (k in RUNTIME_OPTIONS and k in runtime and runtime[k] == v)}

    flat: dict[str, Any] = {}
    if "decoder" in tree:
        decoder = tree["decoder"] or {}
        flat["decoder"] = decoder.get("name", "auto")
        if "max_side" in decoder:
            flat["max_side"] = decoder["max_side"]
    if "sampler" in tree:
        flat["sample"] = {"name": tree["sampler"].get("name"), **options(tree["sampler"], "sampler")}
    if "encoder" in tree:
        flat["encoder"] = {"name": tree["encoder"].get("name"), **options(tree["encoder"], "encoder")}
    if "compressors" in tree:
        flat["compress"] = [{"name": step.get("name"), **options(step, "a compressor")}
                            for step in tree["compressors"] or []]
    if "budget" in tree:
        flat["budget"] = tree["budget"]
    if "model" in tree:
        model = tree["model"] or {}
        opts = options({"name": model.get("reference"), **model}, "model")
        if model.get("source") in ("local", "hub"):
            opts.pop("path", None)  # the reference gives it
        flat["model"] = {"name": model.get("reference") or model.get("family"), "family": model.get("family"),
                         **opts}
    for key in ("experts", "subtitles"):
        if key in tree:
            flat[key] = tree[key]
    flat.update({k: v for k, v in runtime.items()})
    return flat


def _preset_values(preset: str) -> dict[str, Any]:
    presets = _presets()
    if preset not in presets:
        close = difflib.get_close_matches(preset, presets, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown preset {preset!r}{hint} presets: {', '.join(sorted(presets))}")
    return presets[preset]


def layered_request(
    preset: str | None = None,
    config_file: str | Path | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    default_preset: str | None = None,
) -> tuple[PipelineConfig, set[str]]:
    """Defaults, then the preset, then the YAML file (a path or an already read mapping, flat or a saved
    tree), then the overrides (``None`` values are ignored). Also returns the fields the file or the overrides
    set, which :func:`mmlong.config.resolve.resolve` needs (e.g. an encoder nobody chose follows a native model)."""
    cfg = PipelineConfig()
    if isinstance(config_file, Mapping):
        file_values, source = dict(config_file), "config"
    else:
        file_values, source = (load_yaml(config_file) if config_file else {}), str(config_file)
    file_preset = file_values.pop("preset", None)
    for value, where in ((preset, "preset"), (file_preset, f"{source}: preset")):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{where} must be a name ({', '.join(preset_names())}), got {value!r}")
    preset = preset or file_preset or default_preset  # a command's default preset never hides the file's
    if is_tree(file_values):
        file_values = flat_from_tree(file_values, source)
    if preset:
        cfg = _apply(cfg, _preset_values(preset), f"preset {preset!r}")
    explicit: set[str] = set()
    if file_values:
        cfg = _apply(cfg, file_values, source)
        explicit |= {k.replace("-", "_") for k, v in file_values.items() if v is not None}
    overrides = dict(overrides or {})
    if isinstance(overrides.get("model_options"), Mapping):  # a flag's model options add to the file's
        overrides["model_options"] = {**(cfg.model_options or {}), **overrides["model_options"]}
    cfg = _apply(cfg, overrides, "option")
    explicit |= {k.replace("-", "_") for k, v in overrides.items() if v is not None}
    return cfg, explicit


def resolve_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    **overrides: Any,
) -> PipelineConfig:
    """The flat request: defaults, then the preset, then the YAML file, then the overrides (``None`` values
    are ignored). :func:`mmlong.config.resolve.resolve` takes the same arguments and gives the resolved tree."""
    return layered_request(preset, config_file, overrides)[0]
