"""Two budgets (tokens, memory), the planner's estimates against measurement, `mmlong plan` and refusals."""

from __future__ import annotations

import doctest
import importlib
import json
import math

import pytest

from mmlong.config.budget import BudgetError, parse_memory_budget, parse_token_budget


# ---------------------------------------------------------------------------------------------- parsing
@pytest.mark.parametrize("text, expected", [("2048", 2048), (4096, 4096), (" 64 ", 64)])
def test_a_token_budget_is_a_whole_number(text, expected):
    assert parse_token_budget(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("12GB", 12 * 10**9), ("512MiB", 512 * 2**20), ("1.5g", int(1.5 * 2**30)), (" 24 gb ", 24 * 10**9),
    ("800kB", 800_000), (5_000_000, 5_000_000),
])
def test_a_memory_budget_is_a_size(text, expected):
    assert parse_memory_budget(text) == expected


@pytest.mark.parametrize("text, reason", [
    ("12GB", "is a memory size; pass it as --memory-budget 12GB"), ("abc", "whole number"), ("0", "at least 1"),
    ("-5", "whole number"), ("1.5", "whole number"), ("", "whole number"),
])
def test_bad_token_budgets_say_what_to_write(text, reason):
    with pytest.raises(BudgetError, match=reason):
        parse_token_budget(text)


@pytest.mark.parametrize("text, reason", [
    ("12XB", "unknown unit"), ("2048", "has no unit.*--budget"), ("GB", "12GB"), ("0GB", "more than 0"),
])
def test_bad_memory_budgets_say_what_to_write(text, reason):
    with pytest.raises(BudgetError, match=reason):
        parse_memory_budget(text)


@pytest.mark.parametrize("argv, needle", [
    (["--budget", "12GB"], "--budget '12GB' is a memory size; pass it as --memory-budget 12GB"),
    (["--memory-budget", "12XB"], "unknown unit 'XB'"),
    (["--memory-budget", "2048"], "has no unit"),
])
def test_cli_rejects_a_budget_for_the_other_flag_in_one_line(argv, needle, capsys):
    from mmlong.apps.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["ask", "video.mp4", "what?", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert needle in err


def test_each_budget_flag_is_parsed_once_into_its_type():
    from mmlong.apps.cli import build_parser

    args = build_parser().parse_args(["ask", "v.mp4", "q", "--budget", "2048", "--memory-budget", "12GB"])
    assert (args.budget, args.memory_budget) == (2048, 12 * 10**9)
    assert type(args.budget) is int and type(args.memory_budget) is int


@pytest.mark.parametrize("name",
                         ["mmlong.config.budget", "mmlong.planning.estimate", "mmlong.planning.shapes",
                          "mmlong.apps.bench.plan",
                                  "mmlong.apps.eval.compare", "mmlong.apps.eval.compare_report"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# ---------------------------------------------------------------------------------------------- Qwen2-VL conventions
def test_smart_resize_matches_transformers():
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as reference

    from mmlong.planning.estimate import MAX_PIXELS, MIN_PIXELS, smart_resize

    for h, w in [(252, 448), (1080, 1920), (90, 160), (2160, 3840), (500, 333), (28, 2000)]:
        for lo, hi in [(MIN_PIXELS, MAX_PIXELS), (56 * 56, 112 * 112), (256 * 28 * 28, 1280 * 28 * 28)]:
            assert smart_resize(h, w, 28, lo, hi) == tuple(reference(h, w, 28, lo, hi)), (h, w, lo, hi)


def test_total_pixels_caps_each_frame_pair_share():
    from mmlong.planning.estimate import frame_pixels_cap, frame_plan
    from mmlong.planning.shapes import named_shape

    # qwen-vl-utils: max(min(max_pixels, total / frames * 2), 1.05 * min_pixels)
    assert frame_pixels_cap(64, 100352, 602112, 24576 * 28 * 28) == int(24576 * 28 * 28 / 64 * 2)
    assert frame_pixels_cap(8, 100352, 602112, 10**12) == 602112
    assert frame_pixels_cap(4096, 100352, 602112, 24576 * 28 * 28) == int(100352 * 1.05)
    shape = named_shape("0.5b")
    free = frame_plan(shape, 64, 1080, 1920)
    capped = frame_plan(shape, 64, 1080, 1920, total_pixels=64 * 200 * 28 * 28)
    assert free.tokens_per_patch * 28 * 28 <= 768 * 28 * 28 < 4 * capped.tokens_per_patch * 28 * 28 * 4
    assert capped.tokens_per_patch * 28 * 28 <= 2 * 200 * 28 * 28 < free.tokens_per_patch * 28 * 28
    assert capped.visual_tokens == 32 * capped.tokens_per_patch


def test_kv_cache_formula():
    from mmlong.planning.estimate import estimate, frame_plan
    from mmlong.planning.shapes import named_shape

    shape = named_shape("0.5b")
    plan = frame_plan(shape, 16, 448, 448, text_tokens=60)
    est = estimate(shape, plan, "bfloat16")
    assert plan.visual_tokens == 8 * 16 * 16
    assert est.kv_cache == 2 * 24 * 2 * 64 * (2048 + 60) * 2
    assert est.weights == (shape.llm_parameters() + shape.vision_parameters()) * 2


def test_parameter_counts_match_built_models():
    from mmlong.apps.bench.prefill import build_model
    from mmlong.planning.shapes import named_shape

    for size in ("tiny", "small"):
        model = build_model(size, "cpu", "float32", seed=0)
        shape = named_shape(size)
        assert sum(p.numel() for p in model.model.language_model.parameters()) + (
            0 if shape.tied else model.lm_head.weight.numel()) == shape.llm_parameters()
        assert sum(p.numel() for p in model.model.visual.parameters()) == shape.vision_parameters()


# ---------------------------------------------------------------------------------------------- vs measurement
@pytest.fixture(scope="module")
def checked_rows():
    from mmlong.apps.bench.plan import check

    return check(["tiny", "small"], [4, 8], 112)


def test_estimates_are_within_15_percent_of_measured_memory_and_10_of_counted_flops(checked_rows):
    for row in checked_rows:
        assert row["visual_tokens"] == row["planned_visual_tokens"]
        assert 0.85 <= row["memory_ratio"] <= 1.15, row
        assert 0.9 <= row["flops_ratio"] <= 1.1, row
    # more frames cost more of both, as measured
    tiny = [r for r in checked_rows if r["size"] == "tiny"]
    assert tiny[1]["peak_bytes"] > tiny[0]["peak_bytes"] and tiny[1]["flops"] > 2 * tiny[0]["flops"]


def test_live_tensor_peak_sees_a_temporary():
    import torch

    from mmlong.apps.bench.plan import LiveTensorPeak

    x = torch.ones(256, 256)
    with LiveTensorPeak() as tracker:
        y = (x * 2).sum()  # a 256 KiB temporary, freed before the scalar survives
    assert tracker.peak >= 256 * 256 * 4 and tracker.current <= 64
    assert float(y) == 2 * 256 * 256


def test_counted_flops_include_cpu_attention():
    import torch

    from mmlong.apps.bench.plan import counted_flops

    q = torch.randn(1, 2, 32, 16)
    _, flops = counted_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True))
    assert flops == 4 * 2 * 32 * 32 * 16


# ---------------------------------------------------------------------------------------------- plan and refusals
@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from tests.media import make_test_video

    return make_test_video(tmp_path_factory.mktemp("clip") / "clip.mp4", num_frames=24, fps=4.0, size=(320, 180))


def test_plan_prints_frames_tokens_and_the_memory_parts(qwen_dir, clip, capsys):
    from mmlong.apps.cli import main

    assert main(["plan", clip, "--model", qwen_dir, "--sample", "uniform:8", "--tflops", "0.001", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    from mmlong.config.resolve import resolve
    from mmlong.pipeline import Pipeline

    # 320x180 under the checkpoint's own max_pixels 112*112 (read from its processor_config.json)
    h, w = smart_resize(180, 320, 28, 56 * 56, 112 * 112)
    assert record["frames"] == 8 and record["frame_size"] == [w, h]
    assert record["tokens_per_frame_pair"] == (h // 28) * (w // 28)
    real = Pipeline(resolve(preset="qwen2-vl", flags={"model": qwen_dir, "sample": "uniform:8", "cache": False}))
    assert real.encode(clip).num_tokens == record["visual_tokens"] == 4 * record["tokens_per_frame_pair"]
    mem = record["memory_bytes"]
    assert mem["peak"] == mem["weights"] + mem["visual_features"] + max(
        mem["vision_activations"], mem["kv_cache"] + mem["llm_activations"] + mem["logits"])
    assert record["estimated_seconds"] == pytest.approx(record["prefill_tflops"] * 1000, rel=0.05)


def test_pool_in_the_chain_is_simulated(qwen_dir, clip, capsys):
    from mmlong.apps.cli import main

    assert main(["plan", clip, "--model", qwen_dir, "--sample", "uniform:8", "--compress", "pool:2", "--tflops",
                 "1", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    h, w = record["frame_size"][1] // 28, record["frame_size"][0] // 28
    assert record["tokens_after_chain"] == 4 * math.ceil(h / 2) * math.ceil(w / 2)


@pytest.mark.parametrize("chain", ["framefusion", "dycoke-kv"])
def test_hook_pruning_steps_are_planned_unpruned(qwen_dir, clip, capsys, chain):
    """FrameFusion and DyCoKe-KV prune through their own hooks (no fixed pruning points): the plan counts their
    prefill as unpruned (an upper bound) instead of failing, and FastV's points still lower it."""
    from mmlong.apps.cli import main

    def plan(compress):
        args = ["plan", clip, "--model", qwen_dir, "--sample", "uniform:8", "--tflops", "1", "--json"]
        assert main(args + (["--compress", compress] if compress else [])) == 0
        return json.loads(capsys.readouterr().out)

    plain, hooked, fastv = plan(None), plan(chain), plan("fastv:1,0.5")
    assert hooked["prefill_tflops"] == plain["prefill_tflops"]
    assert hooked["memory_bytes"]["peak"] == plain["memory_bytes"]["peak"]
    assert fastv["prefill_tflops"] < plain["prefill_tflops"]


def test_ask_refuses_a_run_over_its_memory_budget_before_loading(qwen_dir, clip, capsys, monkeypatch):
    import mmlong.pipeline
    from mmlong.apps.cli import main

    def no_pipeline(*args, **kwargs):
        raise AssertionError("the pipeline was built for a run that cannot fit")

    monkeypatch.setattr(mmlong.pipeline.Pipeline, "__init__", no_pipeline)
    status = main(["ask", clip, "what?", "--model", qwen_dir, "--sample", "uniform:8", "--memory-budget", "2MB"])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"mmlong: error: {clip}: needs ~") and "budget 2.0 MB" in err[0]
    assert "would fit" in err[0] or "raise the budget" in err[0]


def test_the_demo_refuses_a_question_over_its_memory_budget_before_loading(qwen_dir, clip, monkeypatch, tmp_path):
    import mmlong.pipeline
    from mmlong.apps.cli import build_parser
    from mmlong.apps.demo.command import DemoApp

    def no_pipeline(*args, **kwargs):
        raise AssertionError("the pipeline was built for a run that cannot fit")

    args = build_parser().parse_args(["demo", "--model", qwen_dir, "--sample", "uniform:8", "--memory-budget", "2MB"])
    app = DemoApp(args, out_dir=tmp_path)
    monkeypatch.setattr(mmlong.pipeline.Pipeline, "__init__", no_pipeline)
    result = app.ask(clip, "what?", "")
    assert not result.ok and "needs ~" in result.status and "budget 2.0 MB" in result.status


def test_a_token_budget_chain_gets_the_tokens_that_fit(qwen_dir, clip):
    from mmlong.config.resolve import resolve
    from mmlong.media.video import probe
    from mmlong.planning.fit import check_fits, plan_run, shape_for

    config = resolve(preset="qwen2-vl", flags={"model": qwen_dir, "sample": "uniform:8", "compress": "tome:auto"})
    shape, pixels = shape_for(config)
    meta = probe(clip)
    full = plan_run(config, meta, shape, pixels).estimate.peak
    assert check_fits(config, [clip], full + 1) is config  # fits as it is
    budget = int(full * 0.999)
    fitted = check_fits(config, [clip], budget)
    assert fitted.budget is not None and fitted.budget < plan_run(config, meta, shape, pixels).plan.visual_tokens
    assert plan_run(fitted, meta, shape, pixels).estimate.peak <= budget
    assert check_fits(config, [clip, str(meta.path) + ".missing"], full + 1) is config  # a bad video is skipped


def test_suggestions_fit_when_applied(qwen_dir, clip):
    from mmlong.config.resolve import resolve
    from mmlong.media.video import probe
    from mmlong.planning.fit import plan_run, shape_for, suggestions

    flags = {"model": qwen_dir, "sample": "uniform:16"}
    config = resolve(preset="qwen2-vl", flags=flags)
    shape, pixels = shape_for(config)
    meta = probe(clip)
    budget = int(plan_run(config, meta, shape, pixels).estimate.peak * 0.98)
    fixes = suggestions(config, meta, shape, pixels, budget)
    assert fixes
    for fix in fixes:
        flag, value = fix.split(" ", 1)
        change = {"--sample": {"sample": value}, "--compress": {"compress": value}, "--dtype": {"dtype": value},
                  "--max-side": {"max_side": int(value) if value.isdigit() else value}}[flag]
        changed = resolve(preset="qwen2-vl", flags={**flags, **change})  # the suggested flags, resolved again
        assert plan_run(changed, meta, shape, pixels).estimate.peak <= budget, fix


def test_a_chain_the_plan_cannot_run_says_why():
    """`plan --compress pool:auto` without a token budget said only "chain not simulated (ConfigError)"."""
    from mmlong.compressors.base import Chain
    from mmlong.planning.fit import chain_tokens
    from mmlong.registry import COMPRESSORS

    chain = Chain([COMPRESSORS.create("pool", factor="auto")])
    tokens, note = chain_tokens(chain, (4, 6, 6), None)
    assert tokens is None and "pool:auto needs a token budget" in note and "planned uncompressed" in note
    assert chain_tokens(chain, (4, 6, 6), 36)[0] <= 36  # with a token budget it runs
