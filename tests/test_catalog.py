"""``mmlong list``: every registered plug-in, from the registries, with its stage, paper and needs."""

from __future__ import annotations

import json

import pytest

from mmlong.apps.cli import main
from mmlong.registry import COMPRESSORS, registry


@pytest.mark.parametrize("kind", ["models", "compressors", "samplers", "encoders", "experts", "benchmarks"])
def test_list_names_every_registered_plugin(kind, capsys):
    assert main(["list", kind, "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in records] == registry(kind).names()
    assert all(r["summary"] and "``" not in r["summary"] for r in records)


def test_compressors_show_stage_paper_and_needs(capsys):
    assert main(["list", "compressors", "--json"]) == 0
    by_name = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert by_name["fastv"]["stage"] == "in-LLM" and "native model" in by_name["fastv"]["needs"]
    assert by_name["fastv"]["paper"].startswith('Chen et al. 2024, "An Image is Worth 1/2 Tokens')
    assert by_name["pyramiddrop"]["paper"].startswith('Xing et al. 2024, "PyramidDrop')
    assert by_name["tome"]["stage"] == "pre-LLM" and by_name["tome"]["needs"] == "-"
    assert "Token Merging" in by_name["tome"]["paper"]
    # papers with long author lists are named by their first author, as the README names them
    assert by_name["divprune"]["paper"].startswith("Alvar et al. 2025,")
    assert by_name["visionzip"]["paper"].startswith("Yang et al. 2025,")
    assert by_name["dycoke-ttm"]["paper"].startswith("Tao et al. 2025,")
    assert "encoder attention" in by_name["visionzip"]["needs"] and "arXiv:2412.04467" in by_name["visionzip"]["paper"]
    assert by_name["tome"]["summary"] == "remove RATIO of every frame's tokens by bipartite soft matching"


def test_a_newly_registered_plugin_is_listed(monkeypatch, capsys):
    from mmlong.compressors.tome import ToMe

    class Mine(ToMe):
        """``mine``: a registered variant for this test."""

    monkeypatch.setitem(COMPRESSORS._targets, "mine", Mine)
    assert main(["list", "compressors"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("mine "))
    assert "pre-LLM" in line and "a registered variant for this test" in line


def test_list_all_prints_every_kind(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for heading in ("models:", "compressors:", "samplers:", "encoders:", "experts:", "benchmarks:"):
        assert heading in out
    assert "socratic" in out and "coverage" in out and "niavh" in out


@pytest.mark.parametrize("command", [["plan"], ["eval", "compare"], ["list"], ["bench", "prefill"], ["bench", "plan"],
                                     ["ask"], ["batch"]])
def test_help_shows_no_docstring_markup(command, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    out = capsys.readouterr().out
    assert "``" not in out and ":mod:" not in out and ":func:" not in out


def test_sample_help_names_the_default_sampler_and_metavars_are_words(capsys):
    with pytest.raises(SystemExit):
        main(["ask", "--help"])
    assert "coverage:N (the offline default)" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        main(["eval", "compare", "--help"])
    assert "COST_" not in capsys.readouterr().out


def test_long_summaries_are_wrapped_in_the_table_never_cut(capsys):
    """A summary longer than the column (``progressive``'s, ``dycoke-ttm``'s) used to end in "…" mid-sentence."""
    from mmlong.apps.list import SUMMARY_WIDTH

    assert main(["list", "compressors", "--json"]) == 0
    by_name = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    whole = by_name["progressive"]["summary"]
    assert whole.endswith("until ctx.budget is met") and len(whole) > SUMMARY_WIDTH
    assert not any(r["summary"].endswith("…") for r in by_name.values())
    assert main(["list", "compressors"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines[0].index("SUMMARY")
    first = next(n for n, line in enumerate(lines) if line.startswith("progressive "))
    pieces = [lines[first][start:start + SUMMARY_WIDTH].strip()]
    for line in lines[first + 1:]:
        if line[:start].strip():  # the next compressor's row
            break
        pieces.append(line[start:].strip())
    assert len(pieces) > 1 and all(len(piece) <= SUMMARY_WIDTH for piece in pieces)
    assert " ".join(pieces) == whole
