"""The one job runner: items in, one record per item out; resumable, crash-safe, sharded across ranks.

``mmlong batch`` and ``mmlong eval`` (and anything comparing pipelines on a benchmark) are the same loop:
group the items (questions about one video share one encoding and one rank), skip the ids an earlier run
finished, turn each group into records with a ``work`` function, write each record as soon as it exists
(:class:`~mmlong.jobs.shards.ShardedJob`), and on rank 0 merge the parts in input order. :func:`run_job` is that loop;
:func:`run_video` is the usual ``work`` body (one video's questions through a pipeline, a bad video becoming a
reason instead of an exception). The resolved pipeline is saved beside the output and a resumed run must
match it (:func:`check_resume`).

>>> import tempfile, os
>>> out = os.path.join(tempfile.mkdtemp(), "out.jsonl")
>>> items = [("q1", "a.mp4"), ("q2", "b.mp4"), ("q3", "a.mp4")]
>>> work = lambda group: [{"id": item_id, "video": video} for item_id, video in group]
>>> outcome = run_job(items, work, out, id_of=lambda i: i[0], group_of=lambda i: i[1], progress=False)
>>> [r["id"] for r in outcome.records], outcome.computed, outcome.done_before
(['q1', 'q2', 'q3'], 3, 0)
>>> run_job(items, work, out, id_of=lambda i: i[0], group_of=lambda i: i[1], progress=False).done_before
3
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Sequence, TypeVar

from mmlong.jobs.log import is_error

T = TypeVar("T")


@dataclass
class JobOutcome:
    """What a job ended with (on rank 0): the final record of every item asked for, in input order.

    done_before: items an earlier run had finished. computed: records written by this run, all ranks together.
    seconds: wall time of this rank. world_size: how many ranks shared the work.
    """

    records: list[dict[str, Any]]
    done_before: int
    computed: int
    seconds: float
    world_size: int

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The error records."""
        return [r for r in self.records if is_error(r)]

    @property
    def answered(self) -> int:
        return len(self.records) - len(self.failed)


def sidecar(output: str | Path, suffix: str) -> Path:
    """``answers.jsonl`` -> ``answers<suffix>`` (e.g. ``.config.yaml``) in the same folder."""
    output = Path(output)
    stem = output.name[: -len(".jsonl")] if output.name.endswith(".jsonl") else output.name
    return output.with_name(stem + suffix)


def describe_error(err: BaseException) -> str:
    """One line: an MmlongError as it reads (it names the file), anything else with its type."""
    from mmlong.errors import MmlongError

    text = str(err) if isinstance(err, MmlongError) else f"{type(err).__name__}: {err}"
    return " ".join(text.split()) or type(err).__name__


def _dotted(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [2]}`` -> ``{"a.b": 1, "c.0": 2}``."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_dotted(inner, f"{prefix}{key}."))
        return out
    if isinstance(value, list):
        return _dotted({str(i): v for i, v in enumerate(value)}, prefix) if value else {prefix[:-1]: []}
    return {prefix[:-1]: value}


def check_resume(config: Any, config_path: str | Path, output: str | Path) -> None:
    """Refuse to resume ``output`` when the pipeline saved at ``config_path`` would answer differently.

    Both are resolved trees (the saved file is read back with :func:`mmlong.config.resolve.resolve`, so an older flat
    file works too), compared by :meth:`~mmlong.config.resolve.ResolvedPipeline.answer_settings`: a device or cache
    change may resume, another sampler or compressor option may not.
    """
    from mmlong.config.resolve import as_resolved, resolve
    from mmlong.errors import ConfigError
    from mmlong.jobs.shards import existing_parts

    config_path, output = Path(config_path), Path(output)
    if not config_path.is_file() or not (output.exists() or existing_parts(output)):
        return
    saved = _dotted(resolve(yaml=config_path).answer_settings())
    now = _dotted(as_resolved(config).answer_settings())
    changed = [k for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]
    if changed:
        diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in changed[:4])
        raise ConfigError(f"was written with another pipeline ({diffs}); use the same settings to resume, "
                          "another --out, or --overwrite to start again", str(output))


def run_video(pipeline: Any, video: str, queries: Sequence[Any]) -> Any:
    """``pipeline.run(video, queries)`` (a :class:`~mmlong.result.Result`), or the one-line reason it failed.

    A problem of the video (missing, corrupt, no frames chosen: an error naming a file, or any other exception
    while reading it) is returned so the job can go on; a pipeline that cannot run at all (a config or model
    error naming no file) is raised, so it stops the job once instead of failing every item.
    """
    from mmlong.errors import ConfigError, ModelLoadError

    try:
        return pipeline.run(video, queries)
    except (ConfigError, ModelLoadError) as err:
        if err.path is None:
            raise
        return describe_error(err)
    except Exception as err:  # a damaged video must not stop the job
        return describe_error(err)


def run_job(
    items: Iterable[T],
    work: Callable[[list[T]], list[dict[str, Any]]],
    output: str | Path,
    *,
    id_of: Callable[[T], Hashable] = lambda item: item.id,  # type: ignore[attr-defined]
    group_of: Callable[[T], Hashable],
    dist: Any = None,
    retry_errors: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    desc: str = "job",
    config: Any = None,
    config_path: str | Path | None = None,
    before_work: Callable[[], Any] | None = None,
) -> JobOutcome | None:
    """Turn every item into one record in ``output``; returns the :class:`JobOutcome` on rank 0, None elsewhere.

    items: anything with an id (``id_of``) and a group (``group_of``: items of one group go to one ``work`` call
    and one rank). work: a group -> one record per item, each ``{"id": ..., ...}`` (``{"id", "error"}`` for a
    failed item). Ids with a final record in ``output`` or its parts are skipped; error records are retried
    unless ``retry_errors`` is False; ``overwrite`` starts again. dist: a
    :class:`~mmlong.jobs.distributed.DistContext` (one process when None). config, config_path: the
    :class:`~mmlong.config.resolve.ResolvedPipeline` to save at ``config_path`` (rank 0) and to check a resumed run
    against (:func:`check_resume`, here only: once, before ``before_work`` and any work). before_work: called once
    after that check and before the first group (e.g. to build the models, so a pipeline that cannot run fails
    once, before any record).
    """
    from mmlong.jobs.shards import ShardedJob
    from mmlong.progress import progress_bar

    items = list(items)
    start = time.perf_counter()
    if config is not None and config_path is not None and not overwrite:
        check_resume(config, config_path, output)
    if before_work is not None:
        before_work()
    computed = 0
    with ShardedJob(output, dist=dist, retry_errors=retry_errors, overwrite=overwrite) as job:
        if config is not None and config_path is not None and job.dist.is_main:
            config.save(config_path)
        groups = [[i for i in group if not job.is_done(id_of(i))] for group in job.shard(items, group_of)]
        groups = [g for g in groups if g]
        label = desc if job.dist.world_size == 1 else f"{desc} rank {job.dist.rank}/{job.dist.world_size}"
        bar = progress_bar(total=sum(len(g) for g in groups), desc=label, unit="item", enabled=progress)
        try:
            for group in groups:
                records = work(group)
                if len(records) != len(group):
                    raise ValueError(f"run_job: work gave {len(records)} records for {len(group)} items")
                for record in records:
                    job.write(record)
                    if is_error(record):
                        bar.write(f"mmlong: {record['id']}: {record['error']}", file=sys.stderr)
                computed += len(records)
                bar.update(len(records))
        finally:
            bar.close()
        wanted = {str(id_of(i)) for i in items}
        done_before = len(job.done_before & wanted)
        counts = job.dist.gather(computed)
        merged = job.finish(order=[id_of(i) for i in items])
    if merged is None:
        return None
    final = [r for r in merged if str(r["id"]) in wanted]  # an earlier run may have held other items
    return JobOutcome(final, done_before, sum(counts), time.perf_counter() - start, job.dist.world_size)
