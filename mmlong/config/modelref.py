"""What ``--model X`` means, decided in one place: a local checkpoint, a registered model, or a hub id.

Every entry point (the CLI flags, a YAML file, the demo's settings, ``mmlong eval``, the lmms-eval bridge) goes
through :func:`resolve_model`, so one spelling means one thing everywhere. The rules, in order:

1. an existing local directory is a checkpoint: its family comes from ``config.json``'s ``model_type``
   (:func:`mmlong.models.loading.detect_family`);
2. a registered model name (``socratic``, ``qwen2-vl``, ...) is that model with its own default weights;
3. something spelled like a path (``./x``, ``/x``, ``~/x``, ``a/b/c``) that does not exist is an error naming it;
4. ``org/name`` (exactly one slash) is a hub id; its family comes from the name (``Qwen/Qwen2-VL-2B-Instruct``
   is ``qwen2-vl``), or from ``family`` (``--model-family``) when the name does not tell;
5. anything else is an unknown model, with a did-you-mean.

``family`` (``--model-family``) overrides detection for a local directory or a hub id.

>>> resolve_model("socratic")
ModelRef(family='socratic', path=None, source='registered', reference='socratic')
>>> resolve_model("Qwen/Qwen2-VL-2B-Instruct")
ModelRef(family='qwen2-vl', path='Qwen/Qwen2-VL-2B-Instruct', source='hub', reference='Qwen/Qwen2-VL-2B-Instruct')
>>> try:
...     resolve_model("qwen2vl")
... except ConfigError as err:
...     print(str(err).split("?")[0])
unknown model 'qwen2vl'; did you mean 'qwen2-vl'
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from mmlong.errors import ConfigError

#: registered model name -> lower-case pieces of a hub id that name that family
HUB_NAME_PATTERNS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "qwen2-vl": ("qwen2-vl", "qwen2_vl"),
        "llava-onevision": ("llava-onevision", "llava_onevision"),
        "smolvlm2": ("smolvlm",),
        "qwen3-vl": ("qwen3-vl", "qwen3_vl"),
        "internvl": ("internvl",),
        "qwen3.5": ("qwen3.5", "qwen3_5"),
        "videollama3": ("videollama3", "videollama-3", "video_llama_3"),
    }
)

SOURCES = ("registered", "local", "hub")


@dataclass(frozen=True)
class ModelRef:
    """A resolved model reference.

    family: the registered model name that runs it. path: the local directory (absolute) or hub id the adapter
    loads, ``None`` for a registered name (the adapter's own default). source: ``"registered"``, ``"local"`` or
    ``"hub"``. reference: what the user wrote.
    """

    family: str
    path: str | None
    source: str
    reference: str


def _spelled_like_path(value: str) -> bool:
    """``./x``, ``/x``, ``~/x``, ``a\\b`` or two or more slashes: a local path, never a hub id."""
    return value.startswith((".", "/", "~", "\\")) or value.count("/") > 1 or "\\" in value


def _registered(name: str, what: str) -> str:
    from mmlong.registry import MODELS

    if name not in MODELS:
        names = MODELS.names()
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{what}: unknown model family {name!r}{hint} families: {', '.join(names)}")
    return name


def family_from_hub_id(hub_id: str) -> str | None:
    """The registered family a hub id's name points to, or None when it names none (or several)."""
    name = hub_id.lower()
    found = [family for family, pieces in HUB_NAME_PATTERNS.items() if any(p in name for p in pieces)]
    return found[0] if len(found) == 1 else None


def resolve_model(reference: str, family: str | None = None) -> ModelRef:
    """Resolve ``--model reference`` (and ``--model-family family``) by the rules in the module docstring.

    Raises :class:`~mmlong.errors.ConfigError`, one line saying what to pass instead: an unknown name or family,
    or a directory that is missing, has no readable ``config.json`` or a model_type no adapter handles (named as
    the file).
    """
    from mmlong.errors import ModelLoadError

    try:
        return _resolve_model(reference, family)
    except ModelLoadError as err:  # a checkpoint that cannot be used is a setting to change, before any loading
        raise ConfigError(err.reason, err.path) from err


def _resolve_model(reference: str, family: str | None) -> ModelRef:
    from mmlong.registry import MODELS

    value = str(reference).strip()
    if not value:
        raise ConfigError("--model: empty model name; pass a registered name, a local directory or an org/name hub id")
    if family is not None:
        family = _registered(family, "--model-family")
    local = Path(value).expanduser()
    if local.exists() or _spelled_like_path(value):
        if family is None:
            from mmlong.models.loading import detect_family

            family = detect_family(value)  # also the one-line error for a missing or unreadable directory
        else:
            from mmlong.models.loading import read_checkpoint_config

            read_checkpoint_config(value)  # the directory must exist and hold a config.json
        return ModelRef(family, str(local.resolve()), "local", value)
    if value in MODELS:
        if family is not None and family != value:
            raise ConfigError(f"--model {value} is a registered model; --model-family {family} would contradict it")
        return ModelRef(value, None, "registered", value)
    if value.count("/") == 1 and all(value.split("/")):
        found = family or family_from_hub_id(value)
        if found is None:
            raise ConfigError(
                f"--model {value}: cannot tell the model family from this hub id; pass --model-family NAME "
                f"(families: {', '.join(MODELS.names())})"
            )
        return ModelRef(found, value, "hub", value)
    names = MODELS.names()
    close = difflib.get_close_matches(value, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown model {value!r}{hint} models: {', '.join(names)}; "
                      "or pass a local checkpoint directory or an org/name hub id")


def is_native(family: str) -> bool:
    """True when the registered model ``family`` sees through its own vision tower (``encoder: native``)."""
    from mmlong.models.base import VideoQAModel
    from mmlong.registry import MODELS

    cls = MODELS.resolve(family)
    return getattr(cls, "native_encoder", None) is not VideoQAModel.native_encoder
