"""FrameFusion (Fu et al. 2025, arXiv:2501.01986) on a tiny random-init Qwen2-VL against a layer-by-layer eager
reference written here from the paper and the official code (thu-nics/FrameFusion, ``framefusion/main.py``)."""

from __future__ import annotations

import pytest
import torch

from mmlong.compressors.base import Chain
from mmlong.compressors.framefusion import FrameFusion, pruning_sparsity
from mmlong.errors import ConfigError
from mmlong.models.decoding import decoder_layers, greedy_decode
from mmlong.models.native.qwen2_vl import Qwen2VLAdapter
from mmlong.qa import Query
from mmlong.registry import COMPRESSORS
from mmlong.types import VisualTokens
from tests.vlm_fixtures import build_qwen2_vl

FRAMES, SIDE = 4, 4


# ---------------------------------------------------------------------------------------------- reference
def official_ratio(sparsity_list, cost, num_layers):
    s, total = 1.0, 0.0
    for value in sparsity_list:
        s *= 1 - value
        total += s
    remain = num_layers * cost - total
    share = remain / ((num_layers - len(sparsity_list)) * s)
    return 0.0 if share > 1 else 1 - share


def official_merge(hidden, patch_type, patch_num, merge_index):
    """``compute_similarity_and_token_index_by_patch`` order + ``merge_tokens_and_get_mask`` on ``[1, L, D]``."""
    _, token_index = torch.where(patch_type[None, :] == torch.arange(patch_num)[:, None])
    if merge_index.numel() == 0:
        return hidden, torch.ones(hidden.shape[1], dtype=torch.bool)
    marked = torch.zeros(token_index.shape[0])
    marked[merge_index] = 1
    keep = torch.ones(hidden.shape[1], dtype=torch.bool)
    keep[token_index[merge_index]] = False
    hidden = hidden.clone()
    j = 0
    while j < marked.shape[0]:  # each run of marked positions joins the position just before it
        if marked[j] == 1:
            end = j
            while end + 1 < marked.shape[0] and marked[end + 1] == 1:
                end += 1
            head = token_index[j - 1]
            members = token_index[j:end + 1]
            hidden[0, head] = (hidden[0, head] + hidden[0, members].sum(0)) / (end - j + 2)
            j = end + 1
        else:
            j += 1
    return hidden, keep


def official_similarity(hidden, patch_type, patch_num):
    ptype, token_index = torch.where(patch_type[None, :] == torch.arange(patch_num)[:, None])
    a, b = hidden[0, token_index[:-1]], hidden[0, token_index[1:]]
    sim = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    sim[ptype[:-1] != ptype[1:]] = -2
    return torch.cat([torch.tensor([-2.0]), sim])


def reference_framefusion(model, prompt, cost, threshold, floor, steps):
    """Prefill with FrameFusion layer by layer under eager attention, then greedy decoding."""
    from transformers.cache_utils import DynamicCache

    lm = model.model.language_model
    for cfg in (model.config, model.config.text_config):
        cfg._attn_implementation = "eager"
    try:
        with torch.no_grad():
            hidden = prompt.inputs_embeds
            cos, sin = lm.rotary_emb(hidden, prompt.position_ids)
            start = int(prompt.visual_mask.nonzero()[0])
            patch_num = SIDE * SIDE
            patch = torch.full((hidden.shape[1],), -1)
            patch[prompt.visual_mask] = torch.arange(patch_num).repeat(FRAMES)
            rows = torch.arange(hidden.shape[1])
            sparsities, merged_done, pruned_done, scores = [], False, False, None
            cache = DynamicCache(config=model.config)
            n_layers = len(lm.layers)
            for layer in lm.layers:
                if merged_done and not pruned_done and scores is not None:
                    visual = int((patch >= 0).sum())
                    ratio = official_ratio(sparsities, cost, n_layers)
                    top = scores[start:start + visual].topk(round(visual * (1 - ratio))).indices + start
                    tail = torch.arange(start + visual, hidden.shape[1])
                    keep = torch.cat([torch.arange(start), top, tail]).sort().values
                    hidden, rows, patch = hidden[:, keep], rows[keep], patch[keep]
                    pruned_done = True
                if not merged_done:
                    upper = official_ratio(sparsities, cost, n_layers)
                    sim = official_similarity(hidden, patch, patch_num)
                    count = int((patch >= 0).sum())
                    merge_index = torch.where(sim >= threshold)[0]
                    above = merge_index.shape[0] / count
                    if above < upper:
                        sparsities.append(above)
                        merged_done = above < floor
                    else:
                        merge_index = torch.topk(sim, int(upper * count)).indices.sort().values
                        merged_done = pruned_done = True
                    hidden, keep = official_merge(hidden, patch, patch_num, merge_index)
                    hidden, rows, patch = hidden[:, keep], rows[keep], patch[keep]
                length = hidden.shape[1]
                mask = torch.full((1, 1, length, length), torch.finfo(hidden.dtype).min).triu(1)
                seen = {}
                handle = layer.self_attn.register_forward_hook(lambda m, a, o, store=seen: store.update(w=o[1]))
                hidden = layer(hidden, attention_mask=mask, position_embeddings=(cos[:, rows], sin[:, rows]),
                               cache=cache, use_cache=True)
                handle.remove()
                if merged_done and not pruned_done:
                    scores = seen["w"][:, :, -1:, :].mean(dim=(1, 2))[0]
            logits = [model.lm_head(lm.norm(hidden))[0, -1].float()]
            tokens = []
            next_position = int(prompt.position_ids.max()) + 1
            for step in range(steps):
                token = int(logits[-1].argmax())
                tokens.append(token)
                if step == steps - 1:
                    break
                hidden = model.get_input_embeddings()(torch.tensor([[token]]))
                pe = lm.rotary_emb(hidden, torch.full((3, 1, 1), next_position + step))
                for layer in lm.layers:
                    hidden = layer(hidden, attention_mask=None, position_embeddings=pe, cache=cache, use_cache=True)
                logits.append(model.lm_head(lm.norm(hidden))[0, -1].float())
    finally:
        for cfg in (model.config, model.config.text_config):
            cfg._attn_implementation = "sdpa"
    return rows, sparsities, tokens, torch.stack(logits)


# ---------------------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def tiny():
    model, processor = build_qwen2_vl(num_layers=8)  # the cost formula needs depth: merging steps spend layers
    adapter = Qwen2VLAdapter(Qwen2VLAdapter.Config(max_new_tokens=8)).load(model, processor)
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(1, SIDE, SIDE, 64, generator=gen)
    noise = torch.randn(FRAMES, SIDE, SIDE, 64, generator=gen)
    scale = torch.linspace(0.05, 3.0, SIDE * SIDE).view(1, SIDE, SIDE, 1)  # still patches ... moving patches
    tokens = VisualTokens.from_grid(base + scale * noise, torch.arange(float(FRAMES)))
    tokens = tokens.replace(frame_ids=tokens.frame_ids * 2, positions=tokens.positions * torch.tensor([2.0, 1, 1]))
    prompt = adapter.build_prompt(tokens, Query("describe the scene"))
    return model, adapter, tokens, prompt


@pytest.mark.parametrize("cost,threshold,floor", [(0.3, 0.6, 0.1), (0.5, 0.9, 0.1), (0.3, -1.0, 0.1),
                                                  (0.6, 0.3, 0.3)])
def test_framefusion_equals_eager_reference(tiny, cost, threshold, floor):
    model, _, tokens, prompt = tiny
    step = FrameFusion(FrameFusion.Config(cost=cost, threshold=threshold, ratio_floor=floor))
    with step.hooks(decoder_layers(model), prompt.visual_mask, tokens) as hooks:
        ours = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=8)
    rows, sparsities, ref_tokens, ref_logits = reference_framefusion(model, prompt, cost, threshold, floor, 8)
    assert torch.equal(hooks.kept_rows, rows)
    assert hooks.sparsities == pytest.approx(sparsities)
    assert ours.token_ids == ref_tokens
    torch.testing.assert_close(ours.logits, ref_logits, atol=2e-4, rtol=1e-4)
    assert hooks.observed[-1] == rows.shape[0] < prompt.length
    assert all(len(layer._forward_pre_hooks) == 0 for layer in decoder_layers(model))


def test_eager_and_sdpa_agree_under_framefusion(tiny):
    """Eager attention gets 4-D masks: the prefill slices them, decoding picks each layer's cache columns."""
    model, _, tokens, prompt = tiny
    runs = []
    try:
        for name in ("eager", "sdpa"):
            for cfg in (model.config, model.config.text_config):
                cfg._attn_implementation = name
            with FrameFusion().hooks(decoder_layers(model), prompt.visual_mask, tokens) as hooks:
                runs.append((greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=6),
                             hooks.observed))
    finally:
        for cfg in (model.config, model.config.text_config):
            cfg._attn_implementation = "sdpa"
    assert runs[0][1] == runs[1][1] and runs[0][1][-1] < prompt.length
    assert runs[0][0].token_ids == runs[1][0].token_ids
    assert (runs[0][0].logits - runs[1][0].logits).abs().max() < 1e-4


def test_cost_formula_and_merge_direction(tiny):
    assert pruning_sparsity([], 0.3, 28) == pytest.approx(0.7)
    assert pruning_sparsity([0.2, 0.1], 0.3, 28) == pytest.approx(1 - (8.4 - 0.8 - 0.72) / (26 * 0.72))
    with pytest.raises(ConfigError, match="too small"):
        pruning_sparsity([0.9, 0.9], 0.01, 4)
    model, adapter, tokens, prompt = tiny
    with FrameFusion(FrameFusion.Config(cost=0.9, threshold=0.6)).hooks(
            decoder_layers(model), prompt.visual_mask, tokens) as hooks:
        greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=1)
    visual_start = int(prompt.visual_mask.nonzero()[0])
    kept_visual = hooks.kept_rows[prompt.visual_mask[hooks.kept_rows]] - visual_start
    assert set(range(16)) <= set(kept_visual.tolist())  # every patch keeps its first frame (chains merge forward)
    answer = adapter.answer(tokens, Query("describe"), in_llm=Chain.from_spec("framefusion:0.3").in_llm)
    assert answer.details["in_llm"]["framefusion"]["observed_lengths"][0] < prompt.length


def test_config_and_errors(tiny):
    _, adapter, tokens, _ = tiny
    assert COMPRESSORS.from_spec("framefusion:0.5,threshold=0.8").config == FrameFusion.Config(0.5, 0.8)
    with pytest.raises(ConfigError, match="only in-LLM step"):
        adapter.answer(tokens, Query("q"), in_llm=Chain.from_spec("framefusion,pyramiddrop").in_llm)
    with pytest.raises(ConfigError, match="runs inside the language model"):
        FrameFusion()(tokens)
    with pytest.raises(ValueError, match="cost must be"):
        FrameFusion.Config(cost=0.0)
