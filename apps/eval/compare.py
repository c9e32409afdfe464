"""``mmlong eval compare``: compressor chains x retention ratios on one benchmark, every cell at a matched budget.

A cell is a chain at a retention ratio ``R``: its visual-token budget is ``R x`` the video's uncompressed token
count (measured per video from the pipeline's own encoding, so ``fps`` sampling with videos of different lengths
stays matched). The uncompressed cell ``none`` is always run: retained accuracy is relative to it. A bare
method name is set to the budget by :func:`cell_chain`; ``{ratio}``, ``{drop}`` (``1 - R``) and ``{budget}`` in a
spec place the numbers by hand (``tome:{drop}``, ``pool:auto``, ``fastv:3,{drop}``).

``--methods`` is a list separated by spaces; a chain inside it joins its steps with ``+`` (``scenetile+pool:auto``),
so a list cannot be mistaken for a chain: ``--methods pool,tome`` is refused in one line (:func:`method_argument`).

Every question of every cell ends as one record of ``results.jsonl`` (id ``CELL|QUESTION``) through
:func:`mmlong.jobs.runner.run_job`, the job runner of ``mmlong batch`` and ``mmlong eval``: a killed run resumes, the
resolved pipeline is saved beside the results and a resumed run must match it, and under ``torchrun`` each rank
takes whole videos (all cells of a video on one rank, so its encoding is shared).
Then rank 0 measures each cell's prefill cost on a random-init Qwen2-VL of a real shape
(:mod:`mmlong.apps.eval.compare_cost`, resumable too) and writes ``summary.json``, ``results.md`` and ``pareto.png``
(:mod:`mmlong.apps.eval.compare_report`).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmlong.apps.render import plain_text

EXAMPLES = """\
examples:
  mmlong eval compare niavh --data runs/niavh-set --out runs/compare --sample uniform:16 \\
      --methods pool tome select stream-memory fastv pyramiddrop --ratios 0.5 0.25 0.1
  mmlong eval compare niavh --data runs/niavh-set --out runs/c2 --methods "tome:{drop}" scenetile+pool:auto --no-cost
  mmlong eval compare mlvu --data ~/data/MLVU --tasks needle --limit 20 --out runs/c3 --cost-size 0.5b --cost-frames 64
"""
#: Built-in methods whose own settings express a retention ratio or read the token budget.
KNOWN = {
    "pool": "pool:auto", "tpool": "tpool:auto", "tome": "tome:auto", "tmerge": "tmerge:ratio={drop}",
    "select": "select", "stream-memory": "stream-memory", "progressive": "progressive",
    "dycoke-kv": "dycoke-kv:ratio={drop}", "framefusion": "framefusion:cost={ratio}",
    "prunevid-llm": "prunevid-llm:alpha={ratio}",
}
RETAIN_FIELDS = ("retention", "retain", "retain_ratio", "keep_ratio", "retention_ratio")
BUDGET_FIELDS = ("budget", "tokens", "num_tokens", "max_tokens")


@dataclass(frozen=True)
class Cell:
    """One grid cell: ``method`` as written, at retention ``ratio`` (1.0 and an empty chain for ``none``)."""

    method: str
    ratio: float

    @property
    def id(self) -> str:
        return "none" if not self.method else f"{self.method}@{self.ratio:g}"


def _drop_for_layers(step_cls: Any, ratio: float, num_layers: int) -> float:
    """The drop fraction at which an in-LLM step keeps ``ratio`` of the visual tokens on average over layers."""
    from mmlong.planning.estimate import layer_drops

    def mean_kept(drop: float) -> float:
        step = step_cls(step_cls.Config(ratio=drop))
        drops, kept, left = layer_drops([step], num_layers), 0.0, 1.0
        for layer in range(num_layers):
            left *= 1 - drops.get(layer, 0.0)
            kept += left
        return kept / num_layers

    lo, hi = 0.0, 0.999
    if mean_kept(hi) > ratio:  # cannot go that low with its schedule: keep what it can
        return hi
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean_kept(mid) > ratio else (lo, mid)
    return round((lo + hi) / 2, 4)


def cell_chain(method: str, ratio: float, num_layers: int = 24) -> str:
    """The chain spec of ``method`` at retention ``ratio`` (the token budget itself reaches it as ``ctx.budget``).

    Placeholders first (``{ratio}``, ``{drop}``; ``{budget}`` is left for the per-video budget); then each bare
    step: a built-in of :data:`KNOWN`; an in-LLM step with a drop ``ratio`` set so the visual tokens averaged over
    ``num_layers`` layers match; a setting that takes ``auto``; a retention field; else the step meets
    ``ctx.budget`` itself (or keeps its defaults: the cell's measured tokens show it).

    >>> cell_chain("pool", 0.25), cell_chain("tome:{drop}", 0.25), cell_chain("fastv", 0.5, num_layers=24)
    ('pool:auto', 'tome:0.75', 'fastv:ratio=0.5455')
    >>> cell_chain("scenetile+tome", 0.5)
    'scenetile,tome:auto'
    """
    from mmlong.compressors.base import Placement
    from mmlong.registry import COMPRESSORS
    from mmlong.spec import parse_chain

    text = method.replace("+", ",").replace("{ratio}", f"{ratio:g}").replace("{drop}", f"{1 - ratio:g}")
    out = []
    for spec in parse_chain(text) if "{budget}" not in text else []:
        if spec.args or spec.kwargs:
            out.append(str(spec))
            continue
        if spec.name in KNOWN:
            out.append(KNOWN[spec.name].replace("{drop}", f"{1 - ratio:g}").replace("{ratio}", f"{ratio:g}"))
            continue
        cls = COMPRESSORS.resolve(spec.name)
        fields = {f.name: f for f in dataclasses.fields(cls.Config)} if hasattr(cls, "Config") else {}
        if cls.stage == Placement.IN_LLM and "ratio" in fields and hasattr(cls, "drops"):
            out.append(f"{spec.name}:ratio={_drop_for_layers(cls, ratio, num_layers):g}")
        elif any("str" in str(f.type) and f.name in ("ratio", "factor") for f in fields.values()):
            name = next(n for n in ("ratio", "factor") if n in fields and "str" in str(fields[n].type))
            out.append(f"{spec.name}:{name}=auto")
        elif any(n in fields for n in RETAIN_FIELDS):
            out.append(f"{spec.name}:{next(n for n in RETAIN_FIELDS if n in fields)}={ratio:g}")
        else:  # reads ctx.budget (BUDGET_FIELDS left unset), or keeps its own defaults
            out.append(spec.name)
    return ",".join(out) if "{budget}" not in text else text


def method_argument(text: str) -> str:
    """argparse ``type=`` for one ``--methods`` entry: a method, or a chain whose steps are joined with ``+``.

    A comma that starts a new step (``pool,tome``) is refused: methods are separated by spaces, and a chain is
    spelled ``pool+tome``; commas stay for a step's own arguments (``fastv:3,{drop}``).

    >>> method_argument("scenetile+pool:auto"), method_argument("fastv:3,{drop}")
    ('scenetile+pool:auto', 'fastv:3,{drop}')
    """
    from mmlong.spec import SpecError, parse_chain

    pieces = [p.strip() for p in text.split("+")]
    try:
        steps = [parse_chain(p.replace("{ratio}", "0.5").replace("{drop}", "0.5").replace("{budget}", "1"))
                 for p in pieces]
    except SpecError as err:
        raise argparse.ArgumentTypeError(f"--methods {text!r}: {err}") from None
    if any(len(s) != 1 for s in steps):
        names = [str(spec) for piece in pieces for spec in parse_chain(piece)]
        raise argparse.ArgumentTypeError(
            f"--methods {text!r} is a chain of {len(names)} steps; list methods with spaces "
            f"({' '.join(names)}) or join one chain's steps with + ({'+'.join(names)})")
    return "+".join(pieces)


def add_compare_parser(benchmarks: argparse._SubParsersAction) -> None:
    """``mmlong eval compare BENCHMARK --data DATA``: added to the ``eval`` command's benchmarks."""
    from mmlong.apps.eval.run import SpacedList, add_data_argument, add_run_arguments, names_arg, numbers_arg

    parser = benchmarks.add_parser("compare", help="compressor chains x retention ratios at matched token budgets",
                                   description=plain_text(__doc__.split("\n\n")[0]), epilog=EXAMPLES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", choices=["niavh", "mlvu"], help="which benchmark")
    add_data_argument(parser, "a NIAVH set folder, or the MLVU folder / annotation file")
    parser.add_argument("--methods", nargs="+", metavar="METHOD", type=method_argument,
                        default=["pool", "tome", "select", "stream-memory", "fastv", "pyramiddrop"],
                        help="methods separated by spaces; a chain inside joins its steps with + "
                             "(scenetile+pool:auto); see the description for placeholders")
    parser.add_argument("--ratios", type=numbers_arg, nargs="+", action=SpacedList, default=[0.5, 0.25, 0.1],
                        metavar="R", help="retention ratios, separated by spaces (default: 0.5 0.25 0.1)")
    parser.add_argument("--kinds", type=names_arg, nargs="+", action=SpacedList, default=["mc"], metavar="KIND",
                        help="NIAVH question kinds (default: mc)")
    parser.add_argument("--tasks", nargs="+", metavar="TASK", help="MLVU tasks (default: all)")
    parser.add_argument("--limit", type=int, metavar="N", help="MLVU: at most N questions per task")
    parser.add_argument("--video-root", metavar="DIR", help="MLVU: where the videos are")
    cost = parser.add_argument_group("prefill cost (random-init Qwen2-VL of a real shape; see mmlong bench prefill)")
    cost.add_argument("--cost-size", default="0.5b", metavar="SHAPE", help="language-model shape (default: 0.5b)")
    cost.add_argument("--cost-frames", type=int, default=32, metavar="N", help="frames of the cost run (default: 32)")
    cost.add_argument("--cost-resolution", type=int, default=448, metavar="PIXELS",
                      help="frame side of the cost run (default: 448)")
    cost.add_argument("--no-cost", dest="cost", action="store_false", help="skip the prefill cost measurement")
    add_run_arguments(parser)
    parser.set_defaults(func=run_compare)


def grid(methods: Sequence[str], ratios: Sequence[float]) -> list[Cell]:
    """The uncompressed cell first, then every method at every ratio (duplicates dropped)."""
    for ratio in ratios:
        if not 0.0 < ratio <= 1.0:
            from mmlong.errors import ConfigError

            raise ConfigError(f"--ratios: {ratio:g} is not a retention ratio in (0, 1]")
    cells = [Cell("", 1.0)] + [Cell(m, float(r)) for m in methods for r in ratios]
    return list(dict.fromkeys(cells))


@dataclass(frozen=True)
class CellItem:
    """One question of one cell: the job runner's item (id ``CELL|QUESTION``, grouped by the question's video)."""

    cell: Cell
    item: Any

    @property
    def id(self) -> str:
        return f"{self.cell.id}|{self.item.id}"

    @property
    def group(self) -> Any:
        return self.item.group


def _retarget(pipeline: Any, compress: str, budget: int | None) -> Any:
    """The pipeline set to another chain and budget (its resolved tree too), keeping its loaded encoder, model
    and cache."""
    from mmlong.compressors.base import Chain
    from mmlong.config.resolve import compressor_plugins

    steps = compressor_plugins(compress)
    pipeline.config = dataclasses.replace(pipeline.config, compressors=steps, budget=budget)
    pipeline.chain = Chain([step.build() for step in steps])
    return pipeline


def _cell_records(benchmark: Any, pipeline: Any, cell: Cell, chain: str, group: Sequence[Any],
                  base_tokens: int) -> list[dict[str, Any]]:
    """One cell's records for one video's questions (its budget is the ratio of that video's tokens)."""
    from mmlong.apps.eval.run import answer_group
    from mmlong.errors import ConfigError

    budget = None if not cell.method else max(1, round(cell.ratio * base_tokens))
    _retarget(pipeline, chain.replace("{budget}", str(budget)), budget)
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        records = answer_group(benchmark, pipeline, group)
    except ConfigError as err:  # a chain this pipeline cannot run (e.g. no encoder attention) must not stop the grid
        records = [benchmark.error_record(item, str(err)) for item in group]
    cpu_ms = (time.process_time() - cpu) * 1000.0 / max(1, len(group))
    wall_ms = (time.perf_counter() - wall) * 1000.0 / max(1, len(group))
    for record in records:
        record.update(id=f"{cell.id}|{record['id']}", cell=cell.id, method=cell.method or "none",
                      ratio=cell.ratio, chain=pipeline.config.compress_spec, budget=budget, base_tokens=base_tokens,
                      in_llm=bool(pipeline.chain.in_llm), cpu_ms=round(cpu_ms, 1), wall_ms=round(wall_ms, 1))
    return records


def _video_records(benchmark: Any, pipeline: Any, chains: dict[Cell, str], group: Sequence[CellItem]
                   ) -> list[dict[str, Any]]:
    """The records of one video's pending cell questions: its uncompressed token count once, then each cell."""
    base_tokens = _base_tokens(pipeline, [g.item for g in group])
    records = []
    for cell in dict.fromkeys(g.cell for g in group):
        left = [g.item for g in group if g.cell == cell]
        records += _cell_records(benchmark, pipeline, cell, chains[cell], left, base_tokens)
    return records


def run_grid(benchmark: Any, config: Any, cells: Sequence[Cell], out_dir: Path, *, overwrite: bool = False,
             retry_errors: bool = True, progress: bool = True, num_layers: int = 24) -> list[dict[str, Any]] | None:
    """Answer every question in every cell; ``results.jsonl`` in ``out_dir``. Rank 0 gets the merged records.

    config: the :class:`~mmlong.config.resolve.ResolvedPipeline` every cell shares (its chain and token budget are
    replaced per cell); saved (without a chain) as ``results.config.yaml`` and checked on resume.
    """
    from mmlong.config.resolve import as_resolved
    from mmlong.jobs.distributed import init_distributed
    from mmlong.jobs.runner import run_job, sidecar
    from mmlong.pipeline import Pipeline

    results = out_dir / "results.jsonl"
    items = benchmark.items()
    chains = {cell: cell_chain(cell.method, cell.ratio, num_layers) if cell.method else "" for cell in cells}
    config = as_resolved(config)
    dist = init_distributed(config.runtime.device)
    try:
        config = dataclasses.replace(config.with_device(dist.device_for(config.runtime.device)), compressors=(),
                                     budget=None)
        pipeline = Pipeline(config, progress=False, status=progress and dist.is_main)  # lines, no bars
        runnable = [c for c in cells if not _needs_in_llm(chains[c]) or pipeline.model.supports_in_llm]
        # video by video (one group per video), every cell of a video together so its encoding is shared
        jobs = [CellItem(c, i) for i in items for c in runnable]
        outcome = run_job(jobs, lambda group: _video_records(benchmark, pipeline, chains, group), results,
                          group_of=lambda job: job.group, dist=dist, retry_errors=retry_errors, overwrite=overwrite,
                          progress=progress, desc="compare", config=config,
                          config_path=sidecar(results, ".config.yaml"))
    finally:
        dist.close()
    if outcome is None:
        return None
    order = {f"{c.id}|{i.id}": n for n, (c, i) in enumerate((c, i) for c in runnable for i in items)}
    return sorted(outcome.records, key=lambda r: order[str(r["id"])])


def _needs_in_llm(chain: str) -> bool:
    from mmlong.compressors.base import Chain

    return bool(chain) and "{budget}" not in chain and bool(Chain.from_spec(chain).in_llm)


def _base_tokens(pipeline: Any, group: Sequence[Any]) -> int:
    """Uncompressed visual tokens of a group's video (0 when it cannot be read: its records will say why)."""
    if group[0].missing:
        return 0
    _retarget(pipeline, "", None)
    try:
        return int(pipeline.encode(group[0].video, group[0].query).num_tokens)
    except Exception:  # the video's own error is recorded by its cells
        return 0


def compare_benchmark(args: argparse.Namespace) -> Any:
    """The benchmark of ``eval compare``, from the registry."""
    from mmlong.apps.eval.run import build_benchmark, data_of

    if args.benchmark == "niavh":
        return build_benchmark("niavh", data=data_of(args), kinds=tuple(args.kinds))
    return build_benchmark("mlvu", data=data_of(args), tasks=tuple(args.tasks or ()), limit=args.limit,
                           video_root=args.video_root)


def run_compare(args: argparse.Namespace) -> int:
    from mmlong.apps.eval.compare_cost import measure_costs
    from mmlong.apps.eval.compare_report import write_report
    from mmlong.apps.options import resolve_args
    from mmlong.planning.fit import fit_to_memory
    from mmlong.planning.shapes import named_shape
    from mmlong.validate import check_output_folder

    check_output_folder(args.out, "--out")
    benchmark = compare_benchmark(args)
    videos = [item.video for item in benchmark.items() if item.video and not item.missing]
    config = fit_to_memory(resolve_args(args), videos)
    cells = grid(args.methods, args.ratios)
    out = Path(args.out).expanduser()
    layers = named_shape(args.cost_size).layers
    records = run_grid(benchmark, config, cells, out, overwrite=args.overwrite, retry_errors=args.retry_errors,
                       num_layers=layers)
    if records is None:
        return 0
    chains = {c: cell_chain(c.method, c.ratio, layers) if c.method else "" for c in cells}
    costs = {}
    if args.cost:
        costs = measure_costs(cells, chains, out / "cost.jsonl", size=args.cost_size, frames=args.cost_frames,
                              resolution=args.cost_resolution, overwrite=args.overwrite)
    summary = write_report(benchmark, config, cells, records, costs, out, chains)
    print(summary["table"])
    print(f"\nwrote {out / 'results.jsonl'}, summary.json, results.md, pareto.png")
    return 1 if any(r.get("error") for r in records) else 0
