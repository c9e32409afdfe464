"""The few types every stage shares.

Data flows one way: a video file becomes :class:`Frames` (decoder + sampler), then :class:`VisualTokens`
(encoder), which compressors shrink and a model adapter turns into an :class:`~mmlong.qa.Answer` for a
:class:`~mmlong.qa.Query` (:mod:`mmlong.qa`).

``VisualTokens`` is frozen. Compressors change it only through :meth:`VisualTokens.select`,
:meth:`VisualTokens.merge` and :meth:`VisualTokens.replace`, so features, times, positions, sizes and
provenance never drift apart.

>>> import torch
>>> tok = VisualTokens.from_grid(torch.ones(2, 2, 2, 4), timestamps=torch.tensor([0.0, 1.0]))
>>> tok.num_tokens, tok.dim, tok.grid
(8, 4, (2, 2, 2))
>>> tok.select(torch.tensor([0, 7])).timestamps.tolist()
[0.0, 1.0]
>>> merged = tok.merge(torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]))
>>> merged.sizes.tolist(), merged.timestamps.tolist()
([4.0, 4.0], [0.0, 1.0])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch


@dataclass(frozen=True)
class VideoMeta:
    """What the container says about one video.

    ``frame_times`` is optional: decoders fill it when the stream has variable frame rate, so samplers can map
    indices to the stream's own presentation times instead of ``index / fps``.
    """

    path: str
    duration: float
    fps: float
    num_frames: int
    width: int
    height: int
    codec: str = ""
    decoder: str = ""
    rotation: int = 0
    variable_frame_rate: bool = False
    has_audio: bool = False
    frame_times: tuple[float, ...] | None = field(default=None, repr=False, compare=False)

    def time_of(self, index: int) -> float:
        """Presentation time in seconds of frame ``index``."""
        if self.frame_times is not None and 0 <= index < len(self.frame_times):
            return float(self.frame_times[index])
        return float(index) / self.fps if self.fps > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("frame_times", None)
        return out


@dataclass(frozen=True)
class Frames:
    """Decoded frames of one video.

    data: uint8 ``[T, H, W, 3]`` (RGB); indices: int64 ``[T]`` frame numbers in the video;
    timestamps: float64 ``[T]`` seconds.
    """

    data: torch.Tensor
    indices: torch.Tensor
    timestamps: torch.Tensor
    meta: VideoMeta

    def __post_init__(self) -> None:
        if self.data.ndim != 4 or self.data.shape[-1] != 3:
            raise ValueError(f"Frames.data must be [T, H, W, 3], got {tuple(self.data.shape)}")
        t = self.data.shape[0]
        if self.indices.shape != (t,) or self.timestamps.shape != (t,):
            raise ValueError(
                f"Frames: {t} frames but indices {tuple(self.indices.shape)}, timestamps {tuple(self.timestamps.shape)}"
            )

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @staticmethod
    def concat(parts: Sequence["Frames"]) -> "Frames":
        if not parts:
            raise ValueError("Frames.concat needs at least one part")
        return Frames(
            data=torch.cat([p.data for p in parts]),
            indices=torch.cat([p.indices for p in parts]),
            timestamps=torch.cat([p.timestamps for p in parts]),
            meta=parts[0].meta,
        )


@dataclass(frozen=True)
class Step:
    """One stage's record in the provenance: what ran, with which config, tokens in/out, milliseconds."""

    name: str
    config: Mapping[str, Any]
    tokens_in: int
    tokens_out: int
    ms: float
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:  # a :class:`mmlong.result.Stage` is stored as its plain string
        object.__setattr__(self, "name", str(getattr(self.name, "value", self.name)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "config": dict(self.config),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "ms": round(self.ms, 3),
            **({"extra": dict(self.extra)} if self.extra else {}),
        }


_PER_TOKEN = ("features", "frame_ids", "timestamps", "positions", "sizes", "segments")


def _check_device_and_dtype(tokens: "VisualTokens") -> None:
    """Refuse tokens off the CPU or with non-float32 features (the rule in :class:`VisualTokens`)."""
    features = tokens.features
    if features.dtype != torch.float32 or features.device.type != "cpu":
        raise ValueError(
            f"VisualTokens.features must be float32 on the CPU, got {features.dtype} on {features.device}; "
            "an encoder returns features.float().cpu() (the model adapter moves them to the model's device)"
        )
    for name in ("frame_ids", "timestamps", "positions", "sizes", "segments", "frame_times", "attention",
                 "layer_features"):
        value = getattr(tokens, name)
        if value is not None and value.device.type != "cpu":
            raise ValueError(f"VisualTokens.{name} must be on the CPU, got {value.device}; move it with .cpu()")


@dataclass(frozen=True)
class VisualTokens:
    """The visual tokens of one video.

    features: ``[N, D]`` float; frame_ids: int64 ``[N]`` (index of the sampled frame, 0..T-1, a token comes
    from); timestamps: float64 ``[N]`` seconds; positions: float32 ``[N, 3]`` (t, h, w in the encoder's grid);
    sizes: float32 ``[N]`` (how many original tokens each token stands for); segments: int64 ``[N]``
    (scene id, ``-1`` when no segmentation ran); grid: the encoder's ``(T, H, W)``; frame_times: float64 ``[T]``
    the time of every sampled frame (kept whole, so later stages can still speak of frames a compressor dropped);
    position_step: the V2PE increment a model adapter uses between visual tokens (1.0 = the model's own).
    attention: float32 ``[N]`` or None: how much attention each token receives inside the encoder (an encoder
    fills it on request, e.g. ``hf-vision`` with ``attention_layer=-2``; attention-guided compressors such as
    VisionZip read it). It follows the tokens through select, merge (size-weighted mean) and concat.
    layer_features: ``[N, K, D]`` or None: what a model adds to each token inside its first K LLM layers
    (Qwen3-VL's DeepStack); select, merge (as ``features``) and concat carry them; a ``replace`` that changes
    the token count without them drops them.

    The device and dtype rule: every tensor lives on the CPU and ``features`` are float32, whatever device and
    dtype the encoder ran in (an encoder returns ``.float().cpu()``; the model adapter moves features to the
    model's device and dtype when it splices them, :func:`mmlong.models.prompt_inputs.splice_embeddings`). So
    compressors, the cache and the adapters meet one kind of tensor; anything else is refused here.
    """

    features: torch.Tensor
    frame_ids: torch.Tensor
    timestamps: torch.Tensor
    positions: torch.Tensor
    sizes: torch.Tensor
    grid: tuple[int, int, int]
    segments: torch.Tensor | None = None
    frame_times: torch.Tensor | None = None
    position_step: float = 1.0
    meta: Mapping[str, Any] = field(default_factory=dict)
    provenance: tuple[Step, ...] = ()
    attention: torch.Tensor | None = None
    layer_features: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = self.features.shape[0]
        if self.features.ndim != 2:
            raise ValueError(f"VisualTokens.features must be [N, D], got {tuple(self.features.shape)}")
        _check_device_and_dtype(self)
        if self.segments is None:
            object.__setattr__(self, "segments", torch.full((n,), -1, dtype=torch.long))
        for name in _PER_TOKEN[1:]:
            value = getattr(self, name)
            if value.shape[0] != n:
                raise ValueError(f"VisualTokens.{name} has {value.shape[0]} rows for {n} tokens")
        if self.attention is not None and self.attention.shape != (n,):
            raise ValueError(f"VisualTokens.attention must be [{n}], got {tuple(self.attention.shape)}")
        if self.layer_features is not None and (self.layer_features.ndim != 3 or self.layer_features.shape[0] != n):
            raise ValueError(f"VisualTokens.layer_features must be [{n}, K, D], got {tuple(self.layer_features.shape)}")
        if self.positions.shape != (n, 3):
            raise ValueError(f"VisualTokens.positions must be [N, 3], got {tuple(self.positions.shape)}")

    # ------------------------------------------------------------------ construction
    @staticmethod
    def from_grid(
        grid_features: torch.Tensor,
        timestamps: torch.Tensor,
        meta: Mapping[str, Any] | None = None,
        first_frame: int = 0,
    ) -> "VisualTokens":
        """Tokens from an encoder's ``[T, H, W, D]`` feature grid, row-major per frame.

        ``timestamps [T]`` are the frames' times; ``first_frame`` offsets ``frame_ids`` and the t position
        (for chunks of a longer stream).
        """
        t, h, w, d = grid_features.shape
        tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
        positions = torch.stack([tt + first_frame, hh, ww], dim=-1).reshape(-1, 3).float()
        frame_ids = (tt.reshape(-1) + first_frame).long()
        ts = timestamps.to(torch.float64)
        return VisualTokens(
            features=grid_features.reshape(t * h * w, d),
            frame_ids=frame_ids,
            timestamps=ts[tt.reshape(-1)],
            positions=positions,
            sizes=torch.ones(t * h * w),
            grid=(t, h, w),
            frame_times=ts.clone(),
            meta=dict(meta or {}),
        )

    @staticmethod
    def concat(parts: Sequence["VisualTokens"]) -> "VisualTokens":
        """Join chunks of one video in time order (grids add along T)."""
        if not parts:
            raise ValueError("VisualTokens.concat needs at least one part")
        first = parts[0]
        frame_times = None
        if all(p.frame_times is not None for p in parts):
            frame_times = torch.cat([p.frame_times for p in parts])
        return VisualTokens(
            features=torch.cat([p.features for p in parts]),
            frame_ids=torch.cat([p.frame_ids for p in parts]),
            timestamps=torch.cat([p.timestamps for p in parts]),
            positions=torch.cat([p.positions for p in parts]),
            sizes=torch.cat([p.sizes for p in parts]),
            segments=torch.cat([p.segments for p in parts]),
            grid=(sum(p.grid[0] for p in parts), first.grid[1], first.grid[2]),
            frame_times=frame_times,
            position_step=first.position_step,
            meta=first.meta,
            provenance=first.provenance,
            attention=torch.cat([p.attention for p in parts]) if all(p.attention is not None for p in parts) else None,
            layer_features=(torch.cat([p.layer_features for p in parts])
                            if all(p.layer_features is not None for p in parts) else None),
        )

    # ------------------------------------------------------------------ views
    @property
    def num_tokens(self) -> int:
        return int(self.features.shape[0])

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def __len__(self) -> int:
        return self.num_tokens

    def frames(self) -> torch.Tensor:
        """Sorted unique frame ids still present, ``[F]``."""
        return torch.unique(self.frame_ids, sorted=True)

    def frame_means(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Size-weighted mean feature of each frame still present.

        Returns ``(frame_ids [F], timestamps [F], features [F, D])``.
        """
        ids, inverse = torch.unique(self.frame_ids, sorted=True, return_inverse=True)
        f = ids.shape[0]
        w = self.sizes.to(self.features.dtype).unsqueeze(1)
        sums = torch.zeros(f, self.dim, dtype=self.features.dtype).index_add_(0, inverse, self.features * w)
        weights = torch.zeros(f, 1, dtype=self.features.dtype).index_add_(0, inverse, w)
        times = torch.full((f,), float("inf"), dtype=torch.float64).scatter_reduce(0, inverse, self.timestamps, "amin")
        return ids, times, sums / weights.clamp_min(1e-12)

    # ------------------------------------------------------------------ the three ways to change tokens
    def select(self, index: torch.Tensor) -> "VisualTokens":
        """Keep the tokens at ``index`` (int64 ``[K]`` or bool ``[N]``), in the order given."""
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        index = index.long()
        changes = {name: getattr(self, name)[index] for name in _PER_TOKEN}
        layer_features = None if self.layer_features is None else self.layer_features[index]
        return dataclasses.replace(self, attention=None if self.attention is None else self.attention[index],
                                   layer_features=layer_features, **changes)

    def merge(self, groups: torch.Tensor, weights: torch.Tensor | None = None) -> "VisualTokens":
        """Merge tokens that share a group id into one token each.

        groups: int64 ``[N]`` group id per token (any integers). weights: ``[N]`` averaging weights, default
        ``sizes`` (so repeated merges keep the size-weighted mean of the original tokens). Features, timestamps
        and positions become weighted means, sizes add up, ``frame_ids`` and ``segments`` come from the group's
        earliest token. Output tokens keep the order of each group's earliest token.
        """
        if groups.shape != (self.num_tokens,):
            raise ValueError(f"merge: groups must be [{self.num_tokens}], got {tuple(groups.shape)}")
        w = (self.sizes if weights is None else weights).to(torch.float64)
        uniq, inverse = torch.unique(groups, return_inverse=True)
        g = uniq.shape[0]
        order = torch.arange(self.num_tokens)
        first = torch.full((g,), self.num_tokens, dtype=torch.long).scatter_reduce(0, inverse, order, "amin")
        # relabel groups by their earliest member so the output stays in sequence order
        rank = torch.empty(g, dtype=torch.long)
        rank[torch.argsort(first)] = torch.arange(g)
        inverse = rank[inverse]
        first = first[torch.argsort(first)]

        def wmean(x: torch.Tensor) -> torch.Tensor:
            x64 = x.to(torch.float64)
            shape = (g,) + tuple(x.shape[1:])
            ww = w.view(-1, *([1] * (x.ndim - 1)))
            s = torch.zeros(shape, dtype=torch.float64).index_add_(0, inverse, x64 * ww)
            tw = torch.zeros(g, dtype=torch.float64).index_add_(0, inverse, w).view(-1, *([1] * (x.ndim - 1)))
            return s / tw.clamp_min(1e-12)

        return dataclasses.replace(
            self,
            features=wmean(self.features).to(self.features.dtype),
            timestamps=wmean(self.timestamps),
            positions=wmean(self.positions).to(self.positions.dtype),
            sizes=torch.zeros(g, dtype=self.sizes.dtype).index_add_(0, inverse, self.sizes),
            frame_ids=self.frame_ids[first],
            segments=self.segments[first],
            attention=None if self.attention is None else wmean(self.attention).to(self.attention.dtype),
            layer_features=(None if self.layer_features is None
                            else wmean(self.layer_features).to(self.layer_features.dtype)),
        )

    def replace(self, **changes: Any) -> "VisualTokens":
        """A copy with some fields changed; per-token fields are checked for a consistent length."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"VisualTokens.replace: unknown field(s) {sorted(unknown)}")
        features = changes.get("features")
        if (features is not None and "layer_features" not in changes and self.layer_features is not None
                and features.shape[0] != self.layer_features.shape[0]):
            changes["layer_features"] = None  # new tokens that are not these tokens' rows: their features are gone
        return dataclasses.replace(self, **changes)

    def with_step(self, step: Step) -> "VisualTokens":
        """A copy with ``step`` appended to the provenance."""
        return dataclasses.replace(self, provenance=self.provenance + (step,))


def timestamps_of(meta: VideoMeta, indices: Any) -> np.ndarray:
    """float64 ``[T]`` presentation times of frame ``indices``: the stream's own times for VFR, else index / fps."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if meta.frame_times is not None:
        return np.asarray(meta.frame_times, dtype=np.float64)[idx]
    if meta.fps <= 0:
        return np.zeros(len(idx), dtype=np.float64)
    return idx.astype(np.float64) / meta.fps
