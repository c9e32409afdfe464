"""Reference tests: FastV and PyramidDrop as their official code runs them, written here independently.

FastV (pkunlp-icler/FastV ``modeling_llama.py``): layer K-1's attention of the last token, averaged over heads,
ranks the visual tokens; ``round(N (1 - R))`` stay from layer K on, at their original positions.
PyramidDrop (Cooperx521/PyramidDrop ``modeling_llama_pdrop.py``): before each boundary layer ``b_s`` that layer's
own attention of the last instruction token ranks the visual tokens left; ``int(N lambda^s)`` stay; positions
become ``arange(new_len)``; while decoding each layer's new-token positions shift down by the rows dropped.
The reference runs the decoder layers by hand (no KV cache: every step recomputes the kept prompt rows and the
generated tokens, which causal attention makes equal to a cached decode).
"""

from __future__ import annotations

import math

import pytest
import torch

from mmlong.compressors.llm_pruning import FastV, InLLMPruning, PyramidDrop
from mmlong.models.decoding import decoder_layers, greedy_decode
from mmlong.models.native.qwen2_vl import Qwen2VLAdapter
from mmlong.qa import Query
from tests.vlm_fixtures import build_qwen2_vl, frames_of, random_video

TEXT_BEFORE, NUM_VISUAL, TEXT_AFTER = 5, 25, 6


def build_llama(seed: int = 0, layers: int = 4, attn: str = "sdpa"):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    config._attn_implementation = attn
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def llama_prompt(model, seed: int):
    gen = torch.Generator().manual_seed(seed)
    embed = model.get_input_embeddings()
    before = embed(torch.randint(0, 97, (TEXT_BEFORE,), generator=gen))
    after = embed(torch.randint(0, 97, (TEXT_AFTER,), generator=gen))
    visual = torch.randn(NUM_VISUAL, 64, generator=gen) * 0.5
    embeds = torch.cat([before, visual, after]).unsqueeze(0).detach()
    mask = torch.zeros(embeds.shape[1], dtype=torch.bool)
    mask[TEXT_BEFORE:TEXT_BEFORE + NUM_VISUAL] = True
    return embeds, mask, torch.arange(embeds.shape[1]).unsqueeze(0)


# ------------------------------------------------------------------------------------------ references
def head_mean_attention_of_row(layer, hidden, cos, sin, row):
    """Softmax attention of ``row`` to rows ``0..row`` at ``layer``, averaged over heads (``[row + 1]``)."""
    attn = layer.self_attn
    x = layer.input_layernorm(hidden)[0]  # [n, D]
    d = attn.head_dim
    q = attn.q_proj(x[row]).view(-1, d)  # [Hq, d]
    k = attn.k_proj(x[:row + 1]).view(row + 1, -1, d).transpose(0, 1)  # [Hk, n, d]

    def rope(v, c, s):
        half = v.shape[-1] // 2
        return v * c + torch.cat([-v[..., half:], v[..., :half]], -1) * s

    q = rope(q, cos[0, row], sin[0, row])
    k = rope(k, cos[0, :row + 1], sin[0, :row + 1])
    k = k.repeat_interleave(q.shape[0] // k.shape[0], dim=0)
    weights = torch.softmax(torch.einsum("hd,hnd->hn", q, k) / math.sqrt(d), dim=-1)
    return weights.mean(0)


@torch.no_grad()
def pyramiddrop_reference(model, embeds, visual_mask, boundaries, lam, new_tokens):
    """Official PyramidDrop decoding by hand: (generated ids, last-row logits per step, kept rows per stage)."""
    lm = model.model
    n_prompt, n0 = embeds.shape[1], int(visual_mask.sum())
    generated, logits, kept_stages = [], [], None
    for _ in range(new_tokens):
        new = lm.embed_tokens(torch.tensor([generated], dtype=torch.long)) if generated else embeds[:, :0]
        hidden = torch.cat([embeds, new], dim=1)
        rows = torch.arange(n_prompt)  # prompt rows still present
        positions = torch.arange(hidden.shape[1]).unsqueeze(0)
        stages = []
        for index, layer in enumerate(lm.layers):
            if index in boundaries:
                stage = boundaries.index(index) + 1
                cos, sin = lm.rotary_emb(hidden, positions)
                scores = head_mean_attention_of_row(layer, hidden, cos, sin, rows.shape[0] - 1)
                visual_local = torch.nonzero(visual_mask[rows]).flatten()
                keep = int(n0 * lam ** stage)
                top = visual_local[scores[visual_local].topk(keep).indices]
                local = torch.cat([torch.nonzero(~visual_mask[rows]).flatten(), top]).sort().values
                rows = rows[local]
                generated_rows = hidden[:, hidden.shape[1] - len(generated):] if generated else hidden[:, :0]
                hidden = torch.cat([hidden[:, local], generated_rows], dim=1)
                positions = torch.arange(hidden.shape[1]).unsqueeze(0)  # renumbered; new tokens follow
                stages.append(rows.clone())
            cos, sin = lm.rotary_emb(hidden, positions)
            hidden = layer(hidden, attention_mask=None, position_embeddings=(cos, sin), position_ids=positions)
        out = model.lm_head(lm.norm(hidden))[0, -1]
        logits.append(out)
        generated.append(int(out.argmax()))
        kept_stages = kept_stages or stages
    return generated, torch.stack(logits), kept_stages


def fastv_reference_rows(model, embeds, position_ids, visual_mask, k, ratio):
    """FastV's kept prompt rows from an eager ``output_attentions`` run of the unpruned model."""
    with torch.no_grad():
        out = model(inputs_embeds=embeds, position_ids=position_ids, output_attentions=True)
    attention = out.attentions[k - 1][0, :, -1, :].mean(0)
    visual = torch.nonzero(visual_mask).flatten()
    top = visual[attention[visual].topk(round(visual.shape[0] * (1 - ratio))).indices]
    return torch.cat([torch.nonzero(~visual_mask).flatten(), top]).sort().values


def set_attention(model, name):
    for cfg in {id(c): c for c in (model.config, getattr(model.config, "text_config", model.config))}.values():
        cfg._attn_implementation = name


# ------------------------------------------------------------------------------------------ FastV
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k,ratio", [(1, 0.5), (2, 0.75), (3, 0.3)])
def test_fastv_keeps_the_topk_of_layer_k_minus_1_attention_llama(seed, k, ratio):
    model = build_llama(seed)
    embeds, mask, positions = llama_prompt(model, seed)
    set_attention(model, "eager")
    expected = fastv_reference_rows(model, embeds, positions, mask, k, ratio)
    set_attention(model, "sdpa")
    lm = model.model
    with InLLMPruning(lm.layers, [FastV(FastV.Config(k=k, ratio=ratio))], mask, rotary=lm.rotary_emb,
                      position_ids=positions) as pruning:
        greedy_decode(model, embeds, positions, max_new_tokens=0)
    assert torch.equal(pruning.kept_rows, expected)
    assert int(mask[expected].sum()) == round(NUM_VISUAL * (1 - ratio))


def test_fastv_kept_rows_on_qwen2_vl_equal_the_eager_reference():
    model, processor = build_qwen2_vl(num_layers=4)
    adapter = Qwen2VLAdapter().load(model, processor)
    tokens = adapter.native_encoder().encode(frames_of(random_video(8)))
    prompt = adapter.build_prompt(tokens, Query("what happens?"))
    set_attention(model, "eager")
    try:
        expected = fastv_reference_rows(model, prompt.inputs_embeds, prompt.position_ids, prompt.visual_mask, 2, 0.5)
    finally:
        set_attention(model, "sdpa")
    with adapter.pruning(prompt, [FastV(FastV.Config(k=2, ratio=0.5))]) as pruning:
        greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=0)
    assert torch.equal(pruning.kept_rows, expected)


# ------------------------------------------------------------------------------------------ PyramidDrop
@pytest.mark.parametrize("seed", range(4))
def test_pyramiddrop_kept_sets_and_decoding_equal_the_official_behaviour(seed):
    model = build_llama(seed)
    embeds, mask, positions = llama_prompt(model, seed)
    boundaries, lam = [1, 2, 3], 0.5
    ref_ids, ref_logits, ref_stages = pyramiddrop_reference(model, embeds, mask, boundaries, lam, new_tokens=6)
    lm = model.model
    step = PyramidDrop(PyramidDrop.Config(ratio=1 - lam, layers=tuple(boundaries)))
    with InLLMPruning(lm.layers, [step], mask, rotary=lm.rotary_emb, position_ids=positions) as pruning:
        ours = greedy_decode(model, embeds, positions, max_new_tokens=6)
    assert [int(mask[r].sum()) for r in pruning.kept_by_drop] == [12, 6, 3]  # int(25 * 0.5 ** s)
    for got, want in zip(pruning.kept_by_drop, ref_stages):
        assert torch.equal(got, want)
    assert ours.token_ids == ref_ids
    assert torch.allclose(ours.logits, ref_logits, atol=1e-4)


def test_pyramiddrop_keeping_everything_generates_as_the_unpruned_model():
    model = build_llama(3)
    embeds, mask, positions = llama_prompt(model, 3)
    base = greedy_decode(model, embeds, positions, max_new_tokens=8)
    lm = model.model
    with InLLMPruning(lm.layers, [PyramidDrop(PyramidDrop.Config(ratio=0.0))], mask, rotary=lm.rotary_emb,
                      position_ids=positions):
        same = greedy_decode(model, embeds, positions, max_new_tokens=8)
    assert same.token_ids == base.token_ids and torch.equal(same.logits, base.logits)


def test_pyramiddrop_on_qwen2_vl_ranks_each_stage_with_the_boundary_layer():
    """M-RoPE: positions stay (documented deviation); each stage's kept set is the boundary layer's top-k."""
    model, processor = build_qwen2_vl(num_layers=4)
    adapter = Qwen2VLAdapter().load(model, processor)
    tokens = adapter.native_encoder().encode(frames_of(random_video(8)))
    prompt = adapter.build_prompt(tokens, Query("what happens?"))
    seen = {}

    def grab(index):
        def hook(module, args, kwargs):
            seen.setdefault(index, (args[0] if args else kwargs["hidden_states"], kwargs["position_embeddings"]))
        return hook

    hooks = [layer.register_forward_pre_hook(grab(i), with_kwargs=True)
             for i, layer in enumerate(decoder_layers(model))]
    try:
        with adapter.pruning(prompt, [PyramidDrop()]) as pruning:
            greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=0)
    finally:
        for h in hooks:
            h.remove()
    assert [int(prompt.visual_mask[r].sum()) for r in pruning.kept_by_drop] == [32, 16, 8]
    previous = torch.arange(prompt.length)
    for stage, layer_index in enumerate([1, 2, 3]):
        # the pre-hooks registered first saw the rows before this stage's drop
        hidden, (cos, sin) = seen[layer_index]
        layer = decoder_layers(model)[layer_index]
        with torch.no_grad():
            scores = head_mean_attention_of_row(layer, hidden, cos[:, previous], sin[:, previous],
                                                hidden.shape[1] - 1)
        visual = torch.nonzero(prompt.visual_mask[previous]).flatten()
        keep = int(64 * 0.5 ** (stage + 1))
        top = visual[scores[visual].topk(keep).indices]
        local = torch.cat([torch.nonzero(~prompt.visual_mask[previous]).flatten(), top]).sort().values
        assert torch.equal(pruning.kept_by_drop[stage], previous[local])
        previous = previous[local]
