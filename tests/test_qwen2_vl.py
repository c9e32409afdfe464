"""Qwen2-VL adapter on a tiny random-init model: exactness against stock transformers, loading, errors."""

from __future__ import annotations

import json

import pytest
import torch

from mmlong.errors import ModelLoadError
from mmlong.models.decoding import greedy_decode
from mmlong.models.loading import detect_family
from mmlong.models.native.qwen2_vl import Qwen2VLAdapter, qwen2_vl_prompt
from mmlong.models.prompts import MLVU_ANSWER_PREFIX, letter_token_ids
from mmlong.qa import Query
from tests.vlm_fixtures import build_qwen2_vl, frames_of, random_video


@pytest.fixture(scope="module")
def tiny():
    model, processor = build_qwen2_vl()
    video = random_video(8)
    adapter = Qwen2VLAdapter().load(model, processor)
    tokens = adapter.native_encoder().encode(frames_of(video))
    return model, processor, video, adapter, tokens


def stock_inputs(processor, video, question, prefix=""):
    before, after = qwen2_vl_prompt(question, Qwen2VLAdapter.Config.system_prompt, prefix)
    return processor(text=[before + "<|video_pad|>" + after], videos=[video], return_tensors="pt")


def test_native_encoder_grid_times_and_features(tiny):
    model, processor, video, adapter, tokens = tiny
    assert tokens.grid == (4, 4, 4) and tokens.num_tokens == 64 and tokens.dim == 64
    # t position is the first frame of each 2-frame temporal patch; rows/cols on the merged 4x4 grid
    assert tokens.positions[:, 0].unique().tolist() == [0.0, 2.0, 4.0, 6.0]
    assert tokens.positions[-1].tolist() == [6.0, 3.0, 3.0]
    assert tokens.timestamps.unique().tolist() == [0.0, 1.0, 2.0, 3.0]  # 2 fps
    assert tokens.frame_times.shape == (8,)
    inputs = stock_inputs(processor, video, "q")
    with torch.no_grad():
        stock = model.model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"])
    assert torch.allclose(tokens.features, stock.pooler_output[0], atol=1e-5)


def test_chunked_encoding_equals_whole(tiny):
    model, processor, video, _, tokens = tiny
    chunked = Qwen2VLAdapter(Qwen2VLAdapter.Config(frames_per_batch=2)).load(model, processor)
    other = chunked.encode_frames(frames_of(video))
    assert torch.allclose(other.features, tokens.features, atol=1e-5)
    assert torch.equal(other.positions, tokens.positions)


def test_mrope_positions_equal_get_rope_index(tiny):
    model, processor, video, adapter, tokens = tiny
    inputs = stock_inputs(processor, video, "what happens in the video?")
    expected, _ = model.model.get_rope_index(
        inputs["input_ids"], inputs["mm_token_type_ids"], video_grid_thw=inputs["video_grid_thw"],
        attention_mask=inputs["attention_mask"],
    )
    prompt = adapter.build_prompt(tokens, Query("what happens in the video?"))
    assert prompt.position_ids.dtype == torch.long
    assert torch.equal(prompt.position_ids, expected)
    assert int(prompt.visual_mask.sum()) == 64 and prompt.length == inputs["input_ids"].shape[1]


def test_compressed_tokens_keep_their_positions(tiny):
    _, _, _, adapter, tokens = tiny
    query = Query("describe the scene")
    full = adapter.build_prompt(tokens, query).position_ids[:, 0]
    keep = torch.arange(0, 64, 3)
    part = adapter.build_prompt(tokens.select(keep), query).position_ids[:, 0]
    visual_cols = full[:, adapter.build_prompt(tokens, query).visual_mask]
    part_mask = adapter.build_prompt(tokens.select(keep), query).visual_mask
    assert torch.equal(part[:, part_mask], visual_cols[:, keep])
    # text after the span continues past the furthest merged row/column still present
    assert torch.equal(part[:, ~part_mask][:, -1], full[:, -1])


def test_greedy_output_and_logits_equal_stock_generate(tiny):
    model, processor, video, adapter, tokens = tiny
    inputs = stock_inputs(processor, video, "describe the scene")
    ref = model.generate(**inputs, max_new_tokens=12, do_sample=False, output_logits=True,
                         return_dict_in_generate=True)
    ref_ids = ref.sequences[0, inputs["input_ids"].shape[1]:].tolist()
    prompt = adapter.build_prompt(tokens, Query("describe the scene"))
    ours = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=12,
                         eos_token_ids=[processor.tokenizer.eos_token_id])
    assert ours.token_ids == ref_ids
    ref_logits = torch.stack([step[0] for step in ref.logits])
    assert (ours.logits - ref_logits).abs().max().item() < 1e-4
    answer = adapter.answer(tokens, Query("describe the scene"))
    assert answer.text == processor.tokenizer.decode(
        greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=64,
                      eos_token_ids=[processor.tokenizer.eos_token_id]).token_ids, skip_special_tokens=True).strip()
    assert answer.details["visual_tokens"] == 64


def test_multiple_choice_reads_the_letter_distribution(tiny):
    model, processor, video, adapter, tokens = tiny
    query = Query("which animal appears first?", ("a cat", "a dog", "a bird", "a fish"))
    answer = adapter.answer(tokens, query)
    prompt = adapter.build_prompt(tokens, query)
    assert prompt.text.endswith(MLVU_ANSWER_PREFIX)
    assert "(D) a fish" in prompt.text
    with torch.no_grad():
        logits = model(inputs_embeds=prompt.inputs_embeds, position_ids=prompt.position_ids).logits[0, -1]
    letters = letter_token_ids(lambda text: processor.tokenizer.encode(text, add_special_tokens=False), 4)
    assert letters == adapter.letter_ids(4)
    assert processor.tokenizer.decode(letters) == "ABCD"
    assert len(set(letters)) == 4
    assert answer.option_index == int(logits[letters].argmax())
    assert answer.option == query.options[answer.option_index]
    assert abs(sum(answer.details["option_probs"].values()) - 1.0) < 1e-3


def test_saved_directory_loads_through_the_adapter(tiny, tmp_path):
    model, processor, video, adapter, tokens = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert detect_family(str(tmp_path)) == "qwen2-vl"
    loaded = Qwen2VLAdapter(Qwen2VLAdapter.Config(path=str(tmp_path), max_new_tokens=8)).load()
    assert loaded.model.config._attn_implementation == "sdpa"
    again = loaded.native_encoder().encode(frames_of(video))
    assert torch.allclose(again.features, tokens.features, atol=1e-5)
    query = Query("describe the scene")
    ref = Qwen2VLAdapter(Qwen2VLAdapter.Config(max_new_tokens=8)).load(model, processor).answer(tokens, query)
    assert loaded.answer(again, query).text == ref.text


def test_missing_path_remote_code_and_pickle_are_one_line_errors(tiny, tmp_path):
    with pytest.raises(ModelLoadError) as err:
        Qwen2VLAdapter(Qwen2VLAdapter.Config(path=str(tmp_path / "nope"))).load()
    assert "no such model directory" in str(err.value) and "\n" not in str(err.value)
    assert str(tmp_path / "nope") in str(err.value)

    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "config.json").write_text(json.dumps(
        {"model_type": "qwen2_vl", "auto_map": {"AutoModel": "modeling_custom.CustomModel"}}))
    (remote / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError) as err:
        Qwen2VLAdapter(Qwen2VLAdapter.Config(path=str(remote))).load()
    assert "--trust-remote-code" in str(err.value) and "\n" not in str(err.value)

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text(json.dumps({"model_type": "qwen2_vl"}))
    (pickled / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ModelLoadError) as err:
        Qwen2VLAdapter(Qwen2VLAdapter.Config(path=str(pickled))).load()
    assert "--allow-pickle" in str(err.value)

    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "llava_onevision"}))
    (other / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError) as err:
        Qwen2VLAdapter(Qwen2VLAdapter.Config(path=str(other))).load()
    assert "llava-onevision" in str(err.value)
    with pytest.raises(ModelLoadError, match="not a supported family"):
        (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
        detect_family(str(other))


def test_registry_builds_the_adapter():
    from mmlong.registry import MODELS

    adapter = MODELS.create("qwen2-vl", path="/some/dir", max_new_tokens=5, device=None)
    assert isinstance(adapter, Qwen2VLAdapter)
    assert adapter.config.max_new_tokens == 5 and adapter.config.device == "cpu"
    assert adapter.supports_in_llm


def test_tpool_tokens_get_integer_temporal_positions_of_their_first_patch(tiny):
    """4 temporal patches pooled by 2 sit at patches 0 and 2 (not at groups 0 and 0.5); ids stay integer."""
    _, _, _, adapter, tokens = tiny
    from mmlong.compressors.base import Chain

    pooled = Chain.from_spec("tpool:2")(tokens)
    prompt = adapter.build_prompt(pooled, Query("describe the scene"))
    assert prompt.position_ids.dtype == torch.long
    visual = prompt.position_ids[:, 0][:, prompt.visual_mask]
    start = int(visual[1:].min())  # rows and columns start at the span start
    assert sorted(set((visual[0] - start).tolist())) == [0, 2]
    merged = Chain.from_spec("tome:0.5")(tokens)  # merged tokens have mean positions: still integer ids
    assert adapter.build_prompt(merged, Query("q")).position_ids.dtype == torch.long
