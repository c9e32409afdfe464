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


def test_a_listener_hears_every_phase_and_a_zero_delay_shows_the_line_at_once():
    from mmlong.progress import Phases

    heard: list[str] = []
    stream = Terminal()
    phases = Phases(terminal=True)
    with phases.listening(heard.append):
        with StatusLine("loading", after=0.0, stream=stream, listener=phases.listener):
            assert stream.getvalue() == "loading ..."  # no timer: shown before the phase's work starts
        with phases("scanning", terminal=False):
            pass
        phases.tell("encoding 4 frames")
    phases.tell("not heard: the listener is gone")
    assert heard == ["loading", "scanning", "encoding 4 frames"]
    assert stream.getvalue().startswith("loading ... ") and stream.getvalue().endswith(" s\n")


def test_two_phases_on_screen_at_once_get_whole_lines(monkeypatch):
    """The experts read the video on a second thread while the sampler scans: two half-written lines used to run
    into each other (``scanning a.mp4 ...experts (ocr) reading a.mp4 ... 1.2 s`` and a stray `` 3.4 s``)."""
    import re
    import threading

    from mmlong.progress import Phases

    terminal = on_terminal(monkeypatch)
    phases = Phases(terminal=True)
    started, finished = threading.Event(), threading.Event()

    def experts():
        with phases("experts (ocr) reading a.mp4"):
            started.set()
            finished.wait(10)

    with phases("scanning a.mp4 (coverage:32)"):
        worker = threading.Thread(target=experts)
        worker.start()
        started.wait(10)
    finished.set()
    worker.join(10)
    text = re.sub(r"\d+\.\d s", "T s", terminal.getvalue())
    assert text == ("scanning a.mp4 (coverage:32) ...\nexperts (ocr) reading a.mp4 ...\n"
                    "scanning a.mp4 (coverage:32): T s\nexperts (ocr) reading a.mp4: T s\n")
    assert phases.on_screen == []
    with phases("loading model qwen2-vl"):  # alone again: one line
        pass
    assert terminal.getvalue().endswith("\nloading model qwen2-vl ... 0.0 s\n")


# ---------------------------------------------------------------------- the commands' phases on a terminal
@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from tests.media import make_test_video

    return make_test_video(tmp_path_factory.mktemp("clip") / "clip.mp4", num_frames=16, fps=4.0, size=(160, 96))


def on_terminal(monkeypatch) -> Terminal:
    """stderr is a terminal and every phase is long enough for its line (the 1 s threshold set to 0); called in
    the test itself (pytest's capture sets sys.stderr again between a fixture and the test)."""
    stream = Terminal()
    monkeypatch.setattr(StatusLine, "AFTER", 0.0)
    monkeypatch.setattr("sys.stderr", stream)
    return stream


@pytest.fixture
def library_bars(monkeypatch):
    """Whatever a test does to transformers' own progress bars is undone after it."""
    from mmlong.progress import library_progress_bars

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    yield
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    library_progress_bars(True)


def test_ask_shows_load_scan_and_answer_on_a_terminal(monkeypatch, qwen_dir, clip, library_bars):
    """Each phase has its line; transformers' own "Loading weights" bar is not shown (--verbose shows it)."""
    from mmlong.apps.cli import main

    terminal = on_terminal(monkeypatch)
    assert main(["ask", clip, "What moves?", "--model", qwen_dir, "--sample", "uniform:4", "--no-cache"]) == 0
    lines = terminal.getvalue().splitlines()
    for phase in ("scanning clip.mp4 (uniform:4)", "loading model qwen2-vl", "answering question 1 of 1"):
        line = next((n for n in lines if n.startswith(phase) and " ... " in n), None)
        assert line is not None and line.endswith(" s"), (phase, lines)
    assert "Loading weights" not in terminal.getvalue()
    terminal = on_terminal(monkeypatch)
    assert main(["ask", clip, "What moves?", "--model", qwen_dir, "--sample", "uniform:4", "--no-cache",
                 "--verbose"]) == 0
    assert "Loading weights" in terminal.getvalue()


def test_batch_shows_the_phases_above_its_progress_bar(monkeypatch, qwen_dir, clip, tmp_path):
    """A batch had no status line at all (its pipeline ran without them): the model load was a silence."""
    import json

    from mmlong.apps.cli import main

    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"id": f"q{n}", "video": clip, "question": "What moves?"}) + "\n"
                                 for n in range(2)))
    terminal = on_terminal(monkeypatch)
    assert main(["batch", str(questions), "--model", qwen_dir, "--sample", "uniform:4", "--no-cache"]) == 0
    text = terminal.getvalue()
    # whole lines above the bar: the phase, then its time
    assert "loading model qwen2-vl ...\n" in text and "loading model qwen2-vl: " in text
    assert "scanning clip.mp4 (uniform:4) ...\n" in text


def test_compare_cost_setup_shows_its_line(monkeypatch, tmp_path):
    """``eval compare --cost``'s setup (build a random-init model, its tokens, a warm-up prefill: ~50 s at 0.5b)
    printed nothing."""
    from mmlong.apps.eval.compare import Cell
    from mmlong.apps.eval.compare_cost import measure_costs

    cells = [Cell("none", 1.0), Cell("pool", 0.5)]
    chains = {cells[0]: "", cells[1]: "pool:auto"}
    terminal = on_terminal(monkeypatch)
    costs = measure_costs(cells, chains, tmp_path / "cost.jsonl", size="tiny", frames=2, resolution=56)
    assert set(costs) == {cell.id for cell in cells}
    text = terminal.getvalue()
    setup = "prefill cost: building a random-init Qwen2-VL tiny and 2 frames of tokens ... "
    assert setup in text and text.split(setup, 1)[1].split(" s", 1)[0].replace(".", "").isdigit()


def test_eval_shows_the_phases_above_its_progress_bar(monkeypatch, qwen_dir, clip, tmp_path):
    """``mmlong eval`` ran its pipeline without status lines: the model load and each scan were silent."""
    import json
    import shutil

    from mmlong.apps.cli import main

    (tmp_path / "data").mkdir()
    shutil.copy(clip, tmp_path / "data" / "vidA.mp4")
    (tmp_path / "videomme.json").write_text(json.dumps([
        {"video_id": "001", "videoID": "vidA", "duration": "short", "domain": "Life", "sub_category": "Vlog",
         "questions": [{"question_id": "001-1", "task_type": "Object Recognition", "question": "What moves?",
                        "options": ["A. a square", "B. a dog", "C. a cat", "D. nothing"], "answer": "A"}]}]))
    terminal = on_terminal(monkeypatch)
    assert main(["eval", "videomme", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--model", qwen_dir,
                 "--sample", "uniform:4", "--no-cache"]) == 0
    text = terminal.getvalue()
    assert "loading model qwen2-vl ...\n" in text and "loading model qwen2-vl: " in text
    assert "scanning vidA.mp4 (uniform:4) ...\n" in text
