"""Resolve once: a preset, a YAML file and flags become one :class:`ResolvedPipeline` tree.

The tree holds each plug-in's own ``Config`` dataclass with every default pinned: the decoder, the sampler,
the encoder, each compressor of the chain, and the model (its family, where its weights come from, its
adapter Config), plus the runtime (device, dtype, cache, ...). Everything that runs a pipeline calls
:func:`resolve` (the CLI commands through :func:`mmlong.apps.options.resolve_args`, the demo's settings,
``mmlong eval``, the lmms-eval bridge), so which model runs and with which options is decided here only:

- the model reference by :func:`mmlong.config.modelref.resolve_model` (a local directory, a registered name or an
  ``org/name`` hub id);
- an encoder nobody chose (left to the defaults or the preset) follows a native model: ``native``;
- every option is checked against its plug-in's Config: a misspelt key raises with a did-you-mean;
- the runtime fills in ``device``/``dtype``/``trust_remote_code``/``allow_pickle`` of plug-ins that take them,
  unless an option sets them.

``ResolvedPipeline.to_dict()`` is what ``config.yaml`` holds beside every result; reading it back
(``resolve(yaml=that_file)``) gives the same tree, and resumed runs compare trees
(:meth:`ResolvedPipeline.answer_settings`).

>>> rp = resolve(preset="offline", flags={"compress": "tome:0.5", "budget": 64})
>>> rp.model.family, rp.encoder.name, [c.name for c in rp.compressors], rp.compressors[0].config.ratio
('socratic', 'efficientnet-lite0', ['tome'], 0.5)
>>> resolve(flags={"compress": "tome:ratoi=0.5"})
Traceback (most recent call last):
...
mmlong.errors.ConfigError: --compress: compressor 'tome' has no option 'ratoi'; did you mean 'ratio'? options: ...
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmlong.config.request import RUNTIME_OPTIONS, PipelineConfig, layered_request
from mmlong.config.tree import Decoding, Plugin, ResolvedModel, ResolvedPipeline, Runtime
from mmlong.errors import ConfigError

__all__ = ["Decoding", "Plugin", "ResolvedModel", "ResolvedPipeline", "Runtime", "as_resolved",
           "compressor_plugins", "resolve", "resolve_request"]


# ---------------------------------------------------------------------------------------------- resolve
def _choice(value: Any, what: str) -> tuple[str, dict[str, Any]]:
    """A plug-in choice: a name (or spec) string, or a mapping ``{name: ..., <options>}``."""
    if isinstance(value, Mapping):
        options = dict(value)
        name = options.pop("name", None)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{what}: a mapping needs a 'name' (got {sorted(value)})")
        return name, options
    if not isinstance(value, str):
        raise ConfigError(f"{what}: expected a name or a mapping with 'name', got {value!r}")
    return value, {}


def _make(kind: str, name: str, what: str, spec_args: Sequence[Any] = (), **options: Any) -> Plugin:
    """``kind`` plug-in ``name`` with its Config built from ``options`` (unknown keys raise, with a hint)."""
    from mmlong.registry import RegistryError, registry

    try:
        return Plugin(kind, name, registry(kind).make_config(name, tuple(spec_args), **options))
    except RegistryError as err:
        raise ConfigError(f"{what}: {err}") from err


def _runtime_filled(kind: str, name: str, options: dict[str, Any], runtime: Runtime, what: str) -> dict[str, Any]:
    """``options`` plus the runtime's device/dtype/... for Config fields of those names that options leave out."""
    from mmlong.registry import RegistryError, registry

    try:
        config_cls = getattr(registry(kind).resolve(name), "Config", None)
    except RegistryError as err:
        raise ConfigError(f"{what}: {err}") from err
    fields = {f.name for f in dataclasses.fields(config_cls)} if dataclasses.is_dataclass(config_cls) else set()
    filled = {k: getattr(runtime, k) for k in RUNTIME_OPTIONS if k in fields and options.get(k) is None}
    return {**options, **filled}


def _sampler(value: Any) -> Plugin:
    from mmlong.sampling.basic import build_sampler

    if isinstance(value, Mapping):
        name, options = _choice(value, "--sample")
        return _make("sampler", name, "--sample", **options)
    sampler = build_sampler(str(value))  # spec strings, including window:..+inner, with their own errors
    return Plugin("sampler", sampler.name, sampler.config)


def compressor_plugins(value: Any) -> tuple[Plugin, ...]:
    from mmlong.spec import SpecError, parse_chain

    items = [value] if isinstance(value, (str, Mapping)) else list(value or [])
    plugins = []
    for item in items:
        if isinstance(item, Mapping):
            name, options = _choice(item, "--compress")
            plugins.append(_make("compressor", name, "--compress", **options))
            continue
        try:
            specs = parse_chain(str(item))
        except SpecError as err:
            raise ConfigError(f"--compress {item!r}: {err}") from err
        plugins += [_make("compressor", s.name, "--compress", s.args, **s.kwargs) for s in specs]
    return tuple(plugins)


def _experts(spec: Any) -> str:
    """The expert chain spec, each expert and option checked against its Config (kept as the spec string)."""
    from mmlong.spec import SpecError, parse_chain

    text = str(spec or "")
    try:
        specs = parse_chain(text)
    except SpecError as err:
        raise ConfigError(f"--experts {text!r}: {err}") from err
    for s in specs:
        _make("expert", s.name, "--experts", s.args, **s.kwargs)
    return text


def _model(request: PipelineConfig, runtime: Runtime) -> ResolvedModel:
    from mmlong.config.modelref import resolve_model
    from mmlong.registry import MODELS

    reference, options = _choice(request.model, "--model")
    family = options.pop("family", None) or request.model_family
    if request.model_path:  # the older spelling: model_path is the checkpoint, model (if not the default) its family
        if family is None and reference != "socratic" and reference in MODELS:
            family = reference
        reference = request.model_path
    ref = resolve_model(reference, family)
    options = {**options, **dict(request.model_options or {})}
    if ref.path is not None and options.get("path") is None:
        options["path"] = ref.path
    options = _runtime_filled("model", ref.family, options, runtime, "model_options")
    return ResolvedModel(ref, _make("model", ref.family, "model_options", **options).config)


def _encoder(request: PipelineConfig, explicit: set[str], model: ResolvedModel, runtime: Runtime) -> Plugin:
    from mmlong.config.modelref import is_native

    name, options = _choice(request.encoder, "--encoder")
    options.update(request.encoder_options or {})
    native = is_native(model.family)
    if "encoder" not in explicit and native and name != "native":
        name = "native"  # a native VLM sees through its own vision tower unless told otherwise
        if "encoder_options" not in explicit:
            options = {}
    if name == "native":
        if not native:
            raise ConfigError(f"model {model.family!r} has no native encoder; choose --encoder "
                              "(efficientnet-lite0, open_clip, hf-vision)")
        if options:
            raise ConfigError(f"encoder_options {sorted(options)}: the native encoder is the model's own vision "
                              "tower; set its options in model_options")
        return Plugin("encoder", "native", None)
    return _make("encoder", name, "--encoder", **_runtime_filled("encoder", name, options, runtime, "--encoder"))


def _check_chain(compressors: Sequence[Plugin], model: ResolvedModel) -> None:
    from mmlong.compressors.base import Chain

    chain = Chain([c.build() for c in compressors])  # rejects a pre-LLM step after an in-LLM one
    if chain.in_llm and not model.plugin.plugin_class().supports_in_llm:
        names = ", ".join(s.name for s in chain.in_llm)
        raise ConfigError(f"model {model.family!r} cannot run in-LLM compressors ({names}); use a native VLM "
                          "(--model DIR) or pre-LLM compressors")


def _budgets(request: PipelineConfig) -> tuple[int | None, int | None]:
    """``(tokens, bytes)``: ``budget`` (a visual-token count) and ``memory_budget`` (bytes, or a size such as
    ``"12GB"``), each parsed by :mod:`mmlong.config.budget`; a size under ``budget`` is refused, naming
    ``memory_budget``."""
    from mmlong.config.budget import parse_memory_budget, parse_token_budget

    tokens = None if request.budget is None else parse_token_budget(request.budget, "budget")
    memory = None if request.memory_budget is None else parse_memory_budget(request.memory_budget, "memory_budget")
    return tokens, memory


def resolve_request(request: PipelineConfig, explicit: set[str] | None = None) -> ResolvedPipeline:
    """The tree of a flat request. ``explicit``: the fields a user set (default: those differing from the
    defaults); an encoder not among them follows a native model."""
    from mmlong.config.modelref import is_native
    from mmlong.registry import DECODERS

    if explicit is None:
        defaults = PipelineConfig()
        explicit = {f.name for f in dataclasses.fields(request)
                    if getattr(request, f.name) != getattr(defaults, f.name)}
    if request.decoder not in ("auto", *DECODERS.names()):
        raise ConfigError(f"--decoder: unknown decoder {request.decoder!r}; decoders: auto, "
                          f"{', '.join(DECODERS.names())}")
    tokens, memory = _budgets(request)
    runtime = Runtime(
        device=str(request.device), dtype=str(request.dtype), cache=request.cache,
        cache_dir=None if request.cache_dir is None else str(request.cache_dir), chunk_size=int(request.chunk_size),
        max_duration=None if request.max_duration is None else float(request.max_duration),
        memory_budget=memory,
        trust_remote_code=request.trust_remote_code,
        allow_pickle=request.allow_pickle,
    )
    model = _model(request, runtime)
    compressors = compressor_plugins(request.compress)
    _check_chain(compressors, model)
    return ResolvedPipeline(
        decoder=Decoding(request.decoder, None if request.max_side is None else int(request.max_side)),
        sampler=_sampler(request.sample),
        encoder=_encoder(request, explicit, model, runtime),
        compressors=compressors,
        budget=tokens,
        model=model,
        runtime=runtime,
        # a native VLM reads the frames itself: a preset's OCR/ASR lines only when asked for
        experts=_experts(request.experts if "experts" in explicit or not is_native(model.family) else ""),
        subtitles=str(request.subtitles or "none"),
    )


def resolve(
    preset: str | None = None,
    yaml: str | Path | Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
    default_preset: str | None = None,
) -> ResolvedPipeline:
    """Defaults < ``preset`` < ``yaml`` (a file or a mapping; flat fields or a saved tree) < ``flags``
    (:class:`~mmlong.config.request.PipelineConfig` field names; ``None`` values change nothing) -> the tree.
    ``default_preset``: the preset when neither ``preset`` nor the file names one (a command's default).

    Raises :class:`~mmlong.errors.ConfigError` (one line, with a did-you-mean) for an unknown preset, field,
    plug-in or option, and :class:`~mmlong.errors.ModelLoadError` for a model directory that cannot be used.
    """
    request, explicit = layered_request(preset, yaml, flags, default_preset)
    return resolve_request(request, explicit)


def as_resolved(config: Any) -> ResolvedPipeline:
    """A :class:`ResolvedPipeline` from one, from a flat :class:`~mmlong.config.request.PipelineConfig`, or defaults."""
    if isinstance(config, ResolvedPipeline):
        return config
    if config is None:
        return resolve()
    if isinstance(config, PipelineConfig):
        return resolve_request(config)
    raise TypeError(f"expected a ResolvedPipeline or a PipelineConfig, got {type(config).__name__}")
