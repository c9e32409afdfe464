"""VideoLLaMA3 adapter on a tiny random-init model and a real clip: stock generate (with the processor's
differential frame pruning on), Time entries of the frames that keep tokens, 1-D positions."""

from __future__ import annotations

import pytest
import torch

from mmlong.models.decoding import greedy_decode
from mmlong.models.native.video_llama_3 import VideoLlama3Adapter
from mmlong.models.prompts import chatml_turn
from mmlong.qa import Query
from mmlong.types import Frames
from tests.vlm_families import build_video_llama_3, sample_clip, video_metadata

QUESTION = "describe the scene"


@pytest.fixture(scope="module")
def tiny():
    model, processor = build_video_llama_3()
    adapter = VideoLlama3Adapter(VideoLlama3Adapter.Config(max_new_tokens=10)).load(model, processor)
    return model, processor, adapter


def held_clip():
    """The real clip with frames 2-4 holding frame 1 still: differential frame pruning drops their patches."""
    frames = sample_clip(8, 128)
    data = frames.data.clone()
    data[2:5] = data[1]
    return Frames(data=data, indices=frames.indices, timestamps=frames.timestamps, meta=frames.meta)


@pytest.mark.parametrize("clip", [lambda: sample_clip(8, 128), held_clip], ids=["moving", "held"])
def test_generation_equals_stock_generate_with_its_frame_pruning(tiny, clip):
    model, processor, adapter = tiny
    frames = clip()
    tokens = adapter.native_encoder().encode(frames)
    inputs = processor(text=[chatml_turn("<|video_pad|>", QUESTION)], videos=[frames.data],
                       videos_kwargs=dict(video_metadata=[video_metadata(frames)]), return_tensors="pt")
    assert tokens.num_tokens == int(inputs["video_compression_mask"].sum())
    ref = model.generate(**inputs, max_new_tokens=10, do_sample=False, output_logits=True,
                         return_dict_in_generate=True)
    ref_ids = ref.sequences[0, inputs["input_ids"].shape[1]:].tolist()
    prompt = adapter.build_prompt(tokens, Query(QUESTION))
    assert prompt.length == inputs["input_ids"].shape[1]
    assert torch.equal(prompt.position_ids[0], torch.arange(prompt.length))
    ours = greedy_decode(model, prompt.inputs_embeds, prompt.position_ids, max_new_tokens=10,
                         eos_token_ids=[processor.tokenizer.eos_token_id])
    assert ours.token_ids == ref_ids
    assert (ours.logits - torch.stack([step[0] for step in ref.logits])).abs().max().item() < 1e-4
    assert adapter.answer(tokens, Query(QUESTION)).text == processor.tokenizer.decode(
        ref_ids, skip_special_tokens=True).strip()


def test_held_frames_keep_fewer_tokens_and_dropped_frames_lose_their_time_entry(tiny):
    _, _, adapter = tiny
    tokens = adapter.native_encoder().encode(held_clip())
    per_frame = torch.bincount(tokens.frame_ids, minlength=8)
    whole = tokens.meta["difffp_of"] // 8
    assert per_frame[0] == per_frame[1] == whole and per_frame[2:5].max() < whole
    part = tokens.select(tokens.frame_ids != 5)
    prompt = adapter.build_prompt(part, Query(QUESTION))
    time_5 = f"Time {float(tokens.frame_times[5]):.1f}s:"
    assert time_5 not in prompt.text and prompt.text.count("Time ") == int((per_frame > 0).sum()) - 1
    assert torch.equal(prompt.position_ids[0], torch.arange(prompt.length))
