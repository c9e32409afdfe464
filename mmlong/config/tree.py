"""The resolved pipeline: a tree of each plug-in's own Config, every default pinned (made by
:func:`mmlong.config.resolve.resolve`).

:class:`ResolvedPipeline` holds the decoding (:class:`Decoding`), the sampler, the encoder and each compressor of
the chain (:class:`Plugin`: kind, registered name, its Config instance), the token budget, the model
(:class:`ResolvedModel`: the :class:`~mmlong.config.modelref.ModelRef` and the adapter's Config), the experts and
subtitles, and the :class:`Runtime` (device, dtype, cache, memory budget, ...). ``to_dict()`` is what
``config.yaml`` holds beside every result; :meth:`ResolvedPipeline.answer_settings` is what a resumed run must
match (it leaves out :data:`RESUME_NEUTRAL`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmlong.config.modelref import ModelRef

RESUME_NEUTRAL = ("device", "cache", "cache_dir", "chunk_size", "frames_per_batch", "batch_size", "memory_budget")


def _plain(value: Any) -> Any:
    """YAML/JSON-safe: tuples become lists, anything unusual its string."""
    return json.loads(json.dumps(value, default=str))


@dataclass(frozen=True)
class Plugin:
    """One registered plug-in: its kind (``sampler``, ``encoder``, ``compressor``, ``model``), name and Config.

    ``config`` is the plug-in's own Config dataclass instance (``None`` for the ``native`` encoder, which is the
    model's vision tower and is configured by the model's Config).
    """

    kind: str
    name: str
    config: Any = None

    def options(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config) if dataclasses.is_dataclass(self.config) else {}

    def plugin_class(self) -> type:
        from mmlong.registry import registry

        return registry(self.kind).resolve(self.name)

    def build(self) -> Any:
        """A fresh instance: ``cls(config)``."""
        cls = self.plugin_class()
        return cls() if self.config is None else cls(self.config)

    def describe(self) -> str:
        """A short spec: the name, the first option's value, then the other options that differ from the
        Config's defaults (``fps:1.0,max_frames=256``, ``tome:0.5``)."""
        options = self.options()
        if not options:
            return self.name
        defaults = dataclasses.asdict(type(self.config)())
        first, *rest = options
        parts = [] if options[first] is None else [str(options[first])]  # an unset first option is left out
        parts += [f"{k}={options[k]}" for k in rest if defaults.get(k) != options[k]]
        return f"{self.name}:{','.join(parts)}" if parts else self.name

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "options": _plain(self.options())}


@dataclass(frozen=True)
class Decoding:
    """How frames are read: ``name`` (``auto``: decord with a PyAV fallback, ``decord``, ``pyav``) and the
    longer side frames are resized to on decode (``None``: full size)."""

    name: str = "auto"
    max_side: int | None = 448


@dataclass(frozen=True)
class Runtime:
    """Where and how the pipeline runs; none of it changes which frames are chosen or how they are compressed."""

    device: str = "cpu"
    dtype: str = "float32"
    cache: bool = True
    cache_dir: str | None = None
    chunk_size: int = 32
    max_duration: float | None = None
    #: the peak memory the run may use, in bytes (``--memory-budget 12GB``); checked by
    #: :func:`mmlong.planning.fit.fit_to_memory`
    memory_budget: int | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False


@dataclass(frozen=True)
class ResolvedModel:
    """The model: ``ref`` (family, path, source, reference; :class:`~mmlong.config.modelref.ModelRef`) and the
    adapter's Config (``path`` filled in from the reference)."""

    ref: ModelRef
    config: Any

    @property
    def family(self) -> str:
        return self.ref.family

    @property
    def plugin(self) -> Plugin:
        return Plugin("model", self.ref.family, self.config)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.ref.family, "source": self.ref.source, "reference": self.ref.reference,
                "options": _plain(self.plugin.options())}


@dataclass(frozen=True)
class ResolvedPipeline:
    """Everything a :class:`~mmlong.pipeline.Pipeline` runs, each plug-in with its own Config, defaults pinned."""

    decoder: Decoding
    sampler: Plugin
    encoder: Plugin
    compressors: tuple[Plugin, ...]
    budget: int | None
    model: ResolvedModel
    runtime: Runtime
    #: expert chain spec (``ocr,asr``; empty for none) and the subtitle source (``asr``, a file, ``none``)
    experts: str = ""
    subtitles: str = "none"

    # ------------------------------------------------------------------ reading
    @property
    def sample_spec(self) -> str:
        """The sampler as a short spec (for tables and logs)."""
        return self.sampler.describe()

    @property
    def compress_spec(self) -> str:
        """The chain as a short spec (``""`` for none)."""
        return ",".join(c.describe() for c in self.compressors)

    def to_dict(self) -> dict[str, Any]:
        """The tree as plain data: what ``config.yaml`` holds. ``resolve(yaml=...)`` reads it back."""
        return {
            "decoder": dataclasses.asdict(self.decoder),
            "sampler": self.sampler.to_dict(),
            "encoder": self.encoder.to_dict(),
            "compressors": [c.to_dict() for c in self.compressors],
            "budget": self.budget,
            "model": self.model.to_dict(),
            "experts": self.experts,
            "subtitles": self.subtitles,
            "runtime": dataclasses.asdict(self.runtime),
        }

    def answer_settings(self) -> dict[str, Any]:
        """:meth:`to_dict` without the settings that do not change answers (:data:`RESUME_NEUTRAL`)."""
        def strip(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: strip(v) for k, v in value.items() if k not in RESUME_NEUTRAL}
            if isinstance(value, list):
                return [strip(v) for v in value]
            return value

        return strip(self.to_dict())

    def save(self, path: str | Path) -> None:
        import yaml

        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    # ------------------------------------------------------------------ changing
    def with_device(self, device: str) -> "ResolvedPipeline":
        """The same pipeline on ``device``: the runtime and every plug-in that followed the runtime's device."""
        old = self.runtime.device

        def move(config: Any) -> Any:
            if dataclasses.is_dataclass(config) and getattr(config, "device", None) == old:
                return dataclasses.replace(config, device=device)
            return config

        return dataclasses.replace(
            self,
            encoder=dataclasses.replace(self.encoder, config=move(self.encoder.config)),
            model=dataclasses.replace(self.model, config=move(self.model.config)),
            runtime=dataclasses.replace(self.runtime, device=device),
        )
