"""Qwen3.5 (hybrid linear/full attention) adapter on a tiny random-init model and a real clip: stock generate,
attention scores read at full-attention layers, and recurrent state after pruning equal to the kept sequence's."""

from __future__ import annotations

import pytest
import torch

from mmlong.compressors.llm_pruning import FastV, PyramidDrop
from mmlong.errors import ConfigError
from mmlong.models.decoding import greedy_decode, language_model
from mmlong.models.native.qwen3_5 import Qwen3_5Adapter
from mmlong.models.native.qwen3_vl import qwen3_vl_chat
from mmlong.qa import Query
from tests.vlm_families import build_qwen3_5, sample_clip, video_metadata

QUESTION = "describe the scene"


@pytest.fixture(scope="module")
def tiny():
    model, processor = build_qwen3_5()
    frames = sample_clip(8, 128)
    adapter = Qwen3_5Adapter(Qwen3_5Adapter.Config(max_new_tokens=8)).load(model, processor)
    return model, processor, frames, adapter, adapter.native_encoder().encode(frames)


def test_uncompressed_generation_equals_stock_generate(tiny):
    model, processor, frames, adapter, tokens = tiny
    assert tokens.layer_features is None and tokens.num_tokens == 32
    inputs = processor(text=[qwen3_vl_chat("<|vision_start|><|video_pad|><|vision_end|>", QUESTION)],
                       videos=[frames.data], videos_kwargs=dict(video_metadata=[video_metadata(frames)]),
                       return_tensors="pt")
    ref = model.generate(**inputs, max_new_tokens=8, do_sample=False, output_logits=True,
                         return_dict_in_generate=True)
    ref_ids = ref.sequences[0, inputs["input_ids"].shape[1]:].tolist()
    prompt = adapter.build_prompt(tokens, Query(QUESTION))
    expected, _ = model.model.get_rope_index(inputs["input_ids"], inputs["mm_token_type_ids"],
                                             video_grid_thw=inputs["video_grid_thw"])
    assert torch.equal(prompt.position_ids, expected)
    ours = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=8,
                         eos_token_ids=[processor.tokenizer.eos_token_id])
    assert ours.token_ids == ref_ids
    assert (ours.logits - torch.stack([step[0] for step in ref.logits])).abs().max().item() < 1e-4
    assert adapter.answer(tokens, Query(QUESTION)).text == processor.tokenizer.decode(
        ref_ids, skip_special_tokens=True).strip()


def test_scores_are_read_at_full_attention_layers(tiny):
    _, _, _, adapter, tokens = tiny
    prompt = adapter.build_prompt(tokens, Query(QUESTION))
    with adapter.pruning(prompt, [FastV(FastV.Config(k=2, ratio=0.5))], tokens) as pruner:
        adapter.model(inputs_embeds=prompt.inputs_embeds, position_ids=prompt.position_ids)
    assert [(d.layer, d.score_layer) for d in pruner.drops] == [(2, 1)]
    assert pruner.observed == [prompt.length] * 2 + [prompt.length - 16] * 2
    with adapter.pruning(prompt, [PyramidDrop()], tokens) as pruner:  # boundaries 1, 2, 3 of 4 layers
        adapter.model(inputs_embeds=prompt.inputs_embeds, position_ids=prompt.position_ids)
    assert [(d.layer, d.score_layer) for d in pruner.drops] == [(1, 1), (2, 1), (3, 3)]
    with pytest.raises(ConfigError) as err:  # layer 0 is linear attention and nothing comes before it
        adapter.answer(tokens, Query(QUESTION), in_llm=[FastV(FastV.Config(k=1, ratio=0.5))])
    assert "linear-attention" in str(err.value) and "[1, 3]" in str(err.value) and "\n" not in str(err.value)


def test_recurrent_state_after_a_drop_is_the_kept_sequence_state(tiny):
    """After FastV drops before layer 2 (linear attention), that layer's conv and recurrent state equal a fresh run
    of the layer on the kept rows only, and decoding goes on from them."""
    from transformers import DynamicCache

    model, processor, _, adapter, tokens = tiny
    prompt = adapter.build_prompt(tokens, Query(QUESTION))
    lm = language_model(model)
    seen: dict[str, object] = {}
    with adapter.pruning(prompt, [FastV(FastV.Config(k=2, ratio=0.5))], tokens) as pruner:
        def capture(module, args, kwargs):
            seen.setdefault("input", (args[0] if args else kwargs["hidden_states"], kwargs))

        grab = lm.layers[2].register_forward_pre_hook(capture, with_kwargs=True)
        out = model(inputs_embeds=prompt.inputs_embeds, position_ids=prompt.position_ids, use_cache=True)
        grab.remove()
    hidden, kwargs = seen["input"]
    assert hidden.shape[1] == pruner.kept_rows.shape[0] == prompt.length - 16
    fresh = DynamicCache(config=model.config.text_config)
    with torch.no_grad():
        lm.layers[2](hidden, position_embeddings=kwargs["position_embeddings"], attention_mask=None, cache=fresh,
                     use_cache=True)
    cache = out.past_key_values if getattr(out, "past_key_values", None) is not None else out.cache
    assert torch.allclose(cache.get_recurrent_state(2), fresh.get_recurrent_state(2), atol=1e-6)
    assert torch.allclose(cache.get_conv_state(2), fresh.get_conv_state(2), atol=1e-6)
    answer = adapter.answer(tokens, Query(QUESTION), in_llm=[FastV(FastV.Config(k=2, ratio=0.5))])
    assert answer.details["in_llm"]["observed_lengths"][2] == prompt.length - 16
    assert answer.details["generated_tokens"] >= 1


def test_gated_attention_scores_equal_the_eager_attention_weights(tiny):
    """The recomputed score of the last token at a gated full-attention layer equals the softmax the layer
    itself computes (eager attention weights, head-averaged)."""
    from mmlong.compressors.attention_scores import last_token_attention

    model, _, _, adapter, tokens = tiny
    prompt = adapter.build_prompt(tokens, Query(QUESTION))
    layer = language_model(model).layers[1]
    seen = {}
    inputs = layer.register_forward_pre_hook(
        lambda module, args, kwargs: seen.update(hidden=args[0] if args else kwargs["hidden_states"],
                                                 rope=kwargs["position_embeddings"]), with_kwargs=True)
    weights = layer.self_attn.register_forward_hook(lambda module, args, output: seen.update(weights=output[1]))
    implementation = model.config.text_config._attn_implementation
    model.config.text_config._attn_implementation = "eager"
    try:
        with torch.no_grad():
            model(inputs_embeds=prompt.inputs_embeds, position_ids=prompt.position_ids)
    finally:
        model.config.text_config._attn_implementation = implementation
        inputs.remove()
        weights.remove()
    expected = seen["weights"][0, :, -1].mean(dim=0)
    scores = last_token_attention(layer, seen["hidden"], seen["rope"])
    assert torch.allclose(scores, expected, atol=1e-5)
