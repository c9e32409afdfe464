"""On-disk cache of expert outputs, so a second question about a video runs no OCR or speech recognition again.

One JSON file per (video content, expert cache id), written atomically with the feature cache's
:func:`~mmlong.cache.atomic_write`; the folder layout, counting and clearing are the feature cache's
(:class:`~mmlong.cache.FeatureCache`), and the key reuses its cheap video fingerprint. A damaged entry
(bad JSON, wrong shape, checksum mismatch) is deleted with a warning and misses, so the next run rebuilds it.

>>> import tempfile
>>> from mmlong.experts.base import ExpertOutput, TimedText
>>> cache = ExpertCache(tempfile.mkdtemp())
>>> out = ExpertOutput((TimedText(1.0, 2.0, "speech", "hello"),), {"cpu_s": 0.5})
>>> cache.put("k" * 32, out)
True
>>> cache.get("k" * 32) == out, cache.get("0" * 32)
(True, None)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any

from mmlong.cache import FeatureCache, atomic_write, video_fingerprint
from mmlong.experts.base import ExpertOutput

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


class ExpertCache(FeatureCache):
    """Expert outputs under ``root`` (default ``cache_root() / "experts"``); disabled: every get misses."""

    suffix = ".json"
    folder = "experts"

    def key(self, video_path: str | os.PathLike[str], expert_cache_id: str) -> str:  # type: ignore[override]
        """A 32-hex-digit key of (video content, expert + config + weights)."""
        parts = {"video": video_fingerprint(video_path), "expert": expert_cache_id, "version": FORMAT_VERSION}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]

    def get(self, key: str) -> ExpertOutput | None:  # type: ignore[override]
        if not self.enabled:
            return None
        path = self.path_of(key)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
            body = json.dumps(record["output"], sort_keys=True)
            if record.get("version") != FORMAT_VERSION or record.get("checksum") != _checksum(body):
                raise ValueError("checksum or version mismatch")
            output = ExpertOutput.from_dict(record["output"])
            check_lines(output.lines)
            return output
        except Exception as err:  # any damage means the entry cannot be trusted
            log.warning("expert cache entry %s is damaged (%s: %s); deleting it, it will be rebuilt",
                        path, type(err).__name__, err)
            path.unlink(missing_ok=True)
            return None

    def put(self, key: str, output: ExpertOutput) -> bool:  # type: ignore[override]
        """Store ``output`` atomically; False (with a warning) when the disk refuses."""
        if not self.enabled:
            return False
        body = output.to_dict()
        record = {"version": FORMAT_VERSION, "checksum": _checksum(json.dumps(body, sort_keys=True)), "output": body}
        try:
            atomic_write(self.path_of(key), json.dumps(record, sort_keys=True).encode())
            return True
        except OSError as err:
            log.warning("could not write expert cache entry %s (%s); continuing without it", key, err)
            return False


def check_lines(lines: Any) -> None:
    """Raise ``ValueError`` unless every cached line has finite times with ``0 <= start <= end`` and text."""
    import math

    for n, line in enumerate(lines):
        start, end = float(line.start), float(line.end)
        if not (math.isfinite(start) and math.isfinite(end) and 0 <= start <= end):
            raise ValueError(f"line {n}: times {start!r}..{end!r}")
        if not isinstance(line.text, str):
            raise ValueError(f"line {n}: text is a {type(line.text).__name__}")


def _checksum(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
