"""``mmlong list [KIND]``: what is registered, read from the registries themselves (never a hand-kept list).

For each plug-in: its name, one line (the first sentence of its class docstring), and for a compressor the paper
it implements (the citation its docstring gives: ``Author et al. YEAR, "Title"`` and/or an ``arXiv:`` id), where
it runs (``pre-LLM`` on the encoder's tokens, ``in-LLM`` inside the decoder) and what it needs (a native model
for in-LLM steps; the encoder's attention for methods that read it). Third-party plug-ins registered through entry
points are listed too.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import re
import sys
from typing import Any

from mmlong.apps.render import plain_text

#: ``mmlong list`` kinds -> registry kinds
KINDS = {"models": "model", "compressors": "compressor", "samplers": "sampler", "encoders": "encoder",
         "experts": "expert", "benchmarks": "benchmark"}
_CITATION = re.compile(r"((?:[A-Z][\w'-]+(?:, | & | and ))*[A-Z][\w'-]+(?: et al\.)?) ((?:19|20)\d\d),\s*\"([^\"]+)\"")
_ARXIV = re.compile(r"arXiv:\s*(\d{4}\.\d{4,5})")


def summary(cls: type) -> str:
    """The first sentence of ``cls``'s docstring (its spec prefix ``name[:ARGS]:`` dropped), whole (the table
    wraps it).

    >>> class Tome:
    ...     '''``tome:RATIO``: remove ``RATIO`` of every frame's tokens by bipartite soft matching.
    ...
    ...     More text.'''
    >>> summary(Tome)
    "remove RATIO of every frame's tokens by bipartite soft matching"
    """
    doc = inspect.getdoc(cls) or ""
    first = plain_text(doc.split("\n\n")[0])
    first = re.sub(r"^[\w-]+(?:[:\[][^ ]*)?(?: \([^)]*\))?(?: or [\w-]+:[^ ]*(?: \([^)]*\))?)?: ", "", first)
    return re.split(r"(?<=[a-z0-9)])\. ", first)[0].rstrip(".")


def _authors(names: str) -> str:
    """``"Alvar, Singh, Akbari & Zhang"`` -> ``"Alvar et al."``; one or two authors (or ``et al.``) as written."""
    if names.endswith("et al."):
        return names
    people = re.split(r", | & | and ", names)
    return f"{people[0]} et al." if len(people) > 2 else " & ".join(people)


def paper(cls: type, name: str) -> str:
    """The citation of the method ``name`` from its class docstring, else its module docstring (the one nearest a
    mention of the name when the module cites several); ``""`` when it cites none.

    >>> class Tome:
    ...     '''Bolya et al. 2023, "Token Merging: Your ViT But Faster" (ICLR), arXiv:2210.09461.'''
    >>> paper(Tome, "tome")
    'Bolya et al. 2023, "Token Merging: Your ViT But Faster", arXiv:2210.09461'
    >>> class Divprune:
    ...     '''Alvar, Singh, Akbari & Zhang 2025, "DivPrune: Diversity-based Visual Token Pruning" arXiv:2503.02175.'''
    >>> paper(Divprune, "divprune")
    'Alvar et al. 2025, "DivPrune: Diversity-based Visual Token Pruning", arXiv:2503.02175'
    """
    module = sys.modules.get(cls.__module__)
    for doc in (inspect.getdoc(cls) or "", (module.__doc__ if module else None) or ""):
        text = " ".join(doc.split())
        found = list(_CITATION.finditer(text))
        arxiv = list(_ARXIV.finditer(text))
        if not found and not arxiv:
            continue
        key = name.replace("-llm", "").replace("-", "").lower()
        near = [m for m in found if key in text[max(0, m.start() - 40): m.end()].replace("-", "").lower()]
        cite = (near or found or [None])[0]
        parts = [f'{_authors(cite.group(1))} {cite.group(2)}, "{cite.group(3)}"'] if cite else []
        if arxiv:
            nearest = min(arxiv, key=lambda a: abs(a.start() - (cite.end() if cite else 0)))
            parts.append(f"arXiv:{nearest.group(1)}")
        return ", ".join(parts)
    return ""


def _needs(kind: str, name: str, cls: type) -> str:
    """What a plug-in needs beyond the defaults, read from the class: in-LLM steps a native model, methods that call
    ``require_attention`` the encoder's attention; native models a checkpoint."""
    if kind == "compressor":
        needs = []
        if getattr(cls, "stage", "pre_llm") == "in_llm":
            needs.append("a native model (qwen2-vl, llava-onevision, smolvlm2)")
        source = inspect.getsource(importlib.import_module(cls.__module__))
        if "require_attention(" in source:
            needs.append("encoder attention (--encoder hf-vision)")
        return "; ".join(needs) or "-"
    if kind == "model":
        from mmlong.config.modelref import is_native

        return "a checkpoint directory or hub id (transformers)" if is_native(name) else "nothing: offline weights"
    return "-"


def rows(kind: str) -> list[dict[str, Any]]:
    """One record per registered plug-in of ``kind`` (a registry kind: ``compressor``, ``model``, ...)."""
    from mmlong.registry import registry

    reg = registry(kind)
    out = []
    for name in reg.names():
        cls = reg.resolve(name)
        row: dict[str, Any] = {"kind": kind, "name": name, "summary": summary(cls)}
        if kind == "compressor":
            row["stage"] = "in-LLM" if getattr(cls, "stage", "pre_llm") == "in_llm" else "pre-LLM"
            row["paper"] = paper(cls, name)
        row["needs"] = _needs(kind, name, cls)
        out.append(row)
    return out


#: the summary column's width in the table; a longer summary wraps onto the lines below, never cut
SUMMARY_WIDTH = 60


def _table(records: list[dict[str, Any]]) -> str:
    import textwrap

    columns = [c for c in ("name", "stage", "summary", "needs", "paper") if any(c in r for r in records)]
    wrapped = [textwrap.wrap(str(r.get("summary", "")), SUMMARY_WIDTH) or [""] for r in records]
    cells = [[{**r, "summary": part} if n == 0 else {"summary": part} for n, part in enumerate(parts)]
             for r, parts in zip(records, wrapped)]
    shown = [line for lines in cells for line in lines]
    width = {c: max(len(c), *(len(str(r.get(c, ""))) for r in shown)) for c in columns[:-1]}
    return "\n".join("  ".join(str(r.get(c, "")).ljust(width.get(c, 0)) for c in columns).rstrip()
                     for r in [{c: c.upper() for c in columns}, *shown])


def run_list(args: argparse.Namespace) -> int:
    kinds = [args.kind] if args.kind else list(KINDS)
    records = {kind: rows(KINDS[kind]) for kind in kinds}
    if args.json:
        print(json.dumps(records if not args.kind else records[args.kind], indent=2, ensure_ascii=False))
        return 0
    blocks = [f"{kind}:\n" + _table(recs) if not args.kind else _table(recs) for kind, recs in records.items()]
    print("\n\n".join(blocks))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "list", help="list the registered models, compressors, samplers, encoders, experts and benchmarks",
        description=plain_text(__doc__.split("\n\n")[0]), formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mmlong list\n  mmlong list compressors\n  mmlong list models --json\n")
    parser.add_argument("kind", nargs="?", choices=list(KINDS), help="one kind (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    parser.set_defaults(func=run_list)
