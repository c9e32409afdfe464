"""The 1000 ImageNet-1k class names, in the order of a classifier's output units.

Taken from torchvision's weight metadata (shipped offline with torchvision), which keeps one short readable
name per class (``"tabby"``, ``"Egyptian cat"``, ``"espresso"``) with no duplicates.

>>> names = imagenet_class_names()
>>> len(names), names[281], names[285]
(1000, 'tabby', 'Egyptian cat')
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """Readable names of the ImageNet-1k classes, index ``i`` = output unit ``i`` (an immutable tuple)."""
    from torchvision.models import ResNet50_Weights

    names = tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    if len(names) != 1000:
        raise RuntimeError(f"torchvision returned {len(names)} ImageNet class names, expected 1000")
    return names
