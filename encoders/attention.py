"""How much attention each patch token receives inside a ViT, for attention-guided compressors.

Two definitions, both from the compressors' official code:

- with a class token (CLIP): the attention of the class token to every patch, summed over heads (VisionZip,
  Yang et al. 2024, arXiv:2412.04467, ``attentions[-2][:, :, 0, 1:].sum(1)``);
- without one (SigLIP): the attention each token receives, averaged over heads and over all queries (VisionZip's
  and HoliTom's SigLIP code, ``attentions[-1].mean(1).mean(1)`` of the tower whose last layer is dropped).

Scores are recomputed from the layer's own query/key projections on the hidden states entering its attention
(captured by a forward pre-hook), so they are exact under SDPA or FlashAttention, which return no weights.

>>> import torch
>>> attn = torch.nn.Module()
>>> attn.q_proj, attn.k_proj = torch.nn.Identity(), torch.nn.Identity()
>>> attn.num_heads, attn.scale = 1, 1.0
>>> hidden = torch.tensor([[[1.0, 0.0], [5.0, 0.0], [0.0, 5.0]]])
>>> received_attention(attn, hidden, has_cls=True).shape
torch.Size([1, 2])
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch


def received_attention(attn: Any, hidden: torch.Tensor, has_cls: bool) -> torch.Tensor:
    """Attention scores of the patch tokens at one attention layer.

    attn: the layer's attention module (``q_proj``, ``k_proj``, ``num_heads``, ``scale``), hidden: ``[B, N, C]``
    the states it receives (after the layer's LayerNorm). ``has_cls``: token 0 is a class token; returns
    ``[B, N - 1]`` (class-token attention to each patch, summed over heads). Otherwise ``[B, N]`` (attention each
    token receives, mean over heads and queries).
    """
    b, n, c = hidden.shape
    heads = int(attn.num_heads)
    d = c // heads
    keys = attn.k_proj(hidden).view(b, n, heads, d).transpose(1, 2)  # [B, H, N, d]
    queries = attn.q_proj(hidden[:, :1] if has_cls else hidden)
    queries = queries.view(b, -1, heads, d).transpose(1, 2)  # [B, H, Q, d]
    probs = torch.softmax((queries.float() @ keys.float().transpose(-1, -2)) * float(attn.scale), dim=-1)
    if has_cls:
        return probs[:, :, 0, 1:].sum(dim=1)
    return probs.mean(dim=1).mean(dim=1)


@contextmanager
def capture_inputs(module: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the ``hidden_states`` each call of ``module`` receives (a forward pre-hook, removed on exit)."""
    seen: list[torch.Tensor] = []

    def hook(_mod: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        seen.append(kwargs["hidden_states"] if "hidden_states" in kwargs else args[0])

    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()
