"""A contact sheet: frames in a grid, each with a caption under it (``mmlong frames``, the demo's keyframe strip).

>>> import numpy as np
>>> sheet = contact_sheet(np.zeros((5, 45, 80, 3), np.uint8), ["00:00.0", "00:01.0", "a", "b", "c"], columns=3)
>>> sheet.size   # 3 columns x 2 rows of 80x45 tiles, each with a caption band, 4 px gaps
(256, 134)
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

CAPTION_HEIGHT = 16
GAP = 4


def contact_sheet(images: Any, labels: Sequence[str] | None = None, columns: int | None = None,
                  background: tuple[int, int, int] = (24, 24, 24), font_size: int | None = None) -> Any:
    """A PIL image of uint8 ``[T, H, W, 3]`` frames (array or tensor) in a grid, captioned with ``labels``.

    columns: tiles per row (default: about square). font_size: caption height in pixels (default: Pillow's
    small bitmap font); the caption band grows to fit it. Returns ``PIL.Image.Image`` (RGB); ``.save(path)``
    writes it.
    """
    from PIL import Image, ImageDraw, ImageFont

    frames = np.asarray(images, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"contact_sheet needs frames [T, H, W, 3] with T >= 1, got {frames.shape}")
    count, height, width = frames.shape[:3]
    labels = list(labels) if labels is not None else [str(i) for i in range(count)]
    if len(labels) != count:
        raise ValueError(f"{count} frames but {len(labels)} labels")
    columns = max(1, min(columns or math.ceil(math.sqrt(count)), count))
    rows = math.ceil(count / columns)
    caption_h = CAPTION_HEIGHT if font_size is None else max(CAPTION_HEIGHT, int(font_size * 1.4))
    tile_h = height + caption_h
    sheet = Image.new("RGB", (columns * width + (columns + 1) * GAP, rows * tile_h + (rows + 1) * GAP), background)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default() if font_size is None else ImageFont.load_default(size=font_size)
    for k in range(count):
        r, c = divmod(k, columns)
        x, y = GAP + c * (width + GAP), GAP + r * (tile_h + GAP)
        sheet.paste(Image.fromarray(frames[k]), (x, y))
        draw.text((x + 2, y + height + 2), labels[k], fill=(235, 235, 235), font=font)
    return sheet


def image_bytes(image: Any, suffix: str) -> bytes:
    """``image`` (PIL) encoded in the format its file ending names (``".png"``, ``".jpg"``, ...)."""
    import io

    from PIL import Image

    fmt = Image.registered_extensions().get(suffix.lower())
    if fmt is None:
        raise ValueError(f"no image format for {suffix!r}")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()
