"""A recurrent memory bridge: memory tokens carry the video from scene to scene (VideoLLaMB).

Reference: Wang et al. 2024, "VideoLLaMB: Long-context Video Understanding with Recurrent Memory Bridges"
(ICCV 2025, arXiv:2409.01071); official code bigai-nlco/VideoLLaMB, ``RMTRTransformerProjector``
(``llava/model/multimodal_projector/rmt_r_transformer_projector.py``) and ``TransformerRetriever``
(``llava/model/multimodal_projector/self_retriever.py``). The video is cut into scenes by SceneTilling
(:mod:`mmlong.compressors.scenetiling`) and each scene is subsampled to at most 8 frames (``linspace``). For each
scene, the ``M`` memory tokens (the first scene starts from the learned ``read_memory_emb``) and the scene's
tokens go through ``layers`` post-norm transformer layers of JOINT self-attention over ``[memory; scene]``
(the Recurrent Memory Transformer); the scene part, projected (``Linear`` + GELU), is the scene's bridged tokens,
the memory part its memory. The memory is appended to the memory bank, then the retriever (one transformer
layer: self-attention over the memory, cross-attention to the whole bank including the current memory, FFN)
gives the memory the next scene starts from. The language model gets the LAST scene's bridged tokens (which
carry the earlier scenes through the memory), or with ``emit=all`` every scene's.

Cost: a scene of ``L`` tokens costs ``layers * (M + L)^2`` attention scores, the retrieval ``M^2 + M * s * M``
over the ``s`` memories so far; nothing grows with the square of the video's token count.

Deviations: mmlong runs the bridge on the encoder's tokens as they are (VideoLLaMB first pools each frame to
12 x 12; put ``pool:`` before it), at the token width ``D`` (``width`` adds input/output projections), and its
output stays ``D``-wide for the adapter. Weights: VideoLLaMB's trained projector is not available offline;
``weights=PATH`` loads a safetensors file written by :func:`save_bridge` (architecture in its metadata).
Without one the bridge is randomly initialised (fixed seed) and says so in a warning: it then shows the method's
data flow and cost, not trained behaviour.
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
from mmlong.errors import ConfigError, ModelLoadError
from mmlong.types import VisualTokens

_META_KEY = "mmlong.recurrent_bridge"


class PostNormResidual(nn.Module):
    """``LayerNorm(dense(x) + residual)``."""

    def __init__(self, width_in: int, width: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width_in, width)
        self.norm = nn.LayerNorm(width, eps=1e-12)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.norm(self.dense(x) + residual)


class BridgeAttention(nn.Module):
    """Multi-head attention of ``x [n, W]`` to ``context [m, W]`` (itself when None), post-norm residual."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(width, width) for _ in range(3))
        self.residual = PostNormResidual(width, width)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        n, width = x.shape
        d = width // self.heads
        q = self.q_proj(x).view(n, self.heads, d).transpose(0, 1)
        k = self.k_proj(context).view(-1, self.heads, d).transpose(0, 1)
        v = self.v_proj(context).view(-1, self.heads, d).transpose(0, 1)
        out = torch.softmax(q @ k.transpose(1, 2) / d ** 0.5, dim=-1) @ v  # [H, n, d]
        return self.residual(out.transpose(0, 1).reshape(n, width), x)


class BridgeLayer(nn.Module):
    """Self-attention, optional cross-attention to ``context``, then the FFN (``Linear`` + GELU, residual)."""

    def __init__(self, width: int, heads: int, intermediate: int) -> None:
        super().__init__()
        self.self_attention = BridgeAttention(width, heads)
        self.cross_attention = BridgeAttention(width, heads)
        self.mlp = nn.Sequential(nn.Linear(width, intermediate), nn.GELU())
        self.mlp_residual = PostNormResidual(intermediate, width)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = self.self_attention(x)
        if context is not None:
            x = self.cross_attention(x, context)
        return self.mlp_residual(self.mlp(x), x)


class RecurrentMemoryBridge(nn.Module):
    """VideoLLaMB's projector + retriever on ``D``-wide tokens: segments ``[L_s, D]`` -> bridged ``[L_s, D]``."""

    def __init__(self, feature_dim: int, width: int | None = None, memory_tokens: int = 32, layers: int = 2,
                 heads: int = 4, intermediate: int | None = None) -> None:
        super().__init__()
        width = int(width or feature_dim)
        intermediate = int(intermediate or 4 * width)
        if width % heads:
            raise ConfigError(f"recurrent-bridge: width {width} must be divisible by heads {heads} "
                              "(set width=W or heads=H)")
        self.arch = dict(feature_dim=feature_dim, width=width, memory_tokens=memory_tokens, layers=layers,
                         heads=heads, intermediate=intermediate)
        self.in_proj = nn.Linear(feature_dim, width) if width != feature_dim else nn.Identity()
        self.read_memory_emb = nn.Parameter(torch.zeros(memory_tokens, width))
        self.layers = nn.ModuleList(BridgeLayer(width, heads, intermediate) for _ in range(layers))
        self.retriever = BridgeLayer(width, heads, intermediate)
        self.proj = nn.Sequential(nn.Linear(width, feature_dim), nn.GELU())

    @property
    def memory_tokens(self) -> int:
        return int(self.arch["memory_tokens"])

    def step(self, memory: torch.Tensor, segment: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Joint self-attention over ``[memory; segment]``: (new memory ``[M, W]``, segment states ``[L, W]``)."""
        x = torch.cat([memory, segment], dim=0)
        for layer in self.layers:
            x = layer(x)
        return x[:memory.shape[0]], x[memory.shape[0]:]

    def forward(self, segments: list[torch.Tensor]) -> tuple[list[torch.Tensor], dict[str, Any]]:
        """segments: list of ``[L_s, D]`` -> (bridged tokens, one ``[L_s, D]`` per segment; stats).

        stats: ``attention_scores`` per segment (bridge + retrieval query-key pairs), ``cache_tokens`` at the end.
        """
        m = self.memory_tokens
        memory = self.read_memory_emb
        bank: list[torch.Tensor] = []
        bridged, scores = [], []
        for feats in segments:
            memory, states = self.step(memory, self.in_proj(feats))
            bridged.append(self.proj(states))
            bank.append(memory)
            memory = self.retriever(memory, torch.cat(bank, dim=0))
            length = m + int(feats.shape[0])
            scores.append(len(self.layers) * length * length + m * m + m * len(bank) * m)
        return bridged, {"attention_scores": scores, "cache_tokens": sum(int(b.shape[0]) for b in bank)}


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


def scene_frames(count: int, limit: int) -> torch.Tensor:
    """Which of a scene's ``count`` frames the bridge reads: ``linspace(0, count-1, min(limit, count))`` as ints
    (VideoLLaMB's subsampling; ``limit = 0`` reads all)."""
    n = count if limit <= 0 else min(limit, count)
    return torch.linspace(0, count - 1, n).to(torch.int64)


class RecurrentBridge(Compressor):
    """``recurrent-bridge[:M][,emit=last|all][,weights=PATH]``: VideoLLaMB's recurrent memory bridge.

    Scenes come from ``tokens.segments`` (run ``scenetile`` first) or from SceneTilling here. Output: the last
    scene's (``emit=all``: every scene's) subsampled tokens with bridged features; times, positions and sizes
    stay those of the tokens.
    """

    name = "recurrent-bridge"

    @dataclass
    class Config:
        memory_tokens: int = 32
        layers: int = 2
        heads: int = 4
        width: int | None = None
        frames_per_scene: int = 8
        emit: str = "last"
        weights: str | None = None
        seed: int = 0
        alpha: float = 0.5
        max_segments: int = 16

        def __post_init__(self) -> None:
            for name in ("memory_tokens", "layers", "heads", "max_segments"):
                if getattr(self, name) < 1:
                    raise ValueError(f"recurrent-bridge {name} must be at least 1, got {getattr(self, name)}")
            if self.width is not None and self.width < 1:
                raise ValueError(f"recurrent-bridge width must be at least 1, got {self.width}")
            if self.emit not in ("last", "all"):
                raise ValueError(f"recurrent-bridge emit must be 'last' or 'all', got {self.emit!r}")
            if self.width is not None and self.width % self.heads:
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
                warnings.warn("recurrent-bridge has no trained weights (weights=PATH): using a random "
                              f"initialisation with seed {cfg.seed}; answers will not reflect VideoLLaMB",
                              stacklevel=3)
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

    def scene_rows(self, tokens: VisualTokens, scene: torch.Tensor) -> list[torch.Tensor]:
        """Per scene, the token rows (time order) of its subsampled frames."""
        rows = []
        for s in range(int(scene.max()) + 1):
            members = torch.nonzero(scene == s).flatten()
            if members.numel() == 0:
                continue
            frames = torch.unique(tokens.frame_ids[members])
            chosen = frames[scene_frames(frames.shape[0], self.config.frames_per_scene)]
            keep = members[torch.isin(tokens.frame_ids[members], chosen)]
            rows.append(keep[torch.argsort(tokens.frame_ids[keep], stable=True)])
        return rows

    def compress(self, tokens: VisualTokens, ctx: CompressContext) -> VisualTokens:
        if tokens.num_tokens == 0:
            return tokens
        bridge = self.bridge(tokens.dim)
        rows = self.scene_rows(tokens, self.scenes(tokens))
        with torch.no_grad():
            bridged, stats = bridge([tokens.features[r].float() for r in rows])
        emitted = range(len(rows)) if self.config.emit == "all" else [len(rows) - 1]
        out = tokens.select(torch.cat([rows[s] for s in emitted]))
        out = out.replace(features=torch.cat([bridged[s] for s in emitted]).to(tokens.features.dtype),
                          segments=torch.cat([torch.full((rows[s].shape[0],), s) for s in emitted]))
        return report(out, {"scenes": len(rows), "memory_tokens": bridge.memory_tokens, "emit": self.config.emit,
                            **stats})
