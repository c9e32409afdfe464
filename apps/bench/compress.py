"""``mmlong bench compress``: what a compressor chain does to one video's visual tokens, and what it costs.

Runs the pipeline's token path (sample -> decode -> encode, through the feature cache -> pre-LLM chain) and
prints every stage's tokens in/out and milliseconds from the provenance, then the chain's ratios measured in
the same run: tokens out / tokens in, and the chain's time relative to encoding. ``--repeat R`` runs the token
path R times and reports each compressor's median time (the later runs usually hit the feature cache).
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

EXAMPLES = """\
examples:
  mmlong bench compress clip.mp4 --compress tome:0.5
  mmlong bench compress clip.mp4 --compress scenetile,select,pool:auto --budget 512 --question "Where is the cat?"
  mmlong bench compress movie.mp4 --sample fps:1 --compress stream-memory:256 --json
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from mmlong.apps.options import add_pipeline_arguments

    parser = subparsers.add_parser(
        "compress", help="tokens in/out and milliseconds of a compressor chain on one video",
        description="Sample, decode and encode VIDEO, run the --compress chain and print each stage's tokens "
                    "in/out and ms, the compression ratio and the chain's time relative to encoding.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", metavar="VIDEO", help="video file")
    parser.add_argument("--question", default="", help="question for query-aware stages (select, progressive, query:N)")
    parser.add_argument("--options", nargs="+", metavar="OPTION", default=(), help="answer options, if any")
    parser.add_argument("--repeat", type=int, default=1, help="runs; compressor times are medians (default: 1)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch CPU threads for this benchmark (default: torch's own choice)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_pipeline_arguments(parser)
    parser.set_defaults(func=run)


def summarize(runs: list[tuple[dict[str, Any], ...]], compressor_names: set[str]) -> dict[str, Any]:
    """Stage dicts of one or more runs -> the report (first run's stages, compressor ms as medians)."""
    from mmlong.result import Stage

    first = [dict(s) for s in runs[0]]
    chain_rows = [i for i, s in enumerate(first) if s["name"] in compressor_names]
    for i in chain_rows:
        first[i]["ms"] = round(statistics.median(float(run[i]["ms"]) for run in runs), 3)
    by_name = {s["name"]: s for s in first}
    encode_ms = float(by_name[Stage.ENCODE]["ms"]) if Stage.ENCODE in by_name else None
    if chain_rows:
        tokens_in, tokens_out = first[chain_rows[0]]["tokens_in"], first[chain_rows[-1]]["tokens_out"]
    else:
        tokens_in = tokens_out = by_name.get(Stage.ENCODE, by_name.get(Stage.CACHE, {})).get("tokens_out", 0)
    compress_ms = sum(float(first[i]["ms"]) for i in chain_rows)
    return {
        "stages": first,
        "tokens_in": int(tokens_in),
        "tokens_out": int(tokens_out),
        "token_ratio": round(tokens_out / tokens_in, 4) if tokens_in else None,
        "compress_ms": round(compress_ms, 3),
        "encode_ms": None if encode_ms is None else round(encode_ms, 3),
        "compress_vs_encode": round(compress_ms / encode_ms, 4) if encode_ms else None,
        "repeat": len(runs),
    }


def run(args: argparse.Namespace) -> int:
    from mmlong.apps.options import dump_json, resolve_args
    from mmlong.apps.render import stage_table
    from mmlong.errors import ConfigError
    from mmlong.pipeline import Pipeline
    from mmlong.qa import Query

    if args.repeat < 1:
        raise ConfigError("--repeat must be >= 1")
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError("--threads must be >= 1")
        import torch

        torch.set_num_threads(args.threads)
    config = resolve_args(args)
    pipeline = Pipeline(config, progress=not args.json)
    query = Query(args.question, tuple(args.options)) if args.question else None
    runs = []
    for _ in range(args.repeat):
        tokens = pipeline.tokens(args.video, query)
        runs.append(tuple(s.to_dict() for s in tokens.provenance))
    report = summarize(runs, {s.name for s in pipeline.chain.pre_llm})
    record = {"video": args.video, "compress": config.compress_spec, "sample": config.sample_spec,
              "budget": config.budget,
              "threads": args.threads, **report, "grid": list(tokens.grid)}
    if args.json:
        print(dump_json(record))
        return 0
    print(stage_table(report["stages"]))
    print()
    ratio = report["token_ratio"]
    print(f"tokens: {report['tokens_in']} -> {report['tokens_out']}"
          + (f" ({ratio:.3f}x)" if ratio is not None else "")
          + (f", budget {config.budget}" if config.budget is not None else ""))
    line = f"chain: {report['compress_ms']:.1f} ms"
    if report["compress_vs_encode"] is not None:
        line += f" = {report['compress_vs_encode']:.3f}x the encoder's {report['encode_ms']:.1f} ms"
    print(line + (f" (median of {args.repeat})" if args.repeat > 1 else ""))
    return 0
