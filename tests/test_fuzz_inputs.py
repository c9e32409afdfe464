"""Property-based checks of every place user input enters (hypothesis): specs, numbers, option maps, YAML
documents, CLI flags, batch JSONL lines and the demo's form fields.

The property is the same everywhere: the input is either used (a valid run, bounded by what the video holds)
or refused with one :class:`~mmlong.errors.ConfigError` line — never another exception, never a traceback.
Examples are derandomised so CI sees the same inputs on every run; the whole file runs in well under a minute.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmlong.compressors.base import Chain, CompressContext, Placement
from mmlong.config.request import PipelineConfig, resolve_config
from mmlong.errors import ConfigError, MmlongError
from mmlong.qa import Query
from mmlong.registry import COMPRESSORS, SAMPLERS
from mmlong.sampling.basic import SampleContext, build_sampler
from mmlong.types import VideoMeta, VisualTokens

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# ---------------------------------------------------------------------------------------------- strategies

NUMBER_TEXT = st.one_of(
    st.sampled_from(["nan", "NaN", "inf", "-inf", "1e308", "1e400", "-1e308", "0", "-0", "-1", "1e12",
                     "99999999999999999999", "0.5", "1/16", "", " ", "1e-320", "0x10", "1_000", "+3", "auto",
                     "none", "true"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10 ** 30), max_value=10 ** 30).map(str),
    st.text(alphabet="0123456789.-+eE:/_ ", max_size=8),
)
WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-", min_size=1, max_size=10)


def spec_text(names: list[str]) -> st.SearchStrategy[str]:
    """``name[:arg,arg,key=value]`` with registered or random names and hostile arguments."""
    name = st.one_of(st.sampled_from(names), WORD)
    arg = st.one_of(NUMBER_TEXT, st.builds(lambda k, v: f"{k}={v}", WORD, NUMBER_TEXT))
    return st.builds(lambda n, args: n + (":" + ",".join(args) if args else ""), name,
                     st.lists(arg, max_size=3))


SAMPLER_NAMES = ["uniform", "fps", "window", "scene", "query"]
sampler_spec = st.one_of(
    spec_text(SAMPLER_NAMES),
    st.builds(lambda a, b, inner: f"window:{a}-{b}+{inner}", NUMBER_TEXT, NUMBER_TEXT, spec_text(SAMPLER_NAMES)),
    st.text(max_size=20),
)
chain_spec = st.one_of(
    st.lists(spec_text(COMPRESSORS.names()), min_size=1, max_size=3).map(",".join),
    st.text(max_size=20),
)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10 ** 20), max_value=10 ** 20),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
yaml_value = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                          st.dictionaries(WORD, inner, max_size=3)), max_leaves=8)
FIELDS = [f for f in PipelineConfig.__dataclass_fields__]
yaml_document = st.dictionaries(st.one_of(st.sampled_from(FIELDS + ["preset"]), WORD, st.integers()), yaml_value,
                                max_size=4)

VIDEO_METAS = [
    VideoMeta("short.mp4", duration=3.0, fps=10.0, num_frames=30, width=64, height=48),
    VideoMeta("hour.mp4", duration=3600.0, fps=25.0, num_frames=90_000, width=64, height=48),
    VideoMeta("one.mp4", duration=0.04, fps=25.0, num_frames=1, width=64, height=48),
]


def refused_in_one_line(err: BaseException) -> None:
    assert isinstance(err, ConfigError), f"{type(err).__name__}: {err}"
    assert str(err).strip() and "\n" not in str(err).strip()


# ---------------------------------------------------------------------------------------------- samplers


@FUZZ
@given(spec=sampler_spec)
def test_any_sampler_spec_is_built_bounded_or_refused(spec):
    try:
        sampler = build_sampler(spec)
    except Exception as err:  # noqa: BLE001 - the property is about which exceptions
        refused_in_one_line(err)
        return
    if getattr(sampler, "needs_encoder", False):
        return  # scan-based samplers need a video and an encoder: covered through the CLI below
    for meta in VIDEO_METAS:
        try:
            picked = sampler.sample(meta, SampleContext()).indices
        except Exception as err:  # noqa: BLE001
            refused_in_one_line(err)
            continue
        assert 1 <= len(picked) <= meta.num_frames
        assert int(picked.min()) >= 0 and int(picked.max()) < meta.num_frames


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from tests.media import make_test_video

    return make_test_video(tmp_path_factory.mktemp("fuzz") / "clip.mp4", num_frames=12, fps=6, size=(32, 24))


@settings(FUZZ, max_examples=20)
@given(spec=sampler_spec)
def test_frames_command_runs_or_exits_2_with_one_line(tiny_clip, tmp_path_factory, capsys, spec):
    from mmlong.apps.cli import main

    out = tmp_path_factory.mktemp("sheet") / "s.png"
    status = main(["frames", tiny_clip, "--sample", spec, "--out", str(out), "--max-side", "32"])
    _, err = capsys.readouterr()
    if status == 0:
        assert out.is_file()
    else:
        assert status == 2, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("mmlong: error: "), err


# ---------------------------------------------------------------------------------------------- compressors


def small_tokens() -> VisualTokens:
    generator = torch.Generator().manual_seed(0)
    return VisualTokens.from_grid(torch.randn(4, 3, 3, 8, generator=generator), torch.arange(4.0))


@FUZZ
@given(spec=chain_spec, budget=st.one_of(st.none(), st.integers(min_value=1, max_value=40)))
def test_any_chain_spec_is_built_and_runs_or_is_refused(spec, budget):
    try:
        chain = Chain.from_spec(spec)
    except Exception as err:  # noqa: BLE001
        refused_in_one_line(err)
        return
    if any(step.stage != Placement.PRE_LLM for step in chain.steps):
        return  # in-LLM pruning runs inside a language model (tests/test_llm_pruning.py)
    if any(_large_option(step) for step in chain.steps):
        return  # an honest but heavy config (a 10^20-token memory); its range is the user's choice
    query = Query("what is shown?", options=("a cat", "a dog"))
    try:
        out = chain(small_tokens(), CompressContext(query=query, budget=budget))
    except Exception as err:  # noqa: BLE001
        refused_in_one_line(err)
        return
    assert out.num_tokens >= 1  # memory bridges may add memory tokens, nothing may vanish entirely
    assert torch.isfinite(out.features).all()


def _large_option(step) -> bool:
    config = getattr(step, "config", None)
    values = vars(config).values() if config is not None and hasattr(config, "__dict__") else ()
    return any(isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) > 4096 for v in values)


@FUZZ
@given(name=st.sampled_from(COMPRESSORS.names() + SAMPLERS.names()),
       options=st.dictionaries(st.one_of(WORD, st.sampled_from(["ratio", "factor", "k", "frames", "budget"])),
                               SCALAR, max_size=3))
def test_any_option_map_is_typed_or_refused(name, options):
    registry = COMPRESSORS if name in COMPRESSORS else SAMPLERS
    try:
        config = registry.make_config(name, (), **options)
    except Exception as err:  # noqa: BLE001
        refused_in_one_line(err)
        return
    for key, value in vars(config).items():
        if isinstance(value, float):
            assert math.isfinite(value), (name, key, value)


# ---------------------------------------------------------------------------------------------- configs


@FUZZ
@given(document=st.one_of(yaml_document, yaml_value))
def test_any_yaml_document_resolves_or_is_refused(tmp_path_factory, document):
    path = tmp_path_factory.mktemp("yaml") / "pipeline.yaml"
    try:
        path.write_text(yaml.safe_dump(document, allow_unicode=True))
    except yaml.YAMLError:
        return
    _resolve_or_refuse(config_file=path)


@FUZZ
@given(content=st.binary(max_size=200))
def test_any_bytes_as_a_config_file_resolve_or_are_refused(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("raw") / "pipeline.yaml"
    path.write_bytes(content)
    _resolve_or_refuse(config_file=path)


@FUZZ
@given(overrides=st.fixed_dictionaries({}, optional={
    "sample": st.one_of(sampler_spec, SCALAR), "compress": st.one_of(chain_spec, SCALAR),
    "budget": SCALAR, "max_side": SCALAR, "chunk_size": SCALAR, "max_duration": SCALAR, "dtype": SCALAR,
    "encoder_options": st.one_of(SCALAR, st.dictionaries(WORD, SCALAR, max_size=2)),
    "model_options": st.one_of(SCALAR, st.dictionaries(WORD, SCALAR, max_size=2)),
}))
def test_any_flag_values_resolve_or_are_refused(overrides):
    _resolve_or_refuse(**overrides)


def _resolve_or_refuse(**inputs) -> None:
    try:
        cfg = resolve_config(**inputs)
        build_sampler(cfg.sample)
        Chain.from_spec(cfg.compress)
    except MmlongError as err:
        refused_in_one_line(err)
        return
    except Exception as err:  # noqa: BLE001
        pytest.fail(f"{inputs!r} raised {type(err).__name__}: {err}")
    assert isinstance(cfg.sample, str) and isinstance(cfg.compress, str)
    assert cfg.budget is None or (isinstance(cfg.budget, int) and cfg.budget >= 1)
    assert isinstance(cfg.model_options, dict) and isinstance(cfg.encoder_options, dict)


# ---------------------------------------------------------------------------------------------- batch, demo

json_line = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40).map(str.encode),
    st.builds(lambda d: json.dumps(d).encode(),
              st.dictionaries(st.sampled_from(["id", "video", "question", "options", "x"]),
                              st.one_of(SCALAR, st.lists(SCALAR, max_size=2)), max_size=5)),
)


@FUZZ
@given(lines=st.lists(json_line, min_size=1, max_size=6))
def test_any_questions_file_gives_items_and_error_lines(tmp_path_factory, lines):
    from mmlong.apps.batch import BadLine, BatchItem, read_questions

    path = tmp_path_factory.mktemp("q") / "questions.jsonl"
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
    try:
        entries = read_questions(path)
    except Exception as err:  # noqa: BLE001 - an empty file or an id given twice stops the run
        refused_in_one_line(err)
        return
    assert all(isinstance(e, (BatchItem, BadLine)) for e in entries)
    for entry in entries:
        if isinstance(entry, BadLine):
            assert entry.error.startswith(f"line {entry.line}: ") and "\n" not in entry.error
        else:
            assert entry.question.strip() and entry.video.strip()


@pytest.fixture(scope="module")
def demo_app(tmp_path_factory):
    from mmlong.apps.cli import build_parser
    from mmlong.apps.demo.command import DemoApp

    args = build_parser().parse_args(["demo"])
    return DemoApp(args, tmp_path_factory.mktemp("demo"))


@FUZZ
@given(fields=st.tuples(st.one_of(st.none(), st.sampled_from(["offline", "qwen2-vl"]), st.text(max_size=8)),
                        st.one_of(st.none(), sampler_spec), st.one_of(st.none(), chain_spec),
                        st.one_of(st.none(), NUMBER_TEXT, st.text(max_size=6)),
                        st.one_of(st.none(), st.text(max_size=12))))
def test_any_demo_settings_resolve_or_show_one_line(demo_app, fields):
    from mmlong.apps.demo.command import DemoSettings
    from mmlong.pipeline import Pipeline

    try:
        settings_ = DemoSettings.from_fields(*fields)
        config = demo_app.config_for(settings_)
        Pipeline(config)
        config.sampler.build()
    except Exception as err:  # noqa: BLE001
        refused_in_one_line(err)
