"""PruneVid's in-LLM stage checked against an independent re-write on a tiny random-init Qwen2-VL.

The reference follows the official Visual-AI/PruneVid code (``llama.py`` decoder forward, ``elastic_cache.py``
``VTPWindowCache``): layer ``L``'s ``attn_weights_wo_pos`` (softmax of the layer's queries and keys before rotary
embedding, no causal mask), the rows after the video as queries, max over heads then over queries; keep
``int(alpha * n)`` of each segment's static tokens and of each frame's dynamic tokens; run layers ``L+1..`` on the
kept rows (original M-RoPE positions) and keep the same rows of the cache of layers ``0..L``.
"""

from __future__ import annotations

import math

import pytest
import torch

from mmlong.compressors.attention_scores import query_attention
from mmlong.compressors.base import Chain, CompressContext
from mmlong.compressors.prunevid import SELECTION_KEY, PruneVid
from mmlong.compressors.prunevid_llm import PruneVidLLM, PruneVidLLMHooks, select_per_set, selection_sets
from mmlong.errors import ConfigError
from mmlong.models.decoding import decoder_layers, greedy_decode, language_model
from mmlong.models.native.qwen2_vl import Qwen2VLAdapter
from mmlong.qa import Query
from mmlong.registry import COMPRESSORS
from tests.vlm_fixtures import build_qwen2_vl, frames_of, random_video

LAYER, ALPHA = 1, 0.4


@pytest.fixture(scope="module")
def tiny():
    model, processor = build_qwen2_vl(num_layers=4)
    adapter = Qwen2VLAdapter(Qwen2VLAdapter.Config(max_new_tokens=6)).load(model, processor)
    video = random_video(8)
    video[:, :56] = video[:1, :56]  # a still top half: static tokens in PruneVid's one segment
    raw = adapter.native_encoder().encode(frames_of(video))
    tokens = PruneVid(PruneVid.Config(cluster_ratio=1.0))(raw, CompressContext())
    prompt = adapter.build_prompt(tokens, Query("what is in the video?"))
    return model, adapter, tokens, prompt


def _eager(model, flag: bool) -> None:
    for cfg in (model.config, model.config.text_config):
        cfg._attn_implementation = "eager" if flag else "sdpa"


def attn_weights_wo_pos(layer, hidden):
    """The official ``LlamaAttention.forward`` scores of a decoder ``layer`` on its input ``hidden [1, L, D]``:
    ``[1, H, L, L]``, queries and keys straight from the projections (no rotary embedding), no mask."""
    attn = layer.self_attn
    x = layer.input_layernorm(hidden)
    bsz, q_len, _ = x.shape
    heads = attn.config.num_attention_heads
    head_dim = attn.q_proj.out_features // heads
    query_states = attn.q_proj(x).view(bsz, q_len, heads, head_dim).transpose(1, 2)
    key_states = attn.k_proj(x).view(bsz, q_len, -1, head_dim).transpose(1, 2)
    key_states = key_states.repeat_interleave(heads // key_states.shape[1], dim=1)  # repeat_kv (MHA: a no-op)
    weights = torch.matmul(query_states, key_states.transpose(2, 3)) / math.sqrt(head_dim)
    return torch.nn.functional.softmax(weights, dim=-1, dtype=torch.float32)


def official_keep(attentions, img_start, img_end, static_sizes, dynamic_sizes, window_sizes, alpha):
    """``VTPWindowCache.obtain_language_attention`` + ``process_attention`` + the sort in ``prompt_prefill``:
    the kept prompt rows of the video span ``img_start..img_end`` (inclusive)."""
    text_to_image = attentions[:, :, img_end + 1:, img_start:img_end + 1]
    scores = text_to_image[0].max(dim=0)[0].max(dim=0)[0]
    start, picked = 0, []
    for static_size, dynamic_size, window_size in zip(static_sizes, dynamic_sizes, window_sizes):
        end = start + static_size + dynamic_size
        window = scores[start:end]
        picked.append(torch.topk(window[:static_size], k=int(static_size * alpha)).indices + start)
        dynamic = window[static_size:].view(window_size, -1)
        top = torch.topk(dynamic, k=int(dynamic.shape[-1] * alpha), dim=-1).indices + start + static_size
        picked += [top[i] + dynamic.shape[-1] * i for i in range(window_size)]
        start = end
    return (torch.cat(picked) + img_start).sort().values


def official_sizes(sets):
    """PruneVid's record as the official ``static_sizes, dynamic_sizes, window_sizes`` (one segment here)."""
    counts = torch.bincount(sets).tolist()
    return [counts[0]], [sum(counts[1:])], [len(counts) - 1]


def reference(model, prompt, sets, layer, alpha):
    """Kept prompt rows and the prefill's next-token logits, the official way (``attn_weights_wo_pos``)."""
    lm = language_model(model)
    with torch.no_grad():
        out = model(inputs_embeds=prompt.inputs_embeds, position_ids=prompt.position_ids, output_hidden_states=True)
        attentions = attn_weights_wo_pos(lm.layers[layer], out.hidden_states[layer])
    visual = prompt.visual_mask.nonzero().flatten().tolist()
    assert visual == list(range(visual[0], visual[-1] + 1))  # one contiguous video span, as the official code needs
    kept_visual = official_keep(attentions, visual[0], visual[-1], *official_sizes(sets), alpha).tolist()
    text = [i for i in range(prompt.length) if i not in set(visual)]
    kept = torch.tensor(sorted(text + kept_visual))
    hidden = out.hidden_states[layer + 1][:, kept]  # output of layer L, kept rows
    positions = prompt.position_ids[..., kept]
    cos_sin = lm.rotary_emb(hidden, positions)
    with torch.no_grad():
        for block in lm.layers[layer + 1:]:
            result = block(hidden, attention_mask=None, position_ids=positions, position_embeddings=cos_sin,
                           use_cache=False)
            hidden = result[0] if isinstance(result, tuple) else result
        logits = model.lm_head(lm.norm(hidden)[:, -1]).float()[0]
    return kept, logits


def tiny_llama(seed):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256)
    return LlamaForCausalLM(config).eval()


def llama_case(seed):
    """A random prompt on a random tiny Llama: text, one video span (a segment's static tokens, then ``frames``
    frames of dynamic tokens), the question; with the selection set of each visual row."""
    gen = torch.Generator().manual_seed(1000 + seed)
    model = tiny_llama(seed)
    static, frames, per_frame = (int(v) for v in torch.randint(3, 9, (3,), generator=gen))
    sets = torch.cat([torch.zeros(static, dtype=torch.long), torch.arange(1, frames + 1).repeat_interleave(per_frame)])
    before, after = 4, int(torch.randint(3, 10, (1,), generator=gen))
    length = before + sets.shape[0] + after
    embeds = torch.randn(1, length, 64, generator=gen)
    mask = torch.zeros(length, dtype=torch.bool)
    mask[before:before + sets.shape[0]] = True
    return model, embeds, mask, sets


@pytest.mark.parametrize("seed", range(20))
def test_llama_kept_set_is_the_official_attn_weights_wo_pos_choice(seed):
    model, embeds, mask, sets = llama_case(seed)
    layer, alpha = 1, 0.4
    hooks = PruneVidLLMHooks(model.model.layers, mask, sets, layer, alpha)
    with hooks, torch.no_grad():
        out = model(inputs_embeds=embeds, output_hidden_states=True)
        attentions = attn_weights_wo_pos(model.model.layers[layer], out.hidden_states[layer])
    visual = mask.nonzero().flatten()
    kept_visual = official_keep(attentions, int(visual[0]), int(visual[-1]), *official_sizes(sets), alpha)
    assert torch.equal(hooks.kept_rows[mask[hooks.kept_rows]], kept_visual)
    assert torch.equal(hooks.kept_rows[~mask[hooks.kept_rows]], (~mask).nonzero().flatten())  # text always kept


def test_llama_the_official_scores_are_not_the_rotary_causal_ones():
    """The cases above separate the official scores from the attention the layer itself computes."""
    differ = 0
    for seed in range(20):
        model, embeds, mask, sets = llama_case(seed)
        with torch.no_grad():
            out = model(inputs_embeds=embeds, output_hidden_states=True)
            hidden = out.hidden_states[1]
            cos_sin = model.model.rotary_emb(hidden, torch.arange(hidden.shape[1]).unsqueeze(0))
            visual = mask.nonzero().flatten()
            queries = torch.arange(int(visual[-1]) + 1, mask.shape[0])
            official = query_attention(model.model.layers[1], hidden, None, queries, rotary=False, causal=False)
            rotary = query_attention(model.model.layers[1], hidden, cos_sin, queries)
        kept = [select_per_set(a[:, :, visual].amax(0).amax(0), sets, 0.4) for a in (official, rotary)]
        differ += not torch.equal(*kept)
    assert differ >= 10


def run(model, prompt, tokens, step, new_tokens=6):
    captured = {}
    handle = decoder_layers(model)[-1].register_forward_hook(
        lambda m, a, kw, o: captured.update(cache=kw.get("past_key_values") or kw.get("cache")), with_kwargs=True)
    try:
        with step.hooks(decoder_layers(model), prompt.visual_mask, tokens) as hooks:
            result = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=new_tokens)
    finally:
        handle.remove()
    return hooks, result, captured["cache"]


def test_selection_sets_come_from_prunevid(tiny):
    _, _, tokens, prompt = tiny
    sets = torch.tensor(tokens.meta[SELECTION_KEY])
    assert sets.shape == (tokens.num_tokens,) == (int(prompt.visual_mask.sum()),)
    assert tokens.provenance[-1].extra["static"] == [8]
    assert torch.bincount(sets).tolist() == [8] * 5  # the segment's static tokens, then each frame's dynamic ones
    assert selection_sets(tokens.replace(meta={}), tokens.num_tokens).tolist() == tokens.frame_ids.tolist()
    assert selection_sets(None, 3).tolist() == [0, 0, 0]


def test_matches_the_reference(tiny):
    model, _, tokens, prompt = tiny
    sets = torch.tensor(tokens.meta[SELECTION_KEY])
    kept, logits = reference(model, prompt, sets, LAYER, ALPHA)
    hooks, result, cache = run(model, prompt, tokens, PruneVidLLM(PruneVidLLM.Config(layer=LAYER, alpha=ALPHA)))
    assert torch.equal(hooks.kept_rows, kept)
    assert int(prompt.visual_mask[kept].sum()) == 5 * int(8 * ALPHA)  # per set, not int(40 * alpha) = 16
    assert hooks.observed == [prompt.length] * (LAYER + 1) + [kept.shape[0]] * (3 - LAYER)
    assert torch.allclose(result.logits[0], logits, atol=1e-4)
    generated = len(result.token_ids) - 1  # the last token is never fed back
    assert [cache.get_seq_length(i) for i in range(4)] == [kept.shape[0] + generated] * 4
    assert all(len(layer._forward_pre_hooks) == 0 for layer in decoder_layers(model))


def test_pruned_cache_is_the_full_cache_at_the_kept_rows(tiny):
    model, _, tokens, prompt = tiny
    _, _, full = run(model, prompt, tokens, PruneVidLLM(PruneVidLLM.Config(layer=LAYER, alpha=1.0)), new_tokens=1)
    hooks, _, pruned = run(model, prompt, tokens, PruneVidLLM(PruneVidLLM.Config(layer=LAYER, alpha=ALPHA)),
                           new_tokens=1)
    for i in range(LAYER + 1):
        assert torch.allclose(pruned.layers[i].keys, full.layers[i].keys[:, :, hooks.kept_rows], atol=1e-5)
        assert torch.allclose(pruned.layers[i].values, full.layers[i].values[:, :, hooks.kept_rows], atol=1e-5)


def test_alpha_one_is_the_unpruned_model(tiny):
    model, _, tokens, prompt = tiny
    baseline = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=6)
    hooks, result, _ = run(model, prompt, tokens, PruneVidLLM(PruneVidLLM.Config(layer=LAYER, alpha=1.0)))
    assert result.token_ids == baseline.token_ids
    assert torch.allclose(result.logits, baseline.logits, atol=1e-5)
    assert hooks.observed == [prompt.length] * 4


def test_decoding_with_eager_masks_matches_sdpa(tiny):
    model, _, tokens, prompt = tiny
    step = PruneVidLLM(PruneVidLLM.Config(layer=LAYER, alpha=ALPHA))
    _, sdpa, _ = run(model, prompt, tokens, step)
    _eager(model, True)
    try:
        _, eager, _ = run(model, prompt, tokens, step)
    finally:
        _eager(model, False)
    assert eager.token_ids == sdpa.token_ids
    assert (eager.logits - sdpa.logits).abs().max() < 1e-4


def test_adapter_runs_prunevid_then_prunevid_llm(tiny):
    _, adapter, tokens, _ = tiny
    chain = Chain.from_spec(f"prunevid-llm:{LAYER},{ALPHA}")
    answer = adapter.answer(tokens, Query("what is in the video?"), in_llm=chain.in_llm)
    summary = answer.details["in_llm"]["prunevid_llm"]
    assert summary["kept_visual"] == 5 * int(8 * ALPHA) and summary["layer"] == LAYER  # PruneVid's sets
    mc = adapter.answer(tokens, Query("which one?", ("a cat", "a dog")), in_llm=chain.in_llm)
    assert mc.option in ("a cat", "a dog") and mc.details["in_llm"]["prunevid_llm"]["kept_visual"] == 15


def test_select_per_set_and_configs():
    scores = torch.tensor([0.1, 0.9, 0.5, 0.2, 0.8, 0.3, 0.7])
    sets = torch.tensor([0, 0, 0, 1, 1, 1, 2])
    assert select_per_set(scores, sets, 0.5).tolist() == [1, 4]  # int(1.5) = 1 per set of 3, int(0.5) = 0
    assert COMPRESSORS.from_spec("prunevid-llm").config == PruneVidLLM.Config(layer=10, alpha=0.4)
    with pytest.raises(ValueError, match="alpha"):
        PruneVidLLM(PruneVidLLM.Config(alpha=1.5))
    model, _ = build_qwen2_vl(num_layers=2)
    with pytest.raises(ConfigError, match="must lie in"):
        PruneVidLLM(PruneVidLLM.Config(layer=1)).hooks(decoder_layers(model), torch.ones(4, dtype=torch.bool))


def test_bench_prefill_and_compare_run_it():
    from mmlong.apps.bench.prefill import build_model, prefill, visual_tokens
    from mmlong.apps.eval.compare import cell_chain

    assert cell_chain("prunevid-llm", 0.25) == "prunevid-llm:alpha=0.25"
    model = build_model("tiny", "cpu", "float32", seed=0)
    tokens = visual_tokens(8, 112, model.config.get_text_config().hidden_size, seed=0)
    full = prefill(model, tokens, [], seed=0)
    result = prefill(model, tokens, list(Chain.from_spec(f"prunevid-llm:{LAYER},0.5").in_llm), seed=0)
    visual = tokens.num_tokens
    text = full["lengths"][0] - visual
    # no PruneVid record: each frame is a set (4 temporal patches of 16 tokens, 8 kept of each)
    assert result["lengths"] == [text + visual] * (LAYER + 1) + [text + visual // 2] * (3 - LAYER)
    assert result["kv_cache_mb"] < full["kv_cache_mb"]
