from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmlong.errors import ConfigError, ModelLoadError
from mmlong.registry import ENCODERS
from mmlong.types import Frames, VideoMeta

skimage_data = pytest.importorskip("skimage.data")

PHOTOS = ("chelsea", "coffee", "rocket", "astronaut", "stereo_motorcycle", "hubble_deep_field")
CAT_CLASSES = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}


def photo_frames(names=PHOTOS, size=(120, 160)) -> Frames:
    """The scikit-image photos as small video-like frames, one per second starting at 0.5 s."""
    images = []
    for name in names:
        image = getattr(skimage_data, name)()
        image = image[0] if isinstance(image, tuple) else image  # stereo pairs
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        images.append(x.round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0))
    n = len(images)
    meta = VideoMeta(path="photos", duration=float(n), fps=1.0, num_frames=n, width=size[1], height=size[0])
    return Frames(
        data=torch.stack(images),
        indices=torch.arange(n) * 10,
        timestamps=torch.arange(n, dtype=torch.float64) + 0.5,
        meta=meta,
    )


@pytest.fixture(scope="module")
def conse_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("conse")


@pytest.fixture(scope="module")
def encoder(conse_dir):
    return ENCODERS.create("efficientnet-lite0", batch_size=4, cache_dir=str(conse_dir))


@pytest.fixture(scope="module")
def frames():
    return photo_frames()


@pytest.fixture(scope="module")
def tokens(encoder, frames):
    return encoder.encode(frames)


def test_tokens_shape_positions_and_times(tokens, frames):
    t = len(frames)
    assert tokens.features.shape == (t * 49, 1280)
    assert tokens.grid == (t, 7, 7)
    assert tokens.frame_ids.tolist() == [i for i in range(t) for _ in range(49)]
    assert tokens.timestamps.tolist() == [frames.timestamps[i].item() for i in range(t) for _ in range(49)]
    assert tokens.positions[49 + 7 * 3 + 5].tolist() == [1.0, 3.0, 5.0]
    assert tokens.frame_times.tolist() == frames.timestamps.tolist()
    assert tokens.meta["encoder"] == "efficientnet-lite0"
    assert tokens.meta["frame_indices"] == frames.indices.tolist()
    # ReLU6 activations: bounded, and different photos give different features
    assert float(tokens.features.min()) >= 0.0 and float(tokens.features.max()) <= 6.0
    means = tokens.frame_means()[2]
    assert torch.cdist(means, means).topk(2, largest=False).values[:, 1].min() > 1.0


def test_batching_does_not_change_features(encoder, frames, tokens):
    one_by_one = ENCODERS.create("efficientnet-lite0", batch_size=1)
    sub = Frames(frames.data[:2], frames.indices[:2], frames.timestamps[:2], frames.meta)
    assert torch.allclose(one_by_one.encode(sub).features, tokens.features[: 2 * 49], atol=1e-4)


def test_classify_finds_the_cat_and_matches_the_full_network(encoder, frames, tokens):
    ids, times, means = tokens.frame_means()
    probs = encoder.classify(means)
    assert probs.shape == (len(frames), 1000)
    assert torch.allclose(probs.sum(-1), torch.ones(len(frames)), atol=1e-5)
    names = encoder.class_names
    assert len(names) == 1000 and names[285] == "Egyptian cat"
    top5 = {names[i] for i in probs[0].topk(5).indices.tolist()}
    assert top5 & CAT_CLASSES, top5
    assert names[int(probs[0].argmax())] in CAT_CLASSES
    assert names[int(probs[1].argmax())] in {"espresso", "cup", "coffee mug"}
    direct = encoder.predict_frames(frames.data)
    assert direct.argmax(-1).tolist() == probs.argmax(-1).tolist()
    assert torch.allclose(direct, probs, atol=1e-4)


@pytest.mark.parametrize(
    "query, photo",
    [("a cat", "chelsea"), ("coffee", "coffee"), ("a cup of coffee", "coffee"), ("a rocket", "rocket"),
     ("a motorcycle", "stereo_motorcycle")],
)
def test_conse_ranks_the_matching_photo_first(encoder, tokens, query, photo):
    scores = encoder.relevance(tokens.frame_means()[2], [query])[0]
    assert scores.shape == (len(PHOTOS),)
    assert PHOTOS[int(scores.argmax())] == photo, dict(zip(PHOTOS, scores.tolist()))


def test_text_side_shapes_and_norms(encoder, tokens):
    text = encoder.encode_text(["a cat", "a rocket", "coffee"])
    visual = encoder.embed_visual(tokens.frame_means()[2])
    assert text.shape == (3, 384) and visual.shape == (len(PHOTOS), 384)
    assert torch.allclose(text.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(visual.norm(dim=-1), torch.ones(len(PHOTOS)), atol=1e-5)
    # the class-name table is built once per encoder, and kept on disk for the next process
    assert encoder.conse.class_embeddings is encoder.conse.class_embeddings


def test_class_name_embeddings_come_back_from_disk(encoder, conse_dir, monkeypatch):
    table = encoder.conse.class_embeddings
    files = list(conse_dir.glob("class-names-*.safetensors"))
    assert len(files) == 1
    fresh = ENCODERS.create("efficientnet-lite0", cache_dir=str(conse_dir))

    def no_text_model_runs(texts):
        raise AssertionError(f"text model ran on {len(texts)} texts")

    monkeypatch.setattr(fresh.conse.embedder, "embed", no_text_model_runs)
    assert torch.equal(fresh.conse.class_embeddings, table)
    other_template = ENCODERS.create("efficientnet-lite0", cache_dir=str(conse_dir), class_template="{}")
    assert other_template.conse.cache_file() != files[0]


def test_identity_for_the_cache(encoder):
    assert len(encoder.weights_id()) == 16
    other = ENCODERS.create("efficientnet-lite0", resize="center-crop")
    assert other.weights_id() == encoder.weights_id()
    assert other.cache_id() != encoder.cache_id()
    assert ENCODERS.create("efficientnet-lite0", batch_size=2).cache_id() == encoder.cache_id()


def test_bad_weights_and_options_fail_clearly(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(ModelLoadError, match="nope.pth"):
        ENCODERS.create("efficientnet-lite0", weights=str(missing))
    wrong = tmp_path / "wrong.pt"
    torch.save({"layer.weight": torch.zeros(2, 2)}, wrong)
    with pytest.raises(ModelLoadError, match="not EfficientNet-Lite0 weights"):
        ENCODERS.create("efficientnet-lite0", weights=str(wrong))
    pickled = tmp_path / "pickled.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "extra": VideoMeta("v", 1, 1, 1, 1, 1)}, pickled)
    with pytest.raises(ModelLoadError, match="cannot read weights"):
        ENCODERS.create("efficientnet-lite0", weights=str(pickled))
    with pytest.raises(ConfigError, match="normalization"):
        ENCODERS.create("efficientnet-lite0", normalization="whatever")


def test_empty_frames_give_no_tokens(encoder, frames):
    empty = Frames(frames.data[:0], frames.indices[:0], frames.timestamps[:0], frames.meta)
    tok = encoder.encode(empty)
    assert tok.num_tokens == 0 and tok.grid == (0, 7, 7) and tok.dim == 1280
