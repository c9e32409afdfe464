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
