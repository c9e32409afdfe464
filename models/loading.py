"""Loading native VLM checkpoints safely, and telling their family from ``config.json``.

:func:`load_pretrained` keeps ``trust_remote_code`` off and loads safetensors only unless ``allow_pickle``; any
failure is a one-line :class:`~mmlong.errors.ModelLoadError` that says what to do. :func:`detect_family` maps a
checkpoint's ``model_type`` to the registered adapter name.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import torch

from mmlong.encoders.preprocess import resolve_dtype
from mmlong.errors import ModelLoadError

#: config.json ``model_type`` -> registered model name
FAMILIES: Mapping[str, str] = MappingProxyType(
    {
        "qwen2_vl": "qwen2-vl",
        "llava_onevision": "llava-onevision",
        "smolvlm": "smolvlm2",
        "qwen3_vl": "qwen3-vl",
        "internvl": "internvl",
        "qwen3_5": "qwen3.5",
        "video_llama_3": "videollama3",
    }
)

# ---------------------------------------------------------------------------------------------- checkpoints
def is_local_reference(path: str) -> bool:
    """True when ``path`` names a local directory (existing, or spelled like one) rather than a hub id."""
    if Path(path).expanduser().exists():
        return True
    return path.startswith((".", "/", "~", "\\")) or path.count("/") > 1 or "\\" in path


def _hub_offline() -> bool:
    """True when the Hugging Face hub cannot be reached: ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` is set, or a
    3-second TCP connection to the hub's endpoint (``HF_ENDPOINT``) fails. Behind an HTTPS proxy the probe is left
    to the hub client."""
    import socket
    from urllib.parse import urlparse

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((endpoint.hostname or "huggingface.co", endpoint.port or 443), timeout=3).close()
    except OSError:
        return True
    return False


def check_hub_reference(hub_id: str) -> bool:
    """Before loading a hub id: True when it must load from the local hub cache only (no network, but cached);
    without a network and without a cached copy, one :class:`ModelLoadError` at once instead of the hub
    client's retries, saying to pass the downloaded directory."""
    if not _hub_offline():
        return False
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(hub_id, "config.json")
    except Exception:  # a malformed id: the loader names it
        cached = None
    if isinstance(cached, str):
        return True
    raise ModelLoadError("the Hugging Face hub cannot be reached (no network, or HF_HUB_OFFLINE) and this hub id "
                         "is not in the local cache; download it where there is a network and pass the "
                         "downloaded directory: --model /path/to/checkpoint", hub_id)


def read_checkpoint_config(path: str) -> dict[str, Any]:
    """The parsed ``config.json`` of a local checkpoint directory; ModelLoadError when missing or unreadable."""
    root = Path(path).expanduser()
    if not root.exists():
        raise ModelLoadError(
            "no such model directory; pass a local checkpoint directory (config.json + *.safetensors) or a hub id",
            path,
        )
    if not root.is_dir():
        raise ModelLoadError("not a directory; pass the checkpoint directory that holds config.json", path)
    config_file = root / "config.json"
    if not config_file.is_file():
        raise ModelLoadError("no config.json in this directory; pass the checkpoint directory itself", path)
    from mmlong.limits import loads_json

    try:
        config = loads_json(config_file.read_text(), "config.json")
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"config.json cannot be read ({err}); re-save the checkpoint", path) from err
    if not isinstance(config, dict):
        raise ModelLoadError(f"config.json holds a {type(config).__name__}, not a mapping of settings; re-save the "
                             "checkpoint", path)
    return config


def detect_family(path: str) -> str:
    """The registered model name for a local checkpoint, from ``config.json``'s ``model_type``.

    >>> detect_family("/no/such/dir")
    Traceback (most recent call last):
    ...
    mmlong.errors.ModelLoadError: /no/such/dir: no such model directory; pass a local checkpoint directory ...
    """
    model_type = read_checkpoint_config(path).get("model_type", "")
    if model_type not in FAMILIES:
        known = ", ".join(f"{k} ({v})" for k, v in FAMILIES.items())
        raise ModelLoadError(
            f"model_type {model_type!r} is not a supported family; supported: {known}", path
        )
    return FAMILIES[model_type]


def check_local_checkpoint(path: str, *, trust_remote_code: bool, allow_pickle: bool) -> dict[str, Any]:
    """Refuse, with a one-line fix, a local checkpoint that needs remote code or pickle weights we were not allowed."""
    config = read_checkpoint_config(path)
    if config.get("auto_map") and not trust_remote_code:
        raise ModelLoadError(
            "config.json maps to the checkpoint's own Python code (auto_map), which needs trust_remote_code; "
            "pass --trust-remote-code if you trust it",
            path,
        )
    root = Path(path).expanduser()
    safetensors = list(root.glob("*.safetensors"))
    pickles = [p for p in root.glob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt")]
    if not safetensors and pickles and not allow_pickle:
        raise ModelLoadError(
            f"only pickle weights ({pickles[0].name}); pass --allow-pickle if you trust the file, "
            "or convert it to safetensors",
            path,
        )
    if not safetensors and not pickles:
        raise ModelLoadError("no weights (*.safetensors) in this directory; save the model there first", path)
    return config


def load_pretrained(
    model_class: type,
    path: str,
    *,
    device: str = "cpu",
    dtype: str | torch.dtype = "float32",
    attn_implementation: str | None = "sdpa",
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    expected_model_type: str | None = None,
) -> tuple[Any, Any]:
    """Load ``(model, processor)`` from a local directory or a hub id, safely.

    Local directories are checked first (:func:`check_local_checkpoint`) and a wrong family is named.
    Weights load with ``use_safetensors=True`` unless ``allow_pickle``; ``trust_remote_code`` is passed through
    and off by default. Any loading failure becomes a one-line :class:`ModelLoadError` saying what to do.
    """
    from transformers import AutoProcessor

    if is_local_reference(path):
        config = check_local_checkpoint(path, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
        found = config.get("model_type")
        if expected_model_type and found != expected_model_type:
            hint = f"; use --model {FAMILIES[found]}" if found in FAMILIES else ""
            raise ModelLoadError(f"config.json says model_type {found!r}, not {expected_model_type!r}{hint}", path)
        path = str(Path(path).expanduser())
    kwargs: dict[str, Any] = dict(dtype=resolve_dtype(dtype), trust_remote_code=trust_remote_code)
    cache_only = not is_local_reference(path) and check_hub_reference(path)
    if cache_only:
        kwargs["local_files_only"] = True
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if not allow_pickle:
        kwargs["use_safetensors"] = True
    try:
        model = model_class.from_pretrained(path, **kwargs)
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code,
                                                  **({"local_files_only": True} if cache_only else {}))
    except ModelLoadError:
        raise
    except Exception as err:  # transformers raises OSError/ValueError/EnvironmentError with long texts
        reason = " ".join(str(err).split())
        if "trust_remote_code" in reason:
            reason = "it needs trust_remote_code; pass --trust-remote-code if you trust it"
        elif len(reason) > 200:
            reason = reason[:200] + "..."
        raise ModelLoadError(
            f"cannot load the model ({reason}); pass a local checkpoint directory saved with save_pretrained",
            path,
        ) from err
    model.to(device)
    model.eval()
    return model, processor
