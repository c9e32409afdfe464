"""Subtitle files (SubRip ``.srt``, WebVTT ``.vtt``) as timestamped lines, and the ``subtitles`` expert that reads one.

>>> cues = parse_subtitles('''1
... 00:00:01,500 --> 00:00:04,000
... <i>The password</i> is
... seventeen.
...
... 2
... 00:01:02,000 --> 00:01:03,250
... Bye.
... ''')
>>> [(c.start, c.end, c.text) for c in cues]
[(1.5, 4.0, 'The password is seventeen.'), (62.0, 63.25, 'Bye.')]
>>> parse_subtitles("WEBVTT\\n\\n00:05.000 --> 00:06.000 align:start\\nHello\\n")[0].text
'Hello'
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from mmlong.errors import ConfigError
from mmlong.experts.base import Expert, ExpertOutput, TimedText

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
_CUE = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")
# A three-hour film's subtitles are about 200 KB and 2,000 cues; files far past that are refused when read,
# before a cue is embedded or shown to a model.
MAX_SUBTITLE_BYTES = 4 << 20
MAX_SUBTITLE_CUES = 10_000


def _seconds(hours: str | None, minutes: str, seconds: str, fraction: str) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(fraction.ljust(3, "0")) / 1000.0


def parse_subtitles(text: str, source: str = "subtitle") -> list[TimedText]:
    """Cues of an SRT or WebVTT document, in time order; ``ValueError`` (naming the line) when it has none
    or a cue's times are unreadable. Markup (``<i>``, ``{\\an8}``) is removed and a cue's lines are joined."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cues: list[TimedText] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "-->" not in line:
            i += 1
            continue
        match = _CUE.match(line)
        if match is None:
            raise ValueError(f"line {i + 1}: cannot read the cue times {line.strip()!r}")
        g = match.groups()
        start, end = _seconds(*g[:4]), _seconds(*g[4:])
        i += 1
        body = []
        while i < len(lines) and lines[i].strip():
            body.append(_TAG.sub("", lines[i]).strip())
            i += 1
        said = " ".join(b for b in body if b)
        if said:
            if len(cues) == MAX_SUBTITLE_CUES:
                raise ValueError(f"more than {MAX_SUBTITLE_CUES:,} cues (line {i}); not the subtitles of one video")
            cues.append(TimedText(start, max(start, end), source, said))
    if not cues:
        raise ValueError("no subtitle cues (lines like '00:00:01,000 --> 00:00:04,000' followed by text)")
    return sorted(cues, key=lambda c: (c.start, c.end))


def read_subtitles(path: str | Path) -> list[TimedText]:
    """The cues of a subtitle file; one-line :class:`~mmlong.errors.ConfigError` for a bad or missing file."""
    p = Path(path).expanduser()
    try:
        if not p.is_file():
            raise ConfigError("not a subtitle file (not a regular file)", str(p))
        with open(p, "rb") as f:
            raw = f.read(MAX_SUBTITLE_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"cannot read the subtitle file ({err.strerror or err})", str(p)) from None
    if len(raw) > MAX_SUBTITLE_BYTES:
        raise ConfigError(f"larger than {MAX_SUBTITLE_BYTES >> 20} MiB; not the subtitles of one video", str(p))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    try:
        return parse_subtitles(text)
    except ValueError as err:
        raise ConfigError(f"not a subtitle file: {err}", str(p)) from None


#: the endings a video's own subtitle file may have in a subtitle folder, in the order they are looked for
SUBTITLE_ENDINGS = (".srt", ".vtt", "_en.srt", ".en.srt", "_en.vtt", ".en.vtt")


def subtitle_file_for(video: str | Path, folder: str | Path) -> Path | None:
    """The subtitle file of ``video`` in ``folder`` (``<video stem>.srt``, ``.vtt``, ``_en.srt``, ...), or None."""
    stem = Path(video).stem
    for ending in SUBTITLE_ENDINGS:
        candidate = Path(folder).expanduser() / f"{stem}{ending}"
        if candidate.is_file():
            return candidate
    return None


class SubtitleFile(Expert):
    """``subtitles``: the cues of an .srt / .vtt file given with ``--subtitles FILE``, or of each video's own file
    in a folder (``--subtitles DIR``: ``DIR/<video stem>.srt``, as Video-MME ships them).

    In a folder, a video without a file gets a note, or the speech expert's lines with ``fallback="asr"``
    (``--subtitles DIR+asr``): benchmarks give subtitles from the dataset, or from speech when a video has none.
    """

    name: ClassVar[str] = "subtitles"
    source: ClassVar[str] = "subtitle"

    @dataclass
    class Config:
        """path: one subtitle file for every video; folder: a folder of per-video files; fallback: ``none`` or
        ``asr`` for a video whose file the folder lacks."""

        path: str = ""
        folder: str = ""
        fallback: str = "none"

        def __post_init__(self) -> None:
            if self.fallback not in ("none", "asr"):
                raise ValueError(f"subtitles fallback must be none or asr, got {self.fallback!r}")

    def weights_id(self) -> str:
        from mmlong.cache import file_sha256

        if self.config.folder:  # what the folder holds decides the lines: names, sizes and times of its files
            folder = Path(self.config.folder).expanduser()
            entries = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()
                             if p.is_file()) if folder.is_dir() else []
            return hashlib.sha256(repr(entries).encode()).hexdigest()[:16] if entries else ""
        return file_sha256(self.config.path) if Path(self.config.path).is_file() else ""

    def input_id(self, video: str) -> str:
        """In a folder, the video's own subtitle file decides its lines (two videos with the same bytes can have
        different files, or one none): its name and content hash, or the fallback when it has none."""
        if not self.config.folder:
            return ""
        from mmlong.cache import file_sha256

        found = subtitle_file_for(video, self.config.folder)
        return f"{found.name}:{file_sha256(found)}" if found is not None else f"none:{self.config.fallback}"

    def run(self, video: str) -> ExpertOutput:
        if self.config.folder:
            return self._from_folder(video)
        if not self.config.path:
            raise ConfigError("the subtitles expert needs a file or a folder: --subtitles FILE.srt | DIR")
        cues = read_subtitles(self.config.path)
        return ExpertOutput(tuple(cues), {"cues": len(cues)})

    def _from_folder(self, video: str) -> ExpertOutput:
        found = subtitle_file_for(video, self.config.folder)
        if found is not None:
            cues = read_subtitles(found)
            return ExpertOutput(tuple(cues), {"cues": len(cues), "file": found.name})
        if self.config.fallback == "asr":
            from mmlong.registry import EXPERTS

            speech = EXPERTS.create("asr").run(video)
            return ExpertOutput(speech.lines, {**dict(speech.stats), "cues": 0, "file": "asr"})
        note = TimedText(0.0, 0.0, "note", f"no subtitle file for this video in {Path(self.config.folder).name}")
        return ExpertOutput((note,), {"cues": 0, "file": ""})
