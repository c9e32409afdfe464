"""Every registered compressor's module docstring says where its algorithm comes from.

The rule: a compressor that implements a published method names the paper (its title in quotes), the arXiv id
(``arXiv:YYMM.NNNNN``) and the official code as ``official code OWNER/REPO`` with at least one file of that
repository in double backquotes (``path/file.py``); a module holding several published methods gives one arXiv id
per method. The few compressors that are baselines or mmlong's own combinations (listed below) say so in the
docstring with the word "baseline" instead of claiming a paper.
"""

from __future__ import annotations

import importlib
import re
import sys

import pytest

from mmlong.registry import COMPRESSORS

#: registered names that are not a published method; each docstring must call itself a baseline
BASELINES = {"random", "downsample", "pool", "tpool", "progressive", "select", "tmerge"}

ARXIV = re.compile(r"arXiv:\d{4}\.\d{4,5}\b")
TITLE = re.compile(r'"[^"\n]*(?:\n[^"\n]*)?"')  # a quoted title, possibly wrapped over two lines
OFFICIAL = re.compile(r"official code\s+[\w.-]+/[\w.-]+")
CODE_FILE = re.compile(r"``[\w./+-]+\.py``")


def module_doc(name: str) -> tuple[str, str]:
    module = sys.modules[COMPRESSORS.resolve(name).__module__]
    return module.__name__, module.__doc__ or ""


def published() -> list[str]:
    return sorted(set(COMPRESSORS.names()) - BASELINES)


def test_every_name_is_either_a_published_method_or_a_listed_baseline():
    assert BASELINES <= set(COMPRESSORS.names())  # the list names real compressors
    assert len(published()) >= 15


@pytest.mark.parametrize("name", published())
def test_published_method_names_paper_arxiv_and_official_file(name):
    module, doc = module_doc(name)
    assert TITLE.search(doc), f"{module}: no paper title in quotes"
    assert ARXIV.search(doc), f"{module}: no arXiv id"
    official = OFFICIAL.search(doc)
    assert official, f"{module}: no 'official code OWNER/REPO'"
    assert CODE_FILE.search(doc[official.start():]), f"{module}: no official file (``path.py``) after the repo"


def test_a_module_with_several_methods_cites_each():
    one_paper = {"mmlong.compressors.dycoke"}  # dycoke-ttm and dycoke-kv are the two halves of one paper
    by_module: dict[str, set[str]] = {}
    for name in published():
        module, _ = module_doc(name)
        by_module.setdefault(module, set()).add(name)
    for module, names in by_module.items():
        doc = importlib.import_module(module).__doc__ or ""
        needed = 1 if module in one_paper else len(names)
        assert len(set(ARXIV.findall(doc))) >= needed, (module, sorted(names))


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_say_what_they_are(name):
    module, doc = module_doc(name)
    assert "baseline" in doc.lower(), f"{module}: {name} is not a published method; its docstring must say so"
    assert f"``{name}" in doc or name in module, f"{module}: the docstring does not describe {name!r}"


def test_the_rule_catches_a_missing_citation(monkeypatch):
    """The checks bite: a docstring without an arXiv id or official file fails them."""
    module = sys.modules[COMPRESSORS.resolve("holitom").__module__]
    original = module.__doc__
    monkeypatch.setattr(module, "__doc__", original.replace("arXiv:2505.21334", "NeurIPS"))
    with pytest.raises(AssertionError, match="no arXiv id"):
        test_published_method_names_paper_arxiv_and_official_file("holitom")
    monkeypatch.setattr(module, "__doc__", re.sub(r"``[\w./]+\.py``", "the code", original))
    with pytest.raises(AssertionError, match="no official file"):
        test_published_method_names_paper_arxiv_and_official_file("holitom")
    pruning = sys.modules[COMPRESSORS.resolve("fastv").__module__]
    monkeypatch.setattr(pruning, "__doc__", pruning.__doc__.replace("arXiv:2410.17247", ""))
    with pytest.raises(AssertionError, match="pyramiddrop"):
        test_a_module_with_several_methods_cites_each()
