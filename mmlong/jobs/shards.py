"""Resumable, crash-safe, sharded jobs: a JSONL result log keyed by id, shards of work per rank, and the merge.

Used by ``mmlong batch`` and ``mmlong eval`` through the one job runner, :func:`mmlong.jobs.runner.run_job`; the
log itself lives in :mod:`mmlong.jobs.log` (import its names from there). A job is a list of items,
each with a unique id; each item
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
>>> from mmlong.jobs.log import ResultLog
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
import os
import re
from pathlib import Path
from typing import Any, Callable, Hashable, Sequence, TypeVar

from mmlong.jobs.log import (
    DuplicateRecordError,
    JobLogError,
    LockFile,
    ResultLog,
    check_result_log,
    is_error,
    merge_records,
    read_records,
    record_key,
    repair_torn_tail,
    write_records_atomic,
)

T = TypeVar("T")

_PART_PATTERN = re.compile(r"\.rank(\d+)-of-(\d+)$")


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

    ``dist`` is a :class:`~mmlong.jobs.distributed.DistContext` (one process when None). Entering: rank 0 takes the
    output's lock (``<output>.lock``; another run on the same output is refused here, before anything is
    touched) and checks that the output and its parts are result logs; every rank waits at a barrier, rank 0
    deletes the output and its parts when ``overwrite``, a second barrier, then each rank opens its own log (the
    output itself in one process, :func:`part_path` otherwise) and learns which ids are done anywhere (the
    output, any part). :meth:`finish` closes the log, waits for every rank and, on rank 0, merges everything
    into ``output`` in ``order``; the lock is held until the merged file is in place.

    >>> import tempfile, os
>>> from mmlong.jobs.log import ResultLog
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
            from mmlong.jobs.distributed import DistContext

            dist = DistContext()
        self.output = Path(output)
        self.dist = dist
        self.retry_errors = retry_errors
        self.overwrite = overwrite
        self.key = key
        self.log: ResultLog | None = None
        self.done_before: set[str] = set()
        self._lock: LockFile | None = None

    @property
    def log_path(self) -> Path:
        """Where this rank writes: the output itself in one process, its part file otherwise."""
        if self.dist.world_size == 1:
            return self.output
        return part_path(self.output, self.dist.rank, self.dist.world_size)

    def __enter__(self) -> "ShardedJob":
        try:
            if self.dist.is_main:
                self.output.parent.mkdir(parents=True, exist_ok=True)
                self._lock = LockFile(self.output)
                self._lock.acquire(self.output)  # before any byte of the output or its parts changes
                for path in [self.output, *existing_parts(self.output)]:
                    check_result_log(path, self.key)
            self.dist.barrier()  # every rank has read what it needed before rank 0 deletes anything
            if self.dist.is_main and self.overwrite:
                for path in [self.output, *existing_parts(self.output)]:
                    path.unlink(missing_ok=True)
            self.dist.barrier()
            self.output.parent.mkdir(parents=True, exist_ok=True)
            single = self.dist.world_size == 1  # the log is the output itself, whose lock is already held
            self.log = ResultLog(self.log_path, key=self.key, retry_errors=self.retry_errors,
                                 lock=not single).open()
            self.done_before = self.log.done_ids | finished_ids(self.output, self.retry_errors, self.key)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._close_log()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _close_log(self) -> None:
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
        """Close this rank's log, wait for every rank, merge on rank 0 (still holding the output's lock, so no
        new run can write records the merge would replace); rank 0 gets the final records."""
        self._close_log()
        self.dist.barrier()
        try:
            if not self.dist.is_main:
                return None
            return merge_outputs(self.output, order=order, key=self.key)
        finally:
            self.__exit__()
