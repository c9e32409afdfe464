"""VidCom2 against the official default path (xuyang-liu16/VidCom2 ``vidcom2.py``), written here on equal frames."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmlong.compressors.base import Chain, CompressContext
from mmlong.compressors.vidcom2 import frame_scales, vidcom2_keep
from mmlong.types import VisualTokens


def official_vidcom2(flat: torch.Tensor, tpf: int, base_scale: float) -> torch.Tensor:
    """Low-variance half of the channels, Gaussian scores to the video and frame centres, softmax allocation."""
    var = flat.var(dim=0, unbiased=False)
    sel = flat[:, torch.topk(var, k=int(flat.shape[-1] * 0.5), largest=False).indices]
    frames = F.normalize(sel.view(-1, tpf, sel.shape[-1]), dim=-1)
    alphas = [2 ** k for k in range(-3, 2)]

    def kernel(center):
        d2 = ((frames - center) ** 2).sum(dim=-1)
        return sum(torch.exp(-d2 / (2 * a)) for a in alphas)

    vid = kernel(frames.mean(dim=(0, 1), keepdim=True))
    frm = kernel(frames.mean(dim=1, keepdim=True))
    score = -vid.mean(dim=-1)
    probs = F.softmax((score - score.max()) / 0.01, dim=0)
    scales = (base_scale * (1 + probs - probs.mean())).clamp(max=1.0)
    ks = (scales * tpf).round().long().clamp(min=1).tolist()
    out = []
    for i, k in enumerate(ks):
        idx = torch.topk((vid + frm)[i], k=k, largest=False).indices
        out.append(torch.sort(idx).values + i * tpf)
    return torch.cat(out)


def video(seed=0, t=6, h=4, w=5, d=16, odd_frame=3) -> VisualTokens:
    gen = torch.Generator().manual_seed(seed)
    common = torch.randn(d, generator=gen)
    feats = common + 0.3 * torch.randn(t, h, w, d, generator=gen)
    feats[odd_frame] = torch.randn(h, w, d, generator=gen)  # one frame unlike the rest
    return VisualTokens.from_grid(feats, torch.arange(t))


def test_vidcom2_keeps_what_the_official_code_keeps():
    for seed in range(3):
        tok = video(seed)
        for ratio in (0.5, 0.25, 0.1):
            ref = official_vidcom2(tok.features, 20, ratio)
            out = Chain.from_spec(f"vidcom2:{ratio}")(tok)
            assert torch.equal(out.features, tok.features[ref]), (seed, ratio)


def test_the_unusual_frame_gets_the_larger_budget():
    tok = video(0, odd_frame=2)
    out = Chain.from_spec("vidcom2:0.25")(tok)
    per_frame = torch.bincount(out.frame_ids, minlength=6).tolist()
    assert per_frame[2] == max(per_frame) and per_frame[2] > 5 >= max(per_frame[:2] + per_frame[3:])
    ratios = out.provenance[-1].extra["frame_ratios"]
    assert ratios.index(max(ratios)) == 2


def test_frame_scales_follow_the_softmax_rule_and_the_budget():
    scales = frame_scales(torch.tensor([-3.0, -2.99, -2.0, -4.0]), 0.25)
    probs = torch.softmax((torch.tensor([-3.0, -2.99, -2.0, -4.0]) + 2.0) / 0.01, dim=0)
    torch.testing.assert_close(scales, 0.25 * (1 + probs - probs.mean()))
    tok = video(1)
    out = Chain.from_spec("vidcom2")(tok, CompressContext(budget=30))
    assert abs(out.num_tokens - 30) <= 3  # base = budget / N, up to per-frame rounding
    kept, _ = vidcom2_keep(tok.features, tok.frame_ids, 30 / 120)
    assert torch.equal(out.features, tok.features[kept])
