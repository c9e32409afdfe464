"""Progress for long work: tqdm bars on stderr (decoding an hour of video, a batch of questions), a status line
for a phase that lasts longer than a second (model load, scan, experts, cost setup), and :class:`Phases`, which
sends a pipeline's phases both to such lines and to a listener (the demo streams them to the page)."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator


def progress_bar(total: int | None, desc: str, unit: str = "it", enabled: bool = True, **kwargs: Any) -> Any:
    """A tqdm bar with rate and ETA on stderr; a silent one when ``enabled`` is False or stderr is not a TTY
    and ``force`` is not given."""
    from tqdm.auto import tqdm

    force = kwargs.pop("force", False)
    disable = not enabled or (not force and not sys.stderr.isatty())
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, file=sys.stderr, dynamic_ncols=True,
                leave=False, **kwargs)


class StatusLine:
    """``with StatusLine("loading model qwen2-vl", enabled):``: a line on stderr for a phase that lasts longer than
    ``after`` seconds (model load, scan, experts), so a long silence says what it is doing.

    Nothing is printed for a phase that ends sooner, when ``enabled`` is False, or when ``stream`` is not a
    terminal (logs and pipes stay clean). A shown line ends with the phase's time: ``loading model ... 12.3 s``.
    While a progress bar is on screen (a batch), or another line of the same ``group`` (:class:`Phases`) is on
    screen (experts read the video on a second thread while the sampler scans), the phase gets two whole lines
    instead (``loading model ...`` and ``loading model: 12.3 s``), so neither overwrites nor runs into the other.
    ``listener``, when given, is called with ``text`` as the phase starts, terminal or not. ``after`` defaults to
    :attr:`AFTER` seconds; 0 shows the line at once.
    """

    AFTER = 1.0

    def __init__(self, text: str, enabled: bool = True, after: float | None = None, stream: Any = None,
                 listener: Callable[[str], None] | None = None, group: "Phases | None" = None) -> None:
        self.text = text
        self.group = group
        self.after = self.AFTER if after is None else after
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled and bool(getattr(self.stream, "isatty", lambda: False)())
        self.listener = listener
        self.shown = False
        self.whole = False  # written as whole lines (a bar or another phase's line is on screen)
        self._timer: Any = None
        self._start = 0.0

    def _show(self) -> None:
        with self.group.lock if self.group is not None else nullcontext():
            others = self.group.on_screen if self.group is not None else []
            for other in others:  # a half-written line of another phase ends here; it finishes as a whole line
                if not other.whole:
                    self.stream.write("\n")
                    other.whole = True
            self.whole = bool(others) or _bars_on_screen()
            if self.whole:
                _write_line(f"{self.text} ...", self.stream)
            else:
                self.stream.write(f"{self.text} ...")
                self.stream.flush()
            self.shown = True
            others.append(self)

    def __enter__(self) -> "StatusLine":
        import threading
        import time

        self._start = time.perf_counter()
        if self.listener is not None:
            self.listener(self.text)
        if self.enabled and self.after <= 0:
            self._show()
        elif self.enabled:
            self._timer = threading.Timer(self.after, self._show)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        import time

        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()
        if not self.shown:
            return
        outcome = "failed" if exc[0] is not None else f"{time.perf_counter() - self._start:.1f} s"
        with self.group.lock if self.group is not None else nullcontext():
            if self.group is not None:
                self.group.on_screen.remove(self)
            if self.whole:
                _write_line(f"{self.text}: {outcome}", self.stream)
            else:
                self.stream.write(f" {outcome}\n")
                self.stream.flush()


def _bars_on_screen() -> bool:
    """True while a visible tqdm bar is open (its redraw would overwrite a half-written line)."""
    from tqdm.auto import tqdm

    return any(not getattr(bar, "disable", True) for bar in list(getattr(tqdm, "_instances", ())))


def _write_line(line: str, stream: Any) -> None:
    """One whole line, above the progress bars when some are on screen."""
    from tqdm.auto import tqdm

    tqdm.write(line, file=stream)


class Phases:
    """Where a pipeline's phases go: ``with phases("loading model qwen2-vl"):`` shows a :class:`StatusLine` on a
    terminal when ``terminal`` is True, and tells ``listener`` (if any) the phase's text as it starts.

    ``phases(text, terminal=False)`` shows no line (a phase too short to need one, or one a bar shows).
    :meth:`listening` sets the listener for a block (the demo's request streams the phases to its page).
    """

    def __init__(self, terminal: bool = False, listener: Callable[[str], None] | None = None) -> None:
        import threading

        self.terminal = terminal
        self.listener = listener
        self.lock = threading.RLock()
        self.on_screen: list[StatusLine] = []  # this group's lines shown and not yet finished

    def __call__(self, text: str, terminal: bool = True) -> StatusLine:
        return StatusLine(text, enabled=self.terminal and terminal, listener=self.listener, group=self)

    def tell(self, text: str) -> None:
        """Tell only the listener that phase ``text`` starts (one a progress bar already shows on a terminal)."""
        if self.listener is not None:
            self.listener(text)

    @contextmanager
    def listening(self, listener: Callable[[str], None] | None) -> Iterator["Phases"]:
        previous, self.listener = self.listener, listener
        try:
            yield self
        finally:
            self.listener = previous


def library_progress_bars(shown: bool) -> None:
    """Show or hide transformers' and huggingface_hub's own progress bars ("Loading weights", "Fetching files")
    for the rest of the process. The CLI hides them unless ``--verbose``: a status line says what is loading.

    Before either library is imported (a command line run), ``HF_HUB_DISABLE_PROGRESS_BARS`` does it, so nothing is
    imported here; a library already imported is switched through its own function.
    """
    if not shown:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import utils as hub_utils

        (hub_utils.enable_progress_bars if shown else hub_utils.disable_progress_bars)()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        (hf_logging.enable_progress_bar if shown else hf_logging.disable_progress_bar)()
