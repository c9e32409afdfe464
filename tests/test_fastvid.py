"""FastVID (Shen et al. 2025, arXiv:2503.11187) against a reference written here from the paper and the official
code (LunarShen/FastVID, the STPrune block of its ``Qwen2Model.forward``)."""

from __future__ import annotations

import math

import pytest
import torch

from mmlong.compressors.base import Chain, CompressContext
from mmlong.compressors.fastvid import FastVID, dynamic_segments
from mmlong.errors import ConfigError
from mmlong.registry import COMPRESSORS
from mmlong.types import VisualTokens
from tests.pairing import assert_paired, group_rows


def reference_fastvid(video, global_features, attn, retention, c, tau, d, p, beta):
    """The official pipeline, batched over frames: video ``[F, n, D]``, global_features ``[F, D]``, attn ``[F, n]``.

    Returns (kept flat indices sorted, their features, segment sizes, their sizes: 1 for a salient token, the
    tokens an anchor absorbed, at least 1, for an anchor).
    """
    frames, n, dim = video.shape
    flat_index = torch.arange(frames * n).view(frames, n)
    g = global_features / global_features.norm(dim=1, keepdim=True)
    sim = (g[:-1] * g[1:]).sum(1)
    cut = torch.unique(torch.cat([torch.topk(sim, min(c - 1, frames - 1), largest=False).indices,
                                  torch.nonzero(sim < tau).squeeze(1)])).sort().values
    padded = torch.nn.functional.pad(cut, (1, 1), value=-1)
    padded[-1] = frames - 1
    seg_sizes = padded.diff().tolist()

    retain = int(n * retention)
    salient_num = retain - int(retain * d)
    context_num = retain - salient_num
    context_list = torch.zeros(frames, dtype=torch.int)
    offset = 0
    for length in seg_sizes:
        per = (context_num * length) // ((length + p - 1) // p)
        back = torch.arange(length - 1, -1, -1)
        context_list[offset:offset + length][back % p == 0] = per
        offset += length

    rows = torch.arange(frames).unsqueeze(1)
    salient_idx = torch.topk(attn, salient_num, dim=1).indices
    kept_idx = [flat_index[rows.expand(-1, salient_num), salient_idx].reshape(-1)]
    kept_feat = [video[rows.expand(-1, salient_num), salient_idx].reshape(-1, dim)]
    kept_size = [torch.ones(frames * salient_num)]

    mask = torch.ones(frames, n, dtype=torch.bool)
    mask.scatter_(1, salient_idx, False)
    m = n - salient_num
    filt_idx = torch.arange(n).unsqueeze(0).expand(frames, -1)[mask].view(frames, m)
    filt = video[rows.expand(-1, m), filt_idx]
    filt_flat = flat_index[rows.expand(-1, m), filt_idx]
    dist = torch.cdist(filt, filt) / dim ** 0.5
    nearest = torch.topk(dist, k=min(4, m), dim=-1, largest=False).values
    density = (-(nearest ** 2).mean(-1)).exp()
    higher = (density[:, None, :] > density[:, :, None]).float()
    dmax = dist.flatten(1).max(-1)[0][:, None, None]
    dist0 = (dist * higher + dmax * (1 - higher)).min(-1)[0]
    score = dist0 * density

    def absorb(targets, pool, beta_):
        sims = torch.bmm(pool / pool.norm(dim=-1, keepdim=True),
                         (targets / targets.norm(dim=-1, keepdim=True)).transpose(1, 2))
        one_hot = torch.zeros(sims.shape).scatter_(2, sims.argmax(2, keepdim=True), 1)
        w = (1 / (one_hot.sum(1).unsqueeze(-1) + 1)).clamp(min=beta_)
        agg = torch.bmm(one_hot.transpose(1, 2), pool) / one_hot.sum(1).clamp(min=1).unsqueeze(-1)
        return w * targets + (1 - w) * agg, one_hot.sum(1).clamp(min=1)

    single = context_list == context_num
    if context_num > 0 and single.any():
        pick = torch.topk(score, context_num, dim=-1).indices
        r = rows.expand(-1, context_num)
        merged, joined = absorb(filt[r, pick], filt, beta)
        kept_idx.append(filt_flat[r, pick][single].reshape(-1))
        kept_feat.append(merged[single].reshape(-1, dim))
        kept_size.append(joined[single].reshape(-1))
    start = 0
    for length in seg_sizes:
        if length > 1:
            seg_list = context_list[start:start + length]
            target = seg_list > context_num
            if target.any():
                per = int(seg_list[-1])
                t = int(target.sum())
                pick = torch.topk(score[start:start + length][target], per, dim=-1).indices
                r = torch.arange(t).unsqueeze(1).expand(-1, per)
                anchors = filt[start:start + length][target][r, pick]
                pool = filt[start:start + length].reshape(1, -1, dim).expand(t, -1, -1)
                kept_idx.append(filt_flat[start:start + length][target][r, pick].reshape(-1))
                merged, joined = absorb(anchors, pool, beta)
                kept_feat.append(merged.reshape(-1, dim))
                kept_size.append(joined.reshape(-1))
        start += length
    idx = torch.cat(kept_idx)
    feat = torch.cat(kept_feat)
    order = torch.argsort(idx)
    return idx[order], feat[order], seg_sizes, torch.cat(kept_size)[order]


def scene_video(frames=12, side=4, dim=16, seed=0):
    """Frames in three scenes (slowly drifting features), so DySeg has transitions to find."""
    gen = torch.Generator().manual_seed(seed)
    scenes = torch.randn(3, side, side, dim, generator=gen)
    which = torch.tensor([0] * 5 + [1] * 4 + [2] * (frames - 9))
    return scenes[which] + 0.3 * torch.randn(frames, side, side, dim, generator=gen)


@pytest.mark.parametrize("retain,c,tau,d,p", [
    (0.25, 8, 0.9, 0.4, 4), (0.25, 2, 0.5, 0.4, 4), (0.5, 3, 0.95, 0.5, 2), (0.75, 1, 0.0, 0.3, 1),
])
def test_fastvid_equals_reference(retain, c, tau, d, p):
    grid = scene_video()
    tokens = VisualTokens.from_grid(grid, torch.arange(12.0) * 0.5)
    out = FastVID(FastVID.Config(retain=retain, segments=c, tau=tau, d=d, p=p))(tokens)
    video = grid.reshape(12, 16, 16)
    mean = video.mean(1)
    attn = (video @ mean.unsqueeze(-1)).squeeze(-1) / math.sqrt(16)
    idx, feat, sizes, kept_sizes = reference_fastvid(video, mean, attn, retain, c, tau, d, p, 0.6)
    assert out.provenance[-1].extra["segments"] == sizes
    kept_rows = [int((tokens.positions == pos).all(1).nonzero()[0]) for pos in out.positions]
    assert kept_rows == idx.tolist()
    torch.testing.assert_close(out.features, feat, atol=1e-5, rtol=1e-5)
    assert torch.equal(out.timestamps, tokens.timestamps[idx])
    # pairing: each kept feature on its own token's position and time, an anchor sized by what it absorbed
    assert_paired(out, group_rows(tokens, [[i] for i in idx.tolist()], feat).index_copy(
        1, torch.tensor([16 + 4]), kept_sizes.double().unsqueeze(1)))


def test_dyseg_finds_the_scene_cuts_and_multi_frame_segments_share_anchors():
    grid = scene_video()
    means = grid.reshape(12, 16, 16).mean(1)
    assert dynamic_segments(means, segments=1, tau=0.8) == [5, 4, 3]
    tokens = VisualTokens.from_grid(grid, torch.arange(12.0))
    out = FastVID(FastVID.Config(retain=0.5, segments=1, tau=0.8, p=4))(tokens)
    extra = out.provenance[-1].extra
    # 8 kept per frame: 5 salient + 3 context; the 5-frame segment puts its 15 anchors on 2 frames (7 each), the
    # 4-frame one its 12 on the last frame (capped at the 11 non-salient tokens there), the 3-frame one 9
    assert extra["anchors_per_frame"] == [7, 0, 0, 0, 7, 0, 0, 0, 12, 0, 0, 9]
    assert out.num_tokens == 12 * 5 + 7 + 7 + 11 + 9
    assert out.sizes.sum() >= out.num_tokens


def test_budget_chain_and_errors():
    tokens = VisualTokens.from_grid(scene_video(), torch.arange(12.0))
    out = FastVID(FastVID.Config(retain="auto"))(tokens, CompressContext(budget=48))
    assert out.num_tokens <= 48 and out.provenance[-1].extra["budget_met"]
    assert COMPRESSORS.from_spec("fastvid:0.25,segments=4").config == FastVID.Config(retain=0.25, segments=4)
    chained = Chain.from_spec("fastvid:0.5,pool:2")(tokens)
    assert [s.name for s in chained.provenance] == ["fastvid", "pool"]
    with pytest.raises(ConfigError, match="needs a token budget"):
        FastVID(FastVID.Config(retain="auto"))(tokens)
    with pytest.raises(ValueError, match="retain must be"):
        FastVID.Config(retain=0.0)


@pytest.fixture(scope="module")
def siglip(tmp_path_factory):
    from mmlong.registry import ENCODERS
    from tests.test_visionzip import tower_dir

    return ENCODERS.create("hf-vision", path=str(tower_dir(tmp_path_factory, "siglip")), batch_size=4)


def probe_attention(head, x):
    """The SigLIP head's probe attention over ``x [F, n, D]``, mean over heads, from its in-projection weights."""
    dim, heads = x.shape[-1], head.attention.num_heads
    wq, wk, _ = head.attention.in_proj_weight.chunk(3)
    bq, bk, _ = head.attention.in_proj_bias.chunk(3)
    q = (head.probe[0, 0] @ wq.T + bq).view(heads, dim // heads)
    k = (x @ wk.T + bk).view(*x.shape[:2], heads, dim // heads)
    logits = torch.einsum("hd,fnhd->fhn", q, k) / math.sqrt(dim // heads)
    return logits.softmax(dim=-1).mean(dim=1)


def test_fastvid_uses_the_siglip_pooling_head_of_the_encoder(siglip):
    from tests.test_encoders_hf_vision import frames

    tokens = siglip.encode(frames(t=8, seed=3))
    assert tokens.grid == (8, 4, 4)
    x = tokens.features.view(8, 16, -1).float()
    head = siglip.vision.head
    with torch.no_grad():
        weights = probe_attention(head, x)
        pooled = head(x)  # transformers' SiglipMultiheadAttentionPoolingHead, the official head's forward
    unit = torch.nn.functional.normalize(pooled, dim=-1)
    tau = float((unit[:-1] * unit[1:]).sum(-1).median())  # DySeg cuts where the pooled features change most
    cfg = FastVID.Config(retain=0.5, segments=1, tau=tau, d=0.5, p=2)
    out = FastVID(cfg)(tokens, CompressContext(encoder=siglip))
    assert out.provenance[-1].extra["saliency"] == "siglip-head"
    idx, feat, sizes, _ = reference_fastvid(x, pooled, weights, 0.5, 1, tau, 0.5, 2, 0.6)
    assert out.provenance[-1].extra["segments"] == sizes and len(sizes) > 1
    kept_rows = [int((tokens.positions == pos).all(1).nonzero()[0]) for pos in out.positions]
    assert kept_rows == idx.tolist()
    torch.testing.assert_close(out.features, feat, atol=1e-5, rtol=1e-5)
    # without the encoder (or with one that has no head) the mean proxy ranks the tokens, and differently here
    proxy = FastVID(cfg)(tokens)
    assert proxy.provenance[-1].extra["saliency"] == "mean-proxy"
    proxy_rows = [int((tokens.positions == pos).all(1).nonzero()[0]) for pos in proxy.positions]
    assert proxy_rows != kept_rows
    assert siglip.attention_pool(x[..., :8]) is None  # not the encoder's width: the proxy
