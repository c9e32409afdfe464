"""Status lines on a terminal for phases longer than a second (model load, scan, experts)."""

from __future__ import annotations

import io
import time

import pytest

from mmlong.progress import StatusLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_long_phase_shows_its_line_and_its_time():
    stream = Terminal()
    with StatusLine("loading model qwen2-vl", after=0.0, stream=stream) as status:
        for _ in range(500):  # until the line is up (the timer fires at once)
            if status.shown:
                break
            time.sleep(0.01)
    text = stream.getvalue()
    assert text.startswith("loading model qwen2-vl ... ") and text.endswith(" s\n")
    float(text.split("... ")[1].split(" s")[0])  # the phase's time in seconds


def test_a_short_phase_or_a_pipe_prints_nothing():
    stream = Terminal()
    with StatusLine("scanning", after=60.0, stream=stream):
        pass
    assert stream.getvalue() == ""
    pipe = io.StringIO()  # not a terminal: logs stay clean
    with StatusLine("scanning", after=0.0, stream=pipe) as status:
        pass
    assert pipe.getvalue() == "" and not status.enabled


def test_a_failed_phase_says_so():
    stream = Terminal()
    with pytest.raises(RuntimeError):
        with StatusLine("experts (ocr)", after=0.0, stream=stream) as status:
            while not status.shown:
                time.sleep(0.01)
            raise RuntimeError("boom")
    assert stream.getvalue() == "experts (ocr) ... failed\n"
