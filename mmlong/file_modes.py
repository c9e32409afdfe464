"""File modes of what mmlong writes: a file written through a temporary file and renamed into place gets the mode
the user's umask gives any new file, not :func:`tempfile.mkstemp`'s ``0600``."""

from __future__ import annotations

import os


def umask_file_mode() -> int:
    """The mode ``open()`` gives a new file under the process's umask (``0o666 & ~umask``, e.g. ``0o644``).

    :func:`tempfile.mkstemp` creates ``0600`` files; a file written through one and renamed into place gets this
    mode instead, so a result is as readable to teammates as any other file the user writes. The umask is read
    from ``/proc/self/status`` where Linux gives it (no process-wide change), else set and restored at once.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask
