"""DyCoke: temporal token pruning (pre-LLM) and dynamic KV pruning (decode time) against references written
here from the paper (Tao et al. 2025, arXiv:2411.15024) and the official code (KD-TAO/DyCoke)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmlong.compressors.base import Chain, CompressContext
from mmlong.compressors.dycoke import DyCokeKV, DyCokeTTM
from mmlong.errors import ConfigError
from mmlong.models.decoding import decoder_layers, greedy_decode
from mmlong.models.native.qwen2_vl import Qwen2VLAdapter
from mmlong.qa import Query
from mmlong.registry import COMPRESSORS
from mmlong.types import VisualTokens
from tests.pairing import assert_paired, group_rows
from tests.vlm_fixtures import build_qwen2_vl, frames_of, random_video


# ---------------------------------------------------------------------------------------------- TTM reference
def reference_ttm(flat: torch.Tensor, per_frame: int, k: float) -> list[set[int]]:
    """The official ``dycole_ttm`` step by step on ``[F * n, D]``: which token of each frame survives.

    Returns one set of in-frame indices per frame (the official output concatenates frames in order; an odd last
    frame, which the official loop drops, is kept whole here as in ours).
    """
    frames = flat.shape[0] // per_frame
    keep_n = int((1 - k) * per_frame)
    frame = [flat[i * per_frame:(i + 1) * per_frame] for i in range(frames)]
    survivors = [set(range(per_frame)) for _ in range(frames)]
    for i in range(0, frames - 1, 2):
        sim = F.cosine_similarity(frame[i], frame[i + 1], dim=1)
        survivors[i + 1] = set(sim.topk(keep_n, largest=False).indices.tolist())
    for i in range(0, frames - 4, 4):
        sim = F.cosine_similarity(frame[i], frame[i + 2], dim=1)
        survivors[i + 2] = set(sim.topk(keep_n, largest=False).indices.tolist())
    return survivors


def survivors_of(out: VisualTokens, tokens: VisualTokens, per_frame: int) -> list[set[int]]:
    rows = [int((tokens.features == f).all(dim=1).nonzero()[0]) for f in out.features]
    found = [set() for _ in range(tokens.grid[0])]
    for row in rows:
        found[row // per_frame].add(row % per_frame)
    return found


@pytest.mark.parametrize("frames,k", [(8, 0.7), (12, 0.5), (7, 0.3), (16, 0.9)])
def test_ttm_equals_reference(frames, k):
    gen = torch.Generator().manual_seed(frames)
    base = torch.randn(1, 3, 4, 16, generator=gen)
    grid = base + 0.7 * torch.randn(frames, 3, 4, 16, generator=gen)  # frames alike, not equal
    tokens = VisualTokens.from_grid(grid, torch.arange(float(frames)))
    out = DyCokeTTM(DyCokeTTM.Config(ratio=k))(tokens)
    assert survivors_of(out, tokens, 12) == reference_ttm(tokens.features, 12, k)
    # kept tokens stay in sequence order with their own times and positions
    assert torch.equal(out.frame_ids, out.frame_ids.sort().values)
    kept = [f * 12 + i for f, rows in enumerate(reference_ttm(tokens.features, 12, k)) for i in sorted(rows)]
    assert_paired(out, group_rows(tokens, [[i] for i in kept], tokens.features[kept]))  # features on their tokens
    assert out.provenance[-1].extra["kept_per_frame"] == [len(s) for s in reference_ttm(tokens.features, 12, k)]


def test_ttm_last_window_and_budget():
    tokens = VisualTokens.from_grid(torch.randn(8, 2, 2, 8, generator=torch.Generator().manual_seed(3)),
                                    torch.arange(8.0))
    out = DyCokeTTM(DyCokeTTM.Config(ratio=0.5))(tokens)
    # frames 0, 4 (window anchors) and 6 (its window is the last one, which the official loop skips) stay whole
    assert out.provenance[-1].extra["kept_per_frame"] == [4, 2, 2, 2, 4, 2, 4, 2]
    auto = DyCokeTTM(DyCokeTTM.Config(ratio="auto"))(tokens, CompressContext(budget=17))
    assert auto.num_tokens == 17 and auto.provenance[-1].extra["budget_met"]  # 3 whole frames + 5 x 1
    assert DyCokeTTM(DyCokeTTM.Config(ratio="auto"))(tokens, CompressContext(budget=16)).num_tokens == 12
    with pytest.raises(ConfigError, match="needs a token budget"):
        DyCokeTTM(DyCokeTTM.Config(ratio="auto"))(tokens)
    uneven = tokens.select(torch.arange(1, 32))
    with pytest.raises(ConfigError, match="different token counts"):
        DyCokeTTM()(uneven)


# ---------------------------------------------------------------------------------------------- KV reference
@pytest.fixture(scope="module")
def tiny():
    model, processor = build_qwen2_vl(num_layers=4)
    adapter = Qwen2VLAdapter(Qwen2VLAdapter.Config(max_new_tokens=12)).load(model, processor)
    tokens = adapter.native_encoder().encode(frames_of(random_video(8)))
    prompt = adapter.build_prompt(tokens, Query("describe the scene"))
    return model, adapter, tokens, prompt


def set_attention(model, name):
    for cfg in (model.config, model.config.text_config):
        cfg._attn_implementation = name


def reference_dycoke_decode(model, prompt, layer, ratio, threshold, steps):
    """Greedy decoding with DyCoke's cache pruning, layer by layer under eager attention: the scores are the
    eager attention weights of layer ``layer - 1`` (as the official ``dycoke_pruning`` reads ``attn[1]``), the
    pruning a gather of the kept cache rows for layers ``layer..`` (as ``PrunableDynamicCache.update``)."""
    from transformers.cache_utils import DynamicCache

    lm = model.model.language_model
    visual = prompt.visual_mask.nonzero().flatten()
    keep_n = int(visual.shape[0] * (1 - ratio))
    set_attention(model, "eager")
    try:
        with torch.no_grad():
            cache = DynamicCache(config=model.config)
            out = model(inputs_embeds=prompt.inputs_embeds, position_ids=prompt.position_ids, cache=cache,
                        use_cache=True)
            logits = [out.logits[0, -1].float()]
            tokens, previous, pruned = [], None, []
            next_position = prompt.position_ids.max() + 1
            for step in range(steps):
                token = int(logits[-1].argmax())
                tokens.append(token)
                if step == steps - 1:
                    break
                hidden = model.get_input_embeddings()(torch.tensor([[token]]))
                position = torch.full((3, 1, 1), int(next_position) + step)
                pe = lm.rotary_emb(hidden, position)
                kept = None
                for index, decoder_layer in enumerate(lm.layers):
                    if index < layer or kept is None:
                        attn_out = {}
                        handle = decoder_layer.self_attn.register_forward_hook(
                            lambda m, a, o, store=attn_out: store.update(w=o[1]))
                        hidden = decoder_layer(hidden, attention_mask=None, position_embeddings=pe, cache=cache,
                                               use_cache=True)
                        handle.remove()
                    else:  # attend to the gathered rows only
                        keys_before = cache.layers[index].keys.shape[-2]
                        mask = torch.full((1, 1, 1, keys_before + 1), torch.finfo(hidden.dtype).min)
                        mask[..., kept] = 0.0
                        hidden = decoder_layer(hidden, attention_mask=mask, position_embeddings=pe, cache=cache,
                                               use_cache=True)
                    if index == layer - 1:
                        weights = attn_out["w"].mean(1)[0, -1]
                        image = weights[visual]
                        sim = 0.0 if previous is None else float(F.cosine_similarity(image, previous, dim=0))
                        previous = image
                        kept = None
                        if sim < threshold:
                            top = visual[image.topk(keep_n).indices]
                            rest = torch.ones(weights.shape[0], dtype=torch.bool)
                            rest[visual] = False
                            kept = torch.cat([rest.nonzero().flatten(), top]).sort().values
                        pruned.append(kept is not None)
                logits.append(model.lm_head(lm.norm(hidden))[0, -1].float())
    finally:
        set_attention(model, "sdpa")
    return tokens, torch.stack(logits), pruned


@pytest.mark.parametrize("layer,ratio,threshold", [(3, 0.8, 0.9), (2, 0.5, 0.99985), (1, 0.9, 2.0)])
def test_dynamic_kv_pruning_equals_eager_reference(tiny, layer, ratio, threshold):
    model, _, _, prompt = tiny
    step = DyCokeKV(DyCokeKV.Config(layer=layer, ratio=ratio, threshold=threshold))
    with step.hooks(decoder_layers(model), prompt.visual_mask) as hooks:
        ours = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=12)
    tokens, logits, pruned = reference_dycoke_decode(model, prompt, layer, ratio, threshold, 12)
    assert [s["pruned"] for s in hooks.steps] == pruned
    if threshold == 0.99985:  # the tiny model's attention barely changes: this threshold mixes both kinds of step
        assert any(pruned[1:]) and not all(pruned[1:])
    assert ours.token_ids == tokens
    torch.testing.assert_close(ours.logits, logits, atol=2e-4, rtol=1e-4)
    assert all(len(layer_._forward_pre_hooks) == 0 for layer_ in decoder_layers(model))


def test_eager_and_sdpa_agree_under_dynamic_kv_pruning(tiny):
    """Eager attention gets a 4-D float mask each step (the hooks add to it); SDPA may get none (the hooks make one)."""
    model, _, _, prompt = tiny
    runs = []
    try:
        for name in ("eager", "sdpa"):
            set_attention(model, name)
            with DyCokeKV(DyCokeKV.Config(layer=1, ratio=0.9, threshold=2.0)).hooks(
                    decoder_layers(model), prompt.visual_mask) as hooks:
                runs.append(greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=8))
            assert all(s["pruned"] for s in hooks.steps)
    finally:
        set_attention(model, "sdpa")
    assert runs[0].token_ids == runs[1].token_ids
    assert (runs[0].logits - runs[1].logits).abs().max() < 1e-4


def test_dynamic_kv_pruning_changes_decoding_but_not_the_prefill(tiny):
    model, adapter, tokens, prompt = tiny
    baseline = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=12)
    step = DyCokeKV(DyCokeKV.Config(layer=1, ratio=0.9, threshold=2.0))  # every step pruned
    with step.hooks(decoder_layers(model), prompt.visual_mask) as hooks:
        ours = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=12)
    assert torch.equal(ours.logits[0], baseline.logits[0])
    assert (ours.logits[1:] - baseline.logits[1:]).abs().max() > 1e-4
    assert all(s["pruned"] for s in hooks.steps) and len(hooks.steps) == 11
    answer = adapter.answer(tokens, Query("describe the scene"), in_llm=Chain.from_spec("dycoke-kv:1,0.9").in_llm)
    assert answer.details["in_llm"]["dycoke_kv"]["decode_steps"] >= 1


def test_configs_chain_and_errors(tiny):
    _, adapter, tokens, _ = tiny
    assert COMPRESSORS.from_spec("dycoke-ttm:0.5").config == DyCokeTTM.Config(ratio=0.5)
    assert COMPRESSORS.from_spec("dycoke-kv:2,0.7").config == DyCokeKV.Config(layer=2, ratio=0.7)
    chain = Chain.from_spec("dycoke-ttm:0.7,dycoke-kv:3,0.8")
    assert [s.name for s in chain.pre_llm] == ["dycoke-ttm"] and [s.name for s in chain.in_llm] == ["dycoke-kv"]
    out = chain(tokens)
    assert out.num_tokens < tokens.num_tokens and out.provenance[-1].name == "dycoke-ttm"
    with pytest.raises(ConfigError, match="only in-LLM step"):
        adapter.answer(tokens, Query("q"), in_llm=Chain.from_spec("dycoke-kv,fastv:2,0.5").in_llm)
    with pytest.raises(ConfigError, match="has 4 layers"):
        DyCokeKV(DyCokeKV.Config(layer=4)).hooks(decoder_layers(adapter.model), torch.ones(3, dtype=torch.bool))
    with pytest.raises(ConfigError, match="runs inside the language model"):
        DyCokeKV()(tokens)
