"""Re-run the hostile-input attack cases as real processes and count how each ended.

    python tests/attack_run.py [--json results.json]

Each attempt is one ``python -m mmlong ...`` (or a small Python job on the result log) in a scratch folder, with
a wall-clock limit (a hang) and an address-space limit (runaway memory ends the process instead of the
machine). An attempt is counted as: ``exit2`` (exit status 2 and exactly one ``mmlong: error:`` line),
``exit3`` (an internal error), ``traceback`` (a Python traceback on stderr), ``hang`` (killed at the time
limit), ``ran`` (exit 0/1: what the case expects when the run must go on), ``other``; and ``data_lost`` when a
file the attempt must not change (an input, another run's output) changed or lost records. The exit-2 rows are
those of ``tests/test_exit_two.py`` plus the output, size and nesting cases of this issue.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TIME_LIMIT_S = 120
MEMORY_LIMIT = 8 << 30


@dataclass
class Attempt:
    name: str
    argv: list[str]
    expect: str = "exit2"  # or "ran": the run must go on (exit 0 or 1)
    guard: list[str] = field(default_factory=list)  # files that must keep their bytes
    env: dict[str, str] = field(default_factory=dict)
    python: bool = False  # argv is a Python snippet and its arguments
    time_limit: float = TIME_LIMIT_S  # a run that must load the answerer gets longer on a loaded machine


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run(attempt: Attempt, cwd: Path) -> dict:
    before = {g: Path(g).read_bytes() for g in attempt.guard if Path(g).is_file()}
    cmd = [sys.executable, "-c", *attempt.argv] if attempt.python else [sys.executable, "-m", "mmlong", *attempt.argv]
    env = {**os.environ, "MMLONG_CACHE_DIR": str(cwd / "cache"), **attempt.env}
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=attempt.time_limit, env=env,
                              preexec_fn=limit_memory)
        status, err = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as timeout:
        status, err = None, (timeout.stderr or b"").decode(errors="replace") if timeout.stderr else ""
    except OSError as err_start:  # the attempt could not even start (e.g. an argument over the kernel's limit)
        status, err = -1, f"could not start: {err_start}"
    seconds = time.monotonic() - start
    lines = [line for line in err.splitlines() if line.strip() and "warning" not in line.lower()
             and not line.startswith(("could not write", "deleting"))]
    if status is None:
        outcome = "hang"
    elif "Traceback (most recent call last)" in err:
        outcome = "traceback"
    elif status == 2 and len(lines) == 1 and lines[0].startswith("mmlong: error: "):
        outcome = "exit2"
    elif status == 3:
        outcome = "exit3"
    elif status in (0, 1):
        outcome = "ran"
    else:
        outcome = "other"
    lost = [g for g, data in before.items() if not Path(g).is_file() or Path(g).read_bytes() != data]
    return {"name": attempt.name, "outcome": outcome, "expected": attempt.expect, "status": status,
            "seconds": round(seconds, 1), "data_lost": lost, "line": lines[-1][:200] if lines else ""}


# ---------------------------------------------------------------------------------------------- the cases

RACE = """
import json, subprocess, sys, time
from pathlib import Path
from mmlong.jobs.shards import JobLogError
from mmlong.jobs.runner import run_job
out = Path(sys.argv[1]); gate = out.with_name("gate"); overwrite = sys.argv[2] == "overwrite"
first = subprocess.Popen([sys.executable, "-c", '''
import sys, time
from pathlib import Path
from mmlong.jobs.runner import run_job
gate = Path(sys.argv[2])
def work(group):
    if group[0] == "c":
        gate.touch()
        while gate.exists():
            time.sleep(0.02)
    return [{"id": i, "answer": i.upper()} for i in group]
run_job(list("abcde"), work, sys.argv[1], id_of=lambda i: i, group_of=lambda i: i, progress=False)
''', str(out), str(gate)])
while not gate.exists():
    time.sleep(0.02)
try:
    run_job(list("xyz"), lambda g: [{"id": i} for i in g], out, id_of=lambda i: i, group_of=lambda i: i,
            progress=False, overwrite=overwrite)
    second = "ran"
except JobLogError as err:
    second = "refused"
gate.unlink()
first.wait()
ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
lost = [i for i in "abcde" if i not in ids]
print(second, "lost:", lost, file=sys.stderr)
sys.exit(0 if not lost and first.returncode == 0 else 5)
"""


def attempts(folder: Path) -> list[Attempt]:
    from tests.media import make_test_video
    from tests.test_exit_two import CASES
    from tests.test_hostile_inputs import alias_bomb, srt

    clip = make_test_video(folder / "clip.mp4", num_frames=40, fps=10, size=(64, 48))
    (folder / "list").mkdir()
    (folder / "list" / "config.json").write_text("[1, 2]")
    (folder / "nested").mkdir()
    (folder / "nested" / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    (folder / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (folder / "deep.jsonl").write_text('{"a": ' + "[" * 5000 + "]" * 5000 + "}\n")
    (folder / "afile").write_text("not a folder\n")
    (folder / "bomb.yaml").write_text(alias_bomb(9))
    (folder / "many.srt").write_text(srt(10_001))
    with open(folder / "big.srt", "wb") as f:
        f.write(srt(3).encode())
        f.truncate((4 << 20) + 10)
    good = {"id": "good", "video": "clip.mp4", "question": "What is shown?", "options": ["a cat", "a dog"]}
    q = folder / "q.jsonl"
    q.write_text(json.dumps(good) + "\n")
    hostile = folder / "hostile.jsonl"
    hostile.write_text("\n".join([
        json.dumps({"id": "o27", "video": "clip.mp4", "question": "Which?", "options": [f"o{n}" for n in range(27)]}),
        json.dumps({"id": "o2000", "video": "clip.mp4", "question": "Which?",
                    "options": [f"o{n}" for n in range(2000)]}),
        json.dumps({"id": "mb", "video": "clip.mp4", "question": "x" * 1_000_000}),
        "[" * 100_000 + "]" * 100_000,
        json.dumps(good),
    ]) + "\n")
    notes = folder / "notes.jsonl"
    notes.write_text('{"id": "a", "answer": "kept"}\nmy own notes\n')
    fifo = folder / "pipe.jsonl"
    os.mkfifo(fifo)
    d = str(folder)
    out: list[Attempt] = []
    for argv, _ in CASES:
        out.append(Attempt(" ".join(argv).replace("{dir}/", ""), [a.replace("{dir}", d) for a in argv]))
    out.append(Attempt("MMLONG_CACHE_DIR is a file", ["ask", clip, "q", "--sample", "uniform:2"],
                       env={"MMLONG_CACHE_DIR": str(folder / "afile")}))
    for target in ("/dev/full", "/dev/zero", "/proc/self/x.jsonl", d, str(fifo), str(folder / "clip.mp4"),
                   str(q), str(notes)):
        for extra in ([], ["--overwrite"]):
            out.append(Attempt(f"batch --out {Path(target).name} {' '.join(extra)}".strip(),
                               ["batch", str(q), "--out", target, *extra],
                               guard=[g for g in (str(q), str(folder / "clip.mp4"), str(notes)) if g == target]
                               + [str(q)]))
    for target in ("/dev/full", "/proc/self/s.json", d):
        out.append(Attempt(f"batch --summary-json {Path(target).name}", ["batch", str(q), "--summary-json", target]))
    for target in (str(folder / "afile"), "/proc/self/run"):
        out.append(Attempt(f"ask --save {Path(target).name}", ["ask", clip, "q", "--save", target]))
        out.append(Attempt(f"eval mlvu --out {Path(target).name}",
                           ["eval", "mlvu", "--data", str(folder / "deep.json"), "--out", target]))
    out.append(Attempt("config alias bomb (9 levels)", ["ask", clip, "q", "--config", str(folder / "bomb.yaml")]))
    out.append(Attempt("subtitles 10,001 cues", ["ask", clip, "q", "--subtitles", str(folder / "many.srt")]))
    out.append(Attempt("subtitles over 4 MiB", ["ask", clip, "q", "--subtitles", str(folder / "big.srt")]))
    out.append(Attempt("ask 100 kB question (argv holds at most 128 kB)", ["ask", clip, "x" * 100_000]))
    out.append(Attempt("ask 2000 options", ["ask", clip, "Which?", "--options", *[f"o{n}" for n in range(2000)]]))
    out.append(Attempt("batch with 27/2000 options, 1 MB question, 100k nesting, one good line",
                       ["batch", str(hostile), "--out", str(folder / "hostile.answers.jsonl"), "--sample",
                        "uniform:4", "--no-progress"], expect="ran", time_limit=900))
    for mode in ("second", "overwrite"):
        out.append(Attempt(f"run_job {mode} writer racing a running job",
                           [RACE, str(folder / f"race-{mode}.jsonl"), mode], expect="ran", python=True))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="FILE", help="also write every attempt's outcome here")
    parser.add_argument("--only", metavar="TEXT", help="run only the attempts whose name contains TEXT")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mmlong-attack-") as tmp:
        folder = Path(tmp)
        results = []
        for attempt in attempts(folder):
            if args.only and args.only not in attempt.name:
                continue
            result = run(attempt, folder)
            results.append(result)
            mark = "ok " if result["outcome"] == result["expected"] and not result["data_lost"] else "BAD"
            print(f"{mark} {result['outcome']:9} {result['seconds']:6.1f}s  {result['name'][:70]}  | {result['line']}",
                  flush=True)
    counts = {key: sum(r["outcome"] == key for r in results) for key in ("exit2", "exit3", "traceback", "hang",
                                                                          "ran", "other")}
    counts["data_lost"] = sum(bool(r["data_lost"]) for r in results)
    counts["attempts"] = len(results)
    counts["as_expected"] = sum(r["outcome"] == r["expected"] and not r["data_lost"] for r in results)
    print(json.dumps(counts))
    if args.json:
        Path(args.json).write_text(json.dumps({"counts": counts, "attempts": results}, indent=1) + "\n")
    return 0 if counts["as_expected"] == counts["attempts"] else 1


if __name__ == "__main__":
    sys.exit(main())
