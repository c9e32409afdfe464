"""Every registered compressor x every native VLM family (seven), on tiny random-init models (4 text layers) and a real
clip: the compressor runs and the family answers, or it refuses in one line that names the reason."""

from __future__ import annotations

import pytest

from mmlong.compressors.base import Chain, CompressContext
from mmlong.errors import MmlongError
from mmlong.qa import Answer, Query
from mmlong.registry import COMPRESSORS
from tests import vlm_families, vlm_fixtures

FAMILIES = {
    "qwen2-vl": ("mmlong.models.native.qwen2_vl:Qwen2VLAdapter", vlm_fixtures.build_qwen2_vl),
    "llava-onevision": ("mmlong.models.native.llava_onevision:LlavaOneVisionAdapter",
                        vlm_fixtures.build_llava_onevision),
    "smolvlm2": ("mmlong.models.native.smolvlm:SmolVLMAdapter", vlm_fixtures.build_smolvlm),
    "qwen3-vl": ("mmlong.models.native.qwen3_vl:Qwen3VLAdapter", vlm_families.build_qwen3_vl),
    "qwen3.5": ("mmlong.models.native.qwen3_5:Qwen3_5Adapter", vlm_families.build_qwen3_5),
    "internvl": ("mmlong.models.native.internvl:InternVLAdapter", vlm_families.build_internvl),
    "videollama3": ("mmlong.models.native.video_llama_3:VideoLlama3Adapter", vlm_families.build_video_llama_3),
}
QUERY = Query("which animal appears first?", ("a cat", "a dog", "a bird", "a fish"))

#: options for 4-layer models (PruneVid's LLM stage defaults to layer 10 of a 28-layer model)
#: and FastVID's 10 % of a 3x3 frame grid is no token at all
TINY_OPTIONS = {"prunevid-llm": {"layer": 1}, "fastvid": {"retain": 0.5}}
#: (compressor, family) pairs that must refuse, and a word their one-line reason must contain: VisionZip and
#: HoliTom read the vision encoder's attention, which the native towers do not record (LLaVA-OneVision does
#: with ``attention: true``); FrameFusion merges rows inside the layers where Qwen3-VL adds DeepStack features
REFUSALS = {
    **{("visionzip", family): "attention" for family in FAMILIES},
    **{("holitom", family): "attention" for family in FAMILIES},
    ("framefusion", "qwen3-vl"): "DeepStack",
    # KV-cache pruning (DyCoke at decode time, PruneVid of earlier layers): a recurrent state keeps every token
    ("dycoke-kv", "qwen3.5"): "linear-attention",
    ("prunevid-llm", "qwen3.5"): "linear-attention",
}


@pytest.fixture(scope="module")
def adapters():
    import importlib

    frames = vlm_families.sample_clip(8, 128)
    built = {}
    for family, (target, build) in FAMILIES.items():
        module, name = target.split(":")
        adapter = getattr(importlib.import_module(module), name)().load(*build(num_layers=4))
        built[family] = (adapter, adapter.native_encoder().encode(frames))
    return built


def run_one(adapter, tokens, name: str, **options) -> tuple[Answer, int]:
    step = COMPRESSORS.create(name, **{**TINY_OPTIONS.get(name, {}), **options})
    chain = Chain([step])
    ctx = CompressContext(query=QUERY, budget=max(4, tokens.num_tokens // 2), encoder=adapter.native_encoder())
    seen = chain(tokens, ctx) if chain.pre_llm else tokens
    return adapter.answer(seen, QUERY, in_llm=chain.in_llm), seen.num_tokens


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_compressor_runs_or_refuses_in_one_line(adapters, family):
    adapter, tokens = adapters[family]
    outcomes = {}
    for name in COMPRESSORS.names():
        try:
            answer, count = run_one(adapter, tokens, name)
        except MmlongError as err:
            message = str(err)
            assert message and "\n" not in message, (name, message)
            outcomes[name] = f"refused: {message}"
            continue
        assert answer.option in QUERY.options, name
        assert 0 < answer.details["visual_tokens"] == count <= tokens.num_tokens, name
        outcomes[name] = "ok"
    expected_refusals = {c: word for (c, f), word in REFUSALS.items() if f == family}
    refused = {name: text for name, text in outcomes.items() if text != "ok"}
    assert set(refused) == set(expected_refusals), refused
    for name, word in expected_refusals.items():
        assert word in refused[name], refused[name]


@pytest.mark.parametrize("name, options", [("prunevid-llm", {"layer": 0}), ("dycoke-kv", {"layer": 2}),
                                           ("fastv", {"k": 1})])
def test_scoring_at_a_linear_attention_layer_is_refused_in_one_line(adapters, name, options):
    adapter, tokens = adapters["qwen3.5"]  # layers: linear, full, linear, full
    with pytest.raises(MmlongError) as err:
        run_one(adapter, tokens, name, **options)
    assert "linear-attention" in str(err.value) and "\n" not in str(err.value)
