"""Coverage sampling: see every second of a long video cheaply, spend full resolution only where it matters.

A coarse-to-fine search in the spirit of query-guided keyframe search for long-video QA (e.g. Wang et al.
2024, "VideoAgent"; Yu et al. 2023, "Self-Chained Image-Language Model"), made cheap enough for an hour on a
CPU:

1. **Scan**: decode one frame every ``1 / scan_fps`` seconds and encode it at a small input size
   (``scan_size`` px, e.g. 96 instead of EfficientNet's 224: ~10x fewer FLOPs) into one pooled feature
   ``[S, D]`` per scanned second (``encoder.pooled_features``; other encoders fall back to ``encode``). A scanned
   frame whose 16 x 16 thumbnail is within ``scan_reuse`` grey levels of the last encoded one (a held shot)
   takes that frame's features instead of being encoded.
2. **Score** each scanned second (:func:`moment_scores`): its query match (the prominence of its ConSE
   relevance to the best-matching option, or to the question: relevance minus that text's median over the
   video), its rarity (:func:`~mmlong.scoring.frames.brief_rarity`: 1 - the largest feature cosine
   to a second more than ``rarity_window`` s away, minus the video's median; a brief event has no twin outside
   its own few seconds, while in varied footage every scene is unlike most others) and its change from the
   previous second (a scene cut).
3. **Pick**: half the frame budget goes to the best-matching moments (MMR with a temporal kernel,
   :func:`~mmlong.scoring.frames.diverse_top`, two frames inside each scanned second), a quarter
   to the strongest scene changes (two frames bracketing each cut: a brief event is seen whether the cut
   is its start or its end), the rest spreads uniformly over the video for context.

The frame choice serves the question's kind (:mod:`mmlong.question_kinds`, :func:`frame_plan`): a holistic
question (what the video is mostly about) gets ``frames`` spread uniformly over the whole video, without a
scan, since its answer weighs every moment by duration; a counting or duration question scores the moments
against its target alone (its options are numbers or lengths, which no frame shows) and gives the scene
changes the share the best matches otherwise take (each appearance of a repeated target begins and ends with
a change, while its twins keep it from being rare).

Questions about several showings (how many times, in which order, which is never shown, how long) also need
every brief showing seen, and in footage that cuts every few seconds neither rarity nor cuts single them out
(a thing shown three times has twins; a montage's cuts outnumber the frames). For them the scan's *seldom
seen* seconds come first (:func:`seldom_seen`): a second whose look (feature cosine at least ``SCAN_TWIN``)
the video shows for at most ``max(12 s, 2 %)`` of its scanned seconds
(:func:`~mmlong.scoring.frames.seldom_seconds`) gets a frame: first those inside a brief shot (cut in and out
within 3 s), then the seldomest; up to 3/4 of the frames for a count (every showing must be seen), 1/2 for the
others. Footage, however it is cut, recurs and is left to the other picks.

The pipeline then decodes and encodes only those ``frames`` at full resolution. Registered as ``coverage``:
``coverage:64[,scan_fps=1][,scan_size=96][,scan_reuse=2]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmlong.qa import Query
from mmlong.question_kinds import HOLISTIC, WHOLE_TIMELINE, understand
from mmlong.sampling.basic import FpsSampler, SampleContext, Sampled, Sampler, uniform_indices
from mmlong.sampling.scan import frames_around, require_scan_context, scan_cache_key
from mmlong.scoring.frames import brief_rarity, diverse_top, novelty, query_texts, seldom_seconds, twin_counts
from mmlong.types import Frames, VideoMeta, VisualTokens

#: scanned seconds at least this alike (pooled-feature cosine at the scan's small size) show the same thing
SCAN_TWIN = 0.8
#: kinds whose answer needs every brief showing: their frames go first to the seldom-seen seconds
SHOWINGS = frozenset({"count", "order", "absence", "duration"})


def scan_thumbnails(frames: torch.Tensor, side: int = 16) -> torch.Tensor:
    """float32 ``[T, 3, side, side]`` colour thumbnails (grey levels 0-255, area-like antialiased resize) of uint8
    frames ``[T, H, W, 3]``: what :func:`scan_features` compares to find repeated frames."""
    x = frames.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    return F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False).float()


def repeats(thumbs: torch.Tensor, last: torch.Tensor | None, tolerance: float) -> tuple[list[int], torch.Tensor]:
    """For thumbnails ``[T, 3, s, s]``: per frame, the frame (index into ``thumbs``; ``-1``: ``last``, the last
    encoded frame before them) whose features it takes, and the thumbnail of the last frame to encode. A frame
    is encoded when some thumbnail cell differs from the last encoded frame's by more than ``tolerance`` grey
    levels, else it reuses that frame's features (``tolerance <= 0``: every frame is encoded).

    >>> t = torch.zeros(4, 3, 2, 2); t[2] += 50.0; t[3] += 50.5
    >>> repeats(t, None, 1.0)[0]
    [0, 0, 2, 2]
    >>> repeats(t, torch.zeros(3, 2, 2), 1.0)[0], repeats(t, None, 0.0)[0]
    ([-1, -1, 2, 2], [0, 1, 2, 3])
    """
    source, reference = [], last
    for k in range(len(thumbs)):
        if tolerance > 0 and reference is not None and float((thumbs[k] - reference).abs().max()) <= tolerance:
            source.append(source[-1] if source else -1)
        else:
            source.append(k)
            reference = thumbs[k]
    return source, reference


def scan_features(source: Any, encoder: Any, scan: Sampled, size: int, batch_size: int,
                  feed: Any = None, reuse: float = 0.0) -> torch.Tensor:
    """``[S, D]`` pooled features of the scanned frames, encoded at ``size`` px when the encoder can
    (``pooled_features(frames, size)``), else through ``encode`` at its own size. Each decoded chunk also goes
    to ``feed`` (a :class:`~mmlong.frame_feed.FrameFeed`) when one is given. ``reuse``: a scanned frame whose
    16 x 16 colour thumbnail is within ``reuse`` grey levels (every cell) of the last encoded frame's takes that
    frame's features instead of being encoded (a still scene, a paused or static shot; 0: encode every frame)."""
    pooled = getattr(encoder, "pooled_features", None)

    def encode(frames: Frames) -> torch.Tensor:
        return pooled(frames.data, size) if callable(pooled) else encoder.encode(frames).frame_means()[2]

    out: list[torch.Tensor] = []
    last_thumb: torch.Tensor | None = None
    for frames in source.stream(scan.indices, chunk_size=batch_size):
        if feed is not None:
            feed.put(frames)
        if reuse <= 0:
            out.append(encode(frames))
            continue
        taken, last_thumb = repeats(scan_thumbnails(frames.data), last_thumb, reuse)
        fresh = [k for k, src in enumerate(taken) if src == k]
        keep = torch.tensor(fresh, dtype=torch.long)
        encoded = encode(Frames(frames.data[keep], frames.indices[keep], frames.timestamps[keep], frames.meta)) \
            if fresh else None
        row = {k: j for j, k in enumerate(fresh)}
        rows = [encoded[row[src]] if src >= 0 else out[-1][-1] for src in taken]
        out.append(torch.stack(rows))
    return torch.cat(out) if out else torch.zeros(0, 1)


def cached_scan_features(ctx: SampleContext, scan: Sampled, size: int, batch_size: int,
                         reuse: float = 0.0) -> torch.Tensor:
    """:func:`scan_features` through the feature cache when the context has one (keyed by video, scanned frame
    numbers, decode size, ``size`` and encoder): every later question about the video skips the scan."""
    kind = f"pooled{size}" + (f"reuse{reuse:g}" if reuse > 0 else "")
    key = scan_cache_key(ctx.cache, ctx.source, ctx.encoder, scan, kind) if ctx.cache is not None else None
    hit = ctx.cache.get(key) if key is not None else None
    if hit is not None and hit.num_tokens == len(scan):
        return hit.features
    features = scan_features(ctx.source, ctx.encoder, scan, size, batch_size, ctx.feed, reuse)
    if key is not None and len(features) == len(scan):
        grid = features.reshape(len(scan), 1, 1, -1)
        ctx.cache.put(key, VisualTokens.from_grid(grid, scan.timestamps, meta={"scan": {"size": size}}))
    return features


def moment_scores(features: torch.Tensor, query: Query | None, encoder: Any, times: torch.Tensor | None = None,
                  rarity_window: float = 2.5) -> dict[str, torch.Tensor]:
    """Per scanned second ``[S]`` (at ``times [S]`` s, default one a second): ``match`` (prominence of the best
    text), ``rarity`` (brief rarity minus its median), ``change``.

    Without a text side or a question, ``match`` is zero and only rarity and change rank the moments.
    """
    s = features.shape[0]
    change = novelty(features) if s else features.new_zeros(0)
    match = torch.zeros(s, dtype=torch.float64)
    rarity = torch.zeros(s, dtype=torch.float64)
    if s > 1:
        when = torch.arange(s, dtype=torch.float64) if times is None else times.double()
        brief = brief_rarity(features, when, rarity_window)
        rarity = brief - brief.median()
    if s > 1 and encoder is not None and encoder.has_text:
        emb = encoder.embed_visual(features).double()
        if query is not None and query.question.strip():
            texts = query_texts(query)[1:] if query.options else [query.question]
            rel = encoder.encode_text(texts).double() @ emb.T  # [Q, S]
            match = (rel - rel.median(dim=1, keepdim=True).values).max(dim=0).values
    return {"match": match, "rarity": rarity, "change": change.double()}


def seldom_seen(features: torch.Tensor, most: int, cut: float = 0.4, brief: int = 3) -> list[int]:
    """Scanned seconds (indices into ``features [S, D]``) whose look the video shows at most ``most`` times
    (:func:`~mmlong.scoring.frames.twin_counts` at ``SCAN_TWIN``). Seconds inside a *brief shot* come first
    (at most ``brief`` seconds between two cuts, a feature change ``1 - cos`` of at least ``cut``: a thing
    shown briefly cuts in and out, while varied footage, seldom seen second by second, flows on), then the
    seldomest, then in time order.

    >>> f = torch.tensor([[1.0, 0.0]] * 5 + [[0.0, 1.0]] * 2 + [[1.0, 0.0]] * 3 + [[0.6, 0.8]] + [[1.0, 0.0]])
    >>> seldom_seen(f, 2)
    [5, 6, 10]
    """
    counts = twin_counts(features, SCAN_TWIN)
    change = novelty(features)
    cuts = [0, *[i for i in range(1, features.shape[0]) if float(change[i]) >= cut], features.shape[0]]
    shot_length = torch.zeros(features.shape[0], dtype=torch.long)
    for a, b in zip(cuts, cuts[1:]):
        shot_length[a:b] = b - a
    seldom = [i for i in range(features.shape[0]) if int(counts[i]) <= most]
    return sorted(seldom, key=lambda i: (int(shot_length[i]) > brief, int(counts[i]), i))


def frame_plan(query: Query | None) -> tuple[str, Query | None]:
    """``(plan, query to match)`` for the question's kind: ``"uniform"`` (holistic kinds: frames evenly over the
    video), ``"target"`` (counting and duration with a target: match that target, not the options, and see
    every seldom-seen second), ``"showings"`` (order and negation: the query as asked, and every seldom-seen
    second), or ``"match"`` (the default mix of match, change and uniform picks) with the query as asked.

    >>> frame_plan(Query("What is this video mostly about?"))[0]
    'uniform'
    >>> plan, matched = frame_plan(Query("How many times is a cup of coffee shown?", ("1", "2", "3")))
    >>> plan, matched.question
    ('target', 'cup of coffee')
    """
    if query is None or not query.question.strip():
        return "match", query
    kind = understand(query.question, query.options)
    if kind.kind in HOLISTIC:
        return "uniform", query
    if kind.kind in WHOLE_TIMELINE and kind.target:
        return "target", Query(kind.target)
    return ("showings" if kind.kind in SHOWINGS else "match"), query


class CoverageSampler(Sampler):
    """``coverage:N[,scan_fps=1][,scan_size=96]``: a low-resolution scan of every second, then N frames at full
    resolution around the moments that match the question, the scene changes, and uniformly (see the module
    docstring)."""

    name = "coverage"
    needs_encoder = True
    needs_query = True

    @dataclass
    class Config:
        """frames: full-resolution frames to return; scan_fps: scanned frames a second; scan_size: scan input
        px; max_scan: most scanned frames (spread uniformly beyond); rarity_weight: how much a moment's rarity
        adds to its query match; rarity_window: seconds around a moment whose twins do not count against its
        rarity; diversity: MMR weight; batch_size: frames decoded and encoded at a time."""

        frames: int = 64
        scan_fps: float = 1.0
        scan_size: int = 96
        max_scan: int = 14400
        rarity_weight: float = 0.5
        rarity_window: float = 2.5
        diversity: float = 0.5
        batch_size: int = 64
        scan_reuse: float = 2.0

        def __post_init__(self) -> None:
            if self.frames < 4 or self.max_scan < 1 or self.batch_size < 1 or self.scan_size < 32:
                raise ValueError("coverage sampler: frames >= 4, scan_size >= 32, max_scan and batch_size >= 1")
            if self.scan_fps <= 0:
                raise ValueError(f"coverage sampler: scan_fps must be positive, got {self.scan_fps}")

    def sample(self, meta: VideoMeta, ctx: SampleContext | None = None) -> Sampled:
        require_scan_context(ctx, self.name)
        cfg = self.config
        scan = FpsSampler(FpsSampler.Config(fps=cfg.scan_fps, max_frames=cfg.max_scan)).sample(meta)
        if len(scan) <= cfg.frames // 2:  # short video: every scanned second at full resolution, twice
            interval = meta.duration / max(len(scan), 1)
            picked = frames_around(meta, [float(t) + interval / 2 for t in scan.timestamps], [2] * len(scan),
                                   interval / 2)
            return Sampled.from_indices(meta, picked[: cfg.frames] if len(picked) > cfg.frames else picked)
        plan, query = frame_plan(ctx.query)
        if plan == "uniform":  # the whole timeline, evenly: every moment counts by its duration
            return Sampled.from_indices(meta, uniform_indices(meta.num_frames, cfg.frames))
        features = cached_scan_features(ctx, scan, cfg.scan_size, cfg.batch_size, cfg.scan_reuse)
        times = scan.timestamps
        scores = moment_scores(features, query, ctx.encoder, times, cfg.rarity_window)
        interval = meta.duration / len(scan)
        wanted = scores["match"] + cfg.rarity_weight * scores["rarity"]
        # shares of the frames (1/share each; two frames a moment): seldom-seen seconds take 3/4 of them for a
        # count (every showing must be seen) and 1/2 for order and negation (one frame a second)
        match_share, change_share, seldom_budget = {"target": (16, 32, cfg.frames * 3 // 4),
                                                    "showings": (8, 16, cfg.frames // 2)}.get(plan, (4, 8, 0))
        seldom: list[int] = []
        if seldom_budget:  # every brief showing, repeated or not: the seconds seen least
            most = round(seldom_seconds(meta.duration) * len(scan) / max(meta.duration, 1e-9))  # in scanned frames
            seldom = seldom_seen(features, most)[:seldom_budget]
        match_moments = diverse_top(wanted, times, cfg.frames // match_share, cfg.diversity)
        change_moments = diverse_top(scores["change"], times, cfg.frames // change_share, cfg.diversity)
        picked = frames_around(meta, [float(times[i]) + interval / 2 for i in match_moments],
                               [2] * len(match_moments), interval / 2)
        picked = np.union1d(picked, frames_around(meta, [float(times[i]) + interval / 2 for i in seldom],
                                                  [1] * len(seldom), 0.0))
        # both scanned seconds around each cut: what began there and what ended there (the inside of a brief
        # event whether the cut is its start or its end)
        picked = np.union1d(picked, frames_around(meta, [float(times[i]) - interval / 2 for i in change_moments],
                                                  [2] * len(change_moments), interval))
        spare = cfg.frames - len(picked)
        if spare > 0:
            picked = np.union1d(picked, uniform_indices(meta.num_frames, spare))
        return Sampled.from_indices(meta, picked)
