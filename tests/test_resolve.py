"""``--model X`` means one thing everywhere: CLI flags, YAML, the demo's settings, ``mmlong eval``, the lmms-eval
bridge's settings, all through mmlong.config.modelref.resolve_model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmlong.apps.cli import build_parser
from mmlong.apps.options import resolve_args, resolve_settings
from mmlong.config.modelref import ModelRef, resolve_model
from mmlong.config.resolve import resolve
from mmlong.errors import ConfigError, ModelLoadError


@pytest.fixture()
def ckpt(tmp_path):
    """A local checkpoint directory as far as resolution looks: config.json with a model_type."""
    path = tmp_path / "my-llava"
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": "llava_onevision"}))
    return path


def every_entry_point(model: str, tmp_path, extra: tuple[str, ...] = ()):
    """The same --model through each entry point; all must give the same tree."""
    from mmlong.apps.demo.command import DemoApp, DemoSettings

    yaml_file = tmp_path / "p.yaml"
    yaml_file.write_text(f"preset: offline\nmodel: '{model}'\n")
    parser = build_parser()
    trees = {
        "ask": resolve_args(parser.parse_args(["ask", "v.mp4", "q", "--model", model, *extra])),
        "batch": resolve_args(parser.parse_args(["batch", "q.jsonl", "--model", model, *extra])),
        "eval": resolve_args(parser.parse_args(["eval", "mlvu", "--data", "d", "--out", "o", "--model", model,
                                                *extra])),
        "compare": resolve_args(parser.parse_args(["eval", "compare", "niavh", "d", "--out", "o", "--model", model,
                                                   *extra])),
        "plan": resolve_args(parser.parse_args(["plan", "v.mp4", "--preset", "offline", "--model", model, *extra])),
        "yaml": resolve(yaml=yaml_file, flags={"model_family": extra[1] if extra else None}),
        "lmms": resolve_settings("offline", None, {"model": model, "device_map": "auto",
                                                   **({"model_family": extra[1]} if extra else {})},
                                 ignore=("device_map", "max_length")),
    }
    if not extra:
        trees["python"] = resolve(preset="offline", flags={"model": model})
    # the demo's page may name registered models and folders under --model-root only (no hub downloads)
    root = ["--model-root", str(Path(model).resolve().parent)] if Path(model).is_dir() else []
    demo = DemoApp(parser.parse_args(["demo", *root, *extra]), tmp_path / "demo")
    if "/" in model and not Path(model).exists():
        with pytest.raises(ConfigError, match="the model field takes a registered model"):
            demo.config_for(DemoSettings(model=model))
        return trees
    trees["demo"] = demo.config_for(DemoSettings(model=model))
    demo_max = trees["demo"].runtime.max_duration  # the demo adds its own duration limit
    trees["demo"] = trees["demo"].__class__(**{**trees["demo"].__dict__,
                                               "runtime": trees["ask"].runtime}) if demo_max else trees["demo"]
    return trees


def test_a_local_directory_resolves_the_same_everywhere(ckpt, tmp_path):
    trees = every_entry_point(str(ckpt), tmp_path)
    first = trees["ask"]
    assert first.model.ref == ModelRef("llava-onevision", str(ckpt.resolve()), "local", str(ckpt.resolve()))
    assert first.model.config.path == str(ckpt.resolve()) and first.encoder.name == "native"
    for where, tree in trees.items():
        assert tree == first, where


def test_a_registered_name_resolves_the_same_everywhere(tmp_path):
    trees = every_entry_point("qwen2-vl", tmp_path)
    first = trees["ask"]
    assert first.model.ref == ModelRef("qwen2-vl", None, "registered", "qwen2-vl")
    assert first.model.config.path == "Qwen/Qwen2-VL-2B-Instruct"  # the adapter's own default
    assert first.encoder.name == "native"  # the preset's encoder follows a native model
    for where, tree in trees.items():
        assert tree == first, where


def test_a_hub_id_resolves_the_same_everywhere(tmp_path):
    trees = every_entry_point("HuggingFaceTB/SmolVLM2-500M-Video-Instruct", tmp_path)
    first = trees["ask"]
    assert first.model.ref.source == "hub" and first.model.family == "smolvlm2"
    assert first.model.config.path == "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
    for where, tree in trees.items():
        assert tree == first, where


def test_a_hub_id_of_no_known_family_names_the_fix_and_the_override_works(tmp_path):
    with pytest.raises(ConfigError, match="cannot tell the model family .* --model-family NAME .*qwen2-vl"):
        resolve(flags={"model": "acme/vision-7b"})
    trees = every_entry_point("acme/vision-7b", tmp_path, extra=("--model-family", "qwen2-vl"))
    first = trees["ask"]
    assert first.model.ref == ModelRef("qwen2-vl", "acme/vision-7b", "hub", "acme/vision-7b")
    for where, tree in trees.items():
        assert tree == first, where
    with pytest.raises(ConfigError, match="unknown model family 'qwen2vl'; did you mean 'qwen2-vl'"):
        resolve(flags={"model": "acme/vision-7b", "model_family": "qwen2vl"})


@pytest.mark.parametrize("hub_id, family", [
    ("Qwen/Qwen2-VL-2B-Instruct", "qwen2-vl"),
    ("Qwen/Qwen2-VL-7B-Instruct", "qwen2-vl"),
    ("llava-hf/llava-onevision-qwen2-0.5b-ov-hf", "llava-onevision"),
    ("HuggingFaceTB/SmolVLM2-2.2B-Instruct", "smolvlm2"),
])
def test_hub_ids_name_their_family(hub_id, family):
    assert resolve_model(hub_id) == ModelRef(family, hub_id, "hub", hub_id)


def test_paths_that_do_not_exist_and_unknown_names_fail_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="no such model directory"):
        resolve_model(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="no such model directory"):
        resolve_model("models/qwen/ckpt")  # two slashes: a path, never a hub id
    with pytest.raises(ConfigError, match="unknown model 'lava-onevision'; did you mean 'llava-onevision'"):
        resolve_model("lava-onevision")
    (tmp_path / "weird").mkdir()
    (tmp_path / "weird" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ConfigError, match="'bert' is not a supported family"):
        resolve_model(str(tmp_path / "weird"))


def test_the_unregistered_auto_model_is_gone(ckpt):
    tree = resolve(preset="qwen2-vl", flags={"model": str(ckpt)})
    assert tree.model.family == "llava-onevision"  # the directory says what it is, whatever the preset said
    assert tree.model.ref.source == "local" and tree.model.plugin.plugin_class().__name__ == "LlavaOneVisionAdapter"


@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE", "no network"])
def test_a_hub_id_without_a_network_fails_at_once_saying_to_pass_the_downloaded_directory(how, tmp_path,
                                                                                         monkeypatch):
    import socket

    from mmlong.pipeline import Pipeline

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))  # nothing cached
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    if how == "HF_HUB_OFFLINE":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:  # the machine has no route to the hub
        def refuse(*args, **kwargs):
            raise OSError("Network is unreachable")
        monkeypatch.setattr(socket, "create_connection", refuse)
    import huggingface_hub.file_download as download

    def no_hub_call(*args, **kwargs):
        raise AssertionError("the hub client was asked (and would retry)")
    monkeypatch.setattr(download, "hf_hub_download", no_hub_call)
    pipeline = Pipeline(resolve(flags={"model": "Qwen/Qwen2-VL-2B-Instruct"}))
    with pytest.raises(ModelLoadError) as err:
        pipeline.load_model()
    text = str(err.value)
    assert text.startswith("Qwen/Qwen2-VL-2B-Instruct: the Hugging Face hub cannot be reached")
    assert "pass the downloaded directory: --model /path/to/checkpoint" in text and "\n" not in text


def test_lmms_bridge_settings(ckpt):
    # lmms-eval's argument parser gives typed values (numbers, true/false) for model_args
    tree = resolve_settings("offline", None, {"model": str(ckpt), "budget": 64, "cache": False,
                                              "max_length": 2048}, ignore=("device_map", "max_length"))
    assert (tree.model.family, tree.budget, tree.runtime.cache) == ("llava-onevision", 64, False)


def test_every_plugin_builds_from_its_resolved_node():
    """A tree node (kind, name, Config) builds its plug-in, and a class's own name is its registered name."""
    from mmlong.config.resolve import Plugin
    from mmlong.registry import COMPRESSORS, ENCODERS, MODELS, SAMPLERS

    for registry in (SAMPLERS, COMPRESSORS, ENCODERS, MODELS):
        for name in registry.names():
            cls = registry.resolve(name)
            assert cls.name == name, (registry.kind, name)
    node = Plugin("compressor", "tome", COMPRESSORS.make_config("tome", ("0.25",)))
    built = node.build()
    assert type(built).__name__ == "ToMe" and built.config.ratio == 0.25 and node.describe() == "tome:0.25"


def test_every_registered_benchmark_is_a_benchmark_built_from_its_config():
    """``eval`` and ``eval compare`` find benchmarks through the registry; each has the one interface."""
    from mmlong.apps.eval.run import build_benchmark
    from mmlong.benchmarks.scoring import Benchmark
    from mmlong.registry import BENCHMARKS

    assert {"mlvu", "niavh", "videomme", "longvideobench"} <= set(BENCHMARKS.names())
    for name in BENCHMARKS.names():
        cls = BENCHMARKS.resolve(name)
        assert issubclass(cls, Benchmark) and cls.name == name, name
    bench = build_benchmark("videomme", data="somewhere", limit=3)
    assert (bench.config.data, bench.config.limit) == ("somewhere", 3)
    with pytest.raises(ConfigError, match="did you mean 'limit'"):
        build_benchmark("videomme", data="d", limt=3)


@pytest.mark.parametrize("argv, tokens, memory", [
    (["--budget", "2048"], 2048, None),
    (["--memory-budget", "12GB"], None, 12_000_000_000),
    (["--memory-budget", "512MiB"], None, 512 * 2**20),
])
def test_the_budget_is_tokens_for_the_chain_or_memory_for_the_runtime(argv, tokens, memory, tmp_path):
    parser = build_parser()
    for command in (["ask", "v.mp4", "q"], ["batch", "q.jsonl"], ["plan", "v.mp4", "--preset", "offline"],
                    ["eval", "compare", "niavh", "d", "--out", "o"]):
        tree = resolve_args(parser.parse_args([*command, *argv]))
        assert (tree.budget, tree.runtime.memory_budget) == (tokens, memory), command
    tree.save(tmp_path / "config.yaml")
    assert resolve(yaml=tmp_path / "config.yaml") == tree  # the saved tree reads back with its budget
    key, text = argv[0][2:].replace("-", "_"), argv[1]
    lmms = resolve_settings("offline", None, {key: text})  # the bridge's settings are strings
    yaml_file = tmp_path / "b.yaml"
    yaml_file.write_text(f"preset: offline\n{key}: '{text}'\n")
    assert resolve(yaml=yaml_file) == lmms == tree


def test_a_memory_size_under_budget_is_refused_naming_memory_budget(tmp_path):
    yaml_file = tmp_path / "b.yaml"
    yaml_file.write_text("preset: offline\nbudget: 12GB\n")
    with pytest.raises(ConfigError, match="pass it as memory_budget 12GB"):
        resolve(yaml=yaml_file)
    with pytest.raises(ConfigError, match="memory_budget"):
        resolve_settings("offline", None, {"budget": "12GB"})


def test_a_memory_budget_does_not_change_answers_so_a_resume_may_change_it():
    with_budget = resolve(preset="offline", flags={"memory_budget": "12GB"})
    assert with_budget.runtime.memory_budget == 12_000_000_000
    assert with_budget.answer_settings() == resolve(preset="offline").answer_settings()
    with pytest.raises(ConfigError, match="has no unit"):
        resolve(flags={"memory_budget": "2048"})


@pytest.mark.parametrize("command", [["ask", "v.mp4", "q"], ["batch", "q.jsonl"], ["plan", "v.mp4"],
                                     ["eval", "mlvu", "--data", "d", "--out", "o"]])
def test_a_misspelt_option_stops_every_command_with_a_suggestion(command, tmp_path, capsys):
    from mmlong.apps.cli import main

    yaml_key = tmp_path / "key.yaml"
    yaml_key.write_text("sampel: uniform:4\n")
    model_key = tmp_path / "model.yaml"
    model_key.write_text("preset: offline\nmodel_options: {scorng: letter}\n")
    cases = [(["--compress", "tome:ratoi=0.5"], "did you mean 'ratio'"),
             (["--config", str(yaml_key)], "did you mean 'sample'"),
             (["--config", str(model_key)], "did you mean 'scoring'"),
             (["--model", "qwen2vl"], "did you mean 'qwen2-vl'")]
    for extra, hint in cases:
        assert main([*command, *extra]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("mmlong: error:") and hint in err[0], (extra, err)


def test_a_config_files_preset_is_kept_unless_a_preset_flag_is_given(tmp_path):
    parser = build_parser()
    yaml_file = tmp_path / "p.yaml"
    yaml_file.write_text("preset: qwen2-vl\nsample: uniform:4\n")
    for command in (["ask", "v.mp4", "q"], ["plan", "v.mp4"], ["batch", "q.jsonl"]):
        tree = resolve_args(parser.parse_args([*command, "--config", str(yaml_file)]))
        assert (tree.model.family, tree.sample_spec) == ("qwen2-vl", "uniform:4"), command
        flagged = resolve_args(parser.parse_args([*command, "--config", str(yaml_file), "--preset", "offline"]))
        assert flagged.model.family == "socratic", command
    for command in (["plan", "v.mp4"], ["ask", "v.mp4", "q"], ["batch", "q.jsonl"]):  # one default preset
        assert resolve_args(parser.parse_args(command)).model.family == "socratic", command


def test_plan_takes_a_shape_by_its_own_flag_and_model_as_everywhere(capsys):
    from mmlong.apps.cli import main

    assert main(["plan", "v.mp4", "--model", "2b"]) == 2
    assert "a model shape is given with --shape 2b" in capsys.readouterr().err
    assert main(["plan", "v.mp4", "--shape", "9b"]) == 2
    assert "not a planned shape" in capsys.readouterr().err


def test_a_chain_step_whose_first_option_is_unset_is_described_by_its_name():
    """A bare ``prunevid`` (ratio unset: it reads the budget) is written ``prunevid``, not ``prunevid:None``;
    an option that differs from its default still shows."""
    tree = resolve("offline", flags={"compress": "prunevid,tome:0.5"})
    assert tree.compress_spec == "prunevid,tome:0.5"
    tuned = resolve("offline", flags={"compress": "prunevid:tau=0.7"})
    assert tuned.compress_spec == "prunevid:tau=0.7"


def test_flags_yaml_and_spec_text_are_read_by_one_coercion(tmp_path):
    """Spec arguments, YAML values and flag text all go through mmlong.validate.coerce: the same words mean
    the same values wherever they are written, and the same bad word is the same one-line error."""
    from mmlong.validate import coerce

    rp = resolve(preset="offline", flags={"cache": "off", "trust_remote_code": "no", "max_side": "224",
                                          "compress": "tome:0.25"})
    assert (rp.runtime.cache, rp.runtime.trust_remote_code, rp.decoder.max_side) == (False, False, 224)
    assert rp.compressors[0].config.ratio == 0.25
    from_yaml = tmp_path / "c.yaml"
    from_yaml.write_text("cache: 'off'\nmax_side: '224'\ncompress: [{name: tome, ratio: '0.25'}]\n")
    assert resolve(preset="offline", yaml=from_yaml).to_dict() == rp.to_dict()
    assert coerce("x", "off", bool) is False and coerce("x", "0.25", float | str) == 0.25
    with pytest.raises(ConfigError, match="option: cache: expected bool, got 'maybe'"):
        resolve(flags={"cache": "maybe"})
    with pytest.raises(ConfigError, match="option 'num_frames': expected int, got 'half'"):
        resolve(flags={"sample": {"name": "uniform", "num_frames": "half"}})
def test_model_option_flags_set_model_options_checked_like_yaml(tmp_path):
    parser = build_parser()
    args = parser.parse_args(["ask", "v.mp4", "q", "--model-option", "scoring=letter",
                              "--model-option", "max_new_tokens=32"])
    tree = resolve_args(args)
    assert (tree.model.config.scoring, tree.model.config.max_new_tokens) == ("letter", 32)
    yaml_file = tmp_path / "m.yaml"
    yaml_file.write_text("preset: offline\nmodel_options: {open_answer: generate, scoring: evidence}\n")
    tree = resolve_args(parser.parse_args(["plan", "v.mp4", "--config", str(yaml_file),
                                           "--model-option", "scoring=letter"]))
    assert (tree.model.config.open_answer, tree.model.config.scoring) == ("generate", "letter")  # flag adds to file
    with pytest.raises(ConfigError, match="did you mean 'scoring'"):
        resolve_args(parser.parse_args(["batch", "q.jsonl", "--model-option", "scorng=letter"]))


def test_a_model_option_without_equals_is_refused_in_one_line(capsys):
    from mmlong.apps.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["ask", "v.mp4", "q", "--model-option", "scoring"])
    assert exit_info.value.code == 2
    assert "--model-option 'scoring': write KEY=VALUE" in capsys.readouterr().err.splitlines()[-1]


def test_gen_kwargs_and_model_args_feed_the_same_checked_model_options(capsys):
    """lmms-eval / transformers users' spellings: ``--gen_kwargs k=v,...`` and ``--model_args k=v,...`` add to
    the model options like ``--model-option``; unknown keys are refused like YAML keys."""
    from mmlong.apps.cli import main

    parser = build_parser()
    tree = resolve_args(parser.parse_args(["ask", "v.mp4", "q", "--gen_kwargs", "max_new_tokens=64,temperature=0",
                                           "--model_args", "scoring=letter,open_answer=generate"]))
    assert (tree.model.config.max_new_tokens, tree.model.config.scoring, tree.model.config.open_answer) == (
        64, "letter", "generate")
    args = parser.parse_args(["batch", "q.jsonl", "--model-option", "max_new_tokens=8", "--gen-kwargs",
                              "do_sample=False,num_beams=1,max_new_tokens=16"])
    assert args.model_options == [("max_new_tokens", "8"), ("max_new_tokens", "16")]  # the last one wins
    assert resolve_args(args).model.config.max_new_tokens == 16
    with pytest.raises(ConfigError, match="has no option 'max_new_token'; did you mean 'max_new_tokens'"):
        resolve_args(parser.parse_args(["ask", "v.mp4", "q", "--gen_kwargs", "max_new_token=64"]))
    for flags, reason in [(["--gen_kwargs", "max_new_tokens=64,temperature=0.7"],
                           "--gen_kwargs temperature=0.7: decoding is greedy here; only temperature=0 is accepted"),
                          (["--model_args", "scoring"], "--model_args 'scoring': write KEY=VALUE")]:
        with pytest.raises(SystemExit) as exit_info:
            main(["ask", "v.mp4", "q", *flags])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and reason in err[0]


def test_the_help_names_the_canonical_model_option_flag():
    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["ask"].format_help().split())
    assert "--model-option KEY=VALUE" in help_text and "The canonical spelling; --gen_kwargs and --model_args" \
        " are aliases" in help_text
    assert "--gen_kwargs K=V,..., --gen-kwargs K=V,..." in help_text
