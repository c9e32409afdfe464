"""FastV / PyramidDrop as forward pre-hooks on a tiny random-init Qwen2-VL."""

from __future__ import annotations

import pytest
import torch

from mmlong.compressors.base import Chain
from mmlong.compressors.llm_pruning import Drop, FastV, InLLMPruning, PyramidDrop, last_token_attention
from mmlong.errors import ConfigError
from mmlong.models.decoding import decoder_layers, greedy_decode
from mmlong.models.native.qwen2_vl import Qwen2VLAdapter
from mmlong.qa import Query
from mmlong.registry import COMPRESSORS
from tests.vlm_fixtures import build_qwen2_vl, frames_of, random_video


@pytest.fixture(scope="module")
def tiny():
    model, processor = build_qwen2_vl(num_layers=4)
    adapter = Qwen2VLAdapter(Qwen2VLAdapter.Config(max_new_tokens=20)).load(model, processor)
    tokens = adapter.native_encoder().encode(frames_of(random_video(8)))
    prompt = adapter.build_prompt(tokens, Query("describe the scene"))
    baseline = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=20)
    return model, adapter, tokens, prompt, baseline


def run(model, prompt, steps, new_tokens=20):
    with InLLMPruning(decoder_layers(model), steps, prompt.visual_mask) as pruning:
        result = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=new_tokens)
    return pruning, result


@pytest.mark.parametrize("spec", ["fastv:2,0", "pyramiddrop:0"])
def test_ratio_zero_equals_the_unpruned_model(tiny, spec):
    model, _, _, prompt, baseline = tiny
    pruning, result = run(model, prompt, Chain.from_spec(spec).in_llm)
    assert result.token_ids == baseline.token_ids
    assert torch.equal(result.logits, baseline.logits)
    assert pruning.observed == pruning.planned == [prompt.length] * 4


def test_fastv_plan_observed_lengths_and_per_layer_cache(tiny):
    model, _, _, prompt, baseline = tiny
    text = prompt.length - 64
    pruning, result = run(model, prompt, [FastV(FastV.Config(k=2, ratio=0.5))])
    assert pruning.planned == [text + 64, text + 64, text + 32, text + 32]
    assert pruning.observed == pruning.planned
    assert len(result.token_ids) == 20 and result.logits.shape[0] == 20
    assert (result.logits - baseline.logits).abs().max() > 1e-3  # pruning changed the computation
    assert all(len(layer._forward_pre_hooks) == 0 for layer in decoder_layers(model))
    # text rows are never dropped; the kept visual rows are the top-scored ones
    kept = pruning.kept_rows
    assert prompt.visual_mask[kept].sum() == 32 and (~prompt.visual_mask[kept]).sum() == text


def test_pyramiddrop_default_schedule_and_cache_lengths(tiny):
    model, _, _, prompt, _ = tiny
    text = prompt.length - 64
    captured = {}

    def keep_cache(module, args, kwargs, output):
        captured["cache"] = kwargs.get("cache") or kwargs.get("past_key_values")

    lm = decoder_layers(model)[0]
    handle = lm.register_forward_hook(keep_cache, with_kwargs=True)
    try:
        pruning, result = run(model, prompt, [PyramidDrop()])
    finally:
        handle.remove()
    assert pruning.schedule == {1: 32, 2: 16, 3: 8}
    assert pruning.planned == [text + 64, text + 32, text + 16, text + 8] == pruning.observed
    cache = captured["cache"]
    generated = len(result.token_ids) - 1  # the last token is never fed back
    assert [cache.get_seq_length(i) for i in range(4)] == [n + generated for n in pruning.planned]


def test_eager_and_sdpa_agree_under_pruning(tiny):
    """Eager attention materialises 4-D masks: prefill masks are sliced, decode masks use each layer's columns."""
    model, _, _, prompt, _ = tiny
    _, sdpa = run(model, prompt, [PyramidDrop()])
    for cfg in (model.config, model.config.text_config):
        cfg._attn_implementation = "eager"
    try:
        _, eager = run(model, prompt, [PyramidDrop()])
    finally:
        for cfg in (model.config, model.config.text_config):
            cfg._attn_implementation = "sdpa"
    assert eager.token_ids == sdpa.token_ids
    assert (eager.logits - sdpa.logits).abs().max() < 1e-4


def test_recomputed_scores_equal_eager_attention_weights(tiny):
    model, _, _, prompt, _ = tiny
    layer_index = 2
    layer = decoder_layers(model)[layer_index]
    seen = {}

    def grab(module, args, kwargs):
        seen["hidden"] = args[0] if args else kwargs["hidden_states"]
        seen["pe"] = kwargs["position_embeddings"]

    handle = layer.register_forward_pre_hook(grab, with_kwargs=True)
    for cfg in (model.config, model.config.text_config):
        cfg._attn_implementation = "eager"
    try:
        with torch.no_grad():
            out = model(inputs_embeds=prompt.inputs_embeds, position_ids=prompt.position_ids, output_attentions=True)
    finally:
        handle.remove()
        for cfg in (model.config, model.config.text_config):
            cfg._attn_implementation = "sdpa"
    expected = out.attentions[layer_index][0, :, -1, :].mean(0)
    with torch.no_grad():
        ours = last_token_attention(layer, seen["hidden"], seen["pe"])
    assert torch.allclose(ours, expected.float(), atol=1e-5)


def test_adapter_answer_reports_in_llm_lengths(tiny):
    _, adapter, tokens, prompt, _ = tiny
    answer = adapter.answer(tokens, Query("describe the scene"), in_llm=Chain.from_spec("fastv:1,0.75").in_llm)
    lengths = answer.details["in_llm"]
    text = prompt.length - 64
    assert lengths["planned_lengths"] == lengths["observed_lengths"] == [text + 64] + [text + 16] * 3
    mc = adapter.answer(tokens, Query("which one?", ("a cat", "a dog")), in_llm=[PyramidDrop()])
    assert mc.option in ("a cat", "a dog")


def test_configs_and_errors():
    assert COMPRESSORS.from_spec("fastv:3,0.25").config == FastV.Config(k=3, ratio=0.25)
    assert [d.layer for d in COMPRESSORS.from_spec("pyramiddrop:0.5,layers=2/4").drops(8, 64)] == [2, 4]
    assert [(d.layer, d.keep) for d in PyramidDrop().drops(32, 576)] == [(8, 288), (16, 144), (24, 72)]
    assert [d.layer for d in PyramidDrop().drops(24, 10)] == [6, 12, 18]
    assert FastV(FastV.Config(k=3, ratio=0.25)).drops(8, 10) == [Drop(3, 2, 8)]  # round(7.5) = 8
    chain = Chain.from_spec("fastv:2,0.5")
    assert chain.in_llm and not chain.pre_llm and chain.in_llm[0].stage == "in_llm"
    with pytest.raises(ConfigError, match="ratio must be in"):
        FastV(FastV.Config(k=2, ratio=1.5))
    with pytest.raises(ConfigError, match="has 4 layers"):
        FastV(FastV.Config(k=4)).drops(4, 10)
    with pytest.raises(ConfigError, match="runs inside the language model"):
        FastV()(None)  # type: ignore[arg-type]


def test_bench_prefill_json_reports_both_runs(capsys):
    from mmlong.apps.cli import main

    assert main(["bench", "prefill", "--size", "tiny", "--frames", "8", "--resolution", "112",
                 "--compress", "pyramiddrop", "--json", "--threads", "1"]) == 0
    import json

    record = json.loads(capsys.readouterr().out)
    # 8 frames at 112 px: 4 temporal patches x 4 x 4 merged tokens, 60 text tokens, 4 layers (boundaries 1, 2, 3)
    assert record["baseline_tokens"] == 124 and record["baseline_visual_tokens"] == 64
    assert record["layer_lengths"] == [124, 92, 76, 68]
    assert record["compressed_tokens"] == round(sum(record["layer_lengths"]) / 4)
    assert record["baseline_ms"] > 0 and record["compressed_ms"] > 0
    assert abs(record["speedup"] - record["baseline_ms"] / record["compressed_ms"]) < 0.02
    assert record["flops_ratio"] > 1.0 and record["compressed_kv_cache_mb"] < record["baseline_kv_cache_mb"]


@pytest.mark.parametrize("spec", ["framefusion:0.3", "dycoke-kv"])
def test_bench_prefill_runs_steps_that_bring_their_own_hooks(spec):
    from mmlong.apps.bench.prefill import build_model, prefill, visual_tokens
    from mmlong.compressors.base import Chain

    model = build_model("tiny", "cpu", "float32", seed=0)
    tokens = visual_tokens(8, 112, model.config.get_text_config().hidden_size, seed=0)
    full = prefill(model, tokens, [], seed=0)
    result = prefill(model, tokens, list(Chain.from_spec(spec).in_llm), seed=0)
    if spec == "dycoke-kv":  # it prunes only while decoding: the prefill is the unpruned one
        assert result["lengths"] == full["lengths"] and result["kv_cache_mb"] == full["kv_cache_mb"]
    else:  # FrameFusion merges and prunes inside the prefill: later layers see fewer rows
        assert result["lengths"][0] == full["lengths"][0] and result["lengths"][-1] < full["lengths"][-1]
        assert result["kv_cache_mb"] < full["kv_cache_mb"]
