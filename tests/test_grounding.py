"""Grounded option scoring and the coverage sampler, on real photos, real footage and the real ConSE/MiniLM.

Nothing here is faked: EfficientNet-Lite0 (ImageNet weights) encodes real frames, MiniLM embeds the texts, and
the expert lines are :class:`~mmlong.experts.base.TimedText` as the OCR/ASR experts write them. Gemma is not
loaded (``scoring="evidence"`` needs no LM), except in the test marked ``slow``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmlong.assets.samples import sample_image
from mmlong.benchmarks.niavh_make import MakeConfig, make_niavh
from mmlong.benchmarks.niavh_media import Needle, fit_frame
from mmlong.experts.base import TimedText
from mmlong.media.video import open_video
from mmlong.models.socratic.answerer import SocraticModel, fuse_scores
from mmlong.models.socratic.grounding import ground, moment_rarity, word_match
from mmlong.qa import Query
from mmlong.sampling.basic import SampleContext, build_sampler
from mmlong.sampling.coverage import CoverageSampler
from mmlong.scoring.frames import brief_rarity
from mmlong.types import Frames, VideoMeta

OPTIONS = ("a cat", "a cup of coffee", "a rocket", "a camera on a tripod")


@pytest.fixture(scope="module")
def encoder():
    from mmlong.encoders.efficientnet import EfficientNetLite0

    return EfficientNetLite0()


def haystack_with(photo: str, at: int, seconds: int = 20) -> Frames:
    """One frame a second of real footage (bigbuckbunny), the photo shown at second ``at``."""
    from mmlong.assets.samples import sample_video

    with open_video(sample_video("bigbuckbunny"), max_side=160) as video:
        step = max(1, video.meta.num_frames // seconds)
        frames = video.read(np.arange(seconds) * step).data.numpy().copy()
    frames[at] = fit_frame(sample_image(photo), frames.shape[2], frames.shape[1])
    times = torch.arange(seconds, dtype=torch.float64)
    meta = VideoMeta("haystack.mp4", float(seconds), 1.0, seconds, frames.shape[2], frames.shape[1])
    return Frames(torch.from_numpy(frames), torch.arange(seconds), times, meta)


@pytest.fixture(scope="module")
def coffee_at_seven(encoder):
    return encoder.encode(haystack_with("coffee", 7))


def test_word_match_is_normalised_and_fuzzy():
    assert word_match("banana", "The secret word is banana.") == 1.0
    assert word_match("a banana", "THE SECRET WORD IS BANANA") == 1.0  # case, articles
    assert word_match("lighthouse", "The secret word is lighthouse") == 1.0
    assert word_match("lighthouse", "The secret word is Iighthouse.") == 1.0  # an OCR slip (I for l)
    assert word_match("violin", "The secret word is banana.") == 0.0
    assert word_match("a cup of coffee", "coffee") == 0.5


@pytest.mark.parametrize("photo,option", [("coffee", "a cup of coffee"), ("chelsea", "a cat"),
                                          ("rocket", "a rocket")])
def test_each_photo_is_grounded_in_its_own_moment(encoder, photo, option):
    tokens = encoder.encode(haystack_with(photo, 12))
    model = SocraticModel(SocraticModel.Config(scoring="evidence"))
    answer = model.answer(tokens, Query("What object is briefly shown in the video?", OPTIONS), encoder=encoder)
    assert answer.option == option
    assert answer.evidence[0] == 12.0  # the moment that carried the chosen option comes first
    evidence = answer.details["option_scores"]["evidence"]
    assert evidence[OPTIONS.index(option)] == max(evidence)
    assert answer.details["evidence_method"] == "conse"


def test_evidence_times_are_the_moments_carrying_the_chosen_option(encoder, coffee_at_seven):
    model = SocraticModel(SocraticModel.Config(scoring="evidence"))
    moments = model.transcript(coffee_at_seven, encoder, merge=False).lines
    grounding = ground(moments, list(OPTIONS), encoder)
    best = int(grounding.evidence.argmax())
    assert OPTIONS[best] == "a cup of coffee"
    carried = grounding.moments(best, 3)
    prominence = grounding.prominence[best]
    assert carried[0] == int(prominence.argmax()) and moments[carried[0]].centre == 7.0
    assert all(float(prominence[i]) > 0 for i in carried)
    assert float(grounding.evidence[best]) == pytest.approx(float(prominence.max()))
    # prominence is relative to the option's typical relevance over the video
    median = float(grounding.relevance[best].median())
    assert float(grounding.evidence[best]) == pytest.approx(float(grounding.relevance[best].max()) - median)


def test_a_text_moment_carries_a_word_the_frames_cannot_show(encoder, coffee_at_seven):
    lines = [TimedText(13.0, 15.0, "text", "The secret word is lighthouse.", 0.97),
             TimedText(3.0, 4.0, "speech", "Welcome to the show.", 0.9)]
    model = SocraticModel(SocraticModel.Config(scoring="evidence"))
    query = Query("What is the secret word written in the video?", ("banana", "violin", "lighthouse", "volcano"))
    answer = model.answer(coffee_at_seven, query, encoder=encoder, timed_text=lines)
    assert answer.option == "lighthouse" and answer.evidence[0] == 14.0
    assert answer.details["evidence_lines"][0].endswith('"The secret word is lighthouse."')
    open_answer = model.answer(coffee_at_seven, Query(query.question), encoder=encoder, timed_text=lines)
    assert "lighthouse" in open_answer.text and open_answer.evidence == [14.0]


def test_open_answer_names_the_photo_from_its_moment(encoder, coffee_at_seven):
    model = SocraticModel(SocraticModel.Config(scoring="evidence"))
    answer = model.answer(coffee_at_seven, Query("What object is briefly shown in the video?"), encoder=encoder)
    assert answer.text in ("espresso (at 00:07)", "cup (at 00:07)", "coffee mug (at 00:07)")
    assert answer.evidence == [7.0] and answer.details["question"]["kind"] == "appear"


def test_fusion_rule():
    evidence, lm = torch.tensor([0.30, 0.05, 0.05]), torch.tensor([-3.0, 2.0, 0.0])
    fused = fuse_scores(evidence, lm, 0.02, 0.5)
    expected = torch.log_softmax(evidence.double() / 0.02, 0) + 0.5 * torch.log_softmax(lm.double(), 0)
    assert torch.allclose(fused, expected)
    assert int(fused.argmax()) == 0  # clear evidence wins over the LM
    assert int(fuse_scores(torch.tensor([0.05, 0.05, 0.05]), lm, 0.02, 0.5).argmax()) == 1  # no evidence: the LM


@pytest.fixture(scope="module")
def needle_video(tmp_path_factory):
    """Real footage looped to 150 s with a held-out photo (scikit-image's motorcycle, not a tuning photo) shown
    for 2 s."""
    import skimage.data

    photo = Path(skimage.data.__file__).parent / "motorcycle_left.png"
    out = tmp_path_factory.mktemp("coverage")
    manifest = make_niavh(out, MakeConfig(
        needles=(Needle("image", str(photo), "a motorcycle"),), types=("image",), depths=(60,), lengths=(150,),
        needle_seconds=2.0, fps=4.0))
    item = manifest["items"][0]
    return str(out / item["video"]), item


def test_coverage_sampler_picks_the_needle_second(encoder, needle_video):
    video, item = needle_video
    with open_video(video, max_side=160) as source:
        sampled = CoverageSampler(CoverageSampler.Config(frames=32)).sample(
            source.meta, SampleContext(query=Query(item["question"], tuple(item["options"])), encoder=encoder,
                                       source=source))
        uniform = build_sampler("uniform:32").sample(source.meta)
    times = sampled.timestamps.numpy()
    inside = (times >= item["start"]) & (times < item["end"])
    assert len(sampled) <= 32 and inside.sum() >= 1
    # the same budget spread uniformly steps over it (a frame every 4.7 s)
    u = uniform.timestamps.numpy()
    assert not ((u >= item["start"]) & (u < item["end"])).any()


def test_coverage_sampler_scans_at_low_resolution(encoder):
    frames = torch.from_numpy(np.stack([fit_frame(sample_image("coffee"), 160, 90)] * 2))
    full = encoder.feature_grid(frames).mean(dim=(1, 2))
    assert torch.allclose(encoder.pooled_features(frames, 224), full, atol=1e-5)  # 224 px: the full encode
    small = encoder.pooled_features(frames, 96)
    assert small.shape == (2, 1280) and not torch.allclose(small, full, atol=1e-3)  # 96 px: another, cheaper look


@pytest.mark.slow
def test_held_out_needle_is_answered_by_the_default(needle_video, tmp_path):
    from mmlong.config.request import resolve_config
    from mmlong.pipeline import Pipeline

    video, item = needle_video
    pipe = Pipeline(resolve_config(preset="offline", experts="", cache_dir=str(tmp_path)))
    answer = pipe.ask(video, item["question"], item["options"])
    assert answer.option == item["answer_text"]
    assert item["start"] - 2.0 <= answer.evidence[0] <= item["end"] + 2.0


def varied_haystack_with(photo: str, at: int, seconds: int = 30) -> Frames:
    """Two frames a second of varied real footage (bigbuckbunny and bikes, 5 s shots taking turns), the photo
    shown for one second from ``at``."""
    from mmlong.assets.samples import sample_video

    clips = []
    for name in ("bigbuckbunny", "bikes"):
        with open_video(sample_video(name), max_side=160) as video:
            shot = video.read(np.linspace(0, video.meta.num_frames - 1, 10).round().astype(np.int64)).data.numpy()
            clips.append(np.stack([fit_frame(f, 160, 90) for f in shot]))
    count = 2 * seconds
    frames = np.concatenate([clips[k % 2] for k in range(-(-count // 10))])[:count].copy()
    frames[2 * at: 2 * at + 2] = fit_frame(sample_image(photo), 160, 90)
    times = torch.arange(count, dtype=torch.float64) / 2.0
    meta = VideoMeta("haystack.mp4", float(seconds), 2.0, count, 160, 90)
    return Frames(torch.from_numpy(frames), torch.arange(count), times, meta)


def test_brief_rarity_singles_out_the_brief_photo_in_varied_footage(encoder):
    tokens = encoder.encode(varied_haystack_with("rocket", 17))
    model = SocraticModel(SocraticModel.Config(scoring="evidence"))
    moments = list(model.transcript(tokens, encoder, merge=False).lines)
    spoken = TimedText(3.0, 4.5, "speech", "Welcome to the show.", 0.9)
    rarity = moment_rarity([*moments, spoken], 2.5)
    rarest = sorted(range(len(moments)), key=lambda i: -float(rarity[i]))[:2]
    assert sorted(moments[i].centre for i in rarest) == [17.0, 17.5]  # the photo's two frames, nothing else
    assert float(rarity[-1]) == 0.0  # an expert line carries no rarity
    assert float(rarity[: len(moments)].median()) == pytest.approx(0.0, abs=1e-9)  # relative to the typical moment
    features = torch.stack([m.feature for m in moments])
    times = torch.tensor([m.centre for m in moments])
    brief = brief_rarity(features, times, 2.5)
    i = rarest[0]
    far = [j for j in range(len(moments)) if abs(moments[j].centre - moments[i].centre) > 2.5]
    cos = torch.nn.functional.cosine_similarity(features[i : i + 1].double(), features[far].double()).max()
    assert float(brief[i]) == pytest.approx(1.0 - float(cos))


def test_open_answer_takes_the_spoken_line_over_varied_footage(encoder):
    """Every shot of varied footage is unlike most others, so a median-based rarity made some haystack frame
    outweigh the one line that answers; rarity relative to the typical moment does not."""
    tokens = encoder.encode(varied_haystack_with("rocket", 17))
    lines = [TimedText(8.0, 9.5, "speech", "The password is tomato.", 0.9)]
    model = SocraticModel(SocraticModel.Config(scoring="evidence"))
    answer = model.answer(tokens, Query("What is the password someone says in the video?"), encoder=encoder,
                          timed_text=lines)
    assert "tomato" in answer.text and answer.evidence == [8.75]


def test_a_brief_photo_outweighs_an_option_the_footage_resembles(encoder):
    tokens = encoder.encode(varied_haystack_with("rocket", 17))
    options = ("a rocket", "people riding bicycles", "a rabbit", "a cup of coffee")
    query = Query("What object is briefly shown in the video?", options)
    with_rarity = SocraticModel(SocraticModel.Config(scoring="evidence")).answer(tokens, query, encoder=encoder)
    assert with_rarity.option == "a rocket" and with_rarity.evidence[0] in (17.0, 17.5)
    open_answer = SocraticModel(SocraticModel.Config(scoring="evidence")).answer(
        tokens, Query(query.question), encoder=encoder)
    assert open_answer.evidence[0] in (17.0, 17.5)


@pytest.mark.parametrize("question_only", [False, True])
def test_coverage_sampler_finds_the_needle_in_varied_footage(encoder, tmp_path_factory, question_only):
    """bigbuckbunny and bikes shots taking turns for 180 s: every scene is unlike most others, so only a
    rarity that asks for a twin outside the moment's own seconds singles the 2 s photo out."""
    import skimage.data

    photo = Path(skimage.data.__file__).parent / "motorcycle_left.png"
    out = tmp_path_factory.mktemp("varied")
    manifest = make_niavh(out, MakeConfig(
        haystacks=("bigbuckbunny", "bikes"), needles=(Needle("image", str(photo), "a motorcycle"),),
        types=("image",), depths=(15,), lengths=(180,), needle_seconds=2.0, fps=4.0))
    item = manifest["items"][0]
    query = Query(item["question"]) if question_only else Query(item["question"], tuple(item["options"]))
    with open_video(str(out / item["video"]), max_side=160) as source:
        sampled = CoverageSampler(CoverageSampler.Config(frames=64)).sample(
            source.meta, SampleContext(query=query, encoder=encoder, source=source))
    times = sampled.timestamps.numpy()
    assert ((times >= item["start"]) & (times < item["end"])).sum() >= 2
