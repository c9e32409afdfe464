"""SmolVLM2 adapter on a tiny random-init model: exactness against stock transformers, the timestamped video
template, per-frame connector grids, in-LLM pruning, V2PE, multiple choice, loading and the CLI."""

from __future__ import annotations

import doctest

import pytest
import torch

from mmlong.compressors.base import Chain
from mmlong.compressors.llm_pruning import InLLMPruning
from mmlong.errors import ModelLoadError
from mmlong.models.decoding import decoder_layers, greedy_decode
from mmlong.models.loading import detect_family
from mmlong.models.native import smolvlm
from mmlong.models.native.smolvlm import SmolVLMAdapter
from mmlong.models.prompts import letter_token_ids
from mmlong.qa import Query
from tests.vlm_fixtures import (
    build_smolvlm,
    cli_ask,
    frames_of,
    random_video,
    save_checkpoint,
    stock_generate,
    write_remote_code_checkpoint,
)

FRAMES, PER_FRAME = 8, 16  # 64 px / patch 8 = 8x8, pixel shuffle by 2: 4x4
VISUAL = FRAMES * PER_FRAME
QUESTION = Query("describe the scene")


@pytest.fixture(scope="module")
def tiny():
    model, processor = build_smolvlm(num_layers=4)
    video = random_video(FRAMES, height=96, width=128)
    adapter = SmolVLMAdapter(SmolVLMAdapter.Config(max_new_tokens=12)).load(model, processor)
    frames = frames_of(video, fps=2.0)
    tokens = adapter.native_encoder().encode(frames)
    prompt = adapter.build_prompt(tokens, QUESTION)
    baseline = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=20)
    return model, processor, frames, adapter, tokens, prompt, baseline


def stock_inputs(processor, frames, question="describe the scene", prefix=""):
    """The processor's own expansion of ``<video>``, given the frames' real times through ``video_metadata``."""
    text = smolvlm.smolvlm_prompt("<video>", question, answer_prefix=prefix)
    metadata = dict(fps=frames.meta.fps, total_num_frames=frames.meta.num_frames,
                    frames_indices=frames.indices.tolist(), duration=frames.meta.duration)
    return processor(text=[text], videos=[frames.data], video_metadata=[metadata], return_tensors="pt")


def test_native_encoder_is_the_connector_output_per_frame(tiny):
    model, processor, frames, adapter, tokens, _, _ = tiny
    assert tokens.grid == (FRAMES, 4, 4) and tokens.num_tokens == VISUAL and tokens.dim == 64
    assert tokens.positions[PER_FRAME].tolist() == [1.0, 0.0, 0.0]
    assert tokens.positions[-1].tolist() == [FRAMES - 1.0, 3.0, 3.0]
    assert tokens.timestamps.unique().tolist() == [i / 2 for i in range(FRAMES)]
    inputs = stock_inputs(processor, frames)
    with torch.no_grad():
        stock = model.model.get_image_features(inputs["pixel_values"], inputs["pixel_attention_mask"])
        # the connector by hand: pixel shuffle of each frame's 8x8 patch grid into 4x4 cells of 2x2 patches
        hidden = stock.last_hidden_state.reshape(FRAMES, 4, 2, 4, 2, -1)
        cells = hidden.permute(0, 1, 3, 2, 4, 5).reshape(FRAMES * 16, -1)
        by_hand = model.model.connector.modality_projection(cells)
    assert torch.allclose(tokens.features, stock.pooler_output[0], atol=1e-5)
    assert torch.allclose(tokens.features, by_hand, atol=1e-5)


def test_chunked_encoding_equals_whole(tiny):
    model, processor, frames, _, tokens, _, _ = tiny
    chunked = SmolVLMAdapter(SmolVLMAdapter.Config(frames_per_batch=3)).load(model, processor)
    other = chunked.encode_frames(frames)
    assert torch.allclose(other.features, tokens.features, atol=1e-5)
    assert torch.equal(other.positions, tokens.positions) and torch.equal(other.frame_ids, tokens.frame_ids)


def test_prompt_is_the_processors_video_template(tiny):
    model, processor, frames, adapter, tokens, prompt, _ = tiny
    assert prompt.text.startswith("<|im_start|>User: You are provided the following series of eight frames from "
                                  "a 0:00:04 [H:MM:SS] video.\n\nFrame from 00:00:<fake_token_around_image>")
    assert [line[:16] for line in prompt.text.split("\n") if line.startswith("Frame")] == [
        f"Frame from 00:0{s}" for s in (0, 0, 1, 1, 2, 2, 3, 3)]
    assert prompt.text.endswith("\n\ndescribe the scene<end_of_utterance>\nAssistant:")
    inputs = stock_inputs(processor, frames)
    assert prompt.length == inputs["input_ids"].shape[1]
    image_rows = inputs["input_ids"][0] == processor.image_token_id
    assert torch.equal(prompt.visual_mask, image_rows)
    embed = model.get_input_embeddings()
    assert torch.equal(prompt.inputs_embeds[0, ~image_rows], embed(inputs["input_ids"][0, ~image_rows]))
    assert torch.equal(prompt.position_ids, torch.arange(prompt.length)[None])


def test_greedy_output_and_logits_equal_stock_generate(tiny):
    model, processor, frames, adapter, tokens, prompt, _ = tiny
    ref_ids, ref_logits = stock_generate(model, stock_inputs(processor, frames), 12)
    ours = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=12,
                         eos_token_ids=[processor.tokenizer.eos_token_id])
    assert ours.token_ids == ref_ids
    assert (ours.logits - ref_logits).abs().max().item() < 1e-4
    answer = adapter.answer(tokens, QUESTION)
    assert answer.text == processor.tokenizer.decode(ref_ids, skip_special_tokens=True).strip()
    assert answer.details["visual_tokens"] == VISUAL


def test_compression_keeps_each_frames_time_line(tiny):
    model, processor, frames, adapter, tokens, prompt, _ = tiny
    pooled = adapter.build_prompt(Chain.from_spec("pool:2")(tokens), QUESTION)
    assert int(pooled.visual_mask.sum()) == FRAMES * 4 and pooled.length == prompt.length - VISUAL + FRAMES * 4
    # drop frames 1 and 2 entirely and keep half of frame 5: six frame blocks remain, with their own times
    keep = torch.cat([torch.arange(0, PER_FRAME), torch.arange(3 * PER_FRAME, 5 * PER_FRAME),
                      torch.arange(5 * PER_FRAME, 5 * PER_FRAME + 8), torch.arange(6 * PER_FRAME, VISUAL)])
    part = adapter.build_prompt(tokens.select(keep), QUESTION)
    assert "series of six frames from a 0:00:04" in part.text
    assert [line[11:16] for line in part.text.split("\n") if line.startswith("Frame")] == [
        "00:00", "00:01", "00:02", "00:02", "00:03", "00:03"]
    rows = part.visual_mask.nonzero().flatten()
    assert torch.equal(part.inputs_embeds[0, rows], tokens.features[keep])
    gaps = (rows[1:] - rows[:-1] > 1).sum()
    assert int(gaps) == 5  # each frame block is closed and the next one opened by text tokens
    assert len(greedy_decode(model, part.inputs_embeds, part.position_ids, max_new_tokens=4).token_ids) == 4


@pytest.mark.parametrize("spec", ["fastv:2,0", "pyramiddrop:0"])
def test_in_llm_ratio_zero_equals_the_baseline(tiny, spec):
    model, *_, prompt, baseline = tiny
    with InLLMPruning(decoder_layers(model), Chain.from_spec(spec).in_llm, prompt.visual_mask) as pruning:
        result = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=20)
    assert result.token_ids == baseline.token_ids and torch.equal(result.logits, baseline.logits)
    assert pruning.observed == pruning.planned == [prompt.length] * 4


@pytest.mark.parametrize("spec, kept", [("fastv:1,0.75", [128, 32, 32, 32]), ("pyramiddrop", [128, 64, 32, 16])])
def test_pruned_runs_decode_20_tokens_with_the_planned_lengths(tiny, spec, kept):
    """Through the adapter's pruning: PyramidDrop renumbers the 1-D positions and shifts them while decoding."""
    model, _, _, adapter, _, prompt, baseline = tiny
    text = prompt.length - VISUAL
    with adapter.pruning(prompt, Chain.from_spec(spec).in_llm) as pruning:
        result = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=20)
    assert pruning.planned == pruning.observed == [text + k for k in kept]
    assert len(result.token_ids) == 20 and result.logits.shape[0] == 20
    assert (result.logits - baseline.logits).abs().max() > 1e-4
    kept_rows = pruning.kept_rows
    assert int((~prompt.visual_mask[kept_rows]).sum()) == text  # every text row, timestamps included, stays
    assert all(len(layer._forward_pre_hooks) == 0 for layer in decoder_layers(model))


def test_v2pe_delta_one_equals_baseline_and_quarter_compresses_each_frame(tiny):
    model, *_, adapter, tokens, prompt, baseline = tiny
    same = adapter.build_prompt(Chain.from_spec("v2pe:1")(tokens), QUESTION)
    assert torch.equal(same.position_ids, prompt.position_ids) and same.position_ids.dtype == torch.long
    result = greedy_decode(model, same.inputs_embeds, same.position_ids, max_new_tokens=20)
    assert result.token_ids == baseline.token_ids and torch.equal(result.logits, baseline.logits)

    quarter = adapter.build_prompt(Chain.from_spec("v2pe:0.25")(tokens), QUESTION)
    pos, mask = quarter.position_ids[0], quarter.visual_mask
    first = int(mask.nonzero().min())
    # V2PE: after the token at q = first - 1 a frame's rows sit at q + 0.25 * (1..16); text at ceil(q + 4) + 1
    expected = first - 1 + 0.25 * torch.arange(1, PER_FRAME + 1, dtype=torch.float32)
    assert torch.allclose(pos[first:first + PER_FRAME], expected)
    assert pos[first + PER_FRAME].item() == first + 4
    # every frame saves PER_FRAME - 4 positions
    assert pos[-1].item() == prompt.position_ids[0, -1].item() - FRAMES * (PER_FRAME - 4)
    moved = greedy_decode(model, quarter.inputs_embeds, quarter.position_ids, max_new_tokens=20)
    assert len(moved.token_ids) == 20 and not torch.equal(moved.logits, baseline.logits)


def test_multiple_choice_reads_the_letter_distribution(tiny):
    model, processor, frames, adapter, tokens, _, _ = tiny
    query = Query("which animal appears first?", ("a cat", "a dog", "a bird", "a fish"))
    answer = adapter.answer(tokens, query)
    prompt = adapter.build_prompt(tokens, query)
    assert prompt.text.endswith("<end_of_utterance>\nAssistant: Best option: (") and "(D) a fish" in prompt.text
    with torch.no_grad():
        logits = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=0).logits[0]
    letters = letter_token_ids(lambda text: processor.tokenizer.encode(text, add_special_tokens=False), 4)
    assert letters == adapter.letter_ids(4)
    assert processor.tokenizer.decode(letters) == "ABCD"
    assert len(set(letters)) == 4
    assert answer.option_index == int(logits[letters].argmax())
    assert answer.option == query.options[answer.option_index]
    assert abs(sum(answer.details["option_probs"].values()) - 1.0) < 1e-3


def test_saved_directory_loads_and_answers_like_the_in_memory_model(tiny, tmp_path):
    model, processor, frames, adapter, tokens, _, _ = tiny
    path = save_checkpoint(model, processor, tmp_path / "smol")
    assert detect_family(path) == "smolvlm2"
    loaded = SmolVLMAdapter(SmolVLMAdapter.Config(path=path, max_new_tokens=12)).load()
    assert loaded.model.config._attn_implementation == "sdpa"
    again = loaded.native_encoder().encode(frames)
    assert torch.allclose(again.features, tokens.features, atol=1e-5)
    assert loaded.answer(again, QUESTION).text == adapter.answer(tokens, QUESTION).text


def test_cli_ask_with_a_saved_directory(tiny, tmp_path, capsys):
    from tests.media import make_test_video

    model, processor, *_ = tiny
    path = save_checkpoint(model, processor, tmp_path / "smol")
    video = make_test_video(tmp_path / "clip.mp4", num_frames=30, fps=10, size=(96, 64))
    settings = tmp_path / "pipeline.yaml"
    settings.write_text("model_options:\n  max_new_tokens: 6\n")
    code, record, _ = cli_ask(capsys, video, "describe the scene", path, "--sample", "uniform:3",
                              "--compress", "pool:2,pyramiddrop", "--config", str(settings))
    assert code == 0
    assert record["stages"][-1]["config"]["name"] == "smolvlm2"
    details = record["details"]
    assert details["visual_tokens"] == 3 * 4 and details["generated_tokens"] <= 6  # pool:2 on 4x4 per frame
    text = details["prompt_tokens"] - 12
    assert details["in_llm"]["observed_lengths"] == [text + 12, text + 6, text + 3, text + 1]  # int(12 / 8)

    code, record, _ = cli_ask(capsys, video, "which animal?", path, "--sample", "uniform:3",
                              "--options", "a cat", "a dog", "a bird")
    assert code == 0 and record["option"] in ("a cat", "a dog", "a bird")


def test_cli_missing_directory_and_remote_code_are_one_line_errors(tmp_path, capsys):
    from tests.media import make_test_video

    video = make_test_video(tmp_path / "clip.mp4", num_frames=10, fps=10, size=(64, 48))
    code, _, err = cli_ask(capsys, video, "q", str(tmp_path / "missing"))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "no such model directory" in err and "pass a local checkpoint directory" in err

    remote = write_remote_code_checkpoint(tmp_path / "remote", "smolvlm")
    code, _, err = cli_ask(capsys, video, "q", remote)
    assert code == 2 and err.count("\n") == 1 and "--trust-remote-code" in err
    with pytest.raises(ModelLoadError, match="trust_remote_code"):
        SmolVLMAdapter(SmolVLMAdapter.Config(path=remote)).load()


def test_registry_and_docstring_examples():
    from mmlong.registry import MODELS

    adapter = MODELS.create("smolvlm2", path="/some/dir", max_new_tokens=5, system_prompt=None)
    assert isinstance(adapter, SmolVLMAdapter) and adapter.supports_in_llm
    assert adapter.config.max_new_tokens == 5 and adapter.config.system_prompt == ""
    result = doctest.testmod(smolvlm, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
