"""What ``mmlong bench hour`` compares an ask with, measured in the same run: the decode floor and older code.

- :func:`decode_floor`: decoding every frame of the video with PyAV (frame threads, no conversion to RGB):
  what any question about every second of the video costs at least;
- :func:`scan_floor`: decoding just the frames the coverage scan reads (one a second), through the same
  :class:`~mmlong.media.video.VideoSource` the scan uses, converted to RGB at the decode size, nothing encoded;
- :func:`baseline_code`: the same ``bench hour`` run by another checkout of mmlong (e.g. ``git worktree add
  ../base <commit>``) in a child process, so the ratio to the old code is measured on the same machine, at
  the same load.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its finished children so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def decode_floor(video: str) -> dict[str, Any]:
    """Wall and CPU seconds to decode every frame of ``video`` with PyAV (threads: FFmpeg's choice)."""
    import av

    wall, cpu = time.perf_counter(), _cpu_seconds()
    frames = 0
    with av.open(video) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            frames += 1
    return {"frames": frames, "wall_s": round(time.perf_counter() - wall, 2),
            "cpu_s": round(_cpu_seconds() - cpu, 2)}


def scan_floor(video: str, max_side: int | None, scan_fps: float = 1.0, max_frames: int = 14400) -> dict[str, Any]:
    """Wall and CPU seconds to decode the coverage scan's frames (``scan_fps`` a second) at ``max_side``."""
    from mmlong.media.video import open_video
    from mmlong.sampling.basic import FpsSampler

    wall, cpu = time.perf_counter(), _cpu_seconds()
    with open_video(video, max_side=max_side) as source:
        scan = FpsSampler(FpsSampler.Config(fps=scan_fps, max_frames=max_frames)).sample(source.meta)
        frames = sum(len(chunk) for chunk in source.stream(scan.indices, chunk_size=64))
    return {"frames": frames, "wall_s": round(time.perf_counter() - wall, 2),
            "cpu_s": round(_cpu_seconds() - cpu, 2)}


def baseline_code(checkout: str, video: str, extra: list[str] | None = None) -> dict[str, Any]:
    """The report of ``mmlong bench hour VIDEO --json`` run by the mmlong checkout at ``checkout`` in a child
    process: with the checkout's own ``.venv`` (a worktree with its own environment, the checkout installed in
    it) when it has one, else this interpreter with the checkout first on ``PYTHONPATH`` (its ``mmlong``
    package folder, with ``encoders``/``compressors``/``models``/``apps`` linked inside it when it is a source
    tree); ``error`` says why when it failed."""
    from mmlong.errors import ConfigError

    root = Path(checkout).expanduser().resolve()
    if not (root / "mmlong" / "__init__.py").is_file():
        raise ConfigError("--baseline-code: not an mmlong checkout (no mmlong/__init__.py in it)", str(root))
    own = root / ".venv" / "bin" / "python"
    env = dict(os.environ) if own.is_file() else {**os.environ, "PYTHONPATH": str(root)}
    python = str(own) if own.is_file() else sys.executable
    command = [python, "-m", "mmlong", "bench", "hour", str(Path(video).resolve()), "--json", *(extra or [])]
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1], "code": str(root)}
    report = json.loads(done.stdout)
    return {**report["runs"][0], "code": str(root)}
