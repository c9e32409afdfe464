"""The house's rules, checked on the installed package: no import circles, and no import from a lower room into a
higher one. Every import counts, also the lazy ones inside functions (they run, just later).

The layers, lowest first, are written down here once (ARCHITECTURE.md shows the same picture). A module belongs
to the most specific room listed; a room may import its own modules and any room of a lower layer, never one of
its own layer or above.
"""

from __future__ import annotations

import ast
import importlib.util
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: lowest first; each entry one layer of rooms (module-name prefixes)
LAYERS: tuple[tuple[str, ...], ...] = (
    # the ground floor, every module at mmlong/'s root but the pipeline: types, errors, registry, spec, validate,
    # result, cache, progress, cpu_threads
    ("mmlong",),
    ("mmlong.assets", "mmlong.scoring"),
    ("mmlong.media", "mmlong.encoders"),
    ("mmlong.compressors",),
    ("mmlong.sampling",),
    ("mmlong.experts",),
    ("mmlong.models",),
    ("mmlong.models.socratic", "mmlong.models.native"),
    ("mmlong.config",),
    ("mmlong.planning", "mmlong.jobs"),
    ("mmlong.pipeline",),
    ("mmlong.benchmarks",),
    ("mmlong.apps",),
    ("mmlong.__main__",),  # python -m mmlong: the command line
)
ROOMS = {room: level for level, rooms in enumerate(LAYERS) for room in rooms}


def package_modules() -> dict[str, Path]:
    """Every module of the installed package: dotted name -> file (each package of pyproject's list, found where
    the installed package has it)."""
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    modules: dict[str, Path] = {}
    for package in packages:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.submodule_search_locations, f"{package} is not installed"
        for folder in spec.submodule_search_locations:
            for path in sorted(Path(folder).glob("*.py")):
                modules[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (``from a.b import c`` counts a.b.c when c is a module)."""
    modules = package_modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
                    break
    return graph


def room_of(module: str) -> str:
    """The most specific room of :data:`LAYERS` that holds ``module``."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in ROOMS:
            return ".".join(parts[:i])
    raise AssertionError(f"{module}: in no room of LAYERS")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(set(graph) | {w for ws in graph.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(graph.items()):
        room = room_of(module)
        for target in sorted(targets):
            other = room_of(target)
            if other != room and ROOMS[other] >= ROOMS[room]:
                bad.append(f"{module} ({room}, layer {ROOMS[room]}) imports {target} ({other}, layer {ROOMS[other]})")
    return bad


def test_every_module_is_in_a_room():
    homeless = []
    for module in package_modules():
        try:
            room_of(module)
        except AssertionError as err:
            homeless.append(str(err))
    assert not homeless, homeless


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_no_import_from_a_lower_room_into_a_higher_one():
    assert upward_imports(import_graph()) == []


def test_the_checks_see_a_circle_and_an_upward_import():
    """The two checks fail when they should: on a made-up graph with one circle and one upward arrow."""
    graph = {"mmlong.types": {"mmlong.sampling.basic"}, "mmlong.sampling.basic": {"mmlong.types"},
             "mmlong.scoring.frames": {"mmlong.types"}}
    assert cycles(graph) == [["mmlong.sampling.basic", "mmlong.types"]]
    assert upward_imports(graph) == ["mmlong.types (mmlong, layer 0) imports mmlong.sampling.basic "
                                     "(mmlong.sampling, layer 4)"]
