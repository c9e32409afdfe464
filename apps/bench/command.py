"""``mmlong bench ...``: the benchmark command group.

Each benchmark lives in its own module with ``add_parser(subparsers)``; list it in ``BENCH_MODULES`` to add it.
Benchmarks compare in one run (ratios), so numbers from different machines are never mixed.
"""

from __future__ import annotations

import argparse
import importlib

BENCH_MODULES: tuple[str, ...] = (
    "mmlong.apps.bench.decode",  # decode, make-video
    "mmlong.apps.bench.prefill",  # prefill
    "mmlong.apps.bench.compress",  # compress
    "mmlong.apps.bench.cache",  # cache
    "mmlong.apps.bench.plan",  # plan (the planner vs measured memory and counted FLOPs)
    "mmlong.apps.bench.experts",  # experts (on-screen text and speech, CPU per hour)
    "mmlong.apps.bench.hour",  # needle-video, hour
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="benchmarks that report ratios measured in one run",
        description="Benchmarks. Each compares mmlong with a baseline in the same run and prints the ratio.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    for module_name in BENCH_MODULES:
        importlib.import_module(module_name).add_parser(benchmarks)

    def show_help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=show_help)
