"""The packaged Gemma 3 270M: assembled and converted once into a safetensors cache, then loaded locally.

The first run on a machine converts the GGUF (about a minute); later runs load the cache in seconds.
"""

from __future__ import annotations

import json

import pytest
import torch

from mmlong.errors import ModelLoadError
from mmlong.models.prompts import letter_token_ids
from mmlong.models.socratic.gemma import (
    CACHE_FILES,
    build_cache_atomically,
    gemma_cache_path,
    is_complete_cache,
    load_gemma,
    load_lm,
)

PROMPT = "Video transcript:\n00:12: Egyptian cat 0.81\nQuestion: What animal appears?\nAnswer:"


@pytest.fixture(scope="module")
def lm():
    return load_gemma()


def _write_all(directory):
    for name in CACHE_FILES:
        (directory / name).write_text(name)


def test_cache_is_built_atomically(tmp_path):
    target = tmp_path / "models" / "lm"

    def broken(directory):
        (directory / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        build_cache_atomically(target, broken)
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir() if not p.name.endswith(".lock")] == []  # no temp left

    with pytest.raises(ModelLoadError, match="model.safetensors"):
        build_cache_atomically(target, lambda d: (d / "config.json").write_text("{}"))
    assert not target.exists()

    assert build_cache_atomically(target, _write_all) is True
    assert is_complete_cache(target)
    assert build_cache_atomically(target, lambda d: pytest.fail("converted twice")) is False


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MMLONG_CACHE_DIR", str(tmp_path))
    assert gemma_cache_path() == tmp_path / "models" / "gemma3-270m"
    assert gemma_cache_path(tmp_path / "other") == tmp_path / "other" / "models" / "gemma3-270m"


@pytest.mark.slow
def test_converted_cache_is_plain_safetensors(lm):
    assert is_complete_cache(lm.path)
    assert not list(lm.path.glob("*.bin")) and not list(lm.path.glob("*.gguf"))
    config = json.loads((lm.path / "config.json").read_text())
    assert config["model_type"] == "gemma3_text" and "quantization_config" not in config
    assert config["num_hidden_layers"] == 18 and config["vocab_size"] == 262144
    assert lm.model.get_input_embeddings().weight.dtype == torch.float32


@pytest.mark.slow
def test_second_load_is_cached_and_gives_the_same_logits(lm):
    again = load_gemma()
    assert again.convert_seconds is None and again.path == lm.path
    first, second = lm.next_token_logits(PROMPT), again.next_token_logits(PROMPT)
    assert first.shape == (262144,)
    assert torch.equal(first, second)
    # the LM reads its context: " cat" is far likelier after a transcript showing a cat than " guitar"
    cat, guitar = lm.encode(" cat")[0], lm.encode(" guitar")[0]
    logprobs = torch.log_softmax(first, 0)
    assert logprobs[cat] > logprobs[guitar] + 2.0


@pytest.mark.slow
def test_option_letters_are_single_tokens(lm):
    ids = letter_token_ids(lm.encode, 4)
    assert [lm.tokenizer.decode([i]) for i in ids] == ["A", "B", "C", "D"]


@pytest.mark.slow
def test_continuation_logprobs_match_a_full_forward(lm):
    options = [" a cat", " a sailboat"]
    scored = lm.continuation_logprobs(PROMPT, options)
    for option, logprobs in zip(options[:1], scored[:1]):
        ids = lm.encode(PROMPT, special=True) + lm.encode(option)
        with torch.inference_mode():
            logits = lm.model(input_ids=torch.tensor([ids])).logits[0].float()
        n = len(lm.encode(option))
        full = torch.log_softmax(logits[-n - 1:-1], -1).gather(1, torch.tensor(ids[-n:])[:, None])[:, 0]
        assert torch.allclose(logprobs, full, atol=1e-4)
    assert scored[0].sum() > scored[1].sum()


def test_a_directory_without_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_lm(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="safetensors"):
        load_gemma(tmp_path)


@pytest.mark.slow
def test_a_shared_prefix_is_computed_once_and_changes_nothing(lm, monkeypatch):
    context = "Video transcript:\n00:00\u201300:05: Egyptian cat 0.80, tabby 0.10\n00:05\u201300:09: seashore 0.70"
    shared = f"Describe the video.\n{context}\n"
    first = f"{shared}Question: What animal is shown?\nAnswer:"
    second = f"{shared}Question: Which animal appears?\nAnswer:"
    options = [" a cat", " a dog", " a sailboat"]
    plain = [lm.continuation_logprobs(p, options) for p in (first, second)]
    calls = []
    forward = lm.model.forward
    monkeypatch.setattr(lm.model, "forward", lambda *a, **k: calls.append(k["input_ids"].shape[1]) or forward(*a, **k))
    reused = [lm.continuation_logprobs(p, options, prefix=shared) for p in (first, second)]
    for a, b in zip(plain, reused):
        assert all(torch.allclose(x, y, atol=1e-4) for x, y in zip(a, b))
    prefix_len = len(lm.encode(shared, special=True))
    # the prefix runs once (first call), later calls run only the question and the options
    assert calls.count(prefix_len) == 1 and max(calls) == prefix_len
    assert lm.prefix_state is not None and lm.prefix_state[0] == lm.encode(shared, special=True)
