"""NIAVH: needle parsing, options, haystack building, scoring grid, heatmap; `mmlong eval niavh make` + `run`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmlong.benchmarks.niavh import draw_heatmap, grid_markdown, summarize_grid
from mmlong.benchmarks.niavh_make import _options, default_needles, parse_needle
from mmlong.benchmarks.niavh_media import Needle, build_haystack, render_text
from mmlong.benchmarks.scoring import normalize_answer, open_answer_match
from mmlong.errors import ConfigError


def test_parse_needle_specs():
    assert parse_needle("image:dog.jpg=a dog|dog|puppy") == Needle("image", "dog.jpg", "a dog", ("dog", "puppy"))
    assert parse_needle("text:pineapple") == Needle("text", "pineapple", "pineapple")
    assert parse_needle("clip:/x/surf.mp4").label == "surf"
    with pytest.raises(ConfigError, match="KIND:SOURCE"):
        parse_needle("sound:beep.wav")


def test_options_hold_the_answer_once_and_distractors_of_the_same_kind_first():
    pools = default_needles()
    rng = np.random.default_rng(0)
    cat = pools["image"][0]
    options = _options(cat, pools, 4, rng)
    assert len(options) == 4 and options.count("a cat") == 1
    assert set(options) <= {n.label for n in pools["image"]}  # four image needles: all distractors are images
    bikes = pools["clip"][0]
    clip_options = _options(bikes, pools, 4, rng)
    assert "a man talking in a car" in clip_options and len(set(clip_options)) == 4  # topped up from other kinds


def test_open_answers_match_references_after_normalisation():
    assert normalize_answer("The Secret-Word: BANANA!") == "secret word banana"
    assert open_answer_match("I saw a Tabby.", ["a cat", "cat", "tabby"]) == "tabby"
    assert open_answer_match("a catalogue", ["cat"]) is None


def test_haystack_loops_with_variations_to_the_exact_length():
    clip = np.random.default_rng(0).integers(0, 255, (5, 8, 10, 3), dtype=np.uint8)
    hay = build_haystack([clip], 37)
    assert hay.shape == (37, 8, 10, 3)
    np.testing.assert_array_equal(hay[:5], clip)
    np.testing.assert_array_equal(hay[5:10], clip[:, :, ::-1])  # second pass mirrored
    assert not np.array_equal(hay[10:15], clip)


def test_text_needle_is_rendered_readably():
    frame = render_text("The secret word is banana.", 160, 90)
    assert frame.shape == (90, 160, 3)
    dark = (frame.mean(axis=-1) < 100).mean()
    assert 0.01 < dark < 0.4  # letters present, card mostly light


def _records():
    rows = []
    # depth 0: always right; depth 100: right only at 60 s; mc and open differ at 120 s
    for depth, length, mc, op in [(0, 60, 1, 1), (0, 120, 1, 0), (100, 60, 1, 1), (100, 120, 0, 0)]:
        rows.append({"id": f"image-{length}-{depth}:mc", "kind": "mc", "needle_type": "image", "depth": depth,
                     "length": length, "correct": bool(mc)})
        rows.append({"id": f"image-{length}-{depth}:open", "kind": "open", "needle_type": "image", "depth": depth,
                     "length": length, "correct": bool(op)})
    rows.append({"id": "text-60-0:mc", "kind": "mc", "needle_type": "text", "depth": 0, "length": 60,
                 "correct": False})
    rows.append({"id": "bad:mc", "kind": "mc", "needle_type": "text", "depth": 0, "length": 120,
                 "correct": False, "error": "video missing"})
    return rows


def test_grid_summary_markdown_and_heatmap(tmp_path):
    summary = summarize_grid(_records(), [0, 100], [60, 120])
    assert summary["mc"]["grid"] == {"0%@60s": 0.5, "0%@120s": 1.0, "100%@60s": 1.0, "100%@120s": 0.0}
    assert summary["mc"]["accuracy"] == pytest.approx(3 / 5)
    assert summary["mc"]["per_type"] == {"image": 0.75, "text": 0.0}
    assert summary["open"]["grid"]["0%@120s"] == 0.0 and summary["open"]["accuracy"] == 0.5
    assert summary["errors"]["count"] == 1
    table = grid_markdown(summary)
    assert "| 0 % | 50.0 | 100.0 |" in table and "| 100 % | 100.0 | 0.0 |" in table
    png = draw_heatmap(summary, tmp_path / "heatmap.png")
    from PIL import Image

    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape[0] > 100 and image.shape[1] > 200
    # both green (accuracy 1) and red (accuracy 0) cells are drawn
    r, g, b = (image[..., i].astype(int) for i in range(3))
    assert ((g - r > 60) & (g > 120)).sum() > 200 and ((r - g > 60) & (r > 120)).sum() > 200


# ---------------------------------------------------------------------------------------------- end to end
def test_make_places_each_needle_at_its_depth(tmp_path):
    import torch

    from mmlong.benchmarks.niavh_make import MakeConfig, make_niavh
    from mmlong.benchmarks.niavh_media import fit_frame, load_image
    from mmlong.media.video import open_video

    cfg = MakeConfig(depths=(0, 100), lengths=(8, 16), types=("image", "text"), fps=2.0, needle_seconds=2.0)
    manifest = make_niavh(tmp_path / "set", cfg)
    assert len(manifest["items"]) == 2 * 2 * 2
    item = next(i for i in manifest["items"] if i["needle_type"] == "image" and i["depth"] == 100 and i["length"] == 16)
    assert (item["start"], item["end"]) == (14.0, 16.0)
    assert item["options"][ord(item["answer"]) - 65] == item["answer_text"]
    w, h = manifest["width"], manifest["height"]
    expected = fit_frame(load_image(item["needle"]), w, h).astype(float)
    with open_video(str(tmp_path / "set" / item["video"])) as video:
        assert video.meta.duration == pytest.approx(16.0, abs=0.6)
        frames = torch.cat([f.data for f in video.stream(torch.tensor([0, 29]), chunk_size=2)]).numpy().astype(float)
    assert np.abs(frames[1] - expected).mean() < 12  # the needle is the last two seconds
    assert np.abs(frames[0] - expected).mean() > 30  # the haystack is not the needle
    with pytest.raises(ConfigError, match="percentages"):
        make_niavh(tmp_path / "bad", MakeConfig(depths=(150,), lengths=(8,)))


@pytest.mark.slow
def test_eval_niavh_make_and_run_write_summary_and_heatmap(tmp_path):
    from mmlong.apps.cli import main

    data, out = tmp_path / "set", tmp_path / "run"
    assert main(["eval", "niavh", "make", str(data), "--depths", "0,100", "--lengths", "8", "--types", "image",
                 "--fps", "2"]) == 0
    assert main(["eval", "niavh", "run", str(data), "--out", str(out), "--sample", "fps:0.5",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 2 * 2 and not any("error" in r for r in records)
    summary = json.loads((out / "summary.json").read_text())
    for kind in ("mc", "open"):
        mine = [r for r in records if r["kind"] == kind]
        assert summary[kind]["accuracy"] == pytest.approx(sum(r["correct"] for r in mine) / 2)
        for r in mine:
            assert summary[kind]["grid"][f"{r['depth']:g}%@{r['length']:g}s"] == float(r["correct"])
    mc = [r for r in records if r["kind"] == "mc"]
    assert all(r["correct"] == (r["option"] == r["answer"]) for r in mc)
    assert summary["pipeline"]["frames"]["max"] == 4  # one frame every two seconds of 8 s
    assert (out / "heatmap.png").stat().st_size > 5000 and "heatmap.png" in (out / "results.md").read_text()


# ---------------------------------------------------------------------------------------------- speech and multi
needs_espeak = pytest.mark.skipif(__import__("shutil").which("espeak-ng") is None,
                                  reason="espeak-ng missing: scripts/ensure-espeak.sh installs it")


def _loudness(samples, start, end, rate=16000):
    part = samples[int(start * rate):int(end * rate)]
    return float(np.sqrt(np.mean(part.astype(np.float64) ** 2))) if len(part) else 0.0


@pytest.mark.slow  # Whisper over a 20 s haystack; tests/test_experts.py keeps a short ASR test in the fast loop
@needs_espeak
def test_speech_needle_is_spoken_into_the_audio_at_its_depth(tmp_path):
    from mmlong.benchmarks.niavh_make import MakeConfig, make_niavh
    from mmlong.experts.asr import SpeechExpert
    from mmlong.media.audio import read_audio
    from mmlong.media.video import probe

    manifest = make_niavh(tmp_path / "set", MakeConfig(types=("speech",), depths=(50,), lengths=(20,), fps=2.0))
    item = manifest["items"][0]
    assert item["needle_type"] == "speech" and item["answer_text"] == "pineapple"
    assert item["options"][ord(item["answer"]) - 65] == "pineapple"
    video = str(tmp_path / "set" / item["video"])
    assert probe(video).has_audio and probe(video).duration == pytest.approx(20.0, abs=0.6)
    audio = read_audio(video).samples
    start, end = item["start"], item["end"]
    assert 8.0 <= start <= 10.0 and 1.0 <= end - start <= 3.0
    voice, before = _loudness(audio, start, end), _loudness(audio, 0.0, start - 0.5)
    assert voice > 2.0 * before > 0.0  # the voice over the haystack's own (quieter) audio
    said = [line for line in SpeechExpert().run(video).lines if line.source == "speech"]
    assert any("pineapple" in line.text.lower() and abs(line.start - start) < 1.5 for line in said)


@needs_espeak
def test_multi_needle_items_hold_three_kinds_and_an_order_question(tmp_path):
    import torch

    from mmlong.benchmarks.niavh import NIAVHBenchmark
    from mmlong.benchmarks.niavh_make import MakeConfig, make_niavh
    from mmlong.benchmarks.niavh_media import fit_frame, load_image
    from mmlong.media.audio import read_audio
    from mmlong.media.video import open_video
    from mmlong.qa import Answer

    manifest = make_niavh(tmp_path / "set", MakeConfig(types=("multi",), depths=(0, 100), lengths=(24,), fps=2.0))
    first, last = manifest["items"]
    assert [n["kind"] for n in first["needles"]] == ["image", "text", "speech"]
    assert [n["kind"] for n in last["needles"]] == ["text", "speech", "image"]  # the asked kind takes turns
    assert first["asked_type"] == "image" and first["start"] == 0.0 and last["start"] >= 21.0
    in_time = [n["label"] for n in sorted(first["needles"], key=lambda n: n["start"])]
    assert first["order_options"][ord(first["order_answer"]) - 65] == ", then ".join(in_time)
    assert len(set(first["order_options"])) == 4
    image = next(n for n in first["needles"] if n["kind"] == "image")
    speech = next(n for n in first["needles"] if n["kind"] == "speech")
    video = str(tmp_path / "set" / first["video"])
    with open_video(video) as v:
        frame = v.read(torch.tensor([int(image["start"] * 2) + 1])).data[0].numpy().astype(float)
    expected = fit_frame(load_image(image["needle"]), manifest["width"], manifest["height"]).astype(float)
    assert np.abs(frame - expected).mean() < 12
    audio = read_audio(video).samples
    assert _loudness(audio, speech["start"], speech["end"]) > 2.0 * _loudness(audio, 0.0, 4.0)

    bench = NIAVHBenchmark(NIAVHBenchmark.Config(data=str(tmp_path / "set")))
    items = bench.items()
    assert [i.meta["kind"] for i in items] == ["mc", "open", "order"] * 2
    order = items[2]
    right = bench.record(order, Answer(text="", option_index=ord(first["order_answer"]) - 65))
    wrong = bench.record(order, Answer(text="", option_index=(ord(first["order_answer"]) - 64) % 4))
    assert right["correct"] and not wrong["correct"] and right["asked_type"] == "image"
    summary = bench.summarize([right, wrong])
    assert summary["order"]["accuracy"] == 0.5 and "needle order" in bench.report(summary)
