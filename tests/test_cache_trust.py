"""Caches validate what they return: an entry with a valid checksum but the wrong feature width, NaN features,
times far outside the video or a grid that cannot hold its tokens is deleted and rebuilt, never used; the
class-name embedding cache is checked the same way (checksum, shape, dtype, finite values)."""

from __future__ import annotations

import logging

import pytest
import torch

from mmlong.cache import FeatureCache, check_tokens
from mmlong.types import VisualTokens


def grid_tokens(t: int = 2, d: int = 8, times: tuple[float, ...] | None = None) -> VisualTokens:
    stamps = torch.tensor(times if times is not None else [0.5 * i for i in range(t)])
    return VisualTokens.from_grid(torch.randn(t, 2, 2, d), stamps)


POISON = {
    "nan-features": lambda tok: tok.replace(features=torch.full_like(tok.features, float("nan"))),
    "inf-feature": lambda tok: tok.replace(features=tok.features.index_fill(0, torch.tensor([3]), float("inf"))),
    "late-times": lambda tok: tok.replace(timestamps=torch.full_like(tok.timestamps, 1e9)),
    "negative-times": lambda tok: tok.replace(timestamps=torch.full_like(tok.timestamps, -4.0)),
    "small-grid": lambda tok: tok.replace(grid=(1, 1, 1)),
    "frame-outside-grid": lambda tok: tok.replace(frame_ids=tok.frame_ids + 5),
    "int-features": lambda tok: tok.replace(features=tok.features.long()),
}


@pytest.mark.parametrize("case", sorted(POISON))
def test_a_poisoned_entry_with_a_valid_checksum_is_deleted_and_misses(tmp_path, caplog, case):
    cache = FeatureCache(tmp_path)
    key = "a" * 32
    try:
        poisoned = POISON[case](grid_tokens())
    except (ValueError, RuntimeError):
        pytest.skip("VisualTokens itself refuses this")
    cache.put(key, poisoned)  # put writes a valid checksum over the bad values
    assert cache.path_of(key).is_file()
    with caplog.at_level(logging.WARNING, logger="mmlong.cache"):
        assert cache.get(key, lambda tok: check_tokens(tok, duration=4.0)) is None
    assert not cache.path_of(key).exists()
    assert "deleting it" in caplog.text


def test_a_valid_entry_of_another_width_is_refused_by_the_reader(tmp_path):
    cache = FeatureCache(tmp_path)
    key = "b" * 32
    cache.put(key, grid_tokens(d=7))
    assert cache.get(key) is not None  # a valid entry in itself ...
    assert cache.get(key, lambda tok: check_tokens(tok, width=8)) is None  # ... but not what this reader reads
    assert not cache.path_of(key).exists()
    cache.put(key, grid_tokens(d=8, times=(0.0, 3.9)))
    hit = cache.get(key, lambda tok: check_tokens(tok, width=8, duration=4.0, frames=2))
    assert hit is not None and hit.features.shape == (8, 8)


@pytest.fixture(scope="module")
def pipeline_and_clip(tmp_path_factory):
    from mmlong.config.request import resolve_config
    from mmlong.pipeline import Pipeline
    from tests.media import make_test_video

    folder = tmp_path_factory.mktemp("cachetrust")
    clip = make_test_video(folder / "clip.mp4", num_frames=40, fps=10, size=(64, 48))  # 4 seconds
    config = resolve_config(preset="offline", sample="uniform:4", max_side=64, cache_dir=str(folder / "cache"))
    return Pipeline(config), clip


@pytest.mark.parametrize("case", ["width", "nan", "late-times", "grid", "frame-ids"])
def test_the_pipeline_rebuilds_a_poisoned_entry_instead_of_using_it(pipeline_and_clip, case):
    """Encoded frames are cached one entry per frame (mmlong.frame_cache): every entry is poisoned with a valid
    checksum; the pipeline must refuse each one, re-encode the frame and store the good entry again."""
    pipeline, clip = pipeline_and_clip
    good = pipeline.encode(clip)
    entries = pipeline.cache._entries()
    assert len(entries) == 4  # one per sampled frame
    bad = {
        "width": lambda t: t.replace(features=t.features[:, :7].contiguous()),
        "nan": lambda t: t.replace(features=torch.full_like(t.features, float("nan"))),
        "late-times": lambda t: t.replace(timestamps=torch.full_like(t.timestamps, 1e9)),
        "grid": lambda t: t.replace(grid=(2, *t.grid[1:])),  # two frames where one was stored
        "frame-ids": lambda t: t.replace(frame_ids=t.frame_ids + 1),  # a frame id outside the entry's grid
    }[case]
    keys = [entry.name[: -len(FeatureCache.suffix)] for entry in entries]
    stored = {key: pipeline.cache.get(key) for key in keys}
    for key, part in stored.items():
        pipeline.cache.put(key, bad(part))
    again = pipeline.encode(clip)
    assert again.features.shape == good.features.shape
    assert torch.equal(again.timestamps, good.timestamps) and float(again.timestamps.max()) < 4.0
    assert bool(torch.isfinite(again.features).all())
    assert torch.allclose(again.features, good.features, atol=1e-4)
    for key, part in stored.items():  # the rebuilt entries are what was stored
        rebuilt = pipeline.cache.get(key)
        assert rebuilt is not None and torch.allclose(rebuilt.features, part.features, atol=1e-4)


# ---------------------------------------------------------------------------------------------- class names


@pytest.fixture(scope="module")
def embedder():
    from mmlong.encoders.conse import SentenceEmbedder

    return SentenceEmbedder()


CLASS_NAMES = ("tabby cat", "fire engine", "sailboat")


@pytest.mark.parametrize("damage", ["shape", "nan", "dtype", "checksum", "garbage"])
def test_a_damaged_class_name_cache_is_deleted_and_recomputed(tmp_path, embedder, damage):
    from safetensors.torch import save_file

    from mmlong.encoders.conse import ConSE, save_tensor_file

    conse = ConSE(CLASS_NAMES, embedder, cache_dir=tmp_path)
    truth = conse.class_embeddings.clone()
    path = conse.cache_file()
    assert path.is_file()
    if damage == "shape":
        save_tensor_file(path, "class_embeddings", torch.randn(2, embedder.dim))
    elif damage == "nan":
        save_tensor_file(path, "class_embeddings", torch.full_like(truth, float("nan")))
    elif damage == "dtype":
        save_tensor_file(path, "class_embeddings", truth.double())
    elif damage == "checksum":
        save_file({"class_embeddings": torch.zeros_like(truth)}, str(path), metadata={"checksum": "0" * 64})
    else:
        path.write_bytes(b"\x00" * 100)
    fresh = ConSE(CLASS_NAMES, embedder, cache_dir=tmp_path)
    assert torch.allclose(fresh.class_embeddings, truth, atol=1e-6)  # recomputed, not the damaged values
    reread = ConSE(CLASS_NAMES, embedder, cache_dir=tmp_path)
    assert torch.allclose(reread.class_embeddings, truth, atol=1e-6)  # and the file holds good values again


# ---------------------------------------------------------------------------------------------- expert lines


@pytest.mark.parametrize("start, end", [("NaN", 1.0), (-3.0, 1.0), (0.0, "Infinity"), (1e300, "Infinity")])
def test_an_expert_entry_with_impossible_times_is_deleted(tmp_path, start, end):
    import hashlib
    import json

    from mmlong.experts.base import ExpertOutput, TimedText
    from mmlong.experts.cache import FORMAT_VERSION, ExpertCache

    cache = ExpertCache(tmp_path)
    key = "c" * 32
    good = ExpertOutput((TimedText(0.5, 1.0, "text", "EXIT"),))
    cache.put(key, good)
    assert cache.get(key) == good
    body = good.to_dict()
    body["lines"].append({**body["lines"][0], "start": start, "end": end, "text": "LIES"})
    text = json.dumps(body, sort_keys=True).replace('"NaN"', "NaN").replace('"Infinity"', "Infinity")
    body = json.loads(text)  # the values a hand-made entry holds, under a checksum that matches them
    checksum = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    record = {"version": FORMAT_VERSION, "checksum": checksum, "output": body}
    cache.path_of(key).write_text(json.dumps(record, sort_keys=True))
    assert cache.get(key) is None and not cache.path_of(key).exists()
