"""Speech expert: what is said in a video's audio track, as timestamped lines (faster-whisper, Whisper base).

Whisper (Radford et al., 2022, "Robust Speech Recognition via Large-Scale Weak Supervision", arXiv:2212.04356)
through faster-whisper (CTranslate2, int8 on CPU). The audio is decoded with PyAV to 16 kHz mono float32
(:func:`mmlong.media.audio.read_audio`); Silero voice-activity detection (faster-whisper's ``vad_filter``) skips
the silent stretches, so an hour of mostly quiet audio costs little. Whisper's segment times are coarse after
VAD (a segment can span the silence between two voiced stretches), so each segment's words are timed too
(faster-whisper's cross-attention alignment, cheap at this size) and a segment is split where two words are more
than ``max_word_gap`` seconds apart; a line runs from its first word's start to its last word's end, with the mean
word probability as its confidence. Decoding is deterministic: greedy at temperature 0 only (faster-whisper's
default falls back to *sampling* at temperatures 0.2 ... 1.0 when a window's text fails its compression or
log-probability checks, which gave different text on re-runs of the same clip), and CTranslate2's random
generator is seeded (``seed``) before each run, so a re-run with an empty cache gives the same lines even when a
config asks for the fallback temperatures. A segment Whisper itself marks as probably not speech
(``no_speech_prob`` above ``no_speech_threshold`` with a low mean log-probability, Whisper's own rule) is
dropped, and so is one whose text is too repetitive (its zlib compression ratio above
``compression_ratio_threshold``, 2.4: Whisper's own check, which would have retried the window at a higher
temperature; greedy decoding has no retry, and the loop it catches reads "Hmmmm..." for hundreds of characters
over music). A video without an audio track gives one note line (``no audio track``), never an error; audio in
which nothing is recognised gives ``no speech recognised``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from mmlong.errors import ConfigError
from mmlong.experts.base import Expert, ExpertOutput, TimedText

NO_AUDIO = "no audio track"
NO_SPEECH = "no speech recognised"


def split_at_gaps(words: Any, max_gap: float) -> list[TimedText]:
    """Speech lines from timed words (``.word``, ``.start``, ``.end``, ``.probability``), split where a word starts
    more than ``max_gap`` seconds after the previous one ended.

    >>> from types import SimpleNamespace as W
    >>> [(l.start, l.end, l.text) for l in split_at_gaps([W(word=" The", start=15.0, end=16.0, probability=0.7),
    ...     W(word=" door.", start=48.4, end=48.9, probability=0.9)], 1.0)]
    [(15.0, 16.0, 'The'), (48.4, 48.9, 'door.')]
    """
    pieces: list[list[Any]] = []
    for word in words:
        if pieces and float(word.start) - float(pieces[-1][-1].end) <= max_gap:
            pieces[-1].append(word)
        else:
            pieces.append([word])
    lines = []
    for piece in pieces:
        text = "".join(w.word for w in piece).strip()
        if text:
            confidence = sum(float(w.probability) for w in piece) / len(piece)
            lines.append(TimedText(float(piece[0].start), float(piece[-1].end), "speech", text, confidence))
    return lines


class SpeechExpert(Expert):
    """``asr``: Whisper base (or a local CTranslate2 Whisper folder) on the audio track."""

    name: ClassVar[str] = "asr"
    source: ClassVar[str] = "speech"

    @dataclass
    class Config:
        """language: spoken language code (``en``), or ``auto`` to detect it on the first 30 s; model_dir: a
        local faster-whisper model folder instead of the packaged Whisper base; beam_size: 1 is greedy (fast);
        vad: skip silence with Silero VAD; word_timestamps: time each word and split segments at gaps longer than
        max_word_gap seconds (off: Whisper's segment times);
        no_speech_threshold / logprob_threshold: Whisper's rule for dropping a segment that is not speech;
        compression_ratio_threshold: a segment whose text compresses better than this (the segment's own zlib
        ratio, as faster-whisper reports it) is a decoding loop (0: keep);
        compute_type: CTranslate2 quantisation on CPU; cpu_threads: 0 lets CTranslate2 choose; cache_dir: where
        the packaged weights are joined (default mmlong's cache); temperatures: the decoding temperatures tried in
        turn (default greedy only; faster-whisper's own default adds sampled fallbacks); seed: CTranslate2's random
        seed, set before every run."""

        language: str = "en"
        model_dir: str | None = None
        beam_size: int = 1
        vad: bool = True
        word_timestamps: bool = True
        max_word_gap: float = 1.0
        no_speech_threshold: float = 0.6
        logprob_threshold: float = -1.0
        compression_ratio_threshold: float = 2.4
        compute_type: str = "int8"
        cpu_threads: int = 0
        cache_dir: str | None = None
        temperatures: tuple[float, ...] = (0.0,)
        seed: int = 0

        def __post_init__(self) -> None:
            if self.beam_size < 1:
                raise ValueError(f"beam_size must be at least 1, got {self.beam_size}")
            self.temperatures = tuple(float(t) for t in self.temperatures) or (0.0,)
            if any(t < 0 for t in self.temperatures):
                raise ValueError(f"temperatures must be 0 or more, got {self.temperatures}")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._model: Any = None

    def weights_id(self) -> str:
        from mmlong.experts.whisper_weights import MODEL_SHA256

        return self.config.model_dir or f"whisper-base:{MODEL_SHA256[:16]}"

    def output_config(self) -> dict[str, Any]:
        # where the weights are joined and how many threads run them change nothing in the output
        config = super().output_config()
        for name in ("cache_dir", "cpu_threads"):
            config.pop(name, None)
        return config

    def load(self) -> "SpeechExpert":
        if self._model is None:
            from faster_whisper import WhisperModel

            from mmlong.experts.whisper_weights import whisper_base_dir

            folder = self.config.model_dir or str(whisper_base_dir(self.config.cache_dir))
            try:
                self._model = WhisperModel(folder, device="cpu", compute_type=self.config.compute_type,
                                           cpu_threads=int(self.config.cpu_threads))
            except (RuntimeError, ValueError, OSError) as err:
                raise ConfigError(f"cannot load the Whisper model ({err})", folder) from err
        return self

    def transcribe(self, samples: Any) -> tuple[list[TimedText], dict[str, Any]]:
        """Lines of float32 16 kHz mono ``samples [S]``, and the detected language."""
        cfg = self.config
        import ctranslate2

        language = None if cfg.language in ("", "auto") else cfg.language
        model = self.load()._model
        ctranslate2.set_random_seed(int(cfg.seed))
        segments, info = model.transcribe(
            samples, language=language, beam_size=int(cfg.beam_size), vad_filter=bool(cfg.vad),
            word_timestamps=bool(cfg.word_timestamps), condition_on_previous_text=False,
            temperature=list(cfg.temperatures))
        segments = list(segments)  # decoded now, under the seed just set
        lines = []
        for seg in segments:
            text = seg.text.strip()
            if not text or (seg.no_speech_prob > cfg.no_speech_threshold and seg.avg_logprob < cfg.logprob_threshold):
                continue
            if cfg.compression_ratio_threshold and seg.compression_ratio > cfg.compression_ratio_threshold:
                continue
            if not seg.words:
                lines.append(TimedText(float(seg.start), float(seg.end), "speech", text,
                                       min(1.0, math.exp(float(seg.avg_logprob)))))
                continue
            lines.extend(split_at_gaps(seg.words, float(cfg.max_word_gap)))
        return lines, {"language": getattr(info, "language", language)}

    def run(self, video: str) -> ExpertOutput:
        from mmlong.media.audio import SPEECH_RATE, read_audio

        cpu = time.process_time()
        track = read_audio(video, SPEECH_RATE)
        if track is None:
            return ExpertOutput((TimedText(0.0, 0.0, "note", NO_AUDIO),), {"audio_s": 0.0, "cpu_s": 0.0})
        decode_cpu = time.process_time() - cpu
        lines, info = self.transcribe(track.samples) if len(track.samples) else ([], {})
        if not lines:
            lines = [TimedText(0.0, track.seconds, "note", NO_SPEECH)]
        stats = {"audio_s": round(track.seconds, 3), "segments": sum(1 for line in lines if line.source == "speech"),
                 "decode_cpu_s": round(decode_cpu, 3), "cpu_s": round(time.process_time() - cpu, 3), **info}
        return ExpertOutput(tuple(lines), stats)
