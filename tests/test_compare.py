"""`mmlong eval compare`: cells at matched budgets, records, resume, prefill cost, table and Pareto plot."""

from __future__ import annotations

import json

import pytest


# ---------------------------------------------------------------------------------------------- cell settings
def test_cells_reach_the_ratio_through_the_budget_or_their_own_setting():
    from mmlong.apps.eval.compare import cell_chain

    assert cell_chain("pool", 0.25) == "pool:auto"
    assert cell_chain("tome", 0.1) == "tome:auto"
    assert cell_chain("select", 0.5) == "select" and cell_chain("stream-memory", 0.5) == "stream-memory"
    assert cell_chain("tome:{drop}", 0.25) == "tome:0.75" and cell_chain("pool:2", 0.1) == "pool:2"
    assert cell_chain("scenetile,pool", 0.5) == "scenetile,pool:auto"
    assert cell_chain("stream-memory:{budget}", 0.5) == "stream-memory:{budget}"
    # in-LLM steps with their own hooks: DyCoke drops 1 - R of the visual KV rows, FrameFusion's cost is R
    assert cell_chain("dycoke-kv", 0.25) == "dycoke-kv:ratio=0.75"
    assert cell_chain("framefusion", 0.25) == "framefusion:cost=0.25"


@pytest.mark.parametrize("ratio", [0.5, 0.25])
def test_in_llm_cells_keep_the_ratio_on_average_over_layers(ratio):
    from mmlong.apps.eval.compare import cell_chain
    from mmlong.compressors.base import Chain

    for layers in (24, 28):
        spec = cell_chain("fastv", ratio, num_layers=layers)
        drop = Chain.from_spec(spec).in_llm[0].config.ratio
        # FastV (k=2): layers 0-1 see every visual token, the rest keep 1 - drop of them
        assert (2 + (layers - 2) * (1 - drop)) / layers == pytest.approx(ratio, abs=1e-3)
        spec = cell_chain("pyramiddrop", ratio, num_layers=layers)
        q = 1 - Chain.from_spec(spec).in_llm[0].config.ratio
        quarter = [max(1, layers * k // 4) for k in (1, 2, 3)]
        kept = sum(q ** sum(layer >= b for b in quarter) for layer in range(layers)) / layers
        assert kept == pytest.approx(ratio, abs=1e-3)


def test_bad_ratio_is_refused():
    from mmlong.apps.eval.compare import grid
    from mmlong.errors import ConfigError

    with pytest.raises(ConfigError, match="retention ratio"):
        grid(["pool"], [1.5])
    assert [c.id for c in grid(["pool", "pool"], [0.5, 0.5])] == ["none", "pool@0.5"]


def test_a_chain_the_pipeline_cannot_run_gives_error_records_not_an_abort(monkeypatch):
    from types import SimpleNamespace

    import mmlong.apps.eval.run as benchmark_run
    from mmlong.apps.eval.compare import Cell, _cell_records
    from mmlong.config.resolve import resolve
    from mmlong.errors import ConfigError

    def needs_attention(benchmark, pipeline, group):
        raise ConfigError("visionzip needs the vision encoder's attention")

    monkeypatch.setattr(benchmark_run, "answer_group", needs_attention)
    benchmark = SimpleNamespace(error_record=lambda item, reason: {"id": item.id, "correct": False, "error": reason})
    pipeline = SimpleNamespace(config=resolve(preset="offline"), chain=None)
    group = [SimpleNamespace(id="q1"), SimpleNamespace(id="q2")]
    records = _cell_records(benchmark, pipeline, Cell("visionzip", 0.25), "visionzip", group, base_tokens=100)
    assert [r["id"] for r in records] == ["visionzip@0.25|q1", "visionzip@0.25|q2"]
    assert all("attention" in r["error"] and r["budget"] == 25 for r in records)


# ---------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from mmlong.benchmarks.niavh_make import MakeConfig, make_niavh
    from tests.vlm_fixtures import build_qwen2_vl, save_checkpoint

    root = tmp_path_factory.mktemp("compare")
    make_niavh(root / "set", MakeConfig(depths=(0, 100), lengths=(8,), types=("text",), fps=2.0))
    model, processor = build_qwen2_vl()
    return root, save_checkpoint(model, processor, root / "qwen")


def _run(root, model, out):
    from mmlong.apps.cli import main

    return main(["eval", "compare", "niavh", str(root / "set"), "--out", str(out), "--model", model,
                 "--sample", "uniform:4", "--methods", "pool", "fastv", "--ratios", "0.5", "--cost-size", "tiny",
                 "--cost-frames", "4", "--cost-resolution", "112", "--cache-dir", str(root / "cache")])


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_compare_grid_records_cost_table_plot_and_resume(setup, capsys):
    root, model = setup
    out = root / "run"
    assert _run(root, model, out) == 0
    records = _records(out / "results.jsonl")
    assert sorted(r["cell"] for r in records) == ["fastv@0.5"] * 2 + ["none"] * 2 + ["pool@0.5"] * 2
    for r in records:
        assert r["id"] == f"{r['cell']}|{r['id'].split('|', 1)[1]}" and not r.get("error")
        if r["cell"] == "none":
            assert r["budget"] is None and r["visual_tokens"] == r["base_tokens"] > 0
        else:
            assert r["budget"] == round(0.5 * r["base_tokens"])
        assert r["in_llm"] == (r["cell"] == "fastv@0.5")
        if r["cell"] == "pool@0.5":
            assert r["chain"] == "pool:auto" and r["visual_tokens"] <= r["budget"]

    summary = json.loads((out / "summary.json").read_text())
    cells = {c["cell"]: c for c in summary["cells"]}
    for cell_id, row in cells.items():
        mine = [r for r in records if r["cell"] == cell_id]
        assert row["accuracy"] == pytest.approx(sum(r["correct"] for r in mine) / len(mine))
        if cells["none"]["accuracy"]:
            assert row["retained"] == pytest.approx(row["accuracy"] / cells["none"]["accuracy"])

    costs = {r["id"]: r for r in _records(out / "cost.jsonl")}
    assert set(costs) == {"none", "pool@0.5", "fastv@0.5"}
    none, pool, fastv = costs["none"], costs["pool@0.5"], costs["fastv@0.5"]
    assert none["visual_tokens"] == 2 * 4 * 4 and pool["visual_tokens"] == 2 * 2 * 2 <= pool["budget"] == 16
    assert fastv["visual_tokens"] == 32 and fastv["mean_visual_tokens"] < 32  # pruned inside the LLM
    text = 60
    for cost in (none, pool):  # KV cache = 2 x layers x kv_heads x head_dim x tokens x 4 bytes
        assert cost["kv_cache_bytes"] == pytest.approx(2 * 4 * 2 * 32 * (cost["visual_tokens"] + text) * 4, abs=8)
    assert none["prefill_flops"] > fastv["prefill_flops"] > pool["prefill_flops"]
    assert none["peak_bytes"] > pool["peak_bytes"]
    report = (out / "results.md").read_text()
    assert "![pareto](pareto.png)" in report and "`pool:auto`" in report
    assert (out / "pareto.png").stat().st_size > 5000

    # a crash: the last record torn, one cost missing; the same command completes only what is missing
    kept = records[:-1]
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept) + '{"id": "fastv@0.5|te')
    (out / "cost.jsonl").write_text("".join(json.dumps(costs[k]) + "\n" for k in ("none", "pool@0.5")))
    assert _run(root, model, out) == 0
    again = _records(out / "results.jsonl")
    assert len(again) == 6 and {r["id"] for r in again} == {r["id"] for r in records}
    by_id = {r["id"]: r for r in again}
    assert all(by_id[r["id"]] == r for r in kept)  # not answered twice
    recosted = {r["id"]: r for r in _records(out / "cost.jsonl")}
    assert recosted["none"] == none and set(recosted) == set(costs)


def test_compare_saves_the_resolved_tree_and_refuses_to_resume_another_pipeline(setup, capsys):
    from mmlong.apps.cli import main
    from mmlong.config.resolve import resolve

    root, model = setup
    out = root / "run-resume"
    assert _run(root, model, out) == 0
    saved = resolve(yaml=out / "results.config.yaml")  # the tree the cells share, chain left to the cells
    assert saved.model.family == "qwen2-vl" and saved.sample_spec == "uniform:4" and saved.compressors == ()
    capsys.readouterr()
    status = main(["eval", "compare", "niavh", str(root / "set"), "--out", str(out), "--model", model,
                   "--sample", "uniform:2", "--methods", "pool", "fastv", "--ratios", "0.5", "--no-cost"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "another pipeline (sampler.options.num_frames: 4 -> 2)" in err[0]


def _example_argv(line_start: str) -> list[str]:
    """The argv of the ``eval compare --help`` example starting with ``line_start`` (continuation lines joined)."""
    import shlex

    from mmlong.apps.eval.compare import EXAMPLES

    text = EXAMPLES.replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if ln.strip().startswith(line_start))
    return shlex.split(line)[1:]


def test_the_help_examples_run_the_methods_they_list():
    from mmlong.apps.cli import build_parser
    from mmlong.apps.eval.compare import cell_chain, grid

    args = build_parser().parse_args(_example_argv(
        "mmlong eval compare niavh --data runs/niavh-set --out runs/compare"))
    assert args.methods == ["pool", "tome", "select", "stream-memory", "fastv", "pyramiddrop"]
    assert len(grid(args.methods, args.ratios)) == 1 + 6 * 3
    args = build_parser().parse_args(_example_argv("mmlong eval compare niavh --data runs/niavh-set --out runs/c2"))
    assert args.methods == ["tome:{drop}", "scenetile+pool:auto"]
    assert [cell_chain(m, 0.25) for m in args.methods] == ["tome:0.75", "scenetile,pool:auto"]


@pytest.mark.parametrize("methods, needle", [
    (["pool,tome"], "is a chain of 2 steps; list methods with spaces (pool tome) or join one chain's steps with + "
                    "(pool+tome)"),
    (["select", "scenetile,pool:auto"], "(scenetile+pool:auto)"),
])
def test_a_comma_list_of_methods_is_refused_in_one_line(methods, needle, capsys):
    from mmlong.apps.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "compare", "niavh", "d", "--out", "o", "--methods", *methods])
    assert exit_info.value.code == 2
    assert needle in capsys.readouterr().err.strip().splitlines()[-1]


def test_step_arguments_keep_their_commas():
    from mmlong.apps.eval.compare import method_argument

    assert method_argument("fastv:3,{drop}") == "fastv:3,{drop}"
    assert method_argument("holitom:contextual=1,tau=0.8") == "holitom:contextual=1,tau=0.8"


def test_every_list_flag_takes_values_separated_by_spaces():
    from mmlong.apps.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["eval", "compare", "niavh", "d", "--out", "o", "--ratios", "0.5", "0.25",
                              "--kinds", "mc", "open", "--tasks", "needle", "count"])
    assert (args.ratios, args.kinds, args.tasks) == ([0.5, 0.25], ["mc", "open"], ["needle", "count"])
    make = parser.parse_args(["eval", "niavh", "make", "set", "--kinds", "image", "speech", "--depths", "0", "50",
                              "--lengths", "60", "120"])
    assert (make.types, make.depths, make.lengths) == (["image", "speech"], [0.0, 50.0], [60.0, 120.0])
    run = parser.parse_args(["eval", "niavh", "run", "set", "--out", "o", "--kinds", "mc", "open"])
    assert run.kinds == ["mc", "open"]  # make and run name question/item kinds with the same flag
    assert parser.parse_args(["eval", "niavh", "make", "set", "--types", "image,text"]).types == ["image", "text"]


def test_every_benchmark_command_takes_its_data_with_data(capsys):
    from mmlong.apps.cli import build_parser, main
    from mmlong.apps.eval.command import data_of

    parser = build_parser()
    for argv in (["eval", "compare", "niavh", "--data", "set", "--out", "o"],
                 ["eval", "niavh", "run", "--data", "set", "--out", "o"],
                 ["eval", "mlvu", "--data", "set", "--out", "o"]):
        assert data_of(parser.parse_args(argv)) == "set", argv
    assert data_of(parser.parse_args(["eval", "niavh", "run", "set", "--out", "o"])) == "set"  # older form
    assert main(["eval", "niavh", "run", "--out", "o"]) == 2
    assert "give the benchmark data with --data DIR" in capsys.readouterr().err
