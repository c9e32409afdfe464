"""Reference test: VideoLLaMB's ``RMTRTransformerProjector`` + ``TransformerRetriever`` (bigai-nlco/VideoLLaMB),
written here independently with plain tensor ops on the bridge's weights: per scene (<= 8 frames by linspace),
joint self-attention over [memory; scene] in post-norm layers with FFN, the scene part projected (Linear + GELU)
as the bridged tokens, the memory appended to the bank, then one retriever layer (self-attention, cross-attention
to the whole bank including the current memory, FFN); the LLM gets the last scene's bridged tokens."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from mmlong.compressors.recurrent_bridge import RecurrentBridge
from mmlong.types import VisualTokens
from tests.pairing import assert_paired, group_rows

DIM, HEADS = 16, 4


def attention(p, prefix, x, context):
    d = DIM // HEADS

    def heads(t):
        return t.view(t.shape[0], HEADS, d).transpose(0, 1)

    q = heads(F.linear(x, p[f"{prefix}.q_proj.weight"], p[f"{prefix}.q_proj.bias"]))
    k = heads(F.linear(context, p[f"{prefix}.k_proj.weight"], p[f"{prefix}.k_proj.bias"]))
    v = heads(F.linear(context, p[f"{prefix}.v_proj.weight"], p[f"{prefix}.v_proj.bias"]))
    out = (torch.softmax(q @ k.transpose(1, 2) / d ** 0.5, -1) @ v).transpose(0, 1).reshape(x.shape[0], DIM)
    dense = F.linear(out, p[f"{prefix}.residual.dense.weight"], p[f"{prefix}.residual.dense.bias"])
    return F.layer_norm(dense + x, (DIM,), p[f"{prefix}.residual.norm.weight"], p[f"{prefix}.residual.norm.bias"],
                        eps=1e-12)


def layer(p, prefix, x, context=None):
    x = attention(p, f"{prefix}.self_attention", x, x)
    if context is not None:
        x = attention(p, f"{prefix}.cross_attention", x, context)
    hidden = F.gelu(F.linear(x, p[f"{prefix}.mlp.0.weight"], p[f"{prefix}.mlp.0.bias"]))
    dense = F.linear(hidden, p[f"{prefix}.mlp_residual.dense.weight"], p[f"{prefix}.mlp_residual.dense.bias"])
    return F.layer_norm(dense + x, (DIM,), p[f"{prefix}.mlp_residual.norm.weight"],
                        p[f"{prefix}.mlp_residual.norm.bias"], eps=1e-12)


def videollamb_reference(p, scenes: list[torch.Tensor], depth: int) -> list[torch.Tensor]:
    memory = p["read_memory_emb"]
    m = memory.shape[0]
    bank, outputs = [], []
    for tokens in scenes:
        x = torch.cat([memory, tokens])
        for i in range(depth):
            x = layer(p, f"layers.{i}", x)
        memory, states = x[:m], x[m:]
        outputs.append(F.gelu(F.linear(states, p["proj.0.weight"], p["proj.0.bias"])))
        bank.append(memory)
        memory = layer(p, "retriever", memory, torch.cat(bank))
    return outputs


def video(seed: int):
    gen = torch.Generator().manual_seed(seed)
    lengths = [3, 11, 5]  # the middle scene is subsampled to 8 frames
    parts = [torch.randn(DIM, generator=gen) * 2 + 0.3 * torch.randn(n, 2, 2, DIM, generator=gen) for n in lengths]
    tokens = VisualTokens.from_grid(torch.cat(parts), torch.arange(float(sum(lengths))))
    scene = torch.repeat_interleave(torch.arange(3), torch.tensor(lengths))
    return tokens.replace(segments=scene.repeat_interleave(4)), lengths


def test_bridge_equals_the_videollamb_reference():
    for seed in range(3):
        tokens, lengths = video(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compressor = RecurrentBridge(RecurrentBridge.Config(memory_tokens=6, layers=2, heads=HEADS,
                                                                emit="all", seed=seed))
            out = compressor(tokens)
        params = {k: v.detach() for k, v in compressor.bridge(DIM).state_dict().items()}
        scenes, rows, start = [], [], 0
        for n in lengths:
            frames = torch.linspace(start, start + n - 1, min(8, n), dtype=torch.int)  # VideoLLaMB's subsampling
            scenes.append(torch.cat([tokens.features[tokens.frame_ids == int(f)] for f in frames]))
            rows += [int(i) for f in frames for i in (tokens.frame_ids == int(f)).nonzero().flatten()]
            start += n
        expected = videollamb_reference(params, scenes, depth=2)
        torch.testing.assert_close(out.features, torch.cat(expected), atol=1e-5, rtol=1e-4)
        # pairing: each bridged token on the time and place of the scene token it was computed from
        assert_paired(out, group_rows(tokens, [[i] for i in rows], torch.cat(expected)), atol=1e-4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            last = RecurrentBridge(RecurrentBridge.Config(memory_tokens=6, layers=2, heads=HEADS, seed=seed))(tokens)
        torch.testing.assert_close(last.features, expected[-1], atol=1e-5, rtol=1e-4)
