"""VisionZip against the official dominant + contextual code (dvlab-research/VisionZip), written here; the
hf-vision encoder's attention against transformers' own eager attention weights."""

from __future__ import annotations

import pytest
import torch

from mmlong.cache import FeatureCache
from mmlong.compressors.base import Chain, CompressContext
from mmlong.compressors.visionzip import visionzip_frame
from mmlong.errors import ConfigError
from mmlong.registry import ENCODERS
from mmlong.types import VisualTokens
from tests.pairing import assert_paired, group_rows
from tests.test_encoders_hf_vision import frames, tiny_dims


def official_visionzip(hidden: torch.Tensor, attention: torch.Tensor, dominant: int, contextual: int):
    """Batched as the official code: ``hidden [B, N, C]``, ``attention [B, N]`` (the class-token row, no class
    token kept here). Returns ``[B, dominant + contextual, C]``: dominant tokens in order, then contextual ones."""
    b, n, c = hidden.shape
    top = attention.topk(dominant, dim=1).indices
    mask = torch.ones(b, n, dtype=torch.bool).scatter_(1, top, False)
    dominant_tokens = hidden.masked_select(~mask.unsqueeze(-1)).view(b, dominant, c)
    filtered = hidden.masked_select(mask.unsqueeze(-1)).view(b, n - dominant, c)
    metric = filtered / filtered.norm(dim=-1, keepdim=True)
    step = max(1, metric.shape[1] // contextual)
    targets = torch.arange(0, metric.shape[1], step)[:contextual]
    others = ~torch.isin(torch.arange(metric.shape[1]), targets)
    sim = torch.bmm(metric[:, others], metric[:, targets].transpose(1, 2))
    one_hot = torch.zeros(b, int(others.sum()), contextual, dtype=hidden.dtype)
    one_hot.scatter_(2, sim.argmax(2).unsqueeze(-1), 1)
    counts = one_hot.sum(dim=1).clamp(min=1).unsqueeze(-1)
    aggregated = torch.bmm(one_hot.transpose(1, 2), filtered[:, others]) / counts
    return torch.cat([dominant_tokens, filtered[:, targets] + aggregated], dim=1)


def official_members(attention: torch.Tensor, hidden: torch.Tensor, dominant: int, contextual: int):
    """Per frame, the input tokens (frame-local indices) each row of :func:`official_visionzip` stands for."""
    out = []
    for frame in range(hidden.shape[0]):
        top = torch.sort(attention[frame].topk(dominant).indices).values  # masked_select keeps sequence order
        rest = torch.tensor([i for i in range(hidden.shape[1]) if i not in set(top.tolist())])
        unit = hidden[frame, rest] / hidden[frame, rest].norm(dim=-1, keepdim=True)
        step = max(1, rest.shape[0] // contextual)
        targets = torch.arange(0, rest.shape[0], step)[:contextual]
        others = torch.tensor([i for i in range(rest.shape[0]) if i not in set(targets.tolist())], dtype=torch.long)
        choice = (unit[others] @ unit[targets].T).argmax(dim=1)
        members = [[int(i)] for i in top]
        members += [[int(rest[t])] + rest[others[choice == c]].tolist() for c, t in enumerate(targets.tolist())]
        out.append(members)
    return out


def with_attention(seed=0, t=3, h=6, w=6, d=8) -> VisualTokens:
    gen = torch.Generator().manual_seed(seed)
    tok = VisualTokens.from_grid(torch.randn(t, h, w, d, generator=gen), torch.arange(t * 1.0))
    return tok.replace(attention=torch.rand(tok.num_tokens, generator=gen))


def test_visionzip_matches_the_official_dominant_and_contextual_tokens():
    for seed in range(3):
        tok = with_attention(seed)
        for ratio, dominant, contextual in ((0.5, 15, 3), (0.25, 8, 1), (1 / 9, 3, 1)):
            out = Chain.from_spec(f"visionzip:{ratio}")(tok)
            ref = official_visionzip(tok.features.view(3, 36, 8), tok.attention.view(3, 36), dominant, contextual)
            assert out.num_tokens == 3 * (dominant + contextual)
            for f in range(3):  # same tokens per frame (ours come in sequence order, the official dominant-first)
                ours = out.features[out.frame_ids == f]
                assert torch.allclose(torch.sort(ours, dim=0).values, torch.sort(ref[f], dim=0).values)
                assert any(torch.allclose(row, ref[f][-1]) for row in ours)  # the last contextual token too
            # pairing: each output feature on its own tokens' mean position and time, with their count as size
            members = official_members(tok.attention.view(3, 36), tok.features.view(3, 36, 8), dominant, contextual)
            groups = [[f * 36 + i for i in group] for f in range(3) for group in members[f]]
            assert_paired(out, group_rows(tok, groups, ref.reshape(-1, 8)))


def test_dominant_tokens_are_the_most_attended_and_keep_their_positions():
    tok = with_attention(1)
    groups, _ = visionzip_frame(tok.features[:36], tok.attention[:36], dominant=5, contextual=2)
    top = set(torch.topk(tok.attention[:36], 5).indices.tolist())
    assert set(torch.nonzero(groups < 5).flatten().tolist()) == top
    out = Chain.from_spec("visionzip:0.2,contextual=0")(tok)  # no contextual tokens: a pure attention top-k
    first = out.positions[out.frame_ids == 0]
    cells = (first[:, 1] * 6 + first[:, 2]).long().tolist()
    assert sorted(cells) == sorted(torch.topk(tok.attention[:36], 7).indices.tolist())
    assert out.sizes.tolist() == [1.0] * out.num_tokens


def test_contextual_tokens_account_for_every_other_token():
    tok = with_attention(2)
    out = Chain.from_spec("visionzip:0.25")(tok)
    assert out.sizes.sum() == tok.num_tokens  # dominant kept, all the rest merged into contextual tokens
    assert Chain.from_spec("visionzip")(tok, CompressContext(budget=30)).num_tokens == 30


def test_an_encoder_without_attention_gets_a_clear_error():
    tok = VisualTokens.from_grid(torch.randn(2, 7, 7, 4), torch.arange(2.0), meta={"encoder": "efficientnet-lite0"})
    with pytest.raises(ConfigError) as err:
        Chain.from_spec("visionzip:0.25")(tok)
    message = str(err.value)
    assert "\n" not in message and "'efficientnet-lite0'" in message and "attention_layer" in message
    assert "hf-vision" in message


# ---------------------------------------------------------------------- the encoder's attention
def tower_dir(tmp_path_factory, family: str):
    from transformers import CLIPVisionConfig, CLIPVisionModel, SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(3)
    _, vision = tiny_dims()
    vision = {**vision, "num_hidden_layers": 3}
    if family == "clip":
        model = CLIPVisionModel(CLIPVisionConfig(**vision))
    else:
        model = SiglipVisionModel(SiglipVisionConfig(**vision))
    path = tmp_path_factory.mktemp(family)
    model.eval().save_pretrained(path)
    return path


@pytest.fixture(scope="module", params=["clip", "siglip"])
def tower(request, tmp_path_factory):
    return request.param, tower_dir(tmp_path_factory, request.param)


def test_encoder_attention_equals_transformers_eager_attention(tower):
    from transformers import AutoModel

    family, path = tower
    enc = ENCODERS.create("hf-vision", path=str(path), batch_size=2, attention_layer=-2)
    fr = frames()
    tok = enc.encode(fr)
    assert tok.attention.shape == (tok.num_tokens,) and tok.meta["attention_layer"] == -2
    eager = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    with torch.inference_mode():
        out = eager(pixel_values=enc._pixels(fr.data), output_attentions=True)
    weights = out.attentions[-2]  # [B, heads, N, N], the layer VisionZip reads
    ref = weights[:, :, 0, 1:].sum(dim=1) if family == "clip" else weights.mean(dim=1).mean(dim=1)
    torch.testing.assert_close(tok.attention, ref.reshape(-1), rtol=1e-4, atol=1e-6)
    plain = ENCODERS.create("hf-vision", path=str(path), batch_size=2).encode(fr)
    assert plain.attention is None and torch.allclose(plain.features, tok.features, atol=1e-6)
    # it survives the chain and the feature cache
    cache = FeatureCache(path / "cache")
    assert cache.put("k", tok) and torch.equal(cache.get("k").attention, tok.attention)
    kept = Chain.from_spec("visionzip:0.25,contextual=0")(tok)
    top = torch.topk(tok.attention[:16], 4).indices
    first = kept.positions[kept.frame_ids == 0]
    assert sorted((first[:, 1] * 4 + first[:, 2]).long().tolist()) == sorted(top.tolist())


def test_bad_attention_layer_is_explained(tower):
    from mmlong.errors import ModelLoadError

    _, path = tower
    with pytest.raises(ModelLoadError, match="attention_layer=7 is outside"):
        ENCODERS.create("hf-vision", path=str(path), attention_layer=7)


def test_attention_follows_select_merge_and_concat():
    tok = with_attention(4, t=2, h=2, w=2)
    a = tok.attention
    assert torch.equal(tok.select(torch.tensor([5, 1])).attention, a[[5, 1]])
    sized = tok.replace(sizes=torch.tensor([1.0, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]))
    merged = sized.merge(torch.tensor([0, 0, 1, 1, 1, 2, 2, 2]))
    torch.testing.assert_close(merged.attention[0], (a[0] + 3 * a[1]) / 4)  # size-weighted mean
    both = VisualTokens.concat([tok, tok])
    assert torch.equal(both.attention, torch.cat([a, a]))
    assert VisualTokens.concat([tok, tok.replace(attention=None)]).attention is None
    with pytest.raises(ValueError, match="attention"):
        tok.replace(attention=torch.zeros(3))


def test_visionzip_through_the_pipeline_with_chunked_encoding(tower, sample_video_path, tmp_path):
    from mmlong.config.request import resolve_config
    from mmlong.pipeline import Pipeline

    family, path = tower
    options = {"path": str(path), "attention_layer": -2}

    def pipe(**kw):
        return Pipeline(resolve_config(preset="offline", sample="uniform:5", encoder="hf-vision",
                                       encoder_options=options, cache_dir=str(tmp_path), **kw))

    whole = pipe(chunk_size=64, cache=False).encode(sample_video_path)
    chunked = pipe(chunk_size=2).encode(sample_video_path)  # three chunks, concatenated
    assert chunked.attention is not None and torch.allclose(chunked.attention, whole.attention, atol=1e-6)
    assert torch.equal(pipe(chunk_size=2).encode(sample_video_path).attention, chunked.attention)  # cache hit
    out = pipe(chunk_size=2, compress="visionzip:0.25").tokens(sample_video_path)
    assert out.provenance[-1].name == "visionzip" and out.num_tokens == 5 * 4
    if family != "clip":
        return
    with pytest.raises(ConfigError, match="'efficientnet-lite0' recorded none"):
        Pipeline(resolve_config(preset="offline", sample="uniform:2", cache=False,
                                compress="visionzip")).tokens(sample_video_path)


def test_llava_onevision_tower_records_its_attention():
    import torch.nn.functional as F

    from mmlong.models.native.llava_onevision import LlavaOneVisionAdapter
    from tests.vlm_fixtures import build_llava_onevision, frames_of, random_video

    model, processor = build_llava_onevision(num_layers=2)
    fr = frames_of(random_video(num_frames=4, height=70, width=70))
    adapter = LlavaOneVisionAdapter(LlavaOneVisionAdapter.Config(attention=True, frames_per_batch=3))
    tok = adapter.load(model, processor).encode_frames(fr)
    plain_adapter = LlavaOneVisionAdapter(LlavaOneVisionAdapter.Config()).load(model, processor)
    plain = plain_adapter.encode_frames(fr)
    assert plain.attention is None and torch.allclose(plain.features, tok.features, atol=1e-5)
    assert tok.grid == (4, 3, 3) and tok.attention.shape == (36,)
    # reference: the tower's own eager attention weights at the feature layer (-1), mean over heads and
    # queries, then the 5x5 -> 3x3 bilinear pooling the features get
    pixels = processor.video_processor(videos=[fr.data], do_sample_frames=False, return_tensors="pt")
    pixels = pixels["pixel_values_videos"][0]
    tower = model.model.vision_tower
    tower.config._attn_implementation = "eager"
    try:
        with torch.inference_mode():
            weights = tower(pixels, output_attentions=True).attentions[-1]
    finally:
        tower.config._attn_implementation = "sdpa"
    received = weights.mean(dim=1).mean(dim=1).view(4, 1, 5, 5)
    ref = F.interpolate(received, size=(3, 3), mode="bilinear").reshape(-1)
    torch.testing.assert_close(tok.attention, ref, rtol=1e-4, atol=1e-6)
    assert adapter.native_encoder().config.model != plain_adapter.native_encoder().config.model  # cache keys differ
    out = Chain.from_spec("visionzip:0.34,contextual=0")(tok)  # 3 of 9 per frame: the most attended
    first = out.positions[out.frame_ids == 0]
    assert sorted((first[:, 1] * 3 + first[:, 2]).long().tolist()) == sorted(torch.topk(ref[:9], 3).indices.tolist())
