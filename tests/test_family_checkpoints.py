"""The newer families from a saved checkpoint directory: ``--model DIR`` resolves the family from config.json,
``mmlong ask`` answers a real clip through it, the lmms-eval bridge's settings resolve it, and bench prefill
builds each family's shape."""

from __future__ import annotations

import json

import pytest

from mmlong.models.loading import detect_family
from tests import vlm_families
from tests.vlm_fixtures import cli_ask, save_checkpoint

BUILDERS = {"qwen3-vl": vlm_families.build_qwen3_vl, "qwen3.5": vlm_families.build_qwen3_5,
            "internvl": vlm_families.build_internvl, "videollama3": vlm_families.build_video_llama_3}


@pytest.mark.parametrize("family", list(BUILDERS))
def test_ask_and_the_bridge_take_a_saved_directory(family, tmp_path, capsys, sample_video_path):
    from mmlong.apps.options import resolve_settings

    path = save_checkpoint(*BUILDERS[family](num_layers=4), tmp_path / family)
    assert detect_family(path) == family
    resolved = resolve_settings("offline", None, {"model": path, "encoder": "native"})
    assert resolved.model.family == family and resolved.model.config.path == path
    settings = tmp_path / "pipeline.yaml"
    settings.write_text("model_options:\n  max_new_tokens: 4\n")
    code, record, err = cli_ask(capsys, sample_video_path, "describe the scene", path, "--sample", "uniform:4",
                                "--compress", "tome:0.5,fastv:2,0.5", "--config", str(settings), "--max-side", "128")
    assert code == 0, err
    assert record["stages"][-1]["config"]["name"] == family
    details = record["details"]
    assert details["generated_tokens"] <= 4 and details["in_llm"]["observed_lengths"][2] < details["prompt_tokens"]


@pytest.mark.parametrize("arch, size, expected_layers", [("qwen3-vl", "tiny", 4), ("internvl", "tiny", 4)])
def test_bench_prefill_builds_the_family_shape(arch, size, expected_layers, capsys):
    from mmlong.apps.cli import main

    assert main(["bench", "prefill", "--arch", arch, "--size", size, "--frames", "4", "--resolution", "128",
                 "--compress", "pyramiddrop", "--json", "--threads", "1"]) == 0
    record = json.loads(capsys.readouterr().out)
    per_block = 16 if arch == "qwen3-vl" else 256  # 128 px / 32 px = 4x4 per temporal patch; 16x16 per frame
    blocks = 2 if arch == "qwen3-vl" else 4
    text = 60 + blocks * 7  # the question and each block's time/frame line and brackets
    assert record["baseline_visual_tokens"] == blocks * per_block
    assert record["baseline_tokens"] == text + blocks * per_block
    lengths = record["layer_lengths"]
    assert len(lengths) == expected_layers and lengths[0] == record["baseline_tokens"] and lengths[-1] < lengths[0]
    assert main(["bench", "prefill", "--arch", arch, "--size", "0.5b", "--compress", "fastv"]) == 2
    assert "sizes are" in capsys.readouterr().err
