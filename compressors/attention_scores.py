"""Attention scores of chosen query rows, recomputed from a decoder layer's input (no eager weights needed).

Used by the in-LLM compressors that rank visual tokens by attention: FastV / PyramidDrop / FrameFusion (the last
prompt token's head-averaged row, :func:`last_token_attention`), PruneVid (the question rows,
:func:`query_attention`) and DyCoke (:func:`apply_rope` on cached keys). The query and keys are rebuilt with the
layer's ``input_layernorm``, ``q_proj`` / ``k_proj`` (+ ``q_norm`` / ``k_norm``) and the RoPE ``(cos, sin)`` it
receives, so SDPA or FlashAttention layers give the same scores as eager attention weights. A gated attention
(Qwen3.5: ``q_proj`` gives each head's query and its output gate) is scored with the query half; the gate
scales the output, not the softmax.
"""

from __future__ import annotations

from typing import Sequence

import torch

from mmlong.errors import ConfigError


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x ``[B, H, L, hd]``, cos/sin ``[B, L, r]`` (``r <= hd``: partial rotary leaves the rest unrotated)."""
    rot = cos.shape[-1]
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    return torch.cat((x_rot * cos + _rotate_half(x_rot) * sin, x_pass), dim=-1)


def softmax_attention(layer: torch.nn.Module) -> torch.nn.Module:
    """The layer's softmax attention module (``self_attn``); ConfigError for a linear-attention layer (Qwen3.5's
    Gated DeltaNet), which has no attention weights to rank tokens by."""
    attn = getattr(layer, "self_attn", None)
    if attn is None:
        raise ConfigError(
            f"attention-ranked pruning: {type(layer).__name__} is a linear-attention layer of a hybrid model, with "
            "no softmax attention to score tokens; choose a full-attention layer"
        )
    return attn


def linear_attention_layers(layers: Sequence[torch.nn.Module]) -> list[int]:
    """Indices of the layers without softmax attention (a hybrid model's linear-attention layers), ``[]`` for
    a plain transformer."""
    return [i for i, layer in enumerate(layers) if getattr(layer, "self_attn", None) is None]


def project_queries(attn: torch.nn.Module, x: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Queries ``[B, n, Hq, hd]`` of the normalised input ``x [B, n, D]`` (before ``q_norm`` and RoPE); a gated
    attention's ``q_proj`` (Qwen3.5: each head's query, then its output gate) gives its query halves."""
    q = attn.q_proj(x)
    heads = int(getattr(getattr(attn, "config", None), "num_attention_heads", 0) or 0)
    if heads and q.shape[-1] == 2 * heads * head_dim:
        return q.view(*x.shape[:2], heads, 2 * head_dim)[..., :head_dim]
    return q.view(*x.shape[:2], -1, head_dim)


def query_attention(
    layer: torch.nn.Module, hidden: torch.Tensor, position_embeddings: tuple[torch.Tensor, torch.Tensor] | None,
    rows: torch.Tensor, rotary: bool = True, causal: bool = True,
) -> torch.Tensor:
    """Softmax attention of the query ``rows`` to every token at ``layer``, recomputed from its input.

    hidden ``[1, L, D]`` (the layer's input); position_embeddings ``(cos, sin)`` each ``[1, L, r]`` (unused, may be
    None, when ``rotary`` is off); rows int64 ``[Q]``. Returns float32 ``[Hq, Q, L]`` (one softmax row per query
    head and query; GQA key heads are shared). ``rotary``: queries and keys get RoPE first (the attention the
    layer computes); off, the raw projections are used (PruneVid's ``attn_weights_wo_pos``). ``causal``: a query
    at row ``i`` sees keys ``0..i``; off, every row sees all ``L`` keys.
    """
    attn = softmax_attention(layer)
    x = layer.input_layernorm(hidden)
    head_dim = int(getattr(attn, "head_dim", 0) or attn.q_proj.out_features // attn.config.num_attention_heads)
    b, length, _ = x.shape
    rows = rows.to(x.device)
    q = project_queries(attn, x[:, rows], head_dim)
    k = attn.k_proj(x).view(b, length, -1, head_dim)
    if getattr(attn, "q_norm", None) is not None:
        q = attn.q_norm(q)
    if getattr(attn, "k_norm", None) is not None:
        k = attn.k_norm(k)
    q, k = q.transpose(1, 2).float(), k.transpose(1, 2).float()
    if rotary:
        cos, sin = (t.float() for t in position_embeddings)
        q = apply_rope(q, cos[:, rows], sin[:, rows])
        k = apply_rope(k, cos, sin)
    k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    scaling = float(getattr(attn, "scaling", head_dim ** -0.5))
    logits = (q @ k.transpose(-1, -2)) * scaling  # [B, Hq, Q, L]
    if causal:
        future = torch.arange(length, device=x.device).unsqueeze(0) > rows.unsqueeze(1)  # [Q, L]
        logits = logits.masked_fill(future, float("-inf"))
    return logits.softmax(dim=-1)[0]


def last_token_attention(
    layer: torch.nn.Module, hidden: torch.Tensor, position_embeddings: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """Head-averaged attention of the last token to every token at ``layer``, recomputed from its input.

    hidden ``[1, L, D]`` (the layer's input); position_embeddings ``(cos, sin)`` each ``[1, L, r]``.
    Returns float32 ``[L]`` (a softmax row averaged over query heads; GQA key heads are shared).
    """
    last = torch.tensor([hidden.shape[1] - 1])
    return query_attention(layer, hidden, position_embeddings, last).mean(dim=0)[0]
