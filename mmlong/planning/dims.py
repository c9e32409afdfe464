"""The planner's model dimensions: :class:`VisionShape` (a vision tower, its merger or projector) and
:class:`ModelShape` (the language model around it), with their parameter counts. Filled from config.json by
:mod:`mmlong.planning.shapes` (Qwen2-VL) and :mod:`mmlong.planning.families` (the newer families).

>>> ModelShape("m", 128, 4, 4, 2, 256, 4096).kv_dim
64
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VisionShape:
    """A Qwen2-VL vision tower: ``depth`` blocks of width ``embed``, MLP ``mlp`` wide, then the patch merger."""

    depth: int
    embed: int
    heads: int
    mlp: int
    patch: int = 14
    merge: int = 2
    temporal_patch: int = 2
    channels: int = 3
    #: the tower's family (:mod:`mmlong.planning.families`): ``qwen2-vl`` (also Qwen3-VL / Qwen3.5, with
    #: ``deepstack`` extra mergers), ``internvit`` (CLS token, pixel shuffle, MLP projector) or ``siglip``
    #: (VideoLLaMA3: per-frame patches, 2x2 pooled for video, MLP projector)
    kind: str = "qwen2-vl"
    deepstack: int = 0
    pos_embed: int = 0  # Qwen3-VL's learned position table (entries), 0 when positions are rotary only
    frame_side: int = 0  # InternViT: every frame resized to this square
    qkv_bias: bool = True  # InternViT's attention_bias

    @property
    def patch_dim(self) -> int:
        return self.channels * self.temporal_patch * self.patch * self.patch


@dataclass(frozen=True)
class ModelShape:
    """The numbers the planner needs from a model config (the language model's and its vision tower's)."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    head_dim: int = 0
    tied: bool = True
    vision: VisionShape | None = None
    #: ``qwen2`` (biased q/k/v), ``qwen3`` (q/k RMSNorm, no bias) or ``qwen3.5`` (gated q_proj: 2 x q_dim)
    llm: str = "qwen2"
    #: Qwen3.5's Gated DeltaNet layers (indices) and their (key heads, value heads, key dim, value dim, conv kernel)
    linear_layers: tuple[int, ...] = ()
    linear: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    family: str = "qwen2-vl"

    @property
    def dim_head(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.dim_head

    @property
    def q_dim(self) -> int:
        return self.heads * self.dim_head

    @property
    def full_layers(self) -> int:
        """Layers with softmax attention (and a KV cache): all but Qwen3.5's linear-attention ones."""
        return self.layers - len(self.linear_layers)

    def attention_parameters(self) -> int:
        h, kv, q = self.hidden, self.kv_dim, self.q_dim
        if self.llm == "qwen2":
            return h * q + q + 2 * (h * kv + kv) + q * h
        gate = 2 if self.llm == "qwen3.5" else 1
        return h * q * gate + 2 * h * kv + q * h + 2 * self.dim_head  # + q/k RMSNorm

    def linear_parameters(self) -> int:
        """One Gated DeltaNet layer's token mixer (Qwen3.5): in_proj_qkv/z/b/a, depthwise conv, A, dt, norm, out."""
        k_heads, v_heads, k_dim, v_dim, kernel = self.linear
        key, value, h = k_heads * k_dim, v_heads * v_dim, self.hidden
        conv = 2 * key + value
        return h * conv + h * value + 2 * h * v_heads + conv * kernel + 2 * v_heads + v_dim + value * h

    def llm_parameters(self) -> int:
        h, f = self.hidden, self.ffn
        mixers = self.full_layers * self.attention_parameters() + len(self.linear_layers) * self.linear_parameters()
        return mixers + self.layers * (3 * h * f + 2 * h) + self.vocab * h * (1 if self.tied else 2) + h

    def vision_parameters(self) -> int:
        from mmlong.planning.towers import tower_parameters

        return tower_parameters(self)
