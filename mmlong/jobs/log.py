"""The result log of a job: one JSON record per id in a JSONL file, crash-safe, exactly once, resumable.

:class:`ResultLog` appends whole, flushed and fsynced lines under an exclusive lock; :func:`repair_torn_tail`
mends a line torn by a kill; :func:`merge_records` keeps one record per id (:func:`preferred`: an answer beats
an error). :mod:`mmlong.jobs.shards` puts logs together into sharded jobs; :mod:`mmlong.jobs.runner` runs them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Hashable, Iterable, Sequence

from mmlong.errors import MmlongError
from mmlong.file_modes import umask_file_mode


class JobLogError(MmlongError):
    """A result log that cannot be used as it is (damaged line, locked by another run, duplicate id)."""


class DuplicateRecordError(JobLogError):
    """A second record for an id that the log already holds."""


# ---------------------------------------------------------------------------------------------- records


def record_key(record: dict[str, Any], key: str = "id") -> str:
    """The identity of a record: ``str(record[key])`` (ids may be strings or integers in the input)."""
    return str(record[key])


def is_error(record: dict[str, Any]) -> bool:
    """True for a record of an item that failed (it has an ``"error"`` field)."""
    return "error" in record


def encode_record(record: dict[str, Any]) -> bytes:
    """One JSONL line (UTF-8, ending in a newline; no newline inside)."""
    return (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def repair_torn_tail(path: str | os.PathLike[str]) -> str:
    """Make the last line of a JSONL file whole again after a crash; returns what was done.

    ``"ok"``: the file is empty or ends in a newline. ``"completed"``: the unterminated tail is a whole JSON
    object (the write stopped just before its newline), so the newline is added. ``"truncated"``: the tail is a
    torn line and is cut off at the last newline. A proper prefix of a JSON object is never itself a JSON
    object, so a completed tail is always the record that was being written.
    """
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return "ok"
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return "ok"
        # find the last newline, reading backwards in blocks
        end = size
        last_newline = -1
        while end > 0 and last_newline < 0:
            start = max(0, end - 65536)
            f.seek(start)
            block = f.read(end - start)
            pos = block.rfind(b"\n")
            if pos >= 0:
                last_newline = start + pos
            end = start
        f.seek(last_newline + 1)
        tail = f.read()
        if _parse_object(tail) is not None:
            f.seek(size)
            f.write(b"\n")
            action = "completed"
        else:
            f.truncate(last_newline + 1)
            action = "truncated"
        f.flush()
        os.fsync(f.fileno())
    return action


def check_result_log(path: str | os.PathLike[str], key: str = "id") -> None:
    """Refuse, before a byte of it changes, a file that is not a result log of this kind.

    A result log is a regular file whose whole lines are JSON objects with ``key``; its unterminated tail (a
    line torn by a kill) starts like one. Anything else (a video, the questions file, a device) raises
    :class:`JobLogError` naming the file; a missing or empty file passes.
    """
    p = Path(path)
    try:
        info = p.stat()
    except FileNotFoundError:
        return
    import stat

    if not stat.S_ISREG(info.st_mode):
        raise JobLogError("not a regular file; a result log must be a file (nothing was written)", str(p))
    refuse = "not a result log ({}); nothing was changed; write the results to another file"
    with open(p, "rb") as f:
        head = f.read(4096).lstrip()
        if head and not head.startswith(b"{"):  # a video, an image: refused without reading it all
            raise JobLogError(refuse.format("line 1 is not a JSON record"), str(p))
        f.seek(0)
        for number, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):  # the unterminated tail: a torn record must still start like one
                if line.strip() and not line.lstrip().startswith(b"{"):
                    raise JobLogError(refuse.format(f"line {number} is not a JSON record"), str(p))
                break
            if not line.strip():
                continue
            record = _parse_object(line)
            if record is None or key not in record:
                raise JobLogError(refuse.format(f"line {number} is not a JSON record with {key!r}"), str(p))


def _parse_object(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def read_records(path: str | os.PathLike[str], key: str = "id") -> list[dict[str, Any]]:
    """The records of a JSONL log, in file order; a missing file has none.

    An unterminated last line is ignored (a writer may be in the middle of it, or was killed there); a whole
    line that is not a JSON object with ``key`` raises :class:`JobLogError` naming the file and line.
    """
    p = Path(path)
    if not p.exists():
        return []
    data = p.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] != b"":
        lines = lines[:-1]  # torn or in-progress tail
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = _parse_object(line)
        if record is None or key not in record:
            raise JobLogError(
                f"line {number} is not a result record (a JSON object with {key!r}); remove that line or "
                "start again with --overwrite",
                str(p),
            )
        records.append(record)
    return records


def preferred(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Which of two records for one id to keep: an answer beats an error, otherwise the newer one wins."""
    if is_error(new) and not is_error(old):
        return old
    return new


def merge_records(
    sources: Iterable[Iterable[dict[str, Any]]],
    order: Sequence[Hashable] | None = None,
    key: str = "id",
) -> list[dict[str, Any]]:
    """One record per id from several sources (oldest first), chosen by :func:`preferred`.

    ``order`` lists ids (any type; compared as ``str``) in the order the records should come out; ids not in
    it follow in the order first seen. Without ``order`` the first-seen order is kept.

    >>> merge_records([[{"id": 1, "error": "x"}, {"id": 2, "a": 1}], [{"id": 1, "a": 2}]], order=[2, 1])
    [{'id': 2, 'a': 1}, {'id': 1, 'a': 2}]
    """
    chosen: dict[str, dict[str, Any]] = {}
    for source in sources:
        for record in source:
            k = record_key(record, key)
            chosen[k] = preferred(chosen[k], record) if k in chosen else record
    if order is None:
        return list(chosen.values())
    rank = {str(i): n for n, i in enumerate(order)}
    first_seen = {k: n for n, k in enumerate(chosen)}
    return sorted(chosen.values(), key=lambda r: (rank.get(record_key(r, key), len(rank)),
                                                 first_seen[record_key(r, key)]))


def write_records_atomic(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> None:
    """Replace ``path`` with ``records`` as JSONL: written to a temporary file, fsynced, then renamed.

    A crash at any moment leaves either the old file or the new one, never a mix.
    """
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent or ".")
    try:
        os.fchmod(fd, umask_file_mode())
        with os.fdopen(fd, "wb") as f:
            for record in records:
                f.write(encode_record(record))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(p.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------- the log


class LockFile:
    """An exclusive ``flock`` on ``<path>.lock``, failing at once when another process holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".lock")
        self.fd: int | None = None

    def acquire(self, what: Path) -> None:
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise JobLogError(
                    "another run is writing this file; wait for it to finish or write to another --out",
                    str(what),
                ) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not unlinked by a holder that just finished
                self.fd = fd
                return
            os.close(fd)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)  # closing drops the flock
        self.fd = None


class ResultLog:
    """An append-only JSONL file of records keyed by ``key``, safe against crashes and duplicates.

    On :meth:`open` (or ``with``): take the lock, delete the file if ``overwrite``, repair a torn tail, read the
    records, and rewrite the file atomically when it holds records to drop (error records when
    ``retry_errors``; duplicate ids, keeping the :func:`preferred` one). ``records`` maps ``str(id)`` to the
    record; ``done_ids`` are the ids that need no more work.
    """

    def __init__(self, path: str | os.PathLike[str], key: str = "id", retry_errors: bool = True,
                 overwrite: bool = False, lock: bool = True) -> None:
        self.path = Path(path)
        self.key = key
        self.retry_errors = retry_errors
        self.overwrite = overwrite
        self.records: dict[str, dict[str, Any]] = {}
        self._lock = LockFile(self.path) if lock else None
        self._file: Any = None

    def open(self) -> "ResultLog":
        """Lock (unless the caller holds the lock), check the file is a result log, then repair and read it.

        Nothing in the file changes before the lock is held and the content is known to be a result log.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._lock is not None:
            self._lock.acquire(self.path)
        try:
            check_result_log(self.path, self.key)
            if self.overwrite and self.path.exists():
                self.path.unlink()
            if self.path.exists():
                repair_torn_tail(self.path)
            found = read_records(self.path, self.key)
            kept = merge_records([found], key=self.key)
            if self.retry_errors:
                kept = [r for r in kept if not is_error(r)]
            if len(kept) != len(found):
                write_records_atomic(self.path, kept)
            self.records = {record_key(r, self.key): r for r in kept}
            self._file = open(self.path, "ab")
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise
        return self

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> "ResultLog":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def done_ids(self) -> set[str]:
        return set(self.records)

    def __contains__(self, item_id: Hashable) -> bool:
        return str(item_id) in self.records

    def __len__(self) -> int:
        return len(self.records)

    def append(self, record: dict[str, Any]) -> None:
        """Write ``record`` as one line, flushed and fsynced before returning."""
        if self._file is None:
            raise JobLogError("the log is not open; use `with ResultLog(path) as log:`", str(self.path))
        k = record_key(record, self.key)
        if k in self.records:
            raise DuplicateRecordError(f"a record for id {k!r} is already in the log", str(self.path))
        self._file.write(encode_record(record))
        self._file.flush()
        os.fsync(self._file.fileno())
        self.records[k] = record
