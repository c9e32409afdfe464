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

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from mmlong.errors import ConfigError
from mmlong.experts.base import Expert, ExpertOutput, TimedText

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
_CUE = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")


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
            cues.append(TimedText(start, max(start, end), source, said))
    if not cues:
        raise ValueError("no subtitle cues (lines like '00:00:01,000 --> 00:00:04,000' followed by text)")
    return sorted(cues, key=lambda c: (c.start, c.end))


def read_subtitles(path: str | Path) -> list[TimedText]:
    """The cues of a subtitle file; one-line :class:`~mmlong.errors.ConfigError` for a bad or missing file."""
    p = Path(path).expanduser()
    try:
        raw = p.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read the subtitle file ({err.strerror or err})", str(p)) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    try:
        return parse_subtitles(text)
    except ValueError as err:
        raise ConfigError(f"not a subtitle file: {err}", str(p)) from None


class SubtitleFile(Expert):
    """``subtitles``: the cues of an .srt / .vtt file given with ``--subtitles FILE``."""

    name: ClassVar[str] = "subtitles"
    source: ClassVar[str] = "subtitle"

    @dataclass
    class Config:
        """path: the subtitle file."""

        path: str = ""

    def weights_id(self) -> str:
        from mmlong.cache import file_sha256

        return file_sha256(self.config.path) if Path(self.config.path).is_file() else ""

    def run(self, video: str) -> ExpertOutput:
        if not self.config.path:
            raise ConfigError("the subtitles expert needs a file: --subtitles FILE.srt")
        cues = read_subtitles(self.config.path)
        return ExpertOutput(tuple(cues), {"cues": len(cues)})
