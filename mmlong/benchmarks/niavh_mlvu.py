"""A built NIAVH set written in MLVU's official dev layout, so ``mmlong eval mlvu`` scores it per task.

MLVU (Zhou et al., 2024, arXiv:2406.04264) ships ``json/<n>_<task>.json`` (a list of ``{"video", "duration",
"question", "candidates", "answer" (the answer's text), "question_type"}``) and the videos under
``video/<n>_<task>/``. The NIAVH items map onto four of its seven dev tasks: ``image`` needles are needle QA
(``2_needle``), ``count`` items action count (``4_count``), ``order`` items action order (``5_order``), ``topic``
items topic reasoning (``7_topic_reasoning``); other kinds have no MLVU task and are left out. Videos are
hard-linked (copied where links are not possible).

>>> MLVU_FILES["topic"]
'7_topic_reasoning'
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

#: NIAVH item type -> MLVU's annotation file stem (the official numbering)
MLVU_FILES = {"image": "2_needle", "count": "4_count", "order": "5_order", "topic": "7_topic_reasoning"}


def export_mlvu(manifest: Mapping[str, Any], set_dir: str | Path, out_dir: str | Path) -> dict[str, int]:
    """Write ``json/<n>_<task>.json`` and ``video/<n>_<task>/*.mp4`` under ``out_dir`` for the items of
    ``manifest`` (in ``set_dir``) that have an MLVU task; returns questions per file."""
    out = Path(out_dir).expanduser()
    tasks: dict[str, list[dict[str, Any]]] = {}
    for item in manifest["items"]:
        stem = MLVU_FILES.get(item["needle_type"])
        if stem is None:
            continue
        source = Path(set_dir).expanduser() / item["video"]
        name = Path(item["video"]).name
        target = out / "video" / stem / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.unlink()
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
        tasks.setdefault(stem, []).append({
            "video": name, "duration": float(item["length"]), "question": item["question"],
            "candidates": list(item["options"]), "answer": item["answer_text"],
            "question_type": stem.split("_", 1)[1],
        })
    (out / "json").mkdir(parents=True, exist_ok=True)
    for stem, records in tasks.items():
        (out / "json" / f"{stem}.json").write_text(json.dumps(records, indent=2) + "\n")
    return {stem: len(records) for stem, records in tasks.items()}
