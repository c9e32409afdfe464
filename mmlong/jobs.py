"""Resumable, crash-safe, sharded jobs: a JSONL result log keyed by id, shards of work per rank, and the merge.

Used by ``mmlong batch`` and the benchmark runners. A job is a list of items, each with a unique id; each item
ends as exactly one JSON record ``{"id": ..., ...}`` (or ``{"id": ..., "error": "..."}`` when it failed).

Guarantees:

- **Crash-safe.** :meth:`ResultLog.append` writes one whole line, flushes and fsyncs it before returning. A
  process killed mid-write leaves at most a torn last line (no newline); opening the log repairs it
  (:func:`repair_torn_tail`): a tail that is a whole JSON object gets its newline back, anything else is cut off.
- **Exactly once.** A log refuses a second record for an id (:class:`DuplicateRecordError`); an exclusive lock
  (``<log>.lock``, ``flock``, released by the kernel even on SIGKILL) keeps two runs from writing one log.
- **Resumable.** Ids already in the log are skipped. Error records are retried by default: opening the log with
  ``retry_errors=True`` rewrites it atomically without them, so the file never holds two records for one id.
- **Sharded.** :func:`shard_groups` spreads groups of items (e.g. all questions about one video) over ranks,
  deterministically and balanced by size; each rank writes its own part, :func:`part_path`
  (``out.jsonl.rank{r}-of-{N}``); :func:`merge_outputs` joins the output and every part into the output file,
  in input order, atomically, then deletes the parts.

:class:`ShardedJob` puts these together for one rank of a (possibly distributed) run; a runner needs only it:
``with ShardedJob(out, dist) as job``, ``job.shard(items, group_of)``, ``job.is_done(id)``, ``job.write(record)``,
``job.finish(order)``.

>>> import tempfile, os
>>> folder = tempfile.mkdtemp()
>>> out = os.path.join(folder, "out.jsonl")
>>> with ResultLog(out) as log:
...     log.append({"id": "a", "answer": "yes"})
...     log.append({"id": "b", "error": "clip.mp4: not a video"})
>>> with open(out, "a") as f:                      # a run killed mid-write leaves a torn line
...     _ = f.write('{"id": "c", "ans')
>>> with ResultLog(out) as log:                    # repaired on open; the error is retried, "a" is done
...     sorted(log.done_ids)
['a']
>>> [r["id"] for r in merge_outputs(out, order=["b", "a"])]
['a']
>>> shard_groups([5, 1, 3, 2], world_size=2)       # group sizes -> rank of each group
[0, 0, 1, 1]
"""

from __future__ import annotations

import glob
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Sequence, TypeVar

from mmlong.errors import MmlongError

T = TypeVar("T")

_PART_PATTERN = re.compile(r"\.rank(\d+)-of-(\d+)$")


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


def _parse_object(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
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


class _LockFile:
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
                 overwrite: bool = False) -> None:
        self.path = Path(path)
        self.key = key
        self.retry_errors = retry_errors
        self.overwrite = overwrite
        self.records: dict[str, dict[str, Any]] = {}
        self._lock = _LockFile(self.path)
        self._file: Any = None

    def open(self) -> "ResultLog":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock.acquire(self.path)
        try:
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
            self._lock.release()
            raise
        return self

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
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


# ---------------------------------------------------------------------------------------------- sharding


def shard_groups(group_sizes: Sequence[int], world_size: int) -> list[int]:
    """The rank (0..world_size-1) of each group: largest groups first, each to the least loaded rank.

    Deterministic (ties go to the earlier group and the lower rank), so every rank computes the same plan
    without talking to the others.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    loads = [0] * world_size
    ranks = [0] * len(group_sizes)
    for g in sorted(range(len(group_sizes)), key=lambda g: (-group_sizes[g], g)):
        r = min(range(world_size), key=lambda r: (loads[r], r))
        ranks[g] = r
        loads[r] += group_sizes[g]
    return ranks


def group_by(items: Sequence[T], group_of: Callable[[T], Hashable]) -> list[list[T]]:
    """Items grouped by ``group_of(item)``, groups in order of first appearance, items in input order."""
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(group_of(item), []).append(item)
    return list(groups.values())


def shard_items(items: Sequence[T], rank: int, world_size: int,
                group_of: Callable[[T], Hashable]) -> list[list[T]]:
    """The groups of ``items`` that ``rank`` works on (a group never spans two ranks)."""
    groups = group_by(items, group_of)
    ranks = shard_groups([len(g) for g in groups], world_size)
    return [g for g, r in zip(groups, ranks) if r == rank]


# ---------------------------------------------------------------------------------------------- parts


def part_path(output: str | os.PathLike[str], rank: int, world_size: int) -> Path:
    """Where ``rank`` of ``world_size`` writes its records: ``out.jsonl.rank{r}-of-{N}``."""
    p = Path(output)
    return p.with_name(f"{p.name}.rank{rank}-of-{world_size}")


def existing_parts(output: str | os.PathLike[str]) -> list[Path]:
    """Part files of ``output`` left by any run (any world size), sorted by world size then rank."""
    p = Path(output)
    found = []
    for name in glob.glob(glob.escape(str(p)) + ".rank*-of-*"):
        match = _PART_PATTERN.search(name)
        if match:
            found.append((int(match.group(2)), int(match.group(1)), Path(name)))
    return [path for _, _, path in sorted(found)]


def finished_ids(output: str | os.PathLike[str], retry_errors: bool = True, key: str = "id") -> set[str]:
    """Ids with a final record in ``output`` or any of its parts (read only; torn tails ignored)."""
    done: set[str] = set()
    for path in [Path(output), *existing_parts(output)]:
        for record in read_records(path, key):
            if not (retry_errors and is_error(record)):
                done.add(record_key(record, key))
    return done


def merge_outputs(output: str | os.PathLike[str], order: Sequence[Hashable] | None = None,
                  key: str = "id") -> list[dict[str, Any]]:
    """Join ``output`` and every part of it into ``output`` (one record per id, in ``order``); delete the parts.

    Call it once every writer has closed its log (after a barrier). The output is replaced atomically before
    any part is deleted, so a crash in between only leaves parts whose records are already merged.
    """
    out = Path(output)
    parts = existing_parts(out)
    for part in parts:
        repair_torn_tail(part)
    sources = [read_records(out, key)] + [read_records(part, key) for part in parts]
    merged = merge_records(sources, order=order, key=key)
    write_records_atomic(out, merged)
    for part in parts:
        part.unlink()
    return merged



# ---------------------------------------------------------------------------------------------- one rank's share


class ShardedJob:
    """One rank's share of a resumable job that ends with one record per id in ``output``.

    ``dist`` is a :class:`~mmlong.distributed.DistContext` (one process when None). Entering: every rank waits
    at a barrier, rank 0 deletes the output and its parts when ``overwrite``, a second barrier, then each rank
    opens its own log (the output itself in one process, :func:`part_path` otherwise) and learns which ids are
    done anywhere (the output, any part). :meth:`finish` closes the log, waits for every rank and, on rank 0,
    merges everything into ``output`` in ``order``.

    >>> import tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "out.jsonl")
    >>> items = [("q1", "a.mp4"), ("q2", "b.mp4"), ("q3", "a.mp4")]
    >>> with ShardedJob(out) as job:
    ...     for group in job.shard(items, group_of=lambda item: item[1]):
    ...         for item_id, video in group:
    ...             if not job.is_done(item_id):
    ...                 job.write({"id": item_id, "video": video})
    ...     merged = job.finish(order=[item_id for item_id, _ in items])
    >>> [r["id"] for r in merged]
    ['q1', 'q2', 'q3']
    """

    def __init__(self, output: str | os.PathLike[str], dist: Any = None, retry_errors: bool = True,
                 overwrite: bool = False, key: str = "id") -> None:
        if dist is None:
            from mmlong.distributed import DistContext

            dist = DistContext()
        self.output = Path(output)
        self.dist = dist
        self.retry_errors = retry_errors
        self.overwrite = overwrite
        self.key = key
        self.log: ResultLog | None = None
        self.done_before: set[str] = set()

    @property
    def log_path(self) -> Path:
        """Where this rank writes: the output itself in one process, its part file otherwise."""
        if self.dist.world_size == 1:
            return self.output
        return part_path(self.output, self.dist.rank, self.dist.world_size)

    def __enter__(self) -> "ShardedJob":
        self.dist.barrier()  # every rank has read what it needed before rank 0 deletes anything
        if self.dist.is_main and self.overwrite:
            for path in [self.output, *existing_parts(self.output)]:
                path.unlink(missing_ok=True)
        self.dist.barrier()
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.log = ResultLog(self.log_path, key=self.key, retry_errors=self.retry_errors).open()
        self.done_before = self.log.done_ids | finished_ids(self.output, self.retry_errors, self.key)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None

    def shard(self, items: Sequence[T], group_of: Callable[[T], Hashable]) -> list[list[T]]:
        """This rank's groups of ``items`` (see :func:`shard_items`)."""
        return shard_items(items, self.dist.rank, self.dist.world_size, group_of)

    def is_done(self, item_id: Hashable) -> bool:
        """True when ``item_id`` has a final record from an earlier run or from this one."""
        k = str(item_id)
        return k in self.done_before or (self.log is not None and k in self.log)

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` to this rank's log (flushed and fsynced); a done id raises DuplicateRecordError."""
        if self.log is None:
            raise JobLogError("the job is not open; use `with ShardedJob(...) as job:`", str(self.output))
        k = record_key(record, self.key)
        if k in self.done_before:
            raise DuplicateRecordError(f"id {k!r} already has a final record", str(self.output))
        self.log.append(record)

    def finish(self, order: Sequence[Hashable] | None = None) -> list[dict[str, Any]] | None:
        """Close this rank's log, wait for every rank, merge on rank 0; rank 0 gets the final records."""
        self.__exit__()
        self.dist.barrier()
        if not self.dist.is_main:
            return None
        return merge_outputs(self.output, order=order, key=self.key)
