"""Chains of pre-LLM compressors: order rules, spec strings, provenance and budgets."""

from __future__ import annotations

import pytest
import torch

from mmlong.compressors.base import Chain, CompressContext, Compressor
from mmlong.errors import ConfigError
from mmlong.qa import Query
from mmlong.registry import COMPRESSORS
from mmlong.types import VisualTokens
from tests.tiny_text_encoder import TinyTextEncoder, concept_frames

MINE = ("pool", "tpool", "progressive", "tome", "tmerge", "select", "scenetile", "stream-memory", "recurrent-bridge")


class KeepFirstHalfInLLM(Compressor):
    """A minimal in-LLM stage (a model adapter would run it inside the language model)."""

    name = "keep-half"
    stage = "in_llm"


def video() -> VisualTokens:
    labels = ["tree"] * 6 + ["cat"] * 4 + ["car"] * 6
    return VisualTokens.from_grid(concept_frames(labels, hw=4), torch.arange(16, dtype=torch.float64))


def test_pre_llm_after_in_llm_is_rejected():
    pool = COMPRESSORS.create("pool", 2)
    with pytest.raises(ConfigError, match="'pool' comes after in-LLM step 'keep-half'"):
        Chain([KeepFirstHalfInLLM(), pool])
    chain = Chain([pool, KeepFirstHalfInLLM()])
    assert chain.pre_llm == [pool] and [s.name for s in chain.in_llm] == ["keep-half"]
    out = chain(video())  # the in-LLM step is left to the model adapter
    assert [s.name for s in out.provenance] == ["pool"]


def test_every_builtin_resolves_and_is_pre_llm():
    for name in MINE:
        cls = COMPRESSORS.resolve(name)
        assert cls.name == name and cls.stage == "pre_llm"


def test_positional_spec_args_fill_config_fields_in_order():
    chain = Chain.from_spec("scenetile:0.8,tome:0.25,pool:3,mode=bilinear,select:5,stream-memory:64")
    cfgs = [s.config for s in chain.steps]
    assert cfgs[0].alpha == 0.8 and cfgs[1].ratio == 0.25
    assert (cfgs[2].factor, cfgs[2].mode) == (3, "bilinear")
    assert cfgs[3].frames == 5 and cfgs[4].budget == 64
    assert COMPRESSORS.from_spec("pool:auto").config.factor == "auto"


def test_a_full_chain_records_one_step_each_and_meets_the_budget():
    ctx = CompressContext(Query("Where is the cat?"), budget=40, encoder=TinyTextEncoder())
    tokens = video()
    out = Chain.from_spec("scenetile,select:8,tome:0.5,pool:auto")(tokens, ctx)
    steps = out.provenance
    assert [s.name for s in steps] == ["scenetile", "select", "tome", "pool"]
    assert steps[0].tokens_in == 256 and steps[1].tokens_out == 128 and steps[2].tokens_out == 64
    assert [a.tokens_out for a in steps[:-1]] == [b.tokens_in for b in steps[1:]]
    assert out.num_tokens <= 40 and steps[-1].extra["budget_met"] is True
    assert set(range(6, 10)) <= set(torch.unique(out.frame_ids).tolist())  # the cat frames survived
    assert set(torch.unique(out.segments).tolist()) == {0, 1, 2}  # scene tags ride along
    assert all(s.ms >= 0 for s in steps)


def test_stream_memory_then_more_stages():
    out = Chain.from_spec("stream-memory:48,scenetile,tome:0.5")(video(), CompressContext())
    assert [s.name for s in out.provenance] == ["stream-memory", "scenetile", "tome"]
    assert out.provenance[0].tokens_out == 48 and out.num_tokens <= 48


@pytest.mark.parametrize("spec, message", [
    ("tomee:0.5", "did you mean 'tome'"),
    ("pool:2,mode=nearest", "'avg' or 'bilinear'"),
    ("select:0", "at least 1 frame"),
    ("tmerge:2", "cosine similarity"),
    ("progressive:1.5", "fraction"),
    ("scenetile:0.5,max_segments=0", "max_segments"),
    ("tome:0.5,rate=2", "has no option 'rate'"),
])
def test_bad_specs_say_what_to_fix(spec, message):
    with pytest.raises(ConfigError, match=message) as err:
        Chain.from_spec(spec)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("module", [
    "mmlong.scoring.frames", "mmlong.compressors.base", "mmlong.compressors.pooling",
    "mmlong.compressors.tome", "mmlong.compressors.scenetiling", "mmlong.compressors.stream_memory",
])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_placement_is_an_enum_and_a_plugin_may_still_write_the_string():
    from mmlong.compressors.base import Placement
    from mmlong.registry import COMPRESSORS

    assert COMPRESSORS.resolve("fastv").stage is Placement.IN_LLM
    assert COMPRESSORS.resolve("tome").stage is Placement.PRE_LLM

    class Legacy(Compressor):  # a third-party plug-in written against the string form
        name = "legacy"
        stage = "in_llm"

        def compress(self, tokens, ctx):
            return tokens

    chain = Chain([COMPRESSORS.create("tome", ratio=0.5), Legacy(None)])
    assert [s.name for s in chain.in_llm] == ["legacy"] and [s.name for s in chain.pre_llm] == ["tome"]
    Legacy.stage = "between"
    with pytest.raises(ConfigError, match="unknown stage 'between'; one of pre_llm, in_llm"):
        Chain([Legacy(None)])
