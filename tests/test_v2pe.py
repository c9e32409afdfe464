"""V2PE positions: hand-computed values, delta = 1 reproduces the model, Qwen2-VL decoding with float positions."""

from __future__ import annotations

import pytest
import torch

from mmlong.compressors.base import Chain
from mmlong.compressors.v2pe import V2PE
from mmlong.errors import ConfigError
from mmlong.models.decoding import greedy_decode
from mmlong.models.native.qwen2_vl import Qwen2VLAdapter
from mmlong.models.positions import mrope_positions, positions_1d
from mmlong.qa import Query
from tests.vlm_fixtures import build_qwen2_vl, frames_of, random_video


def test_positions_1d_hand_computed():
    mask = torch.tensor([0, 0, 1, 1, 1, 1, 1, 0, 1, 1, 0], dtype=torch.bool)
    # V2PE get_rope_pos_id: after the token at q, visual rows at q + delta * i; text at ceil(last) + 1
    assert positions_1d(mask, delta=0.25).tolist() == [
        0, 1, 1.25, 1.5, 1.75, 2.0, 2.25, 4, 4.25, 4.5, 6]
    assert positions_1d(mask, delta=1.0).tolist() == list(range(11))
    assert positions_1d(mask, delta=0.5, start=10).tolist()[-1] == 10 + 1 + 3 + 1 + 1 + 1
    assert positions_1d(torch.tensor([0, 1, 1, 1, 0], dtype=torch.bool), delta=0.25).tolist() == [
        0, 0.25, 0.5, 0.75, 2]


def test_mrope_positions_hand_computed():
    # 2 temporal patches of a 2x2 merged grid after 3 text tokens, then 2 text tokens
    t, h, w = torch.meshgrid(torch.arange(2.), torch.arange(2.), torch.arange(2.), indexing="ij")
    offsets = torch.stack([t, h, w], -1).reshape(-1, 3)
    quarter = mrope_positions([3, (offsets, 2.0), 2], delta=0.25)  # q = 2: ceil(2 + 0.25 * 2) + 1 = 4
    assert quarter[0].tolist() == [0, 1, 2] + [2.25] * 4 + [2.5] * 4 + [4, 5]
    assert quarter[1].tolist() == [0, 1, 2, 2.25, 2.25, 2.5, 2.5, 2.25, 2.25, 2.5, 2.5, 4, 5]
    assert quarter[2].tolist() == [0, 1, 2, 2.25, 2.5, 2.25, 2.5, 2.25, 2.5, 2.25, 2.5, 4, 5]
    whole = mrope_positions([3, (offsets, 2.0), 2], delta=1.0)
    assert whole[1].tolist() == [0, 1, 2, 3, 3, 4, 4, 3, 3, 4, 4, 5, 6]


@pytest.fixture(scope="module")
def tiny():
    model, processor = build_qwen2_vl(num_layers=2)
    adapter = Qwen2VLAdapter().load(model, processor)
    tokens = adapter.native_encoder().encode(frames_of(random_video(8)))
    return model, adapter, tokens


def test_delta_one_equals_the_model(tiny):
    model, adapter, tokens = tiny
    query = Query("describe the scene")
    same = Chain.from_spec("v2pe:1")(tokens)
    assert same.position_step == 1.0 and same.provenance[-1].name == "v2pe"
    base, v1 = adapter.build_prompt(tokens, query), adapter.build_prompt(same, query)
    assert torch.equal(base.position_ids, v1.position_ids) and v1.position_ids.dtype == torch.long
    a = greedy_decode(model, base.inputs_embeds, base.position_ids, max_new_tokens=8)
    b = greedy_decode(model, v1.inputs_embeds, v1.position_ids, max_new_tokens=8)
    assert a.token_ids == b.token_ids and torch.equal(a.logits, b.logits)


def test_quarter_delta_positions_and_decoding(tiny):
    model, adapter, tokens = tiny
    query = Query("describe the scene")
    base = adapter.build_prompt(tokens, query)
    quarter = adapter.build_prompt(V2PE(V2PE.Config(delta=0.25))(tokens), query)
    pos = quarter.position_ids[:, 0]
    assert pos.dtype == torch.float32
    start = int(base.position_ids[0, 0, base.visual_mask].min())  # = q + 1
    visual = pos[:, quarter.visual_mask]
    expected = (start - 1) + 0.25 * (1 + torch.stack(
        [tokens.positions[:, 0] / 2, tokens.positions[:, 1], tokens.positions[:, 2]]))
    assert torch.allclose(visual, expected)
    # grid 4x4 merged: extent 4 -> text resumes at ceil(q + 0.25 * 4) + 1 = start + 1
    text_after = pos[:, ~quarter.visual_mask][:, start:]
    assert text_after[:, 0].tolist() == [start + 1] * 3
    assert pos.max() < base.position_ids.max()
    result = greedy_decode(model, quarter.inputs_embeds, quarter.position_ids, max_new_tokens=20)
    assert len(result.token_ids) == 20
    assert not torch.allclose(result.logits[0], greedy_decode(
        model, base.inputs_embeds, base.position_ids, max_new_tokens=0).logits[0])


def test_zero_shot_v2pe_warns(tiny):
    _, _, tokens = tiny
    with pytest.warns(UserWarning, match="not trained with variable visual position encoding"):
        V2PE(V2PE.Config(delta=0.5))(tokens)


def test_delta_out_of_range_is_a_config_error():
    with pytest.raises(ConfigError, match="delta must be in"):
        V2PE(V2PE.Config(delta=0.0))
    assert Chain.from_spec("v2pe:0.0625").steps[0].config.delta == 0.0625
