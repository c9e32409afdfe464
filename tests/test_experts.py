"""Experts on real media: OCR reads rendered sentences from real frames, ASR transcribes espeak-ng speech, the
expert cache serves a second run, a video without audio gives a note, subtitle files parse."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from mmlong.assets.samples import sample_image
from mmlong.benchmarks.niavh_media import fit_frame, render_text
from mmlong.benchmarks.scoring import normalize_answer
from mmlong.errors import ConfigError
from mmlong.experts.base import ExpertOutput, TimedText
from mmlong.experts.cache import ExpertCache
from mmlong.experts.runner import build_experts, run_experts
from mmlong.registry import EXPERTS

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng missing: scripts/ensure-espeak.sh installs it")


def words(text: str) -> list[str]:
    return normalize_answer(text).split()


def caption(photo: str, sentence: str, width: int = 320, height: int = 180) -> np.ndarray:
    """A real photo with ``sentence`` drawn on a light band across its lower third (PIL)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(fit_frame(sample_image(photo), width, height))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=height // 9)
    band = (0, int(height * 0.68), width, int(height * 0.68) + height // 7)
    draw.rectangle(band, fill=(250, 250, 250))
    draw.text((width * 0.05, band[1] + 2), sentence, fill=(10, 10, 10), font=font)
    return np.asarray(image)


@pytest.fixture(scope="module")
def ocr():
    return EXPERTS.create("ocr")


@pytest.fixture(scope="module")
def asr():
    return EXPERTS.create("asr")


def test_ocr_reads_a_sentence_drawn_on_a_real_photo(ocr):
    frame = caption("coffee", "Meet me at the harbour")
    boxes = ocr.detect(frame)
    text, score = ocr.recognise(frame, boxes)
    assert words(text) == ["meet", "me", "at", "harbour"]  # normalisation drops "the"
    assert score > 0.8
    assert len(ocr.detect(fit_frame(sample_image("coffee"), 320, 180))) == 0  # the bare photo: no text


@pytest.mark.parametrize("sentence, size", [("Gate twelve", (160, 90)), ("Meet me at the harbour", (320, 180)),
                                            ("The password is seventeen.", (160, 90))])
def test_ocr_keeps_the_spaces_between_words(ocr, sentence, size):
    frame = render_text(sentence, *size)
    assert ocr.recognise(frame, ocr.detect(frame))[0] == sentence


def test_respace_puts_spaces_at_wide_ink_gaps_only():
    from mmlong.experts.ocr import respace

    crop = np.full((20, 60, 3), 255, np.uint8)
    for x0, x1 in ((2, 8), (10, 16), (18, 24), (34, 40), (42, 48)):  # letters; the 10 px gap is a space
        crop[4:16, x0:x1] = 0
    # five characters at the letters' centres (crop width 60 over 12 CTC steps: 5 px a step)
    assert respace("abcde", [0, 2, 3, 6, 8], 12.0, crop) == "abc de"
    assert respace("abc de", [0, 2, 3, 5, 6, 8], 12.0, crop) == "abc de"  # already spaced: unchanged
    crop[4:16, 24:34] = 0  # fill the gap: no space
    assert respace("abcde", [0, 2, 3, 6, 8], 12.0, crop) == "abcde"


def test_ocr_scan_finds_the_text_once_and_when(ocr, make_video):
    photo = fit_frame(sample_image("astronaut"), 160, 90)
    card = render_text("The secret word is banana.", 160, 90)  # the NIAVH text needle, 160x90
    frames = [photo] * 12 + [card] * 12 + [photo] * 12  # 4 fps: the card from 3.0 s to 5.75 s
    video = make_video("text.mp4", frames=frames, fps=4, size=(160, 90))
    out = ocr.run(video)
    assert [line.source for line in out.lines] == ["text"]
    line = out.lines[0]
    assert words(line.text) == ["secret", "word", "is", "banana"]
    assert 3.0 <= line.start <= 4.0 and 5.0 <= line.end <= 6.0
    # one recognition for the whole card: unchanged frames skip the detector, unchanged text the recogniser
    assert out.stats["frames"] == 9 and out.stats["recognised"] == 1 and out.stats["detected"] < 9


def test_ocr_reads_each_new_sentence(ocr, make_video):
    first, second = render_text("Exit to the left", 320, 180), render_text("Platform nine", 320, 180)
    video = make_video("two.mp4", frames=[first] * 8 + [second] * 8, fps=4, size=(320, 180))
    out = ocr.run(video)
    assert [words(line.text) for line in out.lines] == [["exit", "to", "left"], ["platform", "nine"]]
    assert out.lines[0].end < out.lines[1].start


@needs_espeak
def test_asr_transcribes_espeak_speech_at_its_time(asr, make_video):
    from mmlong.media.audio import SPEECH_RATE, mix_into, speak

    track = mix_into(np.zeros(8 * SPEECH_RATE, np.float32), speak("Open the blue door"), 3.0, SPEECH_RATE)
    video = make_video("speech.mp4", frames=[np.full((48, 64, 3), 90, np.uint8)] * 32, fps=4,
                       audio=(track, SPEECH_RATE))
    out = asr.run(video)
    speech = [line for line in out.lines if line.source == "speech"]
    assert len(speech) == 1
    assert words(speech[0].text) == ["open", "blue", "door"]
    assert 2.0 <= speech[0].start <= 3.5 and 4.0 <= speech[0].end <= 6.5
    assert out.stats["audio_s"] == pytest.approx(8.0, abs=0.1)


def test_a_video_without_audio_is_a_note_not_an_error(make_video):
    fresh = EXPERTS.create("asr")
    out = fresh.run(make_video("silent.mp4"))
    assert out.lines == (TimedText(0.0, 0.0, "note", "no audio track"),)
    assert fresh._model is None  # nothing to hear: the recogniser was not even loaded


def test_expert_cache_serves_the_second_run(tmp_path, make_video, monkeypatch):
    from mmlong.experts.ocr import TextExpert

    card = render_text("The gate is twelve.", 160, 90)
    video = make_video("gate.mp4", frames=[card] * 8, fps=4, size=(160, 90))
    calls = []
    real_run = TextExpert.run
    monkeypatch.setattr(TextExpert, "run", lambda self, v: calls.append(v) or real_run(self, v))
    cache = ExpertCache(tmp_path / "experts")
    first, steps1 = run_experts(build_experts("ocr"), video, cache)
    second, steps2 = run_experts(build_experts("ocr"), video, cache)
    assert len(calls) == 1 and first == second and words(first[0].text) == ["gate", "is", "twelve"]
    assert [s.extra["hit"] for s in steps1 + steps2] == [False, True]
    run_experts(build_experts("ocr:fps=2"), video, cache)  # another config is another entry
    assert len(calls) == 2 and cache.count() == 2


def test_damaged_cache_entry_is_rebuilt(tmp_path):
    cache = ExpertCache(tmp_path)
    out = ExpertOutput((TimedText(1.0, 2.0, "text", "hi"),), {})
    cache.put("a" * 32, out)
    cache.path_of("a" * 32).write_text('{"version": 1, "checksum": "x", "output": {"lines": []}}')
    assert cache.get("a" * 32) is None and not cache.path_of("a" * 32).exists()


def test_build_experts_from_flags(tmp_path):
    assert [e.name for e in build_experts("none", "none")] == []
    assert [e.name for e in build_experts("ocr,asr", "asr")] == ["ocr", "asr"]
    srt = tmp_path / "movie.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:02,000\nHello there\n")
    experts = build_experts("", str(srt))
    assert [e.name for e in experts] == ["subtitles"]
    assert [line.text for line in experts[0].run("unused.mp4").lines] == ["Hello there"]
    with pytest.raises(ConfigError, match="subtitle file not found"):
        build_experts("", str(tmp_path / "missing.srt"))
    with pytest.raises(ConfigError, match="listed twice"):
        build_experts("ocr,ocr")


def test_bad_subtitle_files_are_one_line_errors(tmp_path):
    from mmlong.experts.subtitle_file import read_subtitles

    bad = tmp_path / "bad.srt"
    bad.write_text("1\n00:00:01 --> later\nHello\n")
    with pytest.raises(ConfigError, match=r"bad.srt: not a subtitle file: line 2: cannot read the cue times"):
        read_subtitles(bad)
    empty = tmp_path / "empty.vtt"
    empty.write_text("WEBVTT\n\nNOTE nothing here\n")
    with pytest.raises(ConfigError, match="no subtitle cues"):
        read_subtitles(empty)
    latin = tmp_path / "latin.srt"
    latin.write_bytes("1\r\n00:00:01,000 --> 00:00:02,500\r\n{\\an8}Caf\xe9 <b>ouvert</b>\r\n".encode("latin-1"))
    assert [(c.start, c.end, c.text) for c in read_subtitles(latin)] == [(1.0, 2.5, "Café ouvert")]


def test_whisper_weights_are_joined_once_and_checked(tmp_path):
    from mmlong.experts.whisper_weights import MODEL_SIZE, whisper_base_dir

    folder = whisper_base_dir(tmp_path)
    model = folder / "model.bin"
    assert model.stat().st_size == MODEL_SIZE and (folder / "tokenizer.json").is_file()
    stamp = model.stat().st_mtime_ns
    assert whisper_base_dir(tmp_path) == folder and model.stat().st_mtime_ns == stamp  # not joined again
    with open(model, "r+b") as f:  # a truncated file is joined again
        f.truncate(1000)
    whisper_base_dir(tmp_path)
    assert model.stat().st_size == MODEL_SIZE
    assert not list(folder.glob(".*.tmp"))


@pytest.mark.slow
def test_ask_reads_the_screen_notes_the_missing_audio_and_hits_the_expert_cache(tmp_path, make_video, monkeypatch):
    from mmlong.config.request import resolve_config
    from mmlong.experts.asr import SpeechExpert
    from mmlong.experts.ocr import TextExpert
    from mmlong.pipeline import Pipeline

    photo = fit_frame(sample_image("rocket"), 160, 90)
    card = render_text("The secret word is banana.", 160, 90)
    video = make_video("needle.mp4", frames=[photo] * 16 + [card] * 8 + [photo] * 16, fps=4, size=(160, 90))
    calls = {"ocr": 0, "asr": 0}
    for cls, key in ((TextExpert, "ocr"), (SpeechExpert, "asr")):
        real = cls.run
        monkeypatch.setattr(cls, "run", lambda self, v, real=real, key=key: calls.__setitem__(key, calls[key] + 1)
                            or real(self, v))
    config = resolve_config(preset="offline", sample="uniform:8", cache_dir=str(tmp_path / "cache"))
    question, options = "What is the secret word written in the video?", ["banana", "violin", "lighthouse", "volcano"]
    first = Pipeline(config).ask(video, question, options)
    second = Pipeline(config).ask(video, question, options)  # a new pipeline: only the disk caches are shared
    assert calls == {"ocr": 1, "asr": 1}
    stages = {s["name"]: s for s in second.to_dict()["stages"]}
    assert stages["expert:ocr"]["extra"]["hit"] and stages["expert:asr"]["extra"]["hit"]
    assert not {s["name"]: s for s in first.to_dict()["stages"]}["expert:ocr"]["extra"]["hit"]
    lines = first.details["text_lines"]
    assert [(line["source"], line["text"]) for line in lines] == [("note", "no audio track"),
                                                         ("text", "The secret word is banana.")]
    assert 4.0 <= lines[1]["start"] <= 5.0 and 5.0 <= lines[1]["end"] <= 6.0
    assert '00:04\u201300:05 [text] "The secret word is banana."' in first.details["transcript"]
    assert "00:00 [note] no audio track" in first.details["transcript"]
    assert second.details["transcript"] == first.details["transcript"]


def test_edge_density_tells_text_from_flat_graphics_and_keeps_footage():
    from mmlong.experts.ocr import edge_density
    from mmlong.media.video.write import numbered_frame

    flat = [edge_density(numbered_frame(i * 25, 160, 90)) for i in range(4)]
    text = [edge_density(render_text(s, 160, 90)) for s in ("The secret word is banana.", "EXIT")]
    photos = [edge_density(fit_frame(sample_image(p), 160, 90)) for p in ("coffee", "chelsea", "rocket")]
    assert max(flat) < 0.02 and min(text) > 0.09 and min(photos) > 0.05
    assert edge_density(caption("coffee", "Meet me", 640, 360)) > 0.1  # measured on the frame scaled to 160 px


def test_asr_drops_a_repetition_loop_over_music(asr):
    """bigbuckbunny's score (no speech): greedy Whisper base loops on "Hmmmm..." for hundreds of characters;
    Whisper's compression-ratio check drops that segment."""
    from mmlong.assets.samples import sample_video

    video = sample_video("bigbuckbunny")
    said = [line.text for line in asr.run(video).lines if line.source == "speech"]
    assert not any(len(text) > 60 and "mmmmmmmmmm" in text for text in said), said
    looped = type(asr)(type(asr).Config(compression_ratio_threshold=0.0)).run(video)
    assert any("mmmmmmmmmm" in line.text for line in looped.lines)  # the loop the check removes
