"""InternVL3.5 adapter on a tiny random-init model and a real clip: stock generate, Frame N lines, positions."""

from __future__ import annotations

import math

import pytest
import torch

from mmlong.compressors.base import Chain
from mmlong.models.decoding import greedy_decode
from mmlong.models.native.internvl import InternVLAdapter
from mmlong.models.prompts import chatml_turn
from mmlong.qa import Query
from tests.vlm_families import build_internvl, sample_clip

QUESTION = "describe the scene"


@pytest.fixture(scope="module")
def tiny():
    model, processor = build_internvl()
    frames = sample_clip(4, 128)
    adapter = InternVLAdapter(InternVLAdapter.Config(max_new_tokens=10)).load(model, processor)
    return model, processor, frames, adapter, adapter.native_encoder().encode(frames)


def test_pixel_shuffle_tokens_per_frame_equal_the_model_features(tiny):
    model, processor, frames, _, tokens = tiny
    assert tokens.grid == (4, 4, 4) and tokens.num_tokens == 64
    inputs = processor(text=[chatml_turn("<video>", QUESTION)], videos=[frames.data], return_tensors="pt")
    with torch.no_grad():
        stock = model.model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
    assert torch.allclose(tokens.features, stock.reshape(-1, stock.shape[-1]), atol=1e-5)


def test_uncompressed_generation_equals_stock_generate(tiny):
    model, processor, frames, adapter, tokens = tiny
    inputs = processor(text=[chatml_turn("<video>", QUESTION)], videos=[frames.data], return_tensors="pt")
    ref = model.generate(**inputs, max_new_tokens=10, do_sample=False, output_logits=True,
                         return_dict_in_generate=True)
    ref_ids = ref.sequences[0, inputs["input_ids"].shape[1]:].tolist()
    prompt = adapter.build_prompt(tokens, Query(QUESTION))
    assert processor.tokenizer.decode(inputs["input_ids"][0]) == prompt.text.replace(
        "<IMG_CONTEXT>", "<IMG_CONTEXT>" * 16)
    assert torch.equal(prompt.position_ids[0], torch.arange(prompt.length))
    ours = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=10,
                         eos_token_ids=[processor.tokenizer.eos_token_id])
    assert ours.token_ids == ref_ids
    assert (ours.logits - torch.stack([step[0] for step in ref.logits])).abs().max().item() < 1e-4
    answer = adapter.answer(tokens, Query(QUESTION))
    assert answer.text == processor.tokenizer.decode(ref_ids, skip_special_tokens=True).strip()


def v2pe_positions(mask: list[bool], delta: float) -> list[float]:
    """V2PE's rule (official ``get_rope_pos_id``) written out: text +1; a visual token +delta; the first text token
    after visual ones at ceil(last visual position) + 1."""
    out, position, previous_visual = [], -1.0, False
    for visual in mask:
        if visual:
            position += delta
        else:
            position = (math.ceil(position - 1e-9) if previous_visual else position) + 1
        out.append(position)
        previous_visual = visual
    return out


def test_compressed_prompt_keeps_frame_numbers_and_1d_positions(tiny):
    model, processor, frames, adapter, tokens = tiny
    part = tokens.select(torch.cat([torch.arange(0, 16, 3), torch.arange(32, 64, 5)]))  # frame 1 dropped whole
    prompt = adapter.build_prompt(part, Query(QUESTION))
    assert "Frame1: <img>" in prompt.text and "Frame2:" not in prompt.text and "\nFrame3: <img>" in prompt.text
    assert int(prompt.visual_mask.sum()) == part.num_tokens
    assert prompt.position_ids[0].tolist() == v2pe_positions(prompt.visual_mask.tolist(), 1.0)
    scaled = adapter.build_prompt(Chain.from_spec("v2pe:0.25")(part), Query(QUESTION))
    assert scaled.position_ids.dtype == torch.float32
    expected = torch.tensor(v2pe_positions(scaled.visual_mask.tolist(), 0.25), dtype=torch.float64)
    assert torch.allclose(scaled.position_ids[0].double(), expected)
