"""Qwen3-VL adapter on a tiny random-init model and a real clip: stock generate, positions, DeepStack alignment."""

from __future__ import annotations

import pytest
import torch

from mmlong.compressors.llm_pruning import FastV
from mmlong.errors import ConfigError
from mmlong.models.decoding import greedy_decode, language_model
from mmlong.models.native.qwen3_vl import Qwen3VLAdapter, qwen3_vl_chat
from mmlong.qa import Query
from tests.vlm_families import build_qwen3_vl, sample_clip, video_metadata

QUESTION = "describe the scene"


@pytest.fixture(scope="module")
def tiny():
    model, processor = build_qwen3_vl()
    frames = sample_clip(8, 128)
    adapter = Qwen3VLAdapter().load(model, processor)
    return model, processor, frames, adapter, adapter.native_encoder().encode(frames)


def stock_inputs(processor, frames, question=QUESTION):
    text = qwen3_vl_chat("<|vision_start|><|video_pad|><|vision_end|>", question)
    return processor(text=[text], videos=[frames.data], return_tensors="pt",
                     videos_kwargs=dict(video_metadata=[video_metadata(frames)]))


def test_tokens_carry_patch_times_and_deepstack_features(tiny):
    model, processor, frames, _, tokens = tiny
    assert tokens.grid == (4, 2, 4) and tokens.num_tokens == 32
    assert tokens.layer_features.shape == (32, 2, 64)
    assert tokens.frame_ids.unique().tolist() == [0, 2, 4, 6]
    expected = (frames.timestamps[0::2] + frames.timestamps[1::2]) / 2
    assert torch.allclose(tokens.timestamps.unique(), expected)
    inputs = stock_inputs(processor, frames)
    with torch.no_grad():
        out = model.model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"])
    assert torch.allclose(tokens.features, out.pooler_output[0], atol=1e-5)
    assert torch.allclose(tokens.layer_features[:, 1], out.deepstack_features[1][0], atol=1e-5)


def test_chunked_encoding_equals_the_whole_clip(tiny):
    """The processor's pixel limits are for the whole clip: chunks of 2 frames are resized as the whole clip is."""
    model, processor, _, adapter, _ = tiny
    frames = sample_clip(8, 256)  # 8 x 144 x 256 pixels: over the clip's limit, so the processor scales down
    tokens = adapter.encode_frames(frames)
    chunked = Qwen3VLAdapter(Qwen3VLAdapter.Config(frames_per_batch=2)).load(model, processor).encode_frames(frames)
    assert chunked.grid == tokens.grid
    assert torch.allclose(chunked.features, tokens.features, atol=1e-5)
    assert torch.allclose(chunked.layer_features, tokens.layer_features, atol=1e-5)
    assert torch.equal(chunked.positions, tokens.positions) and torch.equal(chunked.timestamps, tokens.timestamps)


def test_uncompressed_generation_equals_stock_generate(tiny):
    model, processor, frames, adapter, tokens = tiny
    inputs = stock_inputs(processor, frames)
    ref = model.generate(**inputs, max_new_tokens=10, do_sample=False, output_logits=True,
                         return_dict_in_generate=True)
    ref_ids = ref.sequences[0, inputs["input_ids"].shape[1]:].tolist()
    prompt = adapter.build_prompt(tokens, Query(QUESTION))
    assert adapter.tokenizer.decode(inputs["input_ids"][0]) == prompt.text.replace("<|video_pad|>", "<|video_pad|>" * 8)
    expected, _ = model.model.get_rope_index(inputs["input_ids"], inputs["mm_token_type_ids"],
                                             video_grid_thw=inputs["video_grid_thw"])
    assert torch.equal(prompt.position_ids, expected)
    with adapter.pruning(prompt, [], tokens):
        ours = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=10,
                             eos_token_ids=[processor.tokenizer.eos_token_id])
    assert ours.token_ids == ref_ids
    assert (ours.logits - torch.stack([step[0] for step in ref.logits])).abs().max().item() < 1e-4
    bare = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=1)
    assert (bare.logits[0] - ref.logits[0][0]).abs().max().item() > 1e-3  # DeepStack changes the output
    answer = Qwen3VLAdapter(Qwen3VLAdapter.Config(max_new_tokens=10)).load(model, processor).answer(tokens,
                                                                                                  Query(QUESTION))
    assert answer.text == processor.tokenizer.decode(ref_ids, skip_special_tokens=True).strip()


def family_positions(model, prompt_ids, grid_hw, kept_per_block):
    """Qwen3-VL's rule, written out: text +1 per token; a block of the (1, H, W) grid starting at p puts its
    tokens at the model's own ``get_vision_position_ids(p, ...)`` (kept ones only) and moves p by max(H', W')."""
    video_id = model.config.video_token_id
    merge = model.config.vision_config.spatial_merge_size
    grid = torch.tensor([1, grid_hw[0] * merge, grid_hw[1] * merge])
    columns, p, i, blocks = [], 0, 0, iter(kept_per_block)
    while i < len(prompt_ids):
        if prompt_ids[i] != video_id:
            columns.append(torch.full((3, 1), p))
            p, i = p + 1, i + 1
            continue
        kept = next(blocks)
        columns.append(model.model.get_vision_position_ids(p, grid, 1, merge)[:, kept])
        p, i = p + max(grid_hw), i + len(kept)
    return torch.cat(columns, dim=1)


def test_compressed_positions_equal_the_family_rule_and_dropped_patches_lose_their_time(tiny):
    model, processor, frames, adapter, tokens = tiny
    # patch 2 (frames 4-5) dropped whole; the others keep their bottom-right token (same extent) and a few more
    keep = torch.tensor([0, 3, 7, 8, 9, 15, 24, 30, 31])
    part = tokens.select(keep)
    prompt = adapter.build_prompt(part, Query(QUESTION))
    assert prompt.text.count("seconds>") == 3 and "<3.3 seconds>" not in prompt.text
    video_id = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    ids = adapter.text_ids(prompt.text).tolist()
    expanded = [t for token in ids for t in [token] * (3 if token == video_id else 1)]
    expected = family_positions(model, expanded, (2, 4), [torch.tensor([0, 3, 7]), torch.tensor([0, 1, 7]),
                                                          torch.tensor([0, 6, 7])])
    assert torch.equal(prompt.position_ids[:, 0], expected)


def test_pre_llm_compression_keeps_deepstack_aligned(tiny):
    """Compressed tokens through the adapter give the logits of the text model's own DeepStack path fed with the
    kept tokens' DeepStack features (``visual_pos_masks`` + ``deepstack_visual_embeds``)."""
    model, _, _, adapter, tokens = tiny
    from mmlong.compressors.base import Chain

    for spec in ("random:0.5", "tome:0.5"):
        part = Chain.from_spec(spec)(tokens)
        prompt = adapter.build_prompt(part, Query(QUESTION))
        with adapter.pruning(prompt, [], part):
            ours = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=0)
        stacked = part.layer_features[prompt.visual_order].transpose(0, 1)
        with torch.no_grad():
            hidden = model.model.language_model(
                inputs_embeds=prompt.inputs_embeds, position_ids=prompt.position_ids,
                visual_pos_masks=prompt.visual_mask[None], deepstack_visual_embeds=list(stacked)).last_hidden_state
            ref = model.lm_head(hidden[:, -1])[0]
        assert (ours.logits[0] - ref).abs().max().item() < 1e-5, spec


def test_fastv_inside_deepstack_layers_adds_features_to_the_kept_rows_only(tiny):
    """FastV dropping before layer 1 (DeepStack adds after layers 0 and 1): layer by layer by hand, the kept rows
    get their own DeepStack features after layer 1."""
    model, _, _, adapter, tokens = tiny
    prompt = adapter.build_prompt(tokens, Query(QUESTION))
    step = FastV(FastV.Config(k=1, ratio=0.5))
    with adapter.pruning(prompt, [step], tokens) as pruner:
        ours = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=0)
    kept = pruner.kept_rows
    assert kept.shape[0] == prompt.length - 16
    lm = language_model(model)
    stacked = tokens.layer_features[prompt.visual_order].transpose(0, 1)
    visual_index = torch.cumsum(prompt.visual_mask.long(), 0) - 1
    with torch.no_grad():
        hidden = prompt.inputs_embeds
        cos_sin = lm.rotary_emb(hidden, prompt.position_ids)
        hidden = lm.layers[0](hidden, attention_mask=None, position_embeddings=cos_sin)
        hidden[0, prompt.visual_mask] += stacked[0]
        hidden = hidden[:, kept]
        cos_sin = lm.rotary_emb(hidden, prompt.position_ids[..., kept])
        hidden = lm.layers[1](hidden, attention_mask=None, position_embeddings=cos_sin)
        mask = prompt.visual_mask[kept]
        hidden[0, mask] += stacked[1][visual_index[kept][mask]]
        ref = model.lm_head(lm.norm(hidden)[:, -1])[0]
    assert (ours.logits[0] - ref).abs().max().item() < 1e-5


def test_tokens_without_deepstack_features_are_refused_in_one_line(tiny):
    _, _, _, adapter, tokens = tiny
    stripped = tokens.replace(layer_features=None)
    with pytest.raises(ConfigError) as err:
        adapter.answer(stripped, Query(QUESTION))
    assert "DeepStack" in str(err.value) and "\n" not in str(err.value)
