"""One registry class for every kind of plug-in.

Built-ins are listed as ``"name": "module:Class"`` strings and imported only when first used, so
``import mmlong`` imports neither decord nor transformers. Third parties add entry points in the group
``mmlong.<kind>`` (e.g. ``mmlong.compressors``). Every plug-in class declares a ``Config`` dataclass;
:meth:`Registry.create` builds it from keyword arguments where ``None`` never overrides a default.

>>> from mmlong.registry import Registry
>>> reg = Registry("compressor", {"tome": "mmlong.compressors.tome:ToMe"}, entry_point_group=None)
>>> reg.names()
['tome']
>>> reg.resolve("tomee")
Traceback (most recent call last):
...
mmlong.registry.UnknownPluginError: unknown compressor 'tomee'; did you mean 'tome'? available: tome
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
import typing
from importlib import metadata
from typing import Any, Callable, Mapping

from mmlong.errors import ConfigError
from mmlong.spec import Spec, parse_spec
from mmlong.validate import coerce


class RegistryError(ConfigError):
    """A plug-in could not be found, registered or built (a :class:`ConfigError`: one line, exit 2)."""


class UnknownPluginError(RegistryError, KeyError):
    def __str__(self) -> str:  # KeyError would add quotes
        return str(self.args[0])


class DuplicatePluginError(RegistryError):
    pass


class PluginConfigError(RegistryError, ValueError):
    pass


def _load_target(target: str | type) -> type:
    if not isinstance(target, str):
        return target
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError as err:
        raise RegistryError(f"{target}: module {module_name} has no attribute {attr!r}") from err


def _origin(target: str | type) -> str:
    if isinstance(target, str):
        return target
    return f"{target.__module__}:{target.__qualname__}"


class Registry:
    """Named plug-ins of one kind (``decoder``, ``sampler``, ``encoder``, ``compressor``, ``model``, ``expert``,
    ``benchmark``)."""

    def __init__(
        self,
        kind: str,
        builtins: Mapping[str, str | type] | None = None,
        entry_point_group: str | None = "",
    ) -> None:
        self.kind = kind
        self._targets: dict[str, str | type] = dict(builtins or {})
        self._group = f"mmlong.{kind}s" if entry_point_group == "" else entry_point_group
        self._entry_points_loaded = self._group is None

    # ------------------------------------------------------------------ registration
    def register(self, name: str, target: str | type | None = None) -> Callable[[type], type] | type:
        """Register ``target`` under ``name``; usable as a decorator. A duplicate name raises, naming both."""

        def add(obj: str | type) -> Any:
            self._load_entry_points()
            if name in self._targets and _origin(self._targets[name]) != _origin(obj):
                raise DuplicatePluginError(
                    f"{self.kind} {name!r} is registered twice: by {_origin(self._targets[name])} and by {_origin(obj)}"
                )
            self._targets[name] = obj
            return obj

        if target is None:
            return add
        return add(target)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in metadata.entry_points(group=self._group):
            if ep.name in self._targets and _origin(self._targets[ep.name]) != ep.value:
                raise DuplicatePluginError(
                    f"{self.kind} {ep.name!r} is registered twice: by {_origin(self._targets[ep.name])} "
                    f"and by entry point {ep.value} ({ep.dist.name if ep.dist else 'unknown package'})"
                )
            self._targets[ep.name] = ep.value

    # ------------------------------------------------------------------ lookup
    def names(self, pattern: str = "*") -> list[str]:
        self._load_entry_points()
        return sorted(n for n in self._targets if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        self._load_entry_points()
        return name in self._targets

    def _unknown(self, name: str) -> UnknownPluginError:
        names = self.names()
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return UnknownPluginError(f"unknown {self.kind} {name!r}{hint} available: {', '.join(names) or '(none)'}")

    def resolve(self, name: str) -> type:
        """The plug-in class registered under ``name``."""
        self._load_entry_points()
        if name not in self._targets:
            raise self._unknown(name)
        target = self._targets[name]
        if isinstance(target, str):
            target = _load_target(target)
            self._targets[name] = target
        return target

    # ------------------------------------------------------------------ construction
    def make_config(self, name: str, spec_args: tuple[Any, ...] = (), **options: Any) -> Any:
        """Build the plug-in's ``Config``: positional spec arguments fill fields in order, then keywords.

        ``None`` never overrides a default. Values are read and checked by :func:`mmlong.validate.coerce`.
        """
        cls = self.resolve(name)
        config_cls = getattr(cls, "Config", None)
        if config_cls is None:
            if spec_args or any(v is not None for v in options.values()):
                raise PluginConfigError(f"{self.kind} {name!r} takes no options")
            return None
        fields = [f for f in dataclasses.fields(config_cls) if f.init]
        hints = typing.get_type_hints(config_cls)
        values: dict[str, Any] = {}
        if len(spec_args) > len(fields):
            raise PluginConfigError(
                f"{self.kind} {name!r} takes at most {len(fields)} positional option(s) "
                f"({', '.join(f.name for f in fields)}), got {len(spec_args)}"
            )
        for f, value in zip(fields, spec_args):
            values[f.name] = value
        known = {f.name for f in fields}
        for key, value in options.items():
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise PluginConfigError(
                    f"{self.kind} {name!r} has no option {key!r}{hint} options: {', '.join(sorted(known)) or '(none)'}"
                )
            values[key] = value
        converted = {}
        for key, value in values.items():
            if value is None:
                continue
            what = f"{self.kind} {name!r} option {key!r}"
            try:
                converted[key] = coerce(what, value, hints.get(key))
            except ConfigError as err:
                raise PluginConfigError(str(err)) from err
        try:
            return config_cls(**converted)
        except (TypeError, ValueError, OverflowError) as err:
            raise PluginConfigError(f"{self.kind} {name!r}: {err}") from err

    def create(self, name: str, *spec_args: Any, **options: Any) -> Any:
        """Build the plug-in: ``cls(config)`` (or ``cls()`` for plug-ins without a ``Config``).

        A constructor that rejects its config (``ValueError``/``TypeError``, e.g. a width its heads do not
        divide) is reported as a :class:`PluginConfigError` naming the plug-in, never a traceback.
        """
        cls = self.resolve(name)
        config = self.make_config(name, spec_args, **options)
        try:
            return cls() if config is None else cls(config)
        except (TypeError, ValueError, OverflowError) as err:
            if isinstance(err, RegistryError):
                raise
            raise PluginConfigError(f"{self.kind} {name!r}: {err}") from err

    def from_spec(self, spec: str | Spec, **options: Any) -> Any:
        """Build from a spec string such as ``"tome:0.5"`` or ``"fps:1,max_frames=64"``."""
        parsed = parse_spec(spec) if isinstance(spec, str) else spec
        return self.create(parsed.name, *parsed.args, **{**parsed.kwargs, **options})


# The registries. Built-in names map to "module:Class" strings and are imported on first use.
DECODERS = Registry(
    "decoder",
    {
        "decord": "mmlong.media.video:DecordDecoder",
        "pyav": "mmlong.media.video:PyAVDecoder",
    },
)
SAMPLERS = Registry(
    "sampler",
    {
        "uniform": "mmlong.sampling.basic:UniformSampler",
        "fps": "mmlong.sampling.basic:FpsSampler",
        "window": "mmlong.sampling.basic:WindowSampler",
        "scene": "mmlong.sampling.scan:SceneSampler",
        "query": "mmlong.sampling.scan:QuerySampler",
        "coverage": "mmlong.sampling.coverage:CoverageSampler",
    },
)
ENCODERS = Registry(
    "encoder",
    {
        "efficientnet-lite0": "mmlong.encoders.efficientnet:EfficientNetLite0",
        "open_clip": "mmlong.encoders.openclip:OpenClipEncoder",
        "hf-vision": "mmlong.encoders.hf_vision:HFVisionEncoder",
    },
)
COMPRESSORS = Registry(
    "compressor",
    {
        "pool": "mmlong.compressors.pooling:SpatialPool",
        "tpool": "mmlong.compressors.pooling:TemporalPool",
        "progressive": "mmlong.compressors.pooling:ProgressivePool",
        "tome": "mmlong.compressors.tome:ToMe",
        "tmerge": "mmlong.compressors.tome:TemporalMerge",
        "select": "mmlong.compressors.selection:QuerySelect",
        "scenetile": "mmlong.compressors.scenetiling:SceneTile",
        "stream-memory": "mmlong.compressors.stream_memory:StreamMemory",
        "recurrent-bridge": "mmlong.compressors.recurrent_bridge:RecurrentBridge",
        "v2pe": "mmlong.compressors.v2pe:V2PE",
        "fastv": "mmlong.compressors.llm_pruning:FastV",
        "pyramiddrop": "mmlong.compressors.llm_pruning:PyramidDrop",
        "visionzip": "mmlong.compressors.visionzip:VisionZip",
        "divprune": "mmlong.compressors.divprune:DivPrune",
        "vidcom2": "mmlong.compressors.vidcom2:VidCom2",
        "holitom": "mmlong.compressors.holitom:HoliTom",
        "random": "mmlong.compressors.random_prune:RandomPrune",
        "downsample": "mmlong.compressors.downsample:Downsample",
        "dycoke-ttm": "mmlong.compressors.dycoke:DyCokeTTM",
        "dycoke-kv": "mmlong.compressors.dycoke:DyCokeKV",
        "fastvid": "mmlong.compressors.fastvid:FastVID",
        "framefusion": "mmlong.compressors.framefusion:FrameFusion",
        "prunevid": "mmlong.compressors.prunevid:PruneVid",
        "prunevid-llm": "mmlong.compressors.prunevid_llm:PruneVidLLM",
    },
)
MODELS = Registry(
    "model",
    {
        "socratic": "mmlong.models.socratic.answerer:SocraticModel",
        "qwen2-vl": "mmlong.models.native.qwen2_vl:Qwen2VLAdapter",
        "llava-onevision": "mmlong.models.native.llava_onevision:LlavaOneVisionAdapter",
        "smolvlm2": "mmlong.models.native.smolvlm:SmolVLMAdapter",
        "qwen3-vl": "mmlong.models.native.qwen3_vl:Qwen3VLAdapter",
        "internvl": "mmlong.models.native.internvl:InternVLAdapter",
        "qwen3.5": "mmlong.models.native.qwen3_5:Qwen3_5Adapter",
        "videollama3": "mmlong.models.native.video_llama_3:VideoLlama3Adapter",
    },
)
EXPERTS = Registry(
    "expert",
    {
        "ocr": "mmlong.experts.ocr:TextExpert",
        "asr": "mmlong.experts.asr:SpeechExpert",
        "subtitles": "mmlong.experts.subtitle_file:SubtitleFile",
        "people": "mmlong.experts.people:PeopleExpert",
    },
)
BENCHMARKS = Registry(
    "benchmark",
    {
        "mlvu": "mmlong.benchmarks.mlvu:MLVUBenchmark",
        "niavh": "mmlong.benchmarks.niavh:NIAVHBenchmark",
        "videomme": "mmlong.benchmarks.videomme:VideoMMEBenchmark",
        "longvideobench": "mmlong.benchmarks.longvideobench:LongVideoBenchBenchmark",
    },
)

REGISTRIES: dict[str, Registry] = {
    r.kind: r for r in (DECODERS, SAMPLERS, ENCODERS, COMPRESSORS, MODELS, EXPERTS, BENCHMARKS)
}


def registry(kind: str) -> Registry:
    """The registry of ``kind`` (singular or plural: ``"compressor"`` or ``"compressors"``)."""
    key = kind[:-1] if kind.endswith("s") and kind[:-1] in REGISTRIES else kind
    if key not in REGISTRIES:
        raise UnknownPluginError(f"unknown plug-in kind {kind!r}; kinds: {', '.join(REGISTRIES)}")
    return REGISTRIES[key]


def create(kind: str, name: str, *spec_args: Any, **options: Any) -> Any:
    """Build plug-in ``name`` of ``kind``: ``create("compressor", "tome", ratio=0.5)``."""
    return registry(kind).create(name, *spec_args, **options)


def names(kind: str, pattern: str = "*") -> list[str]:
    """Registered names of ``kind`` matching a glob ``pattern``."""
    return registry(kind).names(pattern)
