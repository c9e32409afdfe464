"""ARCHITECTURE.md's worked plug-in example runs as written, and its stage table names files that exist."""

from __future__ import annotations

import re
from pathlib import Path

from mmlong.registry import COMPRESSORS

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "ARCHITECTURE.md").read_text()


def test_worked_example_registers_a_compressor_the_chain_can_use(monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", DOC, flags=re.S)
    assert len(blocks) == 1
    monkeypatch.setattr(COMPRESSORS, "_targets", dict(COMPRESSORS._targets))  # the registration ends with the test
    assert "kth-frame" not in COMPRESSORS
    namespace: dict = {}
    exec(compile(blocks[0], "ARCHITECTURE.md", "exec"), namespace)  # its asserts check the result
    assert "kth-frame" in COMPRESSORS
    assert COMPRESSORS.from_spec("kth-frame:3").config.k == 3


def test_stage_table_names_existing_files():
    paths = set(re.findall(r"`((?:mmlong|encoders|compressors|models|apps)/[\w/]*(?:\.py)?)`", DOC))
    assert len(paths) > 10
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, missing
