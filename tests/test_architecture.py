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


def map_rows() -> list[tuple[str, list[str]]]:
    """(folder, module names) of each row of the map (the section "The house: one room per job")."""
    section = DOC.split("## The house: one room per job", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].startswith("`") and cells[1].endswith("/`"):
            rows.append((cells[1].strip("`"), re.findall(r"`(\w+)`", cells[2])))
    return rows


def test_the_map_names_every_module_and_only_modules_that_exist():
    from tests.test_import_graph import package_modules

    rows = map_rows()
    assert len(rows) > 15
    named = {(folder, name) for folder, names in rows for name in names}
    files = {(str(path.parent.relative_to(ROOT)) + "/", path.stem) for path in package_modules().values()}
    unnamed = sorted(f"{folder}{name}.py" for folder, name in files
                     if (folder, name) not in named and not (name == "__init__" and folder != "mmlong/"))
    assert not unnamed, f"add these modules to ARCHITECTURE.md's map: {unnamed}"
    stale = sorted(f"{folder}{name}.py" for folder, name in named if not (ROOT / folder / f"{name}.py").exists())
    assert not stale, f"the map names modules that do not exist: {stale}"
