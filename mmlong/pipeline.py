"""The one object every app runs: sampler -> decoder -> encoder (with cache) -> compressors -> model.

>>> from mmlong.config.resolve import resolve
>>> pipe = Pipeline(resolve(preset="offline"))                       # doctest: +SKIP
>>> result = pipe.run("video.mp4", [Query("What animal?", ("a cat", "a dog"))])  # doctest: +SKIP
>>> result.answers[0].option, result.seen[0].num_tokens, [s.name for s in result.steps[0]]  # doctest: +SKIP
('a cat', 2450, ['sample', 'cache', 'decode', 'encode', 'load', 'model'])

A pipeline runs one :class:`~mmlong.config.resolve.ResolvedPipeline` (a flat
:class:`~mmlong.config.request.PipelineConfig`
is resolved first). :meth:`Pipeline.run` returns a :class:`~mmlong.result.Result` holding, per question, the
answer, the encoder's tokens, the tokens the model saw and the provenance, so no app runs a stage twice.
Stages are built lazily and once per pipeline. Decoding streams in chunks of ``chunk_size`` frames, each chunk
encoded as it arrives, so memory holds one chunk of pixels at a time. When the chain starts with a streaming
memory (:class:`~mmlong.compressors.base.StreamingCompressor`), encoded chunks go straight into it and the whole
token set is never held either, so memory does not grow with the video's length.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from mmlong.compressors.base import Chain, CompressContext, StreamingCompressor
from mmlong.config.resolve import ResolvedPipeline, as_resolved
from mmlong.errors import ConfigError, VideoTooLargeError
from mmlong.frame_cache import shift_frames
from mmlong.progress import Phases, progress_bar
from mmlong.qa import Answer, Query
from mmlong.result import Result, Stage, peak_rss_mb
from mmlong.types import Step, VideoMeta, VisualTokens


class _StageClock:
    """Collects one :class:`Step` per pipeline stage (frames/tokens in and out, ms, peak memory)."""

    def __init__(self) -> None:
        self.steps: list[Step] = []

    @contextmanager
    def stage(self, name: Stage, config: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        record: dict[str, Any] = {"in": 0, "out": 0, "extra": {}}
        start, cpu = time.perf_counter(), time.thread_time()
        yield record
        ms = (time.perf_counter() - start) * 1000.0
        extra = {**record["extra"], "cpu_s": round(time.thread_time() - cpu, 3), "peak_rss_mb": round(peak_rss_mb(), 1)}
        self.steps.append(Step(name, config or {}, int(record["in"]), int(record["out"]), ms, extra))


class Pipeline:
    """Runs one :class:`~mmlong.config.resolve.ResolvedPipeline` (``config``). Not thread-safe; build one per worker.

    ``config`` may also be a flat :class:`~mmlong.config.request.PipelineConfig` (resolved here) or None (defaults).
    ``progress``: bars on a terminal; ``status`` (default: ``progress``): a line per phase over a second. :attr:`phases`
    tells a listener each phase (load, scan, experts, encoding, compressing, answering) as it starts.
    """

    def __init__(self, config: ResolvedPipeline | Any = None, progress: bool = False,
                 status: bool | None = None) -> None:
        self.config: ResolvedPipeline = as_resolved(config)
        self.progress = progress
        self.phases = Phases(terminal=progress if status is None else status)
        self.chain = Chain([step.build() for step in self.config.compressors])
        self._encoder: Any = None
        self._model: Any = None
        self._cache: Any = None
        self._experts: list[Any] | None = None
        self._expert_cache: Any = None
        self._model_loaded = False

    # ------------------------------------------------------------------ stages, built once
    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self.config.model.plugin.build()
        return self._model

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            if self.config.encoder.name == "native":
                self._encoder = self.model.native_encoder()
            else:
                self._encoder = self.config.encoder.build()
        return self._encoder

    @property
    def cache(self) -> Any:
        if self._cache is None and self.config.runtime.cache:
            from mmlong.cache import FeatureCache

            self._cache = FeatureCache(self.config.runtime.cache_dir)
        return self._cache

    @property
    def experts(self) -> list[Any]:
        """The experts (``config.experts`` plus the ``config.subtitles`` source), built once."""
        if self._experts is None:
            from mmlong.experts.runner import build_experts

            self._experts = build_experts(self.config.experts, self.config.subtitles)
        return self._experts

    @property
    def expert_cache(self) -> Any:
        if self._expert_cache is None and self.config.runtime.cache:
            from mmlong.experts.cache import ExpertCache

            cache_dir = self.config.runtime.cache_dir
            root = Path(cache_dir) / "experts" if cache_dir else None
            self._expert_cache = ExpertCache(root)
        return self._expert_cache

    def timed_text(self, video: str, feed: Any = None) -> tuple[list[Any], list[Step]]:
        """The experts' timestamped lines about ``video`` (through the expert cache) and one step per expert;
        ``feed``: frames the sampler's scan decodes (:class:`~mmlong.frame_feed.FrameFeed`), read by OCR."""
        if not self.experts:
            return [], []
        from mmlong.experts.runner import run_experts

        names = ", ".join(e.name for e in self.experts)
        with self.phases(f"experts ({names}) reading {Path(video).name}"):
            return run_experts(self.experts, str(video), self.expert_cache, feed)

    def _check_experts(self, model: Any) -> None:
        if self.experts and not model.reads_timed_text:
            names = ", ".join(e.name for e in self.experts)
            raise ConfigError(f"model {self.config.model.family!r} cannot read expert lines "
                              f"({names}); use --experts none --subtitles none")

    def _sampler(self) -> Any:
        return self.config.sampler.build()

    # ------------------------------------------------------------------ the token path
    def _check_limits(self, meta: VideoMeta) -> None:
        limit = self.config.runtime.max_duration
        if limit is not None and meta.duration > limit:
            raise VideoTooLargeError(
                f"video is {meta.duration:.0f} s long, over the limit of {limit:.0f} s", meta.path
            )

    def _encode_chunks(self, source: Any, indices: torch.Tensor, clock: _StageClock) -> Iterator[VisualTokens]:
        """Decode and encode ``indices`` chunk by chunk, yielding each chunk's tokens (frame ids video-wide)."""
        decode_ms = encode_ms = 0.0
        frames_done = tokens_done = 0
        chunk_size = max(1, int(self.config.runtime.chunk_size))
        bar = progress_bar(total=len(indices), desc="decode+encode", unit="frame", enabled=self.progress)
        stream = source.stream(indices, chunk_size=chunk_size)
        self.phases.tell(f"encoding {len(indices)} frames ({self.config.encoder.name})")  # the bar shows it
        try:
            while True:
                start = time.perf_counter()
                frames = next(stream, None)
                decode_ms += (time.perf_counter() - start) * 1000.0
                if frames is None:
                    break
                start = time.perf_counter()
                chunk = shift_frames(self.encoder.encode(frames), frames_done)
                encode_ms += (time.perf_counter() - start) * 1000.0
                frames_done += len(frames)
                tokens_done += chunk.num_tokens
                bar.update(len(frames))
                yield chunk
        finally:
            bar.close()
        rss = round(peak_rss_mb(), 1)
        decode_config = {"decoder": source.meta.decoder, "max_side": self.config.decoder.max_side}
        clock.steps.append(Step(Stage.DECODE, decode_config,
                                frames_done, frames_done, decode_ms, {"peak_rss_mb": rss}))
        clock.steps.append(Step(Stage.ENCODE, {"encoder": self.config.encoder.name}, frames_done, tokens_done,
                                encode_ms, {"peak_rss_mb": rss}))

    def encode(self, video: str, query: Query | None = None) -> VisualTokens:
        """Sample, decode and encode ``video`` (through the feature cache); no compression.

        A streaming chain is not applied here; use :meth:`tokens` for the compressed tokens.
        """
        return self._tokens(video, query, compress=False)[0]

    def tokens(self, video: str, query: Query | None = None) -> VisualTokens:
        """The visual tokens the model sees: sampled, decoded, encoded (cached) and pre-LLM compressed."""
        return self._tokens(video, query, compress=True)[1]

    def _tokens(self, video: str, query: Query | None, compress: bool,
                feed: Any = None) -> tuple[VisualTokens | None, VisualTokens]:
        """``(encoded, seen)``: every sampled frame's tokens (None when a streaming memory consumed them) and,
        when ``compress``, the chain's output (else ``seen`` is ``encoded``). ``feed`` gets the frames a scanning
        sampler decodes and is closed once sampling ends (with the error if it failed)."""
        from mmlong.media.video import open_video
        from mmlong.sampling.basic import SampleContext

        cfg = self.config
        clock = _StageClock()
        ctx = CompressContext(query=query, budget=cfg.budget, encoder=None)
        with open_video(str(video), decoder=cfg.decoder.name, max_side=cfg.decoder.max_side) as source:
            self._check_limits(source.meta)
            sampler = self._sampler()
            with clock.stage(Stage.SAMPLE, {"sampler": cfg.sampler.describe()}) as rec:
                needs_encoder = sampler.needs_encoder
                try:
                    with self.phases(f"scanning {Path(str(video)).name} ({cfg.sampler.describe()})"):
                        sampled = sampler.sample(
                            source.meta,
                            SampleContext(query=query, encoder=self.encoder if needs_encoder else None,
                                          source=source, cache=self.cache if needs_encoder else None, feed=feed),
                        )
                except BaseException as err:
                    if feed is not None:
                        feed.close(err)
                    raise
                if feed is not None:
                    feed.close()
                rec["in"], rec["out"] = source.meta.num_frames, len(sampled.indices)
            if len(sampled.indices) == 0:
                raise ConfigError(f"sampler {cfg.sampler.describe()!r} chose no frames", str(video))
            streaming = self.chain.pre_llm and isinstance(self.chain.pre_llm[0], StreamingCompressor)
            if compress and streaming:
                tokens = self._stream_through_memory(source, sampled, clock, ctx)
            else:
                tokens = self._cached_tokens(source, sampled, clock)
        meta = {**tokens.meta, "video": source.meta.to_dict()}
        tokens = tokens.replace(provenance=tuple(clock.steps) + tokens.provenance, meta=meta)
        if compress and streaming:
            return None, tokens
        return tokens, (self.compress(tokens, query) if compress else tokens)

    def compress(self, tokens: VisualTokens, query: Query | None = None) -> VisualTokens:
        """Run the pre-LLM chain on encoded tokens for ``query``."""
        ctx = CompressContext(query=query, budget=self.config.budget, encoder=self.encoder)
        if not self.chain.pre_llm:
            return self.chain(tokens, ctx)
        with self.phases(f"compressing {tokens.num_tokens} visual tokens ({self.config.compress_spec})"):
            return self.chain(tokens, ctx)

    def _shares_encoding(self) -> bool:
        """True when one encoding of a video serves every question (no query-aware sampler, no streaming)."""
        streaming = self.chain.pre_llm and isinstance(self.chain.pre_llm[0], StreamingCompressor)
        return not streaming and not self._sampler().needs_query

    def _cached_tokens(self, source: Any, sampled: Any, clock: _StageClock) -> VisualTokens:
        """The sampled frames' tokens through the frame-index cache (:mod:`~mmlong.frame_cache`): frames any
        earlier question about this video encoded are read back, only the others are decoded and encoded."""
        cache = self.cache
        if cache is None:
            tokens = VisualTokens.concat(list(self._encode_chunks(source, sampled.indices, clock)))
        else:
            from mmlong.frame_cache import cached_frames, frame_keys

            indices = sampled.indices.numpy()
            decode = {"decoder": "any", "max_side": self.config.decoder.max_side}
            start, position = time.perf_counter(), len(clock.steps)
            keys = frame_keys(cache, source.meta.path, decode, self.encoder.cache_id(), indices)
            tokens, hits = cached_frames(cache, keys, indices, self._cache_check(source),
                                         lambda missing: self._encode_chunks(source, torch.from_numpy(missing), clock))
            coding_ms = sum(step.ms for step in clock.steps[position:])
            ms = (time.perf_counter() - start) * 1000.0 - coding_ms  # reading and writing entries only
            unique = len(set(indices.tolist()))
            extra = {"hit": hits == unique, "frames_hit": hits, "frames_encoded": unique - hits,
                     "peak_rss_mb": round(peak_rss_mb(), 1)}
            clock.steps.insert(position, Step(Stage.CACHE, {"dir": str(cache.root)}, unique, hits, ms, extra))
        return tokens.replace(meta={**tokens.meta, "frame_indices": sampled.indices.tolist()})

    def _cache_check(self, source: Any) -> Any:
        """What a cached frame's encoding must be (beyond :func:`~mmlong.cache.check_tokens`' own checks): one
        frame of this encoder's feature width, at times inside this video."""
        from mmlong.cache import check_tokens

        width = self.encoder.feature_dim()
        duration = float(source.meta.duration or 0) or None

        def check(tokens: VisualTokens) -> None:
            check_tokens(tokens, width=width, duration=duration, frames=1)

        return check

    def _stream_through_memory(
        self, source: Any, sampled: Any, clock: _StageClock, ctx: CompressContext
    ) -> VisualTokens:
        memory: StreamingCompressor = self.chain.pre_llm[0]  # type: ignore[assignment]
        ctx.encoder = self.encoder
        memory.reset()
        tokens_in = 0
        update_ms = 0.0
        for chunk in self._encode_chunks(source, sampled.indices, clock):
            tokens_in += chunk.num_tokens
            t0 = time.perf_counter()
            memory.update(chunk, ctx)
            update_ms += (time.perf_counter() - t0) * 1000.0
        out = memory.read()
        step = Step(memory.name, memory.config_dict(), tokens_in, out.num_tokens, update_ms,
                    {"streamed": True, "peak_rss_mb": round(peak_rss_mb(), 1)})
        out = out.replace(provenance=(step,))
        rest = Chain(self.chain.steps[1:])
        return rest(out, ctx)

    # ------------------------------------------------------------------ answers
    def load_model(self) -> tuple[Step, ...]:
        """Load the model's weights once; the first answer's stages show the load as its own step."""
        if self._model_loaded:
            return ()
        start = time.perf_counter()
        with self.phases(f"loading model {self.config.model.family}"):
            self.model.load()
        self._model_loaded = True
        ms = (time.perf_counter() - start) * 1000.0
        return (Step(Stage.LOAD, {"model": self.config.model.family}, 0, 0, ms,
                     {"peak_rss_mb": round(peak_rss_mb(), 1)}),)

    def run(self, video: str, queries: Sequence[Query | str]) -> Result:
        """Answer ``queries`` about ``video``, each stage once: questions that do not change which frames are
        chosen share one decoding and encoding; each question is compressed and answered once.

        Returns a :class:`~mmlong.result.Result`: per query, the answer, the encoded tokens, the tokens the model
        saw and the steps (sample, cache, decode, encode, each compressor, load on the first, model).
        """
        from mmlong.limits import check_query

        queries = [q if isinstance(q, Query) else Query(str(q)) for q in queries]
        for number, query in enumerate(queries, start=1):  # before the model, the video or any grounding
            check_query(query.question, query.options, what=f"question {number}")
        model = self.model  # a bad model fails before anything is decoded
        self._check_experts(model)
        # the experts (OCR, speech: their own decoding, onnxruntime / CTranslate2) run once per video on a second
        # thread while this one samples, decodes and encodes: two cores busy instead of one
        # and OCR reads the frames the sampler's scan decodes instead of decoding the video again
        feed = None
        if any(getattr(e, "reads_frames", False) for e in self.experts):
            from mmlong.frame_feed import FrameFeed

            feed = FrameFeed()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmlong-experts") as pool:
            pending = pool.submit(self.timed_text, video, feed) if self.experts else None
            try:
                return self._run_queries(video, queries, model, pending, feed)
            except BaseException as err:
                if feed is not None:
                    feed.close(err)
                raise
            finally:
                if feed is not None:
                    feed.close()
                if pending is not None:
                    pending.cancel()

    def _run_queries(self, video: str, queries: list[Query], model: Any, pending: Future | None,
                     feed: Any = None) -> Result:
        from mmlong.models import subtitles

        shared = self._tokens(video, None, compress=False, feed=feed)[0] if self._shares_encoding() else None
        lines: list[Any] = []
        expert_steps: tuple[Step, ...] = ()  # every answer shows the experts whose lines it read
        result = Result([], [], [])
        for number, query in enumerate(queries, start=1):
            if shared is not None:
                encoded, seen = shared, self.compress(shared, query)
            else:
                encoded, seen = self._tokens(video, query, compress=True, feed=feed)
            feed = None  # the first sampling fed (and closed) it
            if pending is not None:
                found, steps = pending.result()
                lines, expert_steps, pending = found, tuple(steps), None
            given = subtitles.lines_for(query, seen, lines)
            extra = {"timed_text": given} if model.reads_timed_text else {}
            load_steps = self.load_model()  # after the first tokens: a bad video fails before the weights load
            start = time.perf_counter()
            with self.phases(f"answering question {number} of {len(queries)} ({seen.num_tokens} visual tokens)"):
                answer = model.answer(seen, query, encoder=self.encoder, in_llm=self.chain.in_llm, **extra)
            model_ms = (time.perf_counter() - start) * 1000.0
            model_step = Step(Stage.MODEL, {"name": self.config.model.family}, seen.num_tokens, 0, model_ms,
                              {"peak_rss_mb": round(peak_rss_mb(), 1)})
            steps = seen.provenance + expert_steps + load_steps + (model_step,)
            answer.stages = steps + tuple(answer.stages)
            answer.details.setdefault("video", seen.meta.get("video", {}))
            reported = answer.details.get("timed_text_seen")
            answer.details.update(subtitles.seen_by_model(seen, given if extra else []))
            if reported is not None:  # what the model's prompt held
                answer.details["timed_text_seen"] = reported
            result.answers.append(answer)
            result.encoded.append(encoded)
            result.seen.append(seen)
        return result

    def ask(self, video: str, question: str, options: Sequence[str] = ()) -> Answer:
        """Answer one question about ``video`` (``run(video, [Query(question, options)]).answer``)."""
        return self.run(video, [Query(question, tuple(options))]).answer

    def ask_many(self, video: str, queries: Sequence[Query]) -> list[Answer]:
        """The answers of :meth:`run`."""
        return self.run(video, queries).answers
