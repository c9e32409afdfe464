"""A recurrent memory bridge: a few memory tokens carry the video from scene to scene.

Wang et al. 2024, "VideoLLaMB: Long-context Video Understanding with Recurrent Memory Bridges". The video is cut
into scenes (SceneTilling, :mod:`mmlong.compressors.scenetiling`); for each scene, ``M`` memory tokens attend
over ``[memory; scene tokens]`` in a few bridge layers (the recurrence, as in the Recurrent Memory Transformer),
then retrieve from the cache of all earlier memories by cross-attention (VideoLLaMB's memory retrieval, which
keeps early scenes from fading). Each scene's memory is the bridge's output for that scene.

Cost: only the memory tokens are queries, so a scene of ``L`` tokens costs ``layers * M * (M + L)`` attention
scores in the bridge plus ``M * (s * M)`` for retrieval over the ``s`` earlier memories; the state kept is the
cache of ``S x M`` memory tokens. Nothing grows with the square of the video's token count.

Weights: ``weights=PATH`` loads a safetensors file written by :func:`save_bridge` (architecture in its
metadata); without one the bridge is randomly initialised with a fixed seed and a warning (useful for shapes and
timing, not for answers).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mmlong.compressors.base import CompressContext, Compressor, report
from mmlong.compressors.scenetiling import segment_boundaries, segment_ids
from mmlong.errors import ModelLoadError
from mmlong.types import VisualTokens

_META_KEY = "mmlong.recurrent_bridge"


class BridgeLayer(nn.Module):
    """Memory ``[M, W]`` attends over ``[memory; segment]`` ``[M + L, W]`` (pre-norm), then an MLP."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(width)
        self.norm_kv = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, memory: torch.Tensor, segment: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(torch.cat([memory, segment], dim=0)).unsqueeze(0)
        memory = memory + self.attn(self.norm_q(memory).unsqueeze(0), kv, kv, need_weights=False)[0][0]
        return memory + self.mlp(self.norm_mlp(memory))


class RecurrentMemoryBridge(nn.Module):
    """Bridge from encoder features ``[L, D]`` per segment to ``M`` memory tokens ``[M, D]`` per segment."""

    def __init__(self, feature_dim: int, width: int = 256, memory_tokens: int = 32, layers: int = 2,
                 heads: int = 4) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"bridge width {width} must be divisible by heads {heads}")
        self.arch = dict(feature_dim=feature_dim, width=width, memory_tokens=memory_tokens, layers=layers,
                         heads=heads)
        self.in_proj = nn.Linear(feature_dim, width)
        self.memory_init = nn.Parameter(torch.randn(memory_tokens, width) * 0.02)
        self.layers = nn.ModuleList(BridgeLayer(width, heads) for _ in range(layers))
        self.norm_retrieve = nn.LayerNorm(width)
        self.retrieve = nn.MultiheadAttention(width, heads, batch_first=True)
        self.out_proj = nn.Linear(width, feature_dim)

    @property
    def memory_tokens(self) -> int:
        return int(self.arch["memory_tokens"])

    def step(self, memory: torch.Tensor, segment: torch.Tensor, cache: list[torch.Tensor]) -> torch.Tensor:
        """One segment: memory ``[M, W]``, segment ``[L, W]`` (projected), cache of earlier memories -> ``[M, W]``."""
        for layer in self.layers:
            memory = layer(memory, segment)
        if cache:
            past = torch.cat(cache, dim=0).unsqueeze(0)  # [1, s*M, W]
            q = self.norm_retrieve(memory).unsqueeze(0)
            memory = memory + self.retrieve(q, past, past, need_weights=False)[0][0]
        return memory

    def forward(self, segments: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any]]:
        """segments: list of ``[L_s, D]`` -> (memories ``[S, M, D]``, stats).

        stats: ``attention_scores`` per segment (query-key pairs, all layers), ``cache_tokens`` at the end.
        """
        m = self.memory_tokens
        memory = self.memory_init
        cache: list[torch.Tensor] = []
        outputs, scores = [], []
        for s, feats in enumerate(segments):
            memory = self.step(memory, self.in_proj(feats), cache)
            scores.append(len(self.layers) * m * (m + int(feats.shape[0])) + m * s * m)
            cache.append(memory)
            outputs.append(self.out_proj(memory))
        stats = {"attention_scores": scores, "cache_tokens": sum(int(c.shape[0]) for c in cache)}
        return torch.stack(outputs), stats


def save_bridge(bridge: RecurrentMemoryBridge, path: str | os.PathLike) -> None:
    """Write the bridge's weights and architecture to a safetensors file."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in bridge.state_dict().items()}
    save_file(state, str(path), metadata={_META_KEY: json.dumps(bridge.arch)})


def load_bridge(path: str | os.PathLike) -> RecurrentMemoryBridge:
    """Read a bridge written by :func:`save_bridge`; raises :class:`ModelLoadError` naming the file."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = str(path)
    if not os.path.isfile(path):
        raise ModelLoadError("bridge weights file not found; give weights=PATH of a .safetensors file", path)
    try:
        with safe_open(path, framework="pt") as handle:
            arch = json.loads((handle.metadata() or {}).get(_META_KEY, "null"))
        state = load_file(path)
    except Exception as err:  # safetensors raises several types for damaged files
        raise ModelLoadError(f"cannot read bridge weights ({err}); re-save them with save_bridge", path) from err
    if not isinstance(arch, dict):
        raise ModelLoadError("not a recurrent-bridge weights file (no architecture metadata); "
                             "write it with mmlong.compressors.recurrent_bridge.save_bridge", path)
    bridge = RecurrentMemoryBridge(**arch)
    try:
        bridge.load_state_dict(state)
    except RuntimeError as err:
        raise ModelLoadError(f"bridge weights do not match their architecture: {err}", path) from err
    return bridge.eval()


def memory_slots(length: int, m: int) -> torch.Tensor:
    """For a segment of ``length`` tokens, which memory slot (0..m-1) each token's stretch belongs to ``[length]``."""
    return torch.div(torch.arange(length) * m, length, rounding_mode="floor")


class RecurrentBridge(Compressor):
    """``recurrent-bridge[:M][,weights=PATH]``: ``M`` memory tokens per scene, carried through the video.

    Scenes come from ``tokens.segments`` (run ``scenetile`` first) or from SceneTilling here. Each output token
    is one memory token; its time, position and size are those of the stretch of its scene it stands for.
    """

    name = "recurrent-bridge"

    @dataclass
    class Config:
        memory_tokens: int = 32
        layers: int = 2
        heads: int = 4
        width: int = 256
        weights: str | None = None
        seed: int = 0
        alpha: float = 0.5
        max_segments: int = 16

        def __post_init__(self) -> None:
            for name in ("memory_tokens", "layers", "heads", "width", "max_segments"):
                if getattr(self, name) < 1:
                    raise ValueError(f"recurrent-bridge {name} must be at least 1, got {getattr(self, name)}")
            if self.width % self.heads:
                raise ValueError(f"recurrent-bridge width {self.width} must be a multiple of heads {self.heads}")

    def __init__(self, config: "RecurrentBridge.Config | None" = None) -> None:
        super().__init__(config)
        self._bridge: RecurrentMemoryBridge | None = None

    def bridge(self, feature_dim: int) -> RecurrentMemoryBridge:
        """The bridge module for features of ``feature_dim`` (loaded or built once)."""
        cfg = self.config
        if self._bridge is None:
            if cfg.weights:
                self._bridge = load_bridge(cfg.weights)
            else:
                warnings.warn("recurrent-bridge has no weights (weights=PATH): using a random initialisation "
                              f"with seed {cfg.seed}", stacklevel=3)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(cfg.seed)
                    self._bridge = RecurrentMemoryBridge(feature_dim, cfg.width, cfg.memory_tokens, cfg.layers,
                                                         cfg.heads).eval()
        if self._bridge.arch["feature_dim"] != feature_dim:
            raise ModelLoadError(f"bridge weights expect {self._bridge.arch['feature_dim']}-d features but the "
                                 f"encoder gives {feature_dim}-d; use weights trained for this encoder",
                                 cfg.weights)
        return self._bridge

    def scenes(self, tokens: VisualTokens) -> torch.Tensor:
        """Scene id per token ``[N]`` (0..S-1 in time order)."""
        if bool((tokens.segments >= 0).all()):
            return torch.unique(tokens.segments, return_inverse=True)[1]
        ids, _, means = tokens.frame_means()
        ends = segment_boundaries(means, self.config.alpha, None, self.config.max_segments)
        return segment_ids(ends, ids.shape[0])[torch.searchsorted(ids, tokens.frame_ids)]

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        if tokens.num_tokens == 0:
            return tokens
        bridge = self.bridge(tokens.dim)
        m = bridge.memory_tokens
        scene = self.scenes(tokens)
        order = torch.argsort(scene * tokens.num_tokens + torch.arange(tokens.num_tokens), stable=True)
        tokens, scene = tokens.select(order), scene[order]
        counts = torch.bincount(scene).tolist()
        # every scene becomes exactly m tokens: short scenes repeat tokens (sizes shared), long ones merge runs
        index, share, groups, offset = [], [], [], 0
        for s, length in enumerate(counts):
            if length == 0:
                continue
            if length >= m:
                index.append(torch.arange(offset, offset + length))
                share.append(torch.ones(length))
                groups.append(s * m + memory_slots(length, m))
            else:
                rep = offset + memory_slots(m, length)
                index.append(rep)
                share.append(1.0 / torch.bincount(rep - offset, minlength=length)[rep - offset].float())
                groups.append(s * m + torch.arange(m))
            offset += length
        spread = tokens.select(torch.cat(index))
        spread = spread.replace(sizes=spread.sizes * torch.cat(share).to(spread.sizes.dtype))
        out = spread.merge(torch.cat(groups))
        with torch.no_grad():
            segments = [tokens.features[scene == s].float() for s in range(len(counts)) if counts[s]]
            memories, stats = bridge(segments)
        out = out.replace(features=memories.reshape(-1, tokens.dim).to(tokens.features.dtype),
                          segments=torch.repeat_interleave(torch.arange(len(segments)), m))
        return report(out, {"scenes": len(segments), "memory_tokens": m, **stats})
