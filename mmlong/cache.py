"""On-disk cache of encoded features, so a second question about the same video skips decoding and encoding.

An entry is one :class:`~mmlong.types.VisualTokens` stored as a safetensors file: the per-token tensors, plus in
the safetensors metadata header the grid, meta, position step, provenance (as dicts) and a sha256 of the tensor
bytes. Writes are atomic (temporary file in the same folder, then ``os.replace``), so a crash never leaves a
half-written entry under a real name. A truncated or garbled entry is detected on read (safetensors error or
checksum mismatch), deleted and reported as a miss with a warning, so the next ``put`` rebuilds it.

The key hashes a cheap fingerprint of the video file (size + sha256 of three 64 KiB chunks), the sampler spec,
the decode options and the encoder's ``cache_id()``.

>>> import tempfile, torch
>>> from mmlong.types import VisualTokens
>>> cache = FeatureCache(tempfile.mkdtemp())
>>> tok = VisualTokens.from_grid(torch.ones(1, 2, 2, 3), torch.tensor([0.5]))
>>> cache.put("k" * 32, tok)
True
>>> cache.get("k" * 32).grid, cache.get("0" * 32), cache.count()
((1, 2, 2), None, 1)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from mmlong.errors import VideoNotFoundError
from mmlong.file_modes import umask_file_mode
from mmlong.types import Step, VisualTokens

log = logging.getLogger(__name__)

CACHE_ENV = "MMLONG_CACHE_DIR"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"
_TENSOR_FIELDS = ("features", "frame_ids", "timestamps", "positions", "sizes", "segments", "frame_times", "attention",
                  "layer_features")


def cache_root() -> Path:
    """mmlong's cache folder: ``$MMLONG_CACHE_DIR`` if set, else the user cache dir (platformdirs)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mmlong"))


def video_fingerprint(path: str | os.PathLike[str], chunk_size: int = 64 * 1024) -> str:
    """Cheap content hash of a file: its size plus sha256 of a chunk at the start, middle and end.

    Reads at most ``3 * chunk_size`` bytes whatever the file size.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        h = hashlib.sha256(f"size={size}".encode())
        with open(p, "rb") as f:
            for offset in sorted({0, max(0, size // 2 - chunk_size // 2), max(0, size - chunk_size)}):
                f.seek(offset)
                h.update(f.read(chunk_size))
    except FileNotFoundError:
        raise VideoNotFoundError("no such file; check the path", str(path)) from None
    return h.hexdigest()


def file_sha256(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a whole file (for weight files; videos use the cheaper :func:`video_fingerprint`)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    The file gets the mode of any file the user creates (their umask), not ``0600``. Readers see the old file or
    the whole new one, never a part; on any error the temporary file is removed and
    the error propagates (``OSError`` when the disk refuses).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, umask_file_mode())  # the user's umask, not mkstemp's 0600
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def tensors_checksum(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of ``tensors`` (in name order)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _to_tensors_and_header(tokens: VisualTokens) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {}
    for name in _TENSOR_FIELDS:
        value = getattr(tokens, name)
        if value is not None:
            tensors[name] = value.detach().cpu().contiguous()
    header = {
        "version": FORMAT_VERSION,
        "grid": list(tokens.grid),
        "position_step": tokens.position_step,
        "meta": dict(tokens.meta),
        "provenance": [
            {"name": s.name, "config": dict(s.config), "tokens_in": s.tokens_in, "tokens_out": s.tokens_out,
             "ms": s.ms, "extra": dict(s.extra)}
            for s in tokens.provenance
        ],
    }
    return tensors, header


def _from_tensors_and_header(tensors: dict[str, torch.Tensor], header: Mapping[str, Any]) -> VisualTokens:
    if header.get("version") != FORMAT_VERSION:
        raise ValueError(f"cache format version {header.get('version')!r}, expected {FORMAT_VERSION}")
    return VisualTokens(
        features=tensors["features"],
        frame_ids=tensors["frame_ids"],
        timestamps=tensors["timestamps"],
        positions=tensors["positions"],
        sizes=tensors["sizes"],
        segments=tensors.get("segments"),
        frame_times=tensors.get("frame_times"),
        attention=tensors.get("attention"),
        layer_features=tensors.get("layer_features"),
        grid=tuple(int(g) for g in header["grid"]),  # type: ignore[arg-type]
        position_step=float(header["position_step"]),
        meta=header["meta"],
        provenance=tuple(Step(**step) for step in header["provenance"]),
    )


def check_tokens(tokens: VisualTokens, *, width: int | None = None, duration: float | None = None,
                 frames: int | None = None) -> None:
    """Raise ``ValueError`` unless ``tokens`` read from a cache are what a reader can use.

    Always: ``features [N, D]`` floating and finite, ``frame_ids``/``timestamps``/``sizes [N]``,
    ``positions [N, 3]``, finite non-negative times, a positive grid ``(T, H, W)`` holding the N tokens
    (``N <= T*H*W``) with every frame id inside ``T``. And what the reader expects: feature ``width`` D, times
    inside the video's ``duration`` (plus a frame's slack), ``frames`` sampled frames (the grid's T).
    """
    f = tokens.features
    if f.dim() != 2 or not f.is_floating_point():
        raise ValueError(f"features of shape {tuple(f.shape)} and dtype {f.dtype}; expected floats [N, D]")
    n = f.shape[0]
    for name in ("frame_ids", "timestamps", "sizes"):
        value = getattr(tokens, name)
        if value.dim() != 1 or value.shape[0] != n:
            raise ValueError(f"{name} of shape {tuple(value.shape)} for {n} tokens")
    if tuple(tokens.positions.shape) != (n, 3):
        raise ValueError(f"positions of shape {tuple(tokens.positions.shape)} for {n} tokens")
    if not bool(torch.isfinite(f).all()):
        raise ValueError("features hold NaN or infinite values")
    times = tokens.timestamps.double()
    if n and (not bool(torch.isfinite(times).all()) or float(times.min()) < 0):
        raise ValueError("timestamps are negative or not finite")
    grid = tuple(int(g) for g in tokens.grid)
    if len(grid) != 3 or min(grid) < 1 or n > grid[0] * grid[1] * grid[2]:
        raise ValueError(f"grid {grid} cannot hold {n} tokens")
    if n and (int(tokens.frame_ids.min()) < 0 or int(tokens.frame_ids.max()) >= grid[0]):
        raise ValueError(f"frame ids outside the grid's {grid[0]} frames")
    if width is not None and f.shape[1] != width:
        raise ValueError(f"features are {f.shape[1]}-d; this encoder gives {width}-d")
    if duration is not None and n and float(times.max()) > duration + 1.0:
        raise ValueError(f"a timestamp at {float(times.max()):.6g} s in a {duration:.6g} s video")
    if frames is not None and grid[0] != frames:
        raise ValueError(f"{grid[0]} frames in the grid; {frames} were sampled")


class FeatureCache:
    """Encoded features on disk, one safetensors file per key under ``root``.

    ``root`` defaults to ``cache_root() / "features"``. A disabled cache (``enabled=False``, the CLI's
    ``--no-cache``) misses on every ``get`` and ignores ``put``.
    """

    #: file name ending of an entry, and the folder under ``cache_root()`` entries go to by default
    suffix = SUFFIX
    folder = "features"

    def __init__(self, root: str | os.PathLike[str] | None = None, enabled: bool = True) -> None:
        self.root = Path(root).expanduser() if root is not None else cache_root() / self.folder
        self.enabled = enabled

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, enabled={self.enabled})"

    # ------------------------------------------------------------------ keys
    def key(
        self,
        video_path: str | os.PathLike[str],
        sampler_spec: str,
        decode_opts: Mapping[str, Any],
        encoder_cache_id: str,
    ) -> str:
        """A 32-hex-digit key of (video content, sampler, decode options, encoder + weights)."""
        parts = {
            "video": video_fingerprint(video_path),
            "sampler": sampler_spec,
            "decode": {k: decode_opts[k] for k in sorted(decode_opts)},
            "encoder": encoder_cache_id,
            "version": FORMAT_VERSION,
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def path_of(self, key: str) -> Path:
        if not key or any(c in key for c in "/\\."):
            raise ValueError(f"invalid cache key {key!r}")
        return self.root / key[:2] / f"{key}{self.suffix}"

    # ------------------------------------------------------------------ read / write
    def get(self, key: str, check: Callable[[VisualTokens], None] | None = None) -> VisualTokens | None:
        """The tokens stored under ``key``, or ``None`` on a miss. An entry that is damaged, fails
        :func:`check_tokens` or the reader's own ``check`` (raising ``ValueError``) is deleted and misses."""
        if not self.enabled:
            return None
        path = self.path_of(key)
        if not path.is_file():
            return None
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
                tensors = {name: f.get_tensor(name) for name in f.keys()}
            if tensors_checksum(tensors) != metadata.get("checksum"):
                raise ValueError("checksum mismatch")
            tokens = _from_tensors_and_header(tensors, json.loads(metadata["header"]))
            check_tokens(tokens)
            if check is not None:
                check(tokens)
            return tokens
        except Exception as err:  # any damage (safetensors, json, shapes) means the entry cannot be trusted
            log.warning("feature cache entry %s is damaged (%s: %s); deleting it, it will be rebuilt",
                        path, type(err).__name__, err)
            path.unlink(missing_ok=True)
            return None

    def put(self, key: str, tokens: VisualTokens) -> bool:
        """Store ``tokens`` under ``key`` atomically. Returns False (with a warning) when the disk refuses."""
        if not self.enabled:
            return False
        from safetensors.torch import save

        path = self.path_of(key)
        tensors, header = _to_tensors_and_header(tokens)
        metadata = {
            "header": json.dumps(header, sort_keys=True, default=str),
            "checksum": tensors_checksum(tensors),
        }
        try:
            atomic_write(path, save(tensors, metadata=metadata))
            return True
        except OSError as err:
            log.warning("could not write feature cache entry %s (%s); continuing without it", path, err)
            return False

    # ------------------------------------------------------------------ housekeeping
    def _entries(self) -> list[Path]:
        return sorted(self.root.glob(f"*/*{self.suffix}")) if self.root.is_dir() else []

    def count(self) -> int:
        """Number of stored entries."""
        return len(self._entries())

    def size(self) -> int:
        """Bytes used by stored entries."""
        return sum(p.stat().st_size for p in self._entries())

    def clear(self) -> int:
        """Delete every entry (and leftover temporary files); returns how many entries were deleted."""
        entries = self._entries()
        for p in entries:
            p.unlink(missing_ok=True)
        if self.root.is_dir():
            for tmp in self.root.glob("*/.*.tmp"):
                tmp.unlink(missing_ok=True)
        return len(entries)
