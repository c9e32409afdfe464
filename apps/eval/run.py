"""Running a benchmark through a pipeline: the job, its summary and report, and the command-line pieces every
``mmlong eval`` benchmark shares.

:func:`run_benchmark` answers a :class:`~mmlong.benchmarks.scoring.Benchmark` through the job runner ``mmlong batch``
uses (:func:`mmlong.jobs.runner.run_job`): questions about one video form a group that shares one encoding
(:meth:`Pipeline.run`) and stays on one rank; each question ends as one line of ``results.jsonl``, so a killed run
continues where it stopped. The ``eval`` commands (:mod:`mmlong.apps.eval.command`, its Video-MME and
LongVideoBench parsers, ``eval compare``) import this module; it imports none of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmlong.apps.options import add_pipeline_arguments, dump_json, resolve_args


def numbers_arg(text: str) -> list[float]:
    """An argparse type: ``"0,50,100"`` -> ``[0.0, 50.0, 100.0]`` (finite numbers, at least one)."""
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by spaces, got {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers separated by spaces, got {text!r}")
    return values


def percents_arg(text: str) -> list[float]:
    """An argparse type: :func:`numbers_arg` from 0 to 100."""
    values = numbers_arg(text)
    if not all(0 <= v <= 100 for v in values):
        raise argparse.ArgumentTypeError(f"expected percents from 0 to 100, got {text!r}")
    return values


def seconds_arg(text: str) -> list[float]:
    """An argparse type: :func:`numbers_arg` above 0 (lengths in seconds)."""
    values = numbers_arg(text)
    if not all(v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected lengths in seconds above 0, got {text!r}")
    return values


def names_arg(text: str) -> list[str]:
    """An argparse type: ``"image, text"`` -> ``["image", "text"]``."""
    return [v for v in text.replace(" ", "").split(",") if v]


def add_data_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    """The benchmark data as every ``eval`` command takes it, ``--data DIR`` (the older positional form works)."""
    parser.add_argument("data", nargs="?", metavar="DATA", help=argparse.SUPPRESS)
    parser.add_argument("--data", dest="data_flag", metavar="DIR", help=help_text)


def data_of(args: argparse.Namespace) -> str:
    """The data folder or file given by ``--data`` (or positionally); a one-line error when neither or two differ."""
    from mmlong.errors import ConfigError

    given = [v for v in (getattr(args, "data_flag", None), getattr(args, "data", None)) if v]
    if not given:
        raise ConfigError("give the benchmark data with --data DIR")
    if len(set(given)) > 1:
        raise ConfigError(f"--data {given[0]!r} and {given[1]!r}: give the data once")
    return given[0]


class SpacedList(argparse.Action):
    """A list flag written like every other list flag, separated by spaces (``--ratios 0.5 0.25``); a value
    that is one comma-joined word (``0.5,0.25``, as older commands wrote it) is split too. Use with ``nargs="+"``
    and a list-returning ``type`` (:func:`numbers_arg`, :func:`names_arg`, ...)."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        setattr(namespace, self.dest, [v for part in values for v in part])


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of every benchmark run: ``--out``, ``--overwrite``, ``--no-retry-errors`` and the pipeline's."""
    parser.add_argument("--out", required=True, metavar="DIR", help="results folder (results.jsonl, summary.json, ...)")
    parser.add_argument("--overwrite", action="store_true", help="start again instead of resuming")
    parser.add_argument("--no-retry-errors", dest="retry_errors", action="store_false",
                        help="keep error records from an earlier run instead of retrying them")
    add_pipeline_arguments(parser)


# ---------------------------------------------------------------------------------------------- the runner
def _spread(values: Sequence[int]) -> dict[str, float] | None:
    if not values:
        return None
    return {"mean": round(sum(values) / len(values), 2), "min": min(values), "max": max(values)}


def answer_group(benchmark: Any, pipeline: Any, group: Sequence[Any]) -> list[dict[str, Any]]:
    """The records of one video's questions: answers, or one error record each when the video fails."""
    from mmlong.errors import ConfigError
    from mmlong.jobs.runner import run_video
    from mmlong.limits import check_query
    from mmlong.result import Stage, stage_value

    if group[0].missing:
        return [benchmark.error_record(item, group[0].missing) for item in group]
    records: dict[int, dict[str, Any]] = {}
    for n, item in enumerate(group):  # a question no model should be asked fails alone, the run goes on
        try:
            check_query(item.query.question, item.query.options, what=f"item {item.id!r}")
        except ConfigError as err:
            records[n] = benchmark.error_record(item, str(err))
    asked = [n for n in range(len(group)) if n not in records]
    if asked:
        result = run_video(pipeline, group[0].video, [group[n].query for n in asked])
        for k, n in enumerate(asked):
            if isinstance(result, str):  # the video failed: its questions fail, the run goes on
                records[n] = benchmark.error_record(group[n], result)
                continue
            record = benchmark.record(group[n], result.answers[k])
            record["frames"] = stage_value(result.steps[k], Stage.SAMPLE, "tokens_out")
            record["visual_tokens"] = stage_value(result.steps[k], Stage.MODEL, "tokens_in")
            records[n] = record
    return [records[n] for n in range(len(group))]


def run_benchmark(benchmark: Any, config: Any, out_dir: str | Path, overwrite: bool = False,
                  retry_errors: bool = True, progress: bool = True, pipeline: Any = None) -> dict[str, Any] | None:
    """Answer every item of ``benchmark`` with a pipeline of ``config``; write and return the summary.

    benchmark: a :class:`~mmlong.benchmarks.scoring.Benchmark` (e.g. ``BENCHMARKS.create("mlvu", data=...)``).
    config: a :class:`~mmlong.config.resolve.ResolvedPipeline` (or a flat PipelineConfig). The job is
    :func:`mmlong.jobs.runner.run_job`: ``OUT/results.jsonl`` holds one record per question, a re-run resumes, and
    ``OUT/results.config.yaml`` must match. ``pipeline``: an already built
    :class:`~mmlong.pipeline.Pipeline` of ``config`` to reuse (its loaded models), e.g. for several benchmarks
    in one process. Returns the summary on rank 0, ``None`` elsewhere.
    """
    from mmlong.config.resolve import as_resolved
    from mmlong.jobs.distributed import init_distributed
    from mmlong.jobs.runner import run_job, sidecar
    from mmlong.pipeline import Pipeline
    from mmlong.planning.fit import fit_to_memory

    out = Path(out_dir).expanduser()
    results = out / "results.jsonl"
    items = benchmark.items()
    config = fit_to_memory(as_resolved(config), [i.video for i in items if i.video and not i.missing])
    dist = init_distributed(config.runtime.device)
    try:
        config = config.with_device(dist.device_for(config.runtime.device))
        if pipeline is None:
            pipeline = Pipeline(config, progress=False, status=progress and dist.is_main)  # lines, no bars
        elif pipeline.config.to_dict() != config.to_dict():
            raise ValueError("run_benchmark: the pipeline given was built from another config")
        outcome = run_job(items, lambda group: answer_group(benchmark, pipeline, group), results,
                          group_of=lambda item: item.group, dist=dist, retry_errors=retry_errors,
                          overwrite=overwrite, progress=progress, desc=benchmark.name, config=config,
                          config_path=sidecar(results, ".config.yaml"))
    finally:
        dist.close()
    if outcome is None:
        return None
    records = outcome.records
    summary = benchmark.summarize(records)
    scored = [r for r in records if not r.get("error")]
    summary["pipeline"] = {
        "config": config.to_dict(),
        "sample": config.sample_spec,
        "compress": config.compress_spec,
        "budget": config.budget,
        "frames": _spread([r["frames"] for r in scored if r.get("frames") is not None]),
        "visual_tokens": _spread([r["visual_tokens"] for r in scored if r.get("visual_tokens") is not None]),
    }
    summary["benchmark"] = {"name": benchmark.name, **_plain(dataclasses.asdict(benchmark.config))}
    config.save(out / "config.yaml")
    (out / "summary.json").write_text(dump_json(summary) + "\n")
    figures = benchmark.figures(summary, out)
    (out / "results.md").write_text(_markdown(benchmark, summary, figures))
    return summary


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _markdown(benchmark: Any, summary: Mapping[str, Any], figures: Sequence[Path]) -> str:
    pipe = summary["pipeline"]
    frames = pipe["frames"] or {}
    tokens = pipe["visual_tokens"] or {}
    lines = [
        f"# {benchmark.name} results",
        "",
        benchmark.report(summary),
        "",
        f"Pipeline: model `{pipe['config']['model']['family']}`, encoder `{pipe['config']['encoder']['name']}`, sample "
        f"`{pipe['sample']}`, compress `{pipe['compress'] or 'none'}`, budget {pipe['budget'] or 'none'}; "
        f"frames per question {frames.get('mean', '-')} (min {frames.get('min', '-')}, max {frames.get('max', '-')}), "
        f"visual tokens {tokens.get('mean', '-')}. Full config: config.yaml.",
    ]
    lines += [f"\n![{fig.stem}]({fig.name})" if fig.suffix == ".png" else f"\nWritten: [{fig.name}]({fig.name})"
              for fig in figures]
    return "\n".join(lines) + "\n"


def print_summary(benchmark: Any, summary: Mapping[str, Any] | None, out: str) -> int:
    """Print the report; exit status 1 when some items are error records (as ``mmlong batch``), else 0; under a
    launcher 0 (every rank finished its share: the summary says what failed)."""
    from mmlong.jobs.distributed import DistContext

    if summary is None:
        return 0
    print(benchmark.report(summary))
    print(f"\nwrote {Path(out) / 'results.jsonl'}, summary.json, results.md, config.yaml")
    sys.stdout.flush()
    failed = summary.get("errors", {}).get("count") or 0
    if failed and DistContext.from_env().is_distributed:
        print(f"{failed} item(s) failed (error records in results.jsonl, counted in summary.json); every rank "
              "finished its share, so the exit status is 0", file=sys.stderr)
    return DistContext.from_env().exit_status(failed)


def check_run_folder(out: str | Path, inputs: Sequence[Any] = ()) -> Path:
    """``--out DIR`` of a benchmark run, checked before any work: a writable folder (not a file, not under
    /proc, /sys or /dev) whose ``results.jsonl``, when there is one, is a result log, and whose files are none
    of ``inputs`` (the annotation file)."""
    from mmlong.jobs.log import check_result_log
    from mmlong.validate import check_not_input, check_output_file, check_output_folder

    folder = check_output_folder(out, "--out")
    for name in ("results.jsonl", "summary.json", "results.md", "config.yaml"):
        check_output_file(folder / name, what=f"--out {name}")
        check_not_input(folder / name, [i for i in inputs if i], f"--out {name}")
    check_result_log(folder / "results.jsonl")
    return folder


def build_benchmark(name: str, **options: Any) -> Any:
    """Benchmark ``name`` from the registry (:data:`mmlong.registry.BENCHMARKS`) with ``options`` (its Config
    fields); an unknown name or option is a one-line ConfigError."""
    from mmlong.errors import ConfigError
    from mmlong.registry import BENCHMARKS, RegistryError

    try:
        return BENCHMARKS.create(name, **options)
    except RegistryError as err:
        raise ConfigError(f"eval {name}: {err}") from err


def run_registered(name: str, args: argparse.Namespace, config: Any = None, **options: Any) -> int:
    """Build benchmark ``name`` (:func:`build_benchmark`), run it with ``config`` (default: the pipeline flags
    on ``args``) and print the report."""
    check_run_folder(args.out, [options.get("data")])
    bench = build_benchmark(name, **options)
    config = resolve_args(args) if config is None else config
    summary = run_benchmark(bench, config, args.out, args.overwrite, args.retry_errors)
    return print_summary(bench, summary, args.out)
