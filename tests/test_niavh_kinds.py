"""NIAVH question kinds (count, order, when, absence, topic): what the videos hold, the gold checks, the scoring."""

from __future__ import annotations

import numpy as np
import pytest

from mmlong.benchmarks.niavh_gold import check_open, first_count, time_claims
from mmlong.benchmarks.niavh_kinds import (
    QUARTER_OPTIONS,
    QUESTION_KINDS,
    Footage,
    KindContext,
    build_kind_item,
    parse_footage,
)
from mmlong.benchmarks.niavh_media import Needle
from mmlong.errors import ConfigError

FPS, H, W = 2.0, 6, 8
PHOTOS = [Needle("image", f"p{i}", f"photo {name}", (name,)) for i, name in enumerate(("red", "green", "blue", "gray"))]
COLOURS = {"p0": (255, 0, 0), "p1": (0, 255, 0), "p2": (0, 0, 255), "p3": (128, 128, 128)}
FOOTAGE = [Footage("main", "a main scene", ("main",)), Footage("other", "an other scene", ("other",))]


def _context(wording: str = "tuning", seed: int = 0) -> KindContext:
    ctx = KindContext(PHOTOS, FOOTAGE, FPS, 4, 4, wording, seed, np.random.default_rng(seed), W, H, 64)
    for needle in PHOTOS:  # solid colours stand in for the photos' frames (the real ones: test below)
        ctx.cache[needle] = np.full((4, H, W, 3), COLOURS[needle.source], dtype=np.uint8)
    ctx.cache[("footage", "main")] = np.full((10, H, W, 3), 40, dtype=np.uint8)
    ctx.cache[("footage", "other")] = np.full((10, H, W, 3), 200, dtype=np.uint8)
    return ctx


def _episodes(frames: np.ndarray, colour) -> list[tuple[float, float]]:
    """Runs of frames of exactly ``colour``: ``(start, end)`` in seconds."""
    on = np.all(frames.reshape(len(frames), -1, 3) == np.array(colour, dtype=np.uint8), axis=(1, 2))
    edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(int), [0]])))
    return [(a / FPS, b / FPS) for a, b in zip(edges[::2], edges[1::2])]


HAYSTACK = np.zeros((240, H, W, 3), dtype=np.uint8)  # 120 s at 2 fps


@pytest.mark.parametrize("cell", range(4))
def test_count_item_shows_the_photo_k_separate_times(cell):
    frames, item = build_kind_item("count", cell, HAYSTACK, 50.0, _context())
    k = item["gold"]["value"]
    target = PHOTOS[cell % 4]
    episodes = _episodes(frames, COLOURS[target.source])
    assert len(episodes) == k == 1 + cell % 4  # k turns over the cells
    assert all(b[0] - a[1] >= 10.0 for a, b in zip(episodes, episodes[1:]))  # separate showings
    assert item["options"][ord(item["answer"]) - 65] == str(k) and target.label in item["question"]
    assert [tuple(n[k] for k in ("start", "end")) for n in item["needles"]] == episodes


@pytest.mark.parametrize("cell", range(4))
def test_when_item_puts_the_photo_inside_the_asked_quarter(cell):
    frames, item = build_kind_item("when", cell, HAYSTACK, 0.0 if cell % 2 else 100.0, _context(seed=1))
    (start, end), = _episodes(frames, COLOURS[PHOTOS[cell % 4].source])
    quarter = (cell + 1) % 4
    assert quarter * 30.0 < start and end < (quarter + 1) * 30.0  # inside its quarter, not on a boundary
    assert item["gold"]["quarter"] == quarter and item["answer"] == "ABCD"[quarter]
    assert "quarter" in item["options"][quarter] and ("first", "second", "third", "last")[quarter] in \
        item["options"][quarter]


def test_order_and_absence_items():
    frames, item = build_kind_item("order", 1, HAYSTACK, 30.0, _context())
    firsts = {n.label: _episodes(frames, COLOURS[n.source]) for n in PHOTOS}
    shown = sorted((eps[0][0], label) for label, eps in firsts.items() if eps)
    assert len(shown) == 3
    assert item["answer_text"] == ", then ".join(label for _, label in shown)
    assert [refs[0] for refs in item["gold"]["references"]] == [label for _, label in shown]

    frames, item = build_kind_item("absence", 2, HAYSTACK, 30.0, _context())
    absent = next(n for n in PHOTOS if n.label == item["answer_text"])
    assert _episodes(frames, COLOURS[absent.source]) == []  # never shown ...
    assert all(len(_episodes(frames, COLOURS[n.source])) == 1 for n in PHOTOS if n is not absent)  # others once
    assert sorted(item["options"]) == sorted(n.label for n in PHOTOS)
    assert all(n.label in item["open_question"] for n in PHOTOS)


@pytest.mark.parametrize("cell", [0, 1])
def test_topic_item_is_mostly_one_footage_with_a_brief_distractor(cell):
    frames, item = build_kind_item("topic", cell, HAYSTACK, 50.0, _context())
    main, other = FOOTAGE[cell], FOOTAGE[1 - cell]  # the main footage turns over the cells
    share = np.all(frames == (40 if cell == 0 else 200), axis=(1, 2, 3)).mean()
    assert 0.93 <= share <= 0.96  # 95 % main footage ...
    assert item["answer_text"] == main.label and len(set(item["options"])) == 4
    distractor = item["needles"][0]
    assert distractor["label"] in item["options"] and distractor["end"] - distractor["start"] == pytest.approx(6.0)
    assert distractor["label"] == ("photo red" if cell == 0 else other.label)  # ... a photo or other footage
    assert check_open(item["gold"], f"Mostly {main.label}, with {distractor['label']} briefly.")
    assert not check_open(item["gold"], f"{distractor['label']}, then {main.label}.")


def test_held_out_wording_differs_and_options_read_as_words():
    _, tune = build_kind_item("count", 0, HAYSTACK, 50.0, _context("tuning"))
    _, held = build_kind_item("count", 0, HAYSTACK, 50.0, _context("held-out"))
    assert tune["question"] != held["question"] and tune["open_question"] != held["open_question"]
    assert held["options"] == ["once", "twice", "three times", "four times"]


def _kind_items(wording: str, seed: int, cell: int, depth: float):
    """``(kind, frames, item, gold)`` of each question kind at ``cell`` in ``wording``; each item's answer letter
    names its answer text, and its open gold accepts that text and no other option (checked after the caller's
    own checks of the item)."""
    ctx = _context(wording, seed=seed)
    for kind in QUESTION_KINDS:
        frames, item = build_kind_item(kind, cell, HAYSTACK, depth, ctx)
        assert len(set(item["options"])) == 4 and item["options"][ord(item["answer"]) - 65] == item["answer_text"]
        yield kind, frames, item, item["gold"]
        wrong = [o for o in item["options"] if o != item["answer_text"]]
        assert check_open(item["gold"], item["answer_text"]), (kind, item["answer_text"])
        assert not any(check_open(item["gold"], o) for o in wrong), (kind, wrong)


@pytest.mark.parametrize("cell", range(4))
def test_second_held_out_wording_builds_every_kind_and_its_golds_check_its_own_phrasings(cell):
    """held-out-2: new question texts for every kind; the open golds read the new option phrasings right."""
    tuning = _context("tuning", seed=3)
    texts = set()
    for kind, _, item, _ in _kind_items("held-out-2", 3, cell, 40.0):
        _, tune = build_kind_item(kind, cell, HAYSTACK, 40.0, tuning)
        assert item["question"] != tune["question"] and item["open_question"] != tune["open_question"]
        texts |= {item["question"], item["open_question"]}
        if kind == "count":  # "k times" states k; every other option states another count
            assert item["options"] == ["1 time", "2 times", "3 times", "4 times"]
            assert item["question"] == f"How many times does the video show {PHOTOS[cell].label}?"
            assert item["open_question"] == f"Count the appearances of {PHOTOS[cell].label}."
        elif kind == "when":  # the answer's quarter, by its held-out-2 phrase
            assert item["options"][3] == "at the end of the video" and "quarter" not in " ".join(item["options"])
            assert item["open_question"] == f"When can {PHOTOS[cell].label} be seen?"
        elif kind == "order":  # "List, in order of appearance: a, b and c."
            assert item["open_question"].startswith("List, in order of appearance: ")
            assert all(n["label"] in item["open_question"] for n in item["needles"]) and " and " in \
                item["open_question"]
        elif kind == "absence":
            assert item["question"] == "Which object does not appear in the video?"
            assert item["open_question"].startswith("Which of these never appears: ")
        else:
            assert item["open_question"] == "Summarise what the video shows."
    assert len(texts) == 2 * len(QUESTION_KINDS)


def test_second_held_out_quarter_phrases_are_read_as_their_quarters():
    whens = [{"type": "time", "start": 30.0 * q + 10, "end": 30.0 * q + 12, "length": 120.0, "quarter": q}
             for q in range(4)]
    for q, phrase in enumerate(QUARTER_OPTIONS["held-out-2"]):
        assert [check_open(g, f"It can be seen {phrase}.") for g in whens] == [i == q for i in range(4)]
    assert [check_open(g, "In the first half but not the start.") for g in whens] == [False, True, False, False]


@pytest.mark.parametrize("cell", range(4))
def test_third_held_out_wording_asks_every_kind_anew_and_its_golds_read_its_options(cell):
    """held-out-3: question texts and options of every kind differ from the three other wordings; the answer
    option is the true one (count k, the quarter, the order shown joined by "->") and the open gold accepts
    exactly the right option's text."""
    target = PHOTOS[cell].label  # (no text shared with another wording: the test below)
    for kind, frames, item, gold in _kind_items("held-out-3", 71, cell, 40.0):
        if kind == "count":
            k = 1 + (cell + 71) % 4
            assert item["question"] == f"Throughout the video, how many times does {target} show up?"
            assert item["open_question"] == f"How many separate appearances does {target} make in this video?"
            assert item["options"] == [f"exactly {n} time{'s' * (n != 'one')}" for n in ("one", "two", "three", "four")]
            assert gold == {"type": "number", "value": k} and item["answer_text"] == item["options"][k - 1]
            assert len(_episodes(frames, COLOURS[PHOTOS[cell].source])) == k
        elif kind == "when":
            q = (cell + 71) % 4
            assert item["question"] == f"During which portion of the video does {target} show up?"
            assert item["open_question"] == f"Roughly when in the video is {target} on screen?"
            assert item["options"][0] == "the opening quarter of the video"
            assert item["options"][3] == "the final quarter of the video"
            (start, end), = _episodes(frames, COLOURS[PHOTOS[cell].source])
            assert gold["quarter"] == q == int(4 * (start + end) / 2 / 120.0) and item["answer"] == "ABCD"[q]
        elif kind == "order":
            shown = [n["label"] for n in sorted(item["needles"], key=lambda n: n["start"])]
            assert item["question"] == "Which option gives the correct order in which these show up in the video?"
            assert item["open_question"].startswith("Put these in the order they show up in the video: ")
            assert item["answer_text"] == " -> ".join(shown) and all(o.count(" -> ") == 2 for o in item["options"])
            assert item["references"] == [" -> ".join(shown)]
            assert [refs[0] for refs in gold["references"]] == shown
        elif kind == "absence":
            assert item["question"] == "Which of the following is not seen anywhere in the video?"
            assert item["open_question"].startswith("One of ") and item["open_question"].endswith(
                " never shows up in the video. Which one?")
            assert item["answer_text"] not in {n["label"] for n in item["needles"]}
        else:
            assert item["question"] == "What is the video primarily about?"
            assert item["open_question"] == "Briefly describe the content of this video."
            assert item["answer_text"] == FOOTAGE[cell % 2].label



def test_no_question_or_option_text_is_shared_between_two_wordings():
    """Each wording set asks anew: no question text, count option or quarter option (compared without case and
    end punctuation) belongs to two sets, and no two sets join order options the same way."""
    from mmlong.benchmarks.niavh_kinds import COUNT_OPTIONS, ORDER_JOINER, QUESTION_TEXT, WORDINGS

    def texts(wording):
        questions = {t for pair in QUESTION_TEXT[wording].values() for t in pair}
        return {t.lower().rstrip("?.") for t in (*questions, *COUNT_OPTIONS[wording], *QUARTER_OPTIONS[wording])}

    assert WORDINGS == ("tuning", "held-out", "held-out-2", "held-out-3", "held-out-4")
    for i, a in enumerate(WORDINGS):
        assert set(QUESTION_TEXT[a]) == set(QUESTION_KINDS) and len(texts(a)) >= 17  # 10 questions (tuning asks
        # its topic question twice alike), 8 options
        for b in WORDINGS[i + 1:]:
            assert not texts(a) & texts(b), (a, b, texts(a) & texts(b))
    joiners = [ORDER_JOINER.get(w, ", then ") for w in WORDINGS]
    assert joiners.count(", then ") == 3 and len(set(joiners)) == 3


@pytest.mark.parametrize("cell", range(4))
def test_fourth_held_out_wording_asks_every_kind_anew_and_its_golds_read_its_options(cell):
    """held-out-4 (EgoSchema / CinePile / TVQA and casual user phrasings about "the clip"): the answer option is
    the true one (count k as "on k occasions", the quarter, the order shown joined by ", followed by ") and the
    open gold accepts exactly the right option's text and a user's natural reply."""
    target = PHOTOS[cell].label
    for kind, frames, item, gold in _kind_items("held-out-4", 97, cell, 55.0):
        if kind == "count":
            k = 1 + (cell + 97) % 4
            assert item["question"] == f"How many times is {target} visible over the course of the clip?"
            assert item["open_question"] == f"how many times do we get to see {target} in this clip?"
            assert item["options"] == ["on one occasion", "on two occasions", "on three occasions",
                                       "on four occasions"]
            assert gold == {"type": "number", "value": k} and item["answer_text"] == item["options"][k - 1]
            assert len(_episodes(frames, COLOURS[PHOTOS[cell].source])) == k
            assert check_open(gold, f"We see it {('once', 'twice', 'three times', 'four times')[k - 1]}.")
        elif kind == "when":
            q = (cell + 97) % 4
            assert item["question"] == f"At which stage of the clip is {target} visible?"
            assert item["open_question"] == f"whereabouts in the clip do we see {target}?"
            assert item["options"] == ["near the start of the clip", "in the second quarter of the clip",
                                       "in the third quarter of the clip", "toward the end of the clip"]
            (start, end), = _episodes(frames, COLOURS[PHOTOS[cell].source])
            assert gold["quarter"] == q == int(4 * (start + end) / 2 / 120.0) and item["answer"] == "ABCD"[q]
            minute, second = divmod(int(start), 60)
            assert check_open(gold, f"Around {minute}:{second:02d}.")
        elif kind == "order":
            shown = [n["label"] for n in sorted(item["needles"], key=lambda n: n["start"])]
            assert item["question"] == ("Considering the whole clip, which option lists the things seen in the "
                                        "correct sequence?")
            assert item["open_question"].startswith("Tell me the order ") and item["open_question"].endswith(
                " are seen in, from first to last.") and all(label in item["open_question"] for label in shown)
            assert item["answer_text"] == ", followed by ".join(shown) and item["references"] == [item["answer_text"]]
            assert all(o.count(", followed by ") == 2 for o in item["options"])
            assert [refs[0] for refs in gold["references"]] == shown
        elif kind == "absence":
            assert item["question"] == "Which of the following items is never visible in the clip?"
            assert item["open_question"].startswith("which of ") and item["open_question"].endswith(
                " never turns up in the clip?") and all(p.label in item["open_question"] for p in PHOTOS)
            assert item["answer_text"] not in {n["label"] for n in item["needles"]}
            assert sorted(item["options"]) == sorted(p.label for p in PHOTOS)
        else:
            assert item["question"] == "Which option best describes the overall subject of the clip?"
            assert item["open_question"] == "what's this clip about?"
            assert item["answer_text"] == FOOTAGE[cell % 2].label


def test_fourth_held_out_quarter_phrases_are_read_as_their_quarters():
    whens = [{"type": "time", "start": 30.0 * q + 10, "end": 30.0 * q + 12, "length": 120.0, "quarter": q}
             for q in range(4)]
    for q, phrase in enumerate(QUARTER_OPTIONS["held-out-4"]):
        assert [check_open(g, f"We see it {phrase}.") for g in whens] == [i == q for i in range(4)]

def test_gold_checks():
    assert first_count("It appears 3 times: at 00:10, 00:40 and 01:20.") == 3
    assert first_count("At 00:10 it appears twice.") == 2  # the clock time is not a count
    assert first_count("I cannot tell.") is None
    assert check_open({"type": "number", "value": 4}, "Four times.") and not check_open(
        {"type": "number", "value": 4}, "Once.")
    when = {"type": "time", "start": 100.0, "end": 102.0, "length": 400.0, "quarter": 1}
    assert check_open(when, "At 01:45.") and not check_open(when, "At 02:30.")  # slack: 10 s (2.5 % of 400 s)
    assert check_open(when, "In the second quarter, around 100 s.") and check_open(when, "around 101 s")
    assert not check_open(when, "At the beginning.") and not check_open(when, "I don't know.")
    assert time_claims("near the end, at 1:02:05") == [(0, "quarter", 3.0), (16, "time", 3725.0)] or \
        time_claims("near the end, at 1:02:05")[0][1] == "quarter"
    order = {"type": "order", "references": [["cat"], ["rocket"], ["coffee"]]}
    assert check_open(order, "First the cat, then the rocket, then coffee.")
    assert not check_open(order, "The rocket, the cat, then coffee.") and not check_open(order, "The cat and rocket.")
    first = {"type": "first", "references": ["lion"], "others": [["cat"], ["rocket"]]}
    assert check_open(first, "The lion is never shown.") and not check_open(first, "The cat; not the lion.")
    with pytest.raises(ValueError):
        check_open({"type": "colour"}, "red")


def test_a_reply_that_declines_is_wrong_even_when_its_closest_guess_is_right():
    """A refusal followed by a "closest match" is not a claim: it scored right before this rule."""
    when = {"type": "time", "start": 80.0, "end": 82.0, "length": 180.0, "quarter": 1}
    refusal = "No moment clearly shows a tower; the evidence does not answer this. The closest match is 01:20."
    assert check_open(when, "A tower is seen at 01:20.") and not check_open(when, refusal)
    assert not check_open({"type": "number", "value": 1}, "I cannot tell; one moment looks close.")
    assert not check_open({"type": "first", "references": ["lion"], "others": [["cat"]]}, "I can't say: lion?")


def test_parse_footage_and_bad_kinds(tmp_path):
    from mmlong.benchmarks.niavh_make import MakeConfig, make_niavh

    assert parse_footage("bikes=people riding bicycles|bicycle") == Footage("bikes", "people riding bicycles",
                                                                              ("bicycle",))
    with pytest.raises(ConfigError, match="SOURCE=LABEL"):
        parse_footage("bikes")
    with pytest.raises(ConfigError, match="4 for absence"):
        make_niavh(tmp_path / "x", MakeConfig(types=("absence",), lengths=(20,), needles=PHOTOS[:2]))
    with pytest.raises(ConfigError, match="wording"):
        make_niavh(tmp_path / "y", MakeConfig(types=("count",), lengths=(20,), wording="other"))


def test_make_writes_every_kind_on_real_media_and_run_scores_per_kind(tmp_path):
    """The real photos and footage, written and read back; the benchmark scores open answers by their gold."""
    import torch

    from mmlong.benchmarks.niavh import NIAVHBenchmark, kinds_markdown, summarize_grid
    from mmlong.benchmarks.niavh_make import MakeConfig, make_niavh
    from mmlong.benchmarks.niavh_media import fit_frame, load_image
    from mmlong.media.video import open_video
    from mmlong.qa import Answer

    manifest = make_niavh(tmp_path / "set", MakeConfig(types=QUESTION_KINDS, depths=(50,), lengths=(24,), fps=2.0,
                                                      max_side=96))
    assert [i["needle_type"] for i in manifest["items"]] == list(QUESTION_KINDS)
    when = next(i for i in manifest["items"] if i["needle_type"] == "when")
    with open_video(str(tmp_path / "set" / when["video"])) as video:
        frame = video.read(torch.tensor([int(when["start"] * 2) + 1])).data[0].numpy().astype(float)
        assert video.meta.duration == pytest.approx(24.0, abs=0.6)
    expected = fit_frame(load_image(when["needle"]), manifest["width"], manifest["height"]).astype(float)
    assert np.abs(frame - expected).mean() < 15  # the cat is where the manifest says

    bench = NIAVHBenchmark(NIAVHBenchmark.Config(data=str(tmp_path / "set")))
    items = {i.id: i for i in bench.items()}
    assert len(items) == 2 * len(QUESTION_KINDS)
    count = next(i for i in manifest["items"] if i["needle_type"] == "count")
    k = count["gold"]["value"]
    right = bench.record(items[f"{count['id']}:open"], Answer(text=f"It is shown {k} times."))
    wrong = bench.record(items[f"{count['id']}:open"], Answer(text=f"It is shown {k + 1} times."))
    assert right["correct"] and not wrong["correct"] and right["gold"]["value"] == k
    mc = bench.record(items[f"{count['id']}:mc"], Answer(text=f"({count['answer']})", option_index=0))
    assert mc["correct"] == (mc["option"] == count["answer"])
    summary = summarize_grid([right, {**wrong, "needle_type": "when"}, mc], [50], [24])
    table = kinds_markdown(summary)
    assert "| count | " in table and "100.0 % (1/1)" in table and "| when | - | 0.0 % (0/1) |" in table


def test_export_to_mlvu_layout_is_read_by_the_mlvu_benchmark(tmp_path):
    from mmlong.benchmarks.mlvu import MLVUBenchmark
    from mmlong.benchmarks.niavh_mlvu import export_mlvu

    (tmp_path / "set" / "videos").mkdir(parents=True)
    items = []
    cases = [("count", ["1", "2", "3", "4"], "3"), ("topic", ["a cat", "a street"], "a street"),
             ("when", ["early", "late"], "late"), ("order", ["a, then b", "b, then a"], "b, then a")]
    for kind, options, right in cases:
        (tmp_path / "set" / "videos" / f"{kind}.mp4").write_bytes(b"x")
        items.append({"needle_type": kind, "video": f"videos/{kind}.mp4", "length": 60, "question": f"{kind}?",
                      "options": options, "answer_text": right})
    counts = export_mlvu({"items": items}, tmp_path / "set", tmp_path / "mlvu")
    assert counts == {"4_count": 1, "7_topic_reasoning": 1, "5_order": 1}  # "when" has no MLVU task
    bench = MLVUBenchmark(MLVUBenchmark.Config(data=str(tmp_path / "mlvu")))
    got = {i.meta["question_type"]: (i.answer, i.query.options, i.video) for i in bench.items()}
    assert set(got) == {"count", "order", "topic_reasoning"}
    assert got["count"][0] == "C" and got["topic_reasoning"][0] == "B" and got["order"][0] == "B"
    assert got["count"][2].endswith("video/4_count/count.mp4")
