"""The ``mmlong`` command line.

Each command lives in its own module under :mod:`mmlong.apps` and exposes ``add_parser(subparsers)``, which
sets ``func`` on its parser. Command modules import heavy libraries only inside ``func``, so ``mmlong --help``
is instant. Any :class:`~mmlong.errors.MmlongError` becomes one line ``mmlong: error: <file>: <reason>`` and
exit status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import typing
from typing import Sequence

# (module, what it adds) in the order shown by --help
COMMAND_MODULES: tuple[str, ...] = (
    "mmlong.apps.ask",  # ask
    "mmlong.apps.batch",  # batch
    "mmlong.apps.demo.command",  # demo
    "mmlong.apps.eval.command",  # eval
    "mmlong.apps.info",  # info, frames
    "mmlong.apps.bench.command",  # bench decode, bench make-video, ...
    "mmlong.apps.plan",  # plan
    "mmlong.apps.list",  # list
)

EPILOG = """\
examples:
  mmlong ask video.mp4 "What animal appears?" --options "a cat" "a dog"
  mmlong info video.mp4
  mmlong frames video.mp4 --sample uniform:16 --out sheet.png
  mmlong bench decode video.mp4 --frames 64
  mmlong batch questions.jsonl --out answers.jsonl   # resumable; torchrun --nproc-per-node N -m mmlong batch ...
  mmlong demo                                  # web page on http://127.0.0.1:7860
  mmlong eval niavh make runs/niavh && mmlong eval niavh run --data runs/niavh --out runs/niavh-result
"""


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one line (``mmlong: error: <command>: <reason>``, exit status 2), the
    form every other refusal takes; ``--help`` still prints the usage. Subcommand parsers are of this class too."""

    def error(self, message: str) -> "typing.NoReturn":
        hint = f"; see `{self.prog} --help`"
        self.exit(2, f"mmlong: error: {self.prog}: {' '.join(message.split())}{hint}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="mmlong",
        description="Understand long videos with vision-language models: sample, encode, compress, answer.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from mmlong import __version__

    parser.add_argument("--version", action="version", version=f"mmlong {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


# Exit statuses: 0 done, 1 some batch items failed, 2 bad input or configuration (nothing run), 3 a bug of ours.
INTERNAL_ERROR = 3


def fail(message: str, status: int = 2) -> int:
    print(f"mmlong: error: {message}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    from mmlong.cpu_threads import wait_passively
    from mmlong.errors import MmlongError

    wait_passively()  # before anything imports torch (building the parser does)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if hasattr(args, "verbose"):  # a command that runs a pipeline: the status lines say what loads
        from mmlong.progress import library_progress_bars

        library_progress_bars(args.verbose)
    try:
        status = args.func(args)
    except MmlongError as err:
        return fail(str(err))
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except BrokenPipeError:
        # output piped into e.g. `head`: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:  # a bug of ours: still one line, with the way to see the traceback
        if os.environ.get("MMLONG_DEBUG"):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return fail(f"internal error ({type(err).__name__}: {first}); please report it, and rerun with "
                    "MMLONG_DEBUG=1 to see the traceback", INTERNAL_ERROR)
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
