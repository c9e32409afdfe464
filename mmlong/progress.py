"""Progress bars for long work (decoding an hour of video, a batch of questions): tqdm on stderr."""

from __future__ import annotations

import sys
from typing import Any


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
    """

    def __init__(self, text: str, enabled: bool = True, after: float = 1.0, stream: Any = None) -> None:
        self.text = text
        self.after = after
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled and bool(getattr(self.stream, "isatty", lambda: False)())
        self.shown = False
        self._timer: Any = None
        self._start = 0.0

    def _show(self) -> None:
        self.stream.write(f"{self.text} ...")
        self.stream.flush()
        self.shown = True

    def __enter__(self) -> "StatusLine":
        import threading
        import time

        self._start = time.perf_counter()
        if self.enabled:
            self._timer = threading.Timer(self.after, self._show)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        import time

        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()
        if self.shown:
            outcome = "failed" if exc[0] is not None else f"{time.perf_counter() - self._start:.1f} s"
            self.stream.write(f" {outcome}\n")
            self.stream.flush()
