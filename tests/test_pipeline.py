"""The Pipeline's token path: cache hits skip decoding and encoding, streaming memory never holds the video,
one encoding serves several questions, limits and bad settings fail clearly."""

from __future__ import annotations

import pytest
import torch

from mmlong.config.request import resolve_config
from mmlong.errors import ConfigError, VideoTooLargeError
from mmlong.pipeline import Pipeline
from mmlong.qa import Query


@pytest.fixture(scope="module")
def clip(sample_video_path):
    return sample_video_path


def names(tokens):
    return [s.name for s in tokens.provenance]


def test_second_encoding_is_a_cache_hit_with_equal_tokens(clip, tmp_path):
    pipe = Pipeline(resolve_config(preset="offline", sample="uniform:6", cache_dir=str(tmp_path)))
    first = pipe.encode(clip)
    second = pipe.encode(clip)
    assert names(first) == ["sample", "cache", "decode", "encode"]
    assert names(second) == ["sample", "cache"]  # no decode, no encode
    assert [s.extra["hit"] for s in (first.provenance[1], second.provenance[1])] == [False, True]
    assert torch.equal(first.features, second.features) and torch.equal(first.timestamps, second.timestamps)
    assert first.num_tokens == 6 * 49
    # another sampler is another entry
    other = Pipeline(resolve_config(preset="offline", sample="uniform:5", cache_dir=str(tmp_path))).encode(clip)
    assert other.provenance[1].extra["hit"] is False and other.num_tokens == 5 * 49


def test_chunks_line_up_in_time(clip):
    whole = Pipeline(resolve_config(preset="offline", sample="uniform:6", cache=False, chunk_size=64)).encode(clip)
    chunked = Pipeline(resolve_config(preset="offline", sample="uniform:6", cache=False, chunk_size=4)).encode(clip)
    assert torch.equal(whole.frame_ids, chunked.frame_ids)
    assert torch.equal(whole.positions, chunked.positions)
    assert torch.allclose(whole.features, chunked.features, atol=1e-5)
    assert chunked.frame_ids.unique().tolist() == list(range(6))


def test_streaming_memory_is_fed_chunk_by_chunk(clip):
    pipe = Pipeline(resolve_config(preset="offline", sample="uniform:12", cache=False, chunk_size=3,
                                   compress="stream-memory:98,pool:2"))
    tokens = pipe.tokens(clip)
    assert names(tokens) == ["sample", "decode", "encode", "stream-memory", "pool"]
    memory = tokens.provenance[3]
    assert memory.tokens_in == 12 * 49 and memory.tokens_out == 98 and memory.extra["streamed"]  # 2 whole frames
    assert tokens.num_tokens <= 98
    assert float(tokens.sizes.sum()) == pytest.approx(12 * 49)  # every original token is accounted for


def test_one_encoding_serves_every_question(clip):
    pipe = Pipeline(resolve_config(preset="offline", sample="uniform:4", cache=False, compress="pool:7"))
    assert pipe._shares_encoding()
    assert not Pipeline(resolve_config(sample="query:4"))._shares_encoding()  # the sampler reads the question
    shared = pipe.encode(clip)
    compressed = [pipe.compress(shared, Query(q)) for q in ("one?", "two?")]
    assert [t.num_tokens for t in compressed] == [4, 4]
    assert names(compressed[0])[-1] == "pool"


def test_limits_and_bad_settings_fail_clearly(clip):
    with pytest.raises(VideoTooLargeError, match="over the limit of 1 s"):
        Pipeline(resolve_config(preset="offline", max_duration=1.0, cache=False)).encode(clip)
    with pytest.raises(ConfigError, match="did you mean 'tome'"):
        Pipeline(resolve_config(compress="tomee:0.5"))
    with pytest.raises(ConfigError, match="--encoder"):
        Pipeline(resolve_config(encoder="nope")).encoder
    with pytest.raises(ConfigError, match="in-LLM"):
        Pipeline(resolve_config(preset="offline", compress="fastv:2,0.5")).model


@pytest.mark.slow
@pytest.mark.parametrize("compress, shared", [("select:2,pool:7", True), ("stream-memory", False)])
def test_run_returns_answers_with_what_the_model_saw(clip, tmp_path, compress, shared):
    """Pipeline(resolved).run -> Result(answers, encoded, seen, steps), aligned with the queries."""
    from mmlong.config.resolve import resolve
    from mmlong.result import Result, Stage

    pipe = Pipeline(resolve(preset="offline", flags={"sample": "uniform:4", "compress": compress, "experts": "",
                                                     "cache_dir": str(tmp_path)}))
    queries = [Query("What animal appears?", ("a rabbit", "a guitar")), "What happens?"]
    result = pipe.run(clip, queries)
    assert isinstance(result, Result) and len(result) == 2
    assert [a.option for a in result.answers][0] in ("a rabbit", "a guitar")
    for answer, encoded, seen, steps in zip(result.answers, result.encoded, result.seen, result.steps):
        names = [s.name for s in steps]
        assert names[0] == Stage.SAMPLE and names[-1] == Stage.MODEL
        assert answer.stages == steps  # one provenance form: the answer's own steps
        assert steps[-1].tokens_in == seen.num_tokens  # the model step counts what it saw
        assert "config" not in answer.to_dict()  # the config is the pipeline's, saved once beside results
        if shared:
            assert encoded is result.encoded[0] and encoded.num_tokens == 4 * 49
            assert seen.num_tokens == 2 and names[-3 if Stage.LOAD in names else -2] == "pool"
        else:
            assert encoded is None and "stream-memory" in names
    assert [Stage.LOAD in [s.name for s in steps] for steps in result.steps] == [True, False]  # loaded once
