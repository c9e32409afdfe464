"""LLaVA-OneVision adapter on a tiny random-init model: exactness against stock transformers, pooling grid,
in-LLM pruning, V2PE, multiple choice, loading from a saved directory and the CLI."""

from __future__ import annotations

import doctest

import pytest
import torch

from mmlong.compressors.base import Chain
from mmlong.compressors.llm_pruning import InLLMPruning
from mmlong.errors import ModelLoadError
from mmlong.models.decoding import decoder_layers, greedy_decode
from mmlong.models.loading import detect_family
from mmlong.models.native import llava_onevision
from mmlong.models.native.llava_onevision import LlavaOneVisionAdapter
from mmlong.models.prompts import letter_token_ids
from mmlong.qa import Query
from tests.vlm_fixtures import (
    build_llava_onevision,
    cli_ask,
    frames_of,
    random_video,
    save_checkpoint,
    stock_generate,
    write_remote_code_checkpoint,
)

FRAMES, PER_FRAME = 8, 9  # 70 px / patch 14 = 5x5, pooled to ceil(5/2) = 3x3
VISUAL = FRAMES * PER_FRAME
QUESTION = Query("describe the scene")


@pytest.fixture(scope="module")
def tiny():
    model, processor = build_llava_onevision(num_layers=4)
    video = random_video(FRAMES, height=96, width=128)
    adapter = LlavaOneVisionAdapter(LlavaOneVisionAdapter.Config(max_new_tokens=12)).load(model, processor)
    tokens = adapter.native_encoder().encode(frames_of(video))
    prompt = adapter.build_prompt(tokens, QUESTION)
    baseline = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=20,
                             eos_token_ids=[])
    return model, processor, video, adapter, tokens, prompt, baseline


def stock_inputs(processor, video, text):
    return processor(text=[text], videos=[video], return_tensors="pt")


def test_native_encoder_is_the_models_pooled_video_features(tiny):
    model, processor, video, adapter, tokens, prompt, _ = tiny
    assert tokens.grid == (FRAMES, 3, 3) and tokens.num_tokens == VISUAL and tokens.dim == 64
    assert tokens.positions[:PER_FRAME].tolist() == [[0.0, r, c] for r in range(3) for c in range(3)]
    assert tokens.frame_ids.tolist() == [f for f in range(FRAMES) for _ in range(PER_FRAME)]
    assert tokens.timestamps.unique().tolist() == [i / 2 for i in range(FRAMES)]  # 2 fps
    inputs = stock_inputs(processor, video, prompt.text)
    with torch.no_grad():
        stock = model.model.get_video_features(inputs["pixel_values_videos"]).pooler_output[0]
        # the model's own path: tower -> projector -> 2x bilinear pooling of the 5x5 patch grid
        hidden = model.model.vision_tower(inputs["pixel_values_videos"][0], output_hidden_states=True)
        projected = model.model.multi_modal_projector(hidden.hidden_states[-1])
        pooled = torch.nn.functional.interpolate(projected.reshape(FRAMES, 5, 5, -1).permute(0, 3, 1, 2),
                                                 size=(3, 3), mode="bilinear")
    assert stock.shape[0] == VISUAL + 1  # + one image_newline for the whole video
    assert torch.allclose(tokens.features, stock[:-1], atol=1e-5)
    assert torch.allclose(tokens.features, pooled.permute(0, 2, 3, 1).reshape(VISUAL, -1), atol=1e-5)


def test_chunked_encoding_equals_whole(tiny):
    model, processor, video, _, tokens, _, _ = tiny
    chunked = LlavaOneVisionAdapter(LlavaOneVisionAdapter.Config(frames_per_batch=3)).load(model, processor)
    other = chunked.encode_frames(frames_of(video))
    assert torch.allclose(other.features, tokens.features, atol=1e-5)
    assert torch.equal(other.positions, tokens.positions) and torch.equal(other.frame_ids, tokens.frame_ids)


def test_prompt_layout_times_and_newline(tiny):
    model, processor, video, adapter, tokens, prompt, _ = tiny
    assert prompt.text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                                  "<video>\nThe video lasts for 4.00 seconds, and 8 frames are uniformly sampled")
    assert "located at 0.00s,0.50s,1.00s,1.50s,2.00s,2.50s,3.00s,3.50s.Please answer" in prompt.text
    assert prompt.text.endswith("\ndescribe the scene<|im_end|>\n<|im_start|>assistant\n")
    inputs = stock_inputs(processor, video, prompt.text)
    assert prompt.length == inputs["input_ids"].shape[1]
    assert torch.equal(prompt.position_ids, torch.arange(prompt.length)[None])
    # visual rows sit exactly where the processor put <video> tokens, except the last: the image_newline
    video_rows = (inputs["input_ids"][0] == processor.video_token_id).nonzero().flatten()
    assert torch.equal(prompt.visual_mask.nonzero().flatten(), video_rows[:-1])
    newline = model.model.image_newline
    assert torch.equal(prompt.inputs_embeds[0, video_rows[-1]], newline)
    plain = LlavaOneVisionAdapter(LlavaOneVisionAdapter.Config(time_instruction=False, system_prompt=""))
    assert plain.load(model, processor).prompt_text(tokens, QUESTION) == (
        "<|im_start|>user\n<video>\ndescribe the scene<|im_end|>\n<|im_start|>assistant\n")


def test_greedy_output_and_logits_equal_stock_generate(tiny):
    model, processor, video, adapter, tokens, prompt, _ = tiny
    ref_ids, ref_logits = stock_generate(model, stock_inputs(processor, video, prompt.text), 12)
    ours = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=12,
                         eos_token_ids=[processor.tokenizer.eos_token_id])
    assert ours.token_ids == ref_ids
    assert (ours.logits - ref_logits).abs().max().item() < 1e-4
    answer = adapter.answer(tokens, QUESTION)
    assert answer.text == processor.tokenizer.decode(ref_ids, skip_special_tokens=True).strip()
    assert answer.details["visual_tokens"] == VISUAL and answer.details["prompt_tokens"] == prompt.length


def test_compressed_tokens_shorten_the_video_block(tiny):
    model, processor, video, adapter, tokens, prompt, _ = tiny
    keep = torch.arange(0, VISUAL, 4)
    part = adapter.build_prompt(Chain.from_spec("pool:2")(tokens), QUESTION)
    assert int(part.visual_mask.sum()) == FRAMES * 4 and part.length == prompt.length - VISUAL + FRAMES * 4
    chosen = adapter.build_prompt(tokens.select(keep), QUESTION)
    rows = chosen.visual_mask.nonzero().flatten()
    assert torch.equal(chosen.inputs_embeds[0, rows], tokens.features[keep])
    assert torch.equal(chosen.inputs_embeds[0, rows[-1] + 1], model.model.image_newline)
    result = greedy_decode(model, chosen.inputs_embeds, chosen.position_ids, max_new_tokens=4)
    assert len(result.token_ids) == 4


@pytest.mark.parametrize("spec", ["fastv:2,0", "pyramiddrop:0"])
def test_in_llm_ratio_zero_equals_the_baseline(tiny, spec):
    model, *_, prompt, baseline = tiny
    with InLLMPruning(decoder_layers(model), Chain.from_spec(spec).in_llm, prompt.visual_mask) as pruning:
        result = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=20)
    assert result.token_ids == baseline.token_ids and torch.equal(result.logits, baseline.logits)
    assert pruning.observed == pruning.planned == [prompt.length] * 4


@pytest.mark.parametrize("spec, kept", [("fastv:2,0.5", [72, 72, 36, 36]), ("pyramiddrop", [72, 36, 18, 9])])
def test_pruned_runs_decode_20_tokens_with_the_planned_lengths(tiny, spec, kept):
    """Through the adapter's pruning: PyramidDrop renumbers the 1-D positions and shifts them while decoding."""
    model, _, _, adapter, _, prompt, baseline = tiny
    text = prompt.length - VISUAL  # the image_newline counts as text: never dropped
    with adapter.pruning(prompt, Chain.from_spec(spec).in_llm) as pruning:
        result = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=20)
    assert pruning.planned == pruning.observed == [text + k for k in kept]
    assert len(result.token_ids) == 20 and result.logits.shape[0] == 20
    assert (result.logits - baseline.logits).abs().max() > 1e-4
    newline_row = int(prompt.visual_mask.nonzero().max()) + 1
    assert newline_row in pruning.kept_rows.tolist()
    assert all(len(layer._forward_pre_hooks) == 0 for layer in decoder_layers(model))


def test_v2pe_delta_one_equals_baseline_and_quarter_compresses_positions(tiny):
    model, *_, adapter, tokens, prompt, baseline = tiny
    same = adapter.build_prompt(Chain.from_spec("v2pe:1")(tokens), QUESTION)
    assert torch.equal(same.position_ids, prompt.position_ids) and same.position_ids.dtype == torch.long
    result = greedy_decode(model, same.inputs_embeds, same.position_ids, max_new_tokens=20)
    assert result.token_ids == baseline.token_ids and torch.equal(result.logits, baseline.logits)

    quarter = adapter.build_prompt(Chain.from_spec("v2pe:0.25")(tokens), QUESTION)
    pos, mask = quarter.position_ids[0], quarter.visual_mask
    first = int(mask.nonzero().min())
    assert pos.dtype == torch.float32
    # V2PE: after the token at q = first - 1, visual rows at q + 0.25 * (1..72); the newline at ceil(last) + 1
    assert torch.allclose(pos[mask], first - 1 + 0.25 * torch.arange(1, VISUAL + 1, dtype=torch.float32))
    assert pos[first + VISUAL].item() == first + 18
    assert pos[-1].item() == prompt.position_ids[0, -1].item() - (VISUAL - 18)
    moved = greedy_decode(model, quarter.inputs_embeds, quarter.position_ids, max_new_tokens=20)
    assert len(moved.token_ids) == 20 and not torch.equal(moved.logits, baseline.logits)


def test_multiple_choice_reads_the_letter_distribution(tiny):
    model, processor, video, adapter, tokens, _, _ = tiny
    query = Query("which animal appears first?", ("a cat", "a dog", "a bird", "a fish"))
    answer = adapter.answer(tokens, query, in_llm=Chain.from_spec("fastv:2,0.5").in_llm)
    prompt = adapter.build_prompt(tokens, query)
    assert prompt.text.endswith("<|im_start|>assistant\nBest option: (") and "(D) a fish" in prompt.text
    assert "Only give the best option." in prompt.text
    with InLLMPruning(decoder_layers(model), Chain.from_spec("fastv:2,0.5").in_llm, prompt.visual_mask):
        logits = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=0).logits[0]
    letters = letter_token_ids(lambda text: processor.tokenizer.encode(text, add_special_tokens=False), 4)
    assert letters == adapter.letter_ids(4)
    assert processor.tokenizer.decode(letters) == "ABCD"
    assert answer.option_index == int(logits[letters].argmax())
    assert answer.option == query.options[answer.option_index]
    assert abs(sum(answer.details["option_probs"].values()) - 1.0) < 1e-3


def test_saved_directory_loads_and_answers_like_the_in_memory_model(tiny, tmp_path):
    model, processor, video, adapter, tokens, _, _ = tiny
    path = save_checkpoint(model, processor, tmp_path / "llava")
    assert detect_family(path) == "llava-onevision"
    loaded = LlavaOneVisionAdapter(LlavaOneVisionAdapter.Config(path=path, max_new_tokens=12)).load()
    assert loaded.model.config._attn_implementation == "sdpa"
    again = loaded.native_encoder().encode(frames_of(video))
    assert torch.allclose(again.features, tokens.features, atol=1e-5)
    assert loaded.answer(again, QUESTION).text == adapter.answer(tokens, QUESTION).text


def test_cli_ask_with_a_saved_directory(tiny, tmp_path, capsys):
    from tests.media import make_test_video

    model, processor, *_ = tiny
    path = save_checkpoint(model, processor, tmp_path / "llava")
    video = make_test_video(tmp_path / "clip.mp4", num_frames=30, fps=10, size=(96, 64))
    settings = tmp_path / "pipeline.yaml"
    settings.write_text("model_options:\n  max_new_tokens: 6\n")
    code, record, _ = cli_ask(capsys, video, "describe the scene", path, "--sample", "uniform:3",
                              "--compress", "fastv:2,0.5", "--config", str(settings))
    assert code == 0
    assert [s["name"] for s in record["stages"]][-1] == "model"
    assert record["stages"][-1]["config"]["name"] == "llava-onevision"
    details = record["details"]
    assert details["visual_tokens"] == 3 * PER_FRAME and details["generated_tokens"] <= 6
    text = details["prompt_tokens"] - 3 * PER_FRAME
    assert details["in_llm"]["observed_lengths"] == [text + 27, text + 27, text + 14, text + 14]
    assert isinstance(record["answer"], str)

    code, record, _ = cli_ask(capsys, video, "which animal?", path, "--sample", "uniform:3",
                              "--options", "a cat", "a dog")
    assert code == 0 and record["option"] in ("a cat", "a dog") and record["letter"] in ("A", "B")


def test_cli_missing_directory_and_remote_code_are_one_line_errors(tmp_path, capsys):
    from tests.media import make_test_video

    video = make_test_video(tmp_path / "clip.mp4", num_frames=10, fps=10, size=(64, 48))
    code, _, err = cli_ask(capsys, video, "q", str(tmp_path / "nope"))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("mmlong: error: ") and "no such model directory" in err and str(tmp_path / "nope") in err

    remote = write_remote_code_checkpoint(tmp_path / "remote", "llava_onevision")
    code, _, err = cli_ask(capsys, video, "q", remote)
    assert code == 2 and err.count("\n") == 1 and "--trust-remote-code" in err and remote in err
    with pytest.raises(ModelLoadError, match="trust_remote_code"):
        LlavaOneVisionAdapter(LlavaOneVisionAdapter.Config(path=remote)).load()


def test_registry_and_docstring_examples():
    from mmlong.registry import MODELS

    adapter = MODELS.create("llava-onevision", path="/some/dir", time_instruction="false", device=None)
    assert isinstance(adapter, LlavaOneVisionAdapter) and adapter.supports_in_llm
    assert adapter.config.time_instruction is False and adapter.config.device == "cpu"
    result = doctest.testmod(llava_onevision, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
