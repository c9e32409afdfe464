"""mmlong: long-video understanding with vision-language models.

Importing the package is cheap: no decoder, encoder or model library (not even torch) is imported until a
stage needs it; the shared types below load on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Answer", "Frames", "MmlongError", "Query", "Step", "VideoError", "VideoMeta", "VisualTokens"]
__version__ = "0.1.0"

_HOMES = {"MmlongError": "mmlong.errors", "VideoError": "mmlong.errors"}


def __getattr__(name: str) -> Any:
    """The exported types, imported when first asked for (``mmlong.types`` needs torch)."""
    if name not in __all__:
        raise AttributeError(f"module 'mmlong' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_HOMES.get(name, "mmlong.types")), name)
