from __future__ import annotations

import argparse

import pytest

from mmlong.apps.options import add_pipeline_arguments, config_from_args
from mmlong.config import PipelineConfig, resolve_config, save_yaml
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


def test_yaml_round_trip(tmp_path):
    cfg = resolve_config(preset="offline", budget=64, encoder_options={"batch_size": 8})
    save_yaml(cfg, tmp_path / "c.yaml")
    assert resolve_config(config_file=tmp_path / "c.yaml") == cfg


def test_unknown_setting_suggests(tmp_path):
    (tmp_path / "bad.yaml").write_text("budgett: 3\n")
    with pytest.raises(ConfigError, match="did you mean 'budget'"):
        resolve_config(config_file=tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        resolve_config(config_file=tmp_path / "list.yaml")


def test_flags_resolve_to_the_same_dataclass(tmp_path):
    cfg = config_from_args(parse("--compress", "scenetile,tome:0.5", "--budget", "2048", "--no-cache"))
    assert isinstance(cfg, PipelineConfig)
    assert (cfg.compress, cfg.budget, cfg.cache, cfg.trust_remote_code) == ("scenetile,tome:0.5", 2048, False, False)
    model_dir = tmp_path / "ckpt"
    model_dir.mkdir()
    cfg = config_from_args(parse("--model", str(model_dir)))
    assert cfg.model_path == str(model_dir) and cfg.encoder == "native"
