from __future__ import annotations

import logging
import os

import pytest
import torch

from mmlong import cache as cache_module
from mmlong.cache import FeatureCache, cache_root, video_fingerprint
from mmlong.errors import VideoNotFoundError
from mmlong.types import Step, VisualTokens


def sample_tokens() -> VisualTokens:
    g = torch.Generator().manual_seed(0)
    tok = VisualTokens.from_grid(
        torch.randn(3, 2, 2, 5, generator=g),
        timestamps=torch.tensor([0.25, 1.5, 2.75], dtype=torch.float64),
        meta={"encoder": "test", "frame_indices": [3, 40, 77]},
    )
    tok = tok.merge(torch.tensor([0, 0, 1, 2, 3, 3, 4, 5, 6, 7, 8, 8]))  # uneven sizes and mean positions
    return tok.replace(
        segments=torch.arange(tok.num_tokens) // 4,
        position_step=0.25,
        provenance=(Step("encode", {"encoder": "test"}, 3, 12, 12.345678, {"peak_rss_mb": 100.5}),),
    )


@pytest.fixture
def video_file(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(os.urandom(300_000))
    return path


def assert_same_tokens(a: VisualTokens, b: VisualTokens) -> None:
    for name in ("features", "frame_ids", "timestamps", "positions", "sizes", "segments", "frame_times"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        assert torch.equal(x, y), name
    assert a.grid == b.grid
    assert a.position_step == b.position_step
    assert dict(a.meta) == dict(b.meta)
    assert a.provenance == b.provenance


def test_round_trip_keeps_every_field(tmp_path):
    cache = FeatureCache(tmp_path)
    tok = sample_tokens()
    assert cache.put("a" * 32, tok) is True
    back = cache.get("a" * 32)
    assert back is not None
    assert_same_tokens(tok, back)
    assert cache.count() == 1 and cache.size() > tok.features.numel() * 4


def test_keys_change_with_every_input(tmp_path, video_file):
    cache = FeatureCache(tmp_path)
    base = cache.key(video_file, "uniform:8", {"max_side": None}, "enc:a")
    assert base == cache.key(video_file, "uniform:8", {"max_side": None}, "enc:a")
    others = {
        cache.key(video_file, "uniform:16", {"max_side": None}, "enc:a"),
        cache.key(video_file, "uniform:8", {"max_side": 224}, "enc:a"),
        cache.key(video_file, "uniform:8", {"max_side": None}, "enc:b"),
    }
    assert base not in others and len(others) == 3
    cache.put(base, sample_tokens())
    assert cache.get(base) is not None
    for other in others:
        assert cache.get(other) is None
    # changing the file's content changes the key
    data = bytearray(video_file.read_bytes())
    data[10] ^= 0xFF
    video_file.write_bytes(bytes(data))
    assert cache.key(video_file, "uniform:8", {"max_side": None}, "enc:a") != base


def test_fingerprint_reads_start_middle_end_only(tmp_path):
    path = tmp_path / "big.bin"
    payload = bytearray(os.urandom(1_000_000))
    path.write_bytes(bytes(payload))
    first = video_fingerprint(path)
    payload[300_000] ^= 0xFF  # outside the three sampled chunks: same fingerprint
    path.write_bytes(bytes(payload))
    assert video_fingerprint(path) == first
    payload[500_000] ^= 0xFF  # the middle chunk
    path.write_bytes(bytes(payload))
    assert video_fingerprint(path) != first
    with pytest.raises(VideoNotFoundError, match="missing.mp4"):
        video_fingerprint(tmp_path / "missing.mp4")


@pytest.mark.parametrize("damage", ["truncate", "garble_data", "garble_header", "empty"])
def test_damaged_entry_is_a_miss_deleted_and_rebuilt(tmp_path, damage, caplog):
    cache = FeatureCache(tmp_path)
    tok = sample_tokens()
    key = "b" * 32
    cache.put(key, tok)
    path = cache.path_of(key)
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) - 37]
    elif damage == "garble_data":
        raw[-5] ^= 0x55  # inside the tensor bytes: only the checksum can tell
    elif damage == "garble_header":
        raw[12:20] = b"\x00" * 8
    else:
        raw = bytearray()
    path.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="mmlong.cache"):
        assert cache.get(key) is None
    assert "damaged" in caplog.text
    assert not path.exists()
    assert cache.put(key, tok)
    assert_same_tokens(tok, cache.get(key))


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch, caplog):
    cache = FeatureCache(tmp_path)
    key = "c" * 32

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_module.os, "fsync", disk_full)
    with caplog.at_level(logging.WARNING, logger="mmlong.cache"):
        assert cache.put(key, sample_tokens()) is False
    assert "No space left" in caplog.text
    assert list(tmp_path.rglob("*")) == [cache.path_of(key).parent]  # only the empty shard folder
    monkeypatch.undo()

    # an error that is not the disk's propagates, still without leftovers, and an old entry survives intact
    cache.put(key, sample_tokens())
    import safetensors.torch

    def broken_save(*args, **kwargs):
        raise RuntimeError("serialiser failed")

    monkeypatch.setattr(safetensors.torch, "save", broken_save)
    with pytest.raises(RuntimeError):
        cache.put(key, sample_tokens().replace(position_step=2.0))
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [cache.path_of(key).name]
    assert cache.get(key).position_step == 0.25


def test_disabled_cache_and_clear(tmp_path):
    off = FeatureCache(tmp_path, enabled=False)
    assert off.put("d" * 32, sample_tokens()) is False
    assert off.get("d" * 32) is None and off.count() == 0
    on = FeatureCache(tmp_path)
    on.put("d" * 32, sample_tokens())
    on.put("e" * 32, sample_tokens())
    assert on.count() == 2
    assert on.clear() == 2
    assert on.count() == 0 and on.size() == 0 and on.get("d" * 32) is None


def test_default_root_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MMLONG_CACHE_DIR", str(tmp_path / "mm"))
    assert cache_root() == tmp_path / "mm"
    assert FeatureCache().root == tmp_path / "mm" / "features"
    assert FeatureCache(tmp_path / "x").root == tmp_path / "x"
    monkeypatch.delenv("MMLONG_CACHE_DIR")
    assert "mmlong" in str(FeatureCache().root)


def test_bad_keys_are_refused(tmp_path):
    with pytest.raises(ValueError):
        FeatureCache(tmp_path).path_of("../etc")


def test_docstring_examples():
    import doctest

    result = doctest.testmod(cache_module)
    assert result.attempted > 0 and result.failed == 0
