"""mmlong: long-video understanding with vision-language models.

The public face is small: ``from mmlong import Pipeline, resolve`` (resolve a preset, YAML file or flags into one
configuration tree, then run it), the shared types and the errors.

>>> from mmlong import Pipeline, resolve  # doctest: +SKIP
>>> Pipeline(resolve(preset="offline")).ask("clip.mp4", "What animal appears?").text  # doctest: +SKIP

Importing the package is cheap: no decoder, encoder or model library (not even torch) is imported until a
stage needs it; every name below loads on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Answer", "ConfigError", "Frames", "MmlongError", "Pipeline", "Query", "ResolvedPipeline", "Result",
           "Step", "VideoError", "VideoMeta", "VisualTokens", "resolve"]
__version__ = "0.1.0"

_HOMES = {
    "ConfigError": "mmlong.errors",
    "MmlongError": "mmlong.errors",
    "VideoError": "mmlong.errors",
    "Pipeline": "mmlong.pipeline",
    "resolve": "mmlong.config.resolve",
    "ResolvedPipeline": "mmlong.config.tree",
    "Result": "mmlong.result",
    "Query": "mmlong.qa",
    "Answer": "mmlong.qa",
}


def __getattr__(name: str) -> Any:
    """The exported names, imported when first asked for (``mmlong.types`` and the pipeline need torch)."""
    if name not in __all__:
        raise AttributeError(f"module 'mmlong' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_HOMES.get(name, "mmlong.types")), name)
