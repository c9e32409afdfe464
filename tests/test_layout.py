"""The package installs the way pyproject.toml maps it (encoders/, compressors/, models/ and apps/ as subpackages of
mmlong, every subpackage listed), nothing bare in sys.modules, no module over 400 lines, a small lazy facade."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"encoders", "compressors", "models", "apps"}


def test_packages_list_matches_folders():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = set(config["packages"])
    package_dir = config["package-dir"]
    folders = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} - {"tests"}
    top = {"mmlong"} | {f"mmlong.{name}" for name in folders - {"mmlong"}}
    nested = {
        ".".join([top_name, *sub.relative_to(ROOT / folder).parts])
        for folder, top_name in ((f, "mmlong" if f == "mmlong" else f"mmlong.{f}") for f in folders)
        for sub in (ROOT / folder).glob("*/**/")
        if (sub / "__init__.py").exists()
        and not any(part.startswith((".", "_")) for part in sub.relative_to(ROOT).parts)
    }
    assert packages == top | nested, "add every package folder (subpackages too) to [tool.setuptools] packages"
    for pkg in top:
        assert package_dir[pkg] == pkg.split(".")[-1]


def test_no_bare_top_level_names_after_import():
    code = (
        "import sys, mmlong, mmlong.apps.cli, mmlong.compressors.base, mmlong.encoders.base, mmlong.models.base;"
        "mmlong.apps.cli.build_parser();"
        "bad = sorted(n for n in ('encoders', 'compressors', 'models', 'apps') if n in sys.modules);"
        "heavy = sorted(n for n in ('decord', 'transformers', 'av', 'open_clip', 'gradio') if n in sys.modules);"
        "print(bad, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True)
    assert out.stdout.strip() == "[] []", out.stdout + out.stderr


def test_no_source_file_imports_bare_names():
    offenders = []
    for path in ROOT.glob("*/**/*.py"):
        if any(part.startswith(".") for part in path.relative_to(ROOT).parts):
            continue
        for line in path.read_text().splitlines():
            stripped = line.strip()
            for name in MAPPED:
                if stripped.startswith((f"import {name}", f"from {name} ", f"from {name}.")):
                    offenders.append(f"{path.relative_to(ROOT)}: {stripped}")
    assert not offenders, offenders


def test_no_package_module_is_over_400_lines():
    """Small modules with one job: a file that grows past ~400 lines is split by job, not by an arbitrary cut."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    long = sorted(f"{path.relative_to(ROOT)} ({n} lines)" for folder in set(config["package-dir"].values())
                  for path in (ROOT / folder).rglob("*.py")
                  if (n := len(path.read_text().splitlines())) > 400)
    assert not long, long


def test_public_facade_is_small_and_lazy():
    """``from mmlong import Pipeline, resolve`` works, and ``import mmlong`` alone imports no torch."""
    code = (
        "import sys, mmlong; light = 'torch' not in sys.modules;"
        "from mmlong import Pipeline, ResolvedPipeline, resolve;"
        "from mmlong.pipeline import Pipeline as P; from mmlong.config.resolve import resolve as r;"
        "print(light, Pipeline is P, resolve is r, isinstance(resolve(preset='offline'), ResolvedPipeline))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True)
    assert out.stdout.strip() == "True True True True", out.stdout + out.stderr


def test_test_tools_are_dev_dependencies_and_the_root_holds_no_stray_outputs():
    import subprocess

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [d.split("=")[0].split("<")[0].split(">")[0].strip().lower() for d in project["dependencies"]]
    assert "pytest" not in names and "pytest" in project["optional-dependencies"]["dev"]
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    root_images = [p for p in tracked.splitlines() if "/" not in p and p.endswith((".png", ".jpg", ".mp4"))]
    assert root_images == []
