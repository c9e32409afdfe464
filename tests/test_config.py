"""The flat request (presets < YAML < flags) and its resolution into the ResolvedPipeline tree."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from mmlong.apps.options import add_pipeline_arguments, resolve_args
from mmlong.config.request import PipelineConfig, resolve_config, save_yaml
from mmlong.config.resolve import ResolvedPipeline, resolve
from mmlong.errors import ConfigError


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_pipeline_arguments(parser)
    return parser.parse_args(list(argv))


def test_precedence_defaults_preset_file_flags(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("preset: offline\nbudget: 512\ncompress: pool:2\n")
    cfg = resolve_config(config_file=path, compress="tome:0.5", budget=None)
    assert cfg.sample == "coverage:64"  # from the preset
    assert cfg.budget == 512  # from the file; None flags do not override
    assert cfg.compress == "tome:0.5"  # flag wins
    tree = resolve(yaml=path, flags={"compress": "tome:0.5", "budget": None})
    assert (tree.sampler.name, tree.sampler.config.frames) == ("coverage", 64)
    assert tree.budget == 512 and [c.name for c in tree.compressors] == ["tome"]


def test_flat_yaml_round_trip(tmp_path):
    cfg = resolve_config(preset="offline", budget=64, encoder_options={"batch_size": 8})
    save_yaml(cfg, tmp_path / "c.yaml")
    assert resolve_config(config_file=tmp_path / "c.yaml") == cfg


@pytest.mark.parametrize("flags", [
    {},
    {"compress": "scenetile,tome:0.5,pool:2", "budget": 2048, "sample": "uniform:8", "device": "cpu"},
    {"sample": "window:1-3+query:4", "compress": "select:3", "encoder_options": {"batch_size": 4}},
    {"compress": [{"name": "tome", "ratio": 0.25}, "pool:2"], "sample": {"name": "uniform", "num_frames": 6},
     "model_options": {"scoring": "letter"}, "max_side": 224, "cache": False},
])
def test_saved_tree_reads_back_to_the_same_resolved_pipeline(tmp_path, flags):
    tree = resolve(preset="offline", flags=flags)
    tree.save(tmp_path / "config.yaml")
    again = resolve(yaml=tmp_path / "config.yaml")
    assert again == tree and again.to_dict() == tree.to_dict()
    # flags still apply on top of a saved tree, and the runtime's device reaches the plug-ins that follow it
    moved = resolve(yaml=tmp_path / "config.yaml", flags={"device": "cuda", "budget": 7})
    assert moved.budget == 7 and moved.runtime.device == "cuda" and moved.encoder.config.device == "cuda"
    assert moved.model.config.device == "cuda" and moved.sampler == tree.sampler


def test_every_default_is_pinned_in_the_tree():
    tree = resolve(preset="offline").to_dict()
    assert tree["encoder"]["options"]["batch_size"] == 16 and tree["encoder"]["options"]["resize"] == "squash"
    assert tree["model"]["options"]["scoring"] == "fused" and tree["model"]["family"] == "socratic"
    from mmlong.registry import SAMPLERS

    coverage = SAMPLERS.resolve("coverage").Config
    assert tree["sampler"] == {"name": "coverage", "options": {f.name: getattr(coverage(), f.name)
                                                              for f in dataclasses.fields(coverage)}}
    assert set(tree) == {"decoder", "sampler", "encoder", "compressors", "budget", "model", "experts", "subtitles",
                         "runtime"}
    assert tree["experts"] == "ocr,asr"  # the offline preset reads on-screen text and speech


def test_unknown_setting_suggests(tmp_path):
    (tmp_path / "bad.yaml").write_text("budgett: 3\n")
    with pytest.raises(ConfigError, match="did you mean 'budget'"):
        resolve_config(config_file=tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        resolve_config(config_file=tmp_path / "list.yaml")
    (tmp_path / "tree.yaml").write_text("sampler: {name: uniform, options: {num_frames: 4}}\nruntim: {}\n")
    with pytest.raises(ConfigError, match="unknown section 'runtim'; did you mean 'runtime'"):
        resolve(yaml=tmp_path / "tree.yaml")


@pytest.mark.parametrize("flags, message", [
    ({"model_options": {"scorng": "letter"}}, "model 'socratic' has no option 'scorng'; did you mean 'scoring'"),
    ({"encoder_options": {"batch_sise": 4}},
     "encoder 'efficientnet-lite0' has no option 'batch_sise'; did you mean 'batch_size'"),
    ({"compress": "tome:ratoi=0.5"}, "compressor 'tome' has no option 'ratoi'; did you mean 'ratio'"),
    ({"compress": [{"name": "pool", "factr": 2}]}, "compressor 'pool' has no option 'factr'; did you mean 'factor'"),
    ({"compress": "tomee:0.5"}, "unknown compressor 'tomee'; did you mean 'tome'"),
    ({"sample": {"name": "uniform", "num_frame": 4}},
     "sampler 'uniform' has no option 'num_frame'; did you mean 'num_frames'"),
    ({"sample": "unifrom:4"}, "unknown sampler 'unifrom'; did you mean 'uniform'"),
    ({"encoder": "efficientnet-lite"}, "unknown encoder 'efficientnet-lite'; did you mean 'efficientnet-lite0'"),
    ({"decoder": "pyavv"}, "unknown decoder 'pyavv'"),
    ({"model": "socratc"}, "unknown model 'socratc'; did you mean 'socratic'"),
])
def test_a_misspelt_option_fails_with_a_suggestion(flags, message):
    with pytest.raises(ConfigError) as err:
        resolve(preset="offline", flags=flags)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_misspelt_options_in_a_yaml_file_fail_too(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("model_options:\n  min_prb: 0.1\n")
    with pytest.raises(ConfigError, match="no option 'min_prb'; did you mean 'min_prob'"):
        resolve(yaml=path)


def test_flags_resolve_to_the_tree():
    tree = resolve_args(parse("--compress", "scenetile,tome:0.5", "--budget", "2048", "--no-cache"))
    assert isinstance(tree, ResolvedPipeline)
    assert [c.name for c in tree.compressors] == ["scenetile", "tome"] and tree.compressors[1].config.ratio == 0.5
    assert (tree.budget, tree.runtime.cache, tree.runtime.trust_remote_code) == (2048, False, False)
    assert tree.compress_spec.startswith("scenetile") and ",tome:0.5" in tree.compress_spec


def test_in_llm_compressors_need_a_native_model_and_the_native_encoder_one():
    with pytest.raises(ConfigError, match="cannot run in-LLM compressors"):
        resolve(preset="offline", flags={"compress": "fastv:2,0.5"})
    with pytest.raises(ConfigError, match="has no native encoder"):
        resolve(preset="offline", flags={"encoder": "native"})


def test_with_device_moves_the_plugins_that_followed_the_runtime():
    tree = resolve(preset="offline", flags={"encoder_options": {"device": "cpu"}})
    moved = tree.with_device("cuda:1")
    assert moved.runtime.device == "cuda:1" and moved.model.config.device == "cuda:1"
    assert tree.runtime.device == "cpu" and moved.answer_settings() == tree.answer_settings()


def test_legacy_flat_yaml_with_model_path_still_loads(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"model_type": "smolvlm"}')
    path = tmp_path / "old.yaml"
    save_yaml(PipelineConfig(model="smolvlm2", model_path=str(ckpt), encoder="native", sample="uniform:4"), path)
    tree = resolve(yaml=path)
    assert (tree.model.family, tree.model.ref.source, tree.model.config.path) == ("smolvlm2", "local", str(ckpt))
    assert tree.encoder.name == "native" and tree.sampler.config.num_frames == 4
